//! Classifiers that expose both logits and the penultimate feature vector (the embedding used by
//! Coreset, BADGE and the consistency-based query strategy).
mod cnn;
mod resnet;
mod rotnet;
mod wrn;

pub use cnn::SmallCnn;
pub use resnet::ResNet18;
pub use rotnet::RotNet;
pub use wrn::WideResNet;

use crate::config::ModelKind;
use tch::{nn, Device, Tensor};

/// A classifier with an embedding: logits `[B, classes]` and features `[B, feature_dim]`.
pub trait Classifier: Send {
    /// Runs the network; `train` selects batch statistics (and updates running ones).
    fn forward_features(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor);
    /// Width of the penultimate feature vector.
    fn feature_dim(&self) -> i64;
}

/// A model with the variable store holding its weights.
pub struct Network {
    pub vs: nn::VarStore,
    pub model: Box<dyn Classifier>,
}

impl Network {
    /// Builds a freshly initialised network of `kind` on `device` (initialised from libtorch's RNG).
    pub fn new(kind: ModelKind, in_channels: i64, num_classes: i64, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let model: Box<dyn Classifier> = match kind {
            ModelKind::SmallCnn => Box::new(SmallCnn::new(&root, in_channels, num_classes)),
            ModelKind::Wrn28_2 => Box::new(WideResNet::new(&root, in_channels, num_classes, 28, 2)),
            ModelKind::Resnet18 => Box::new(ResNet18::new(&root, in_channels, num_classes)),
        };
        use_channels_last(&vs);
        Network { vs, model }
    }

    /// Number of trainable parameters.
    pub fn num_parameters(&self) -> i64 {
        self.vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
    }

    /// Logits only.
    pub fn logits(&self, xs: &Tensor, train: bool) -> Tensor {
        self.model.forward_features(xs, train).0
    }
}

/// Lays every 4-d weight of `vs` out channels-last (NHWC strides, same shape and values), so
/// that libtorch's oneDNN and cuDNN convolutions run in that layout and hand it on to the next
/// layer: 1.5–1.8× faster forward and backward passes on the CPU for the small CNN and WRN-28-2
/// (docs/benchmarks.md). In-place updates (Adam, EMA, checkpoint loading) keep the layout.
pub fn use_channels_last(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (_, mut weight) in vs.variables() {
            if let [out, inp, h, w] = weight.size()[..] {
                // Strides written out: with one input channel `permute().contiguous()` is a no-op view.
                let nhwc = weight.permute([0, 2, 3, 1]).contiguous();
                weight.set_data(&nhwc.as_strided([out, inp, h, w], [h * w * inp, 1, w * inp, inp], 0));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn check(kind: ModelKind, in_c: i64, hw: i64, classes: i64, params: (i64, i64), feat: i64) {
        tch::manual_seed(0);
        let net = Network::new(kind, in_c, classes, Device::Cpu);
        let n = net.num_parameters();
        assert!(n >= params.0 && n <= params.1, "{kind:?}: {n} parameters");
        let x = Tensor::randn([2, in_c, hw, hw], (Kind::Float, Device::Cpu));
        let (logits, features) = tch::no_grad(|| net.model.forward_features(&x, false));
        assert_eq!(logits.size(), vec![2, classes]);
        assert_eq!(features.size(), vec![2, feat]);
        assert_eq!(net.model.feature_dim(), feat);
    }

    #[test]
    fn channels_last_keeps_values_and_outputs() {
        for (kind, in_c) in [(ModelKind::SmallCnn, 1), (ModelKind::Wrn28_2, 3)] {
            tch::manual_seed(3);
            let net = Network::new(kind, in_c, 10, Device::Cpu);
            // A twin with the same values in the default (contiguous NCHW) layout.
            let plain = nn::VarStore::new(Device::Cpu);
            let twin: Box<dyn Classifier> = match kind {
                ModelKind::SmallCnn => Box::new(SmallCnn::new(&plain.root(), in_c, 10)),
                _ => Box::new(WideResNet::new(&plain.root(), in_c, 10, 28, 2)),
            };
            let mut copied = 0;
            tch::no_grad(|| {
                let theirs = net.vs.variables();
                for (name, mut mine) in plain.variables() {
                    mine.copy_(&theirs[&name]);
                    if mine.dim() == 4 {
                        let s = theirs[&name].stride();
                        assert_eq!(s[1], 1, "{name}: channel stride {s:?}");
                        assert!(mine.is_contiguous());
                        copied += 1;
                    }
                }
            });
            assert!(copied >= 3);
            let x = Tensor::randn([4, in_c, 28, 28], (Kind::Float, Device::Cpu));
            let (a, b) = tch::no_grad(|| (net.logits(&x, false), twin.forward_features(&x, false).0));
            let diff = (a - b).abs().max().double_value(&[]);
            assert!(diff < 1e-4, "{kind:?}: channels-last output differs by {diff}");
        }
    }

    #[test]
    fn small_cnn_shapes() {
        check(ModelKind::SmallCnn, 1, 28, 10, (50_000, 200_000), 128);
    }

    #[test]
    fn wrn_28_2_has_about_1_47m_parameters() {
        // Counted by hand per layer: 1,467,418. The MixMatch port's 1,467,610 also counts the
        // batch-norms of the two transition blocks that never use them (2 × (32 + 64) = 192).
        check(ModelKind::Wrn28_2, 3, 32, 10, (1_467_418, 1_467_418), 128);
    }

    #[test]
    fn resnet18_has_about_11_2m_parameters() {
        // torchvision's resnet18 has 11,689,512 with 1000 classes, so 11,181,642 with 10.
        check(ModelKind::Resnet18, 3, 32, 10, (11_181_642, 11_181_642), 512);
    }
}
