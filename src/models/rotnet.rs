//! RotNet (Gidaris et al. 2018): a Network-in-Network classifier of image rotations whose
//! second block, globally average-pooled, is the self-supervised embedding.
use tch::{nn, Tensor};

/// Three NIN blocks (a 3×3 conv and two 1×1 convs each, with batch norm and ReLU) of widths
/// w, 2w, 2w, and a 4-way rotation classifier. With w = 96 the second block gives the 192-d
/// features of the RotNet paper's CIFAR-10 model.
#[derive(Debug)]
pub struct RotNet {
    blocks: Vec<Vec<(nn::Conv2D, nn::BatchNorm)>>,
    fc: nn::Linear,
    embedding_dim: i64,
}

impl RotNet {
    /// Builds the network under `p`.
    pub fn new(p: &nn::Path, in_channels: i64, width: i64) -> Self {
        let widths = [in_channels, width, 2 * width, 2 * width];
        let blocks = (0..3)
            .map(|b| {
                let bp = p / format!("block{b}");
                [(widths[b], widths[b + 1], 3), (widths[b + 1], widths[b + 1], 1), (widths[b + 1], widths[b + 1], 1)]
                    .iter()
                    .enumerate()
                    .map(|(i, &(cin, cout, k))| {
                        let cfg = nn::ConvConfig { padding: k / 2, bias: false, ..Default::default() };
                        let conv = nn::conv2d(&bp / format!("conv{i}"), cin, cout, k, cfg);
                        (conv, nn::batch_norm2d(&bp / format!("bn{i}"), cout, Default::default()))
                    })
                    .collect()
            })
            .collect();
        RotNet { blocks, fc: nn::linear(p / "fc", 2 * width, 4, Default::default()), embedding_dim: 2 * width }
    }

    fn block(&self, b: usize, xs: &Tensor, train: bool) -> Tensor {
        let mut h = xs.shallow_clone();
        for (conv, bn) in &self.blocks[b] {
            h = h.apply(conv).apply_t(bn, train).relu();
        }
        h
    }

    /// Rotation logits `[B, 4]`.
    pub fn rotation_logits(&self, xs: &Tensor, train: bool) -> Tensor {
        let h = self.block(0, xs, train).max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        let h = self.block(1, &h, train).max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        let h = self.block(2, &h, train);
        h.mean_dim(&[2i64, 3][..], false, h.kind()).apply(&self.fc)
    }

    /// The embedding: global average pooling of the second block's output.
    pub fn embed(&self, xs: &Tensor) -> Tensor {
        let h = self.block(0, xs, false).max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        let h = self.block(1, &h, false);
        h.mean_dim(&[2i64, 3][..], false, h.kind())
    }

    /// Width of the embedding.
    pub fn embedding_dim(&self) -> i64 {
        self.embedding_dim
    }
}
