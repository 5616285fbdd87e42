//! A small CNN for 28×28 grey-scale images: cheap enough for CPU experiments.
use super::Classifier;
use tch::{nn, Tensor};

/// Three conv–BN–ReLU stages (32, 64, 128 channels, two max-pools), global average pooling to a
/// 128-d embedding, and a linear classifier.
#[derive(Debug)]
pub struct SmallCnn {
    convs: Vec<(nn::Conv2D, nn::BatchNorm)>,
    fc: nn::Linear,
}

impl SmallCnn {
    /// Builds the network under `p`.
    pub fn new(p: &nn::Path, in_channels: i64, num_classes: i64) -> Self {
        let widths = [in_channels, 32, 64, 128];
        let cfg = nn::ConvConfig { padding: 1, bias: false, ..Default::default() };
        let convs = (0..3)
            .map(|i| {
                let conv = nn::conv2d(p / format!("conv{i}"), widths[i], widths[i + 1], 3, cfg);
                let bn = nn::batch_norm2d(p / format!("bn{i}"), widths[i + 1], Default::default());
                (conv, bn)
            })
            .collect();
        SmallCnn { convs, fc: nn::linear(p / "fc", 128, num_classes, Default::default()) }
    }
}

impl Classifier for SmallCnn {
    fn forward_features(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut h = xs.shallow_clone();
        for (i, (conv, bn)) in self.convs.iter().enumerate() {
            h = h.apply(conv).apply_t(bn, train).relu();
            if i < 2 {
                h = h.max_pool2d_default(2);
            }
        }
        let features = h.mean_dim(&[2i64, 3][..], false, h.kind());
        (features.apply(&self.fc), features)
    }

    fn feature_dim(&self) -> i64 {
        128
    }
}
