//! Wide ResNet (Zagoruyko & Komodakis) as configured by MixMatch: pre-activation blocks,
//! leaky ReLU 0.1, batch-norm momentum 0.001.
use super::Classifier;
use tch::{nn, Tensor};

const BN_MOMENTUM: f64 = 0.001;
const LEAK: f64 = 0.1;

fn bn(p: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(p, c, nn::BatchNormConfig { momentum: BN_MOMENTUM, ..Default::default() })
}

fn conv(p: nn::Path, i: i64, o: i64, k: i64, stride: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig { stride, padding: k / 2, bias: false, ..Default::default() };
    nn::conv2d(p, i, o, k, cfg)
}

/// Leaky ReLU with slope 0.1 as one fused kernel: libtorch's `leaky_relu` in tch has no slope
/// argument, and PReLU with a constant slope is the same function (as max(x, 0.1x) it cost two
/// elementwise passes and was 25 % slower per WRN-28-2 training step on the CPU).
#[derive(Debug)]
struct LeakyRelu {
    slope: Tensor,
}

impl LeakyRelu {
    fn new(device: tch::Device) -> Self {
        LeakyRelu { slope: Tensor::from_slice(&[LEAK as f32]).to_device(device) }
    }

    fn apply(&self, x: &Tensor) -> Tensor {
        x.prelu(&self.slope)
    }
}

/// A pre-activation block. As in the MixMatch port, a block that changes width either activates
/// first and feeds the activation to both branches (`activate_before_residual`, the first block),
/// or feeds the raw input to both branches (the other transition blocks, which then need no `bn1`).
#[derive(Debug)]
struct Block {
    bn1: Option<nn::BatchNorm>,
    conv1: nn::Conv2D,
    bn2: nn::BatchNorm,
    conv2: nn::Conv2D,
    shortcut: Option<nn::Conv2D>,
}

impl Block {
    fn new(p: &nn::Path, i: i64, o: i64, stride: i64, activate_before_residual: bool) -> Self {
        let equal = i == o && stride == 1;
        Block {
            bn1: (equal || activate_before_residual).then(|| bn(p / "bn1", i)),
            conv1: conv(p / "conv1", i, o, 3, stride),
            bn2: bn(p / "bn2", o),
            conv2: conv(p / "conv2", o, o, 3, 1),
            shortcut: (!equal).then(|| conv(p / "shortcut", i, o, 1, stride)),
        }
    }

    fn forward(&self, x: &Tensor, train: bool, lrelu: &LeakyRelu) -> Tensor {
        let input = match &self.bn1 {
            Some(bn1) => lrelu.apply(&x.apply_t(bn1, train)),
            None => x.shallow_clone(),
        };
        let h = lrelu.apply(&input.apply(&self.conv1).apply_t(&self.bn2, train)).apply(&self.conv2);
        match &self.shortcut {
            Some(s) => h + input.apply(s),
            None => h + x,
        }
    }
}

/// WRN-depth-width with three groups of (depth − 4) / 6 blocks and widths 16·w, 32·w, 64·w.
#[derive(Debug)]
pub struct WideResNet {
    stem: nn::Conv2D,
    blocks: Vec<Block>,
    bn: nn::BatchNorm,
    fc: nn::Linear,
    lrelu: LeakyRelu,
    width: i64,
}

impl WideResNet {
    /// Builds WRN-`depth`-`widen` under `p`.
    pub fn new(p: &nn::Path, in_channels: i64, num_classes: i64, depth: i64, widen: i64) -> Self {
        let n = (depth - 4) / 6;
        let widths = [16, 16 * widen, 32 * widen, 64 * widen];
        let stem = conv(p / "stem", in_channels, widths[0], 3, 1);
        let mut blocks = Vec::new();
        for g in 0..3 {
            for b in 0..n {
                let i = if b == 0 { widths[g] } else { widths[g + 1] };
                let stride = if b == 0 && g > 0 { 2 } else { 1 };
                blocks.push(Block::new(&(p / format!("g{g}b{b}")), i, widths[g + 1], stride, g == 0 && b == 0));
            }
        }
        WideResNet {
            stem,
            blocks,
            bn: bn(p / "bn", widths[3]),
            fc: nn::linear(p / "fc", widths[3], num_classes, Default::default()),
            lrelu: LeakyRelu::new(p.device()),
            width: widths[3],
        }
    }
}

impl Classifier for WideResNet {
    fn forward_features(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut h = xs.apply(&self.stem);
        for b in &self.blocks {
            h = b.forward(&h, train, &self.lrelu);
        }
        let h = self.lrelu.apply(&h.apply_t(&self.bn, train));
        let features = h.mean_dim(&[2i64, 3][..], false, h.kind());
        (features.apply(&self.fc), features)
    }

    fn feature_dim(&self) -> i64 {
        self.width
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaky_relu_has_slope_one_tenth() {
        let x = Tensor::from_slice(&[-2.0f32, -0.5, 0.0, 3.0]);
        let y = Vec::<f32>::try_from(LeakyRelu::new(tch::Device::Cpu).apply(&x)).unwrap();
        assert_eq!(y, vec![-0.2, -0.05, 0.0, 3.0]);
    }
}
