//! ResNet-18 (He et al.), laid out as torchvision's, for 224×224 inputs such as Caltech-101.
use super::Classifier;
use tch::{nn, Tensor};

fn conv(p: nn::Path, i: i64, o: i64, k: i64, stride: i64) -> nn::Conv2D {
    nn::conv2d(p, i, o, k, nn::ConvConfig { stride, padding: k / 2, bias: false, ..Default::default() })
}

#[derive(Debug)]
struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    downsample: Option<(nn::Conv2D, nn::BatchNorm)>,
}

impl BasicBlock {
    fn new(p: &nn::Path, i: i64, o: i64, stride: i64) -> Self {
        BasicBlock {
            conv1: conv(p / "conv1", i, o, 3, stride),
            bn1: nn::batch_norm2d(p / "bn1", o, Default::default()),
            conv2: conv(p / "conv2", o, o, 3, 1),
            bn2: nn::batch_norm2d(p / "bn2", o, Default::default()),
            downsample: (stride != 1 || i != o).then(|| {
                (conv(p / "down_conv", i, o, 1, stride), nn::batch_norm2d(p / "down_bn", o, Default::default()))
            }),
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let h = x.apply(&self.conv1).apply_t(&self.bn1, train).relu().apply(&self.conv2).apply_t(&self.bn2, train);
        let skip = match &self.downsample {
            Some((c, b)) => x.apply(c).apply_t(b, train),
            None => x.shallow_clone(),
        };
        (h + skip).relu()
    }
}

/// ResNet-18: 7×7 stem, four stages of two basic blocks (64–512 channels), 512-d embedding.
#[derive(Debug)]
pub struct ResNet18 {
    stem: nn::Conv2D,
    stem_bn: nn::BatchNorm,
    blocks: Vec<BasicBlock>,
    fc: nn::Linear,
}

impl ResNet18 {
    /// Builds the network under `p`.
    pub fn new(p: &nn::Path, in_channels: i64, num_classes: i64) -> Self {
        let widths = [64, 64, 128, 256, 512];
        let mut blocks = Vec::new();
        for s in 0..4 {
            let stride = if s == 0 { 1 } else { 2 };
            blocks.push(BasicBlock::new(&(p / format!("l{s}b0")), widths[s], widths[s + 1], stride));
            blocks.push(BasicBlock::new(&(p / format!("l{s}b1")), widths[s + 1], widths[s + 1], 1));
        }
        ResNet18 {
            stem: conv(p / "stem", in_channels, 64, 7, 2),
            stem_bn: nn::batch_norm2d(p / "stem_bn", 64, Default::default()),
            blocks,
            fc: nn::linear(p / "fc", 512, num_classes, Default::default()),
        }
    }
}

impl Classifier for ResNet18 {
    fn forward_features(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut h = xs.apply(&self.stem).apply_t(&self.stem_bn, train).relu();
        h = h.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for b in &self.blocks {
            h = b.forward(&h, train);
        }
        let features = h.mean_dim(&[2i64, 3][..], false, h.kind());
        (features.apply(&self.fc), features)
    }

    fn feature_dim(&self) -> i64 {
        512
    }
}
