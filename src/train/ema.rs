//! Exponential moving average of a network's weights, the model that is evaluated.
use crate::models::Network;
use tch::Tensor;

/// Pairs of (EMA tensor, live tensor), split into averaged ones (the parameters, and with
/// `average_batch_norm` the floating-point buffers: batch-norm running statistics) and copied
/// ones (the other buffers).
pub struct Ema {
    averaged: Vec<(Tensor, Tensor)>,
    copied: Vec<(Tensor, Tensor)>,
    decay: f64,
    warmup: bool,
    updates: u64,
}

impl Ema {
    /// Starts the average at the live network's current weights; batch-norm statistics are
    /// averaged too when `average_batch_norm`, else copied from the live network at each update.
    pub fn new(ema: &Network, live: &Network, decay: f64, warmup: bool, average_batch_norm: bool) -> Self {
        let (e, l) = (ema.vs.variables(), live.vs.variables());
        let mut names: Vec<&String> = l.keys().collect();
        names.sort();
        let (mut averaged, mut copied) = (Vec::new(), Vec::new());
        for name in names {
            let pair = (e[name].shallow_clone(), l[name].shallow_clone());
            if l[name].requires_grad() || (average_batch_norm && l[name].is_floating_point()) {
                averaged.push(pair)
            } else {
                copied.push(pair)
            }
        }
        let mut this = Ema { averaged, copied, decay, warmup, updates: 0 };
        this.copy_all();
        this
    }

    fn copy_all(&mut self) {
        tch::no_grad(|| {
            for (e, l) in self.averaged.iter_mut().chain(self.copied.iter_mut()) {
                e.copy_(l);
            }
        });
    }

    /// The decay used at the next update: the warm-up rule min(decay, (1+t)/(10+t)) when enabled.
    pub fn current_decay(&self) -> f64 {
        let t = self.updates as f64;
        if self.warmup {
            self.decay.min((1.0 + t) / (10.0 + t))
        } else {
            self.decay
        }
    }

    /// Number of updates so far (part of a checkpoint).
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Restores the update counter from a checkpoint.
    pub fn set_updates(&mut self, updates: u64) {
        self.updates = updates;
    }

    /// ema ← d·ema + (1−d)·live for the averaged tensors; the others are copied.
    pub fn update(&mut self) {
        let d = self.current_decay();
        tch::no_grad(|| {
            for (e, l) in self.averaged.iter_mut() {
                let _ = e.g_mul_scalar_(d);
                let _ = e.g_add_(&(l.shallow_clone() * (1.0 - d)));
            }
            for (e, l) in self.copied.iter_mut() {
                e.copy_(l);
            }
        });
        self.updates += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelKind;
    use tch::Device;

    /// A live small CNN and the network its average is kept in (seed 0).
    fn live_and_ema_networks() -> (Network, Network) {
        tch::manual_seed(0);
        (Network::new(ModelKind::SmallCnn, 1, 10, Device::Cpu), Network::new(ModelKind::SmallCnn, 1, 10, Device::Cpu))
    }

    #[test]
    fn warmup_rule_and_closed_form_average() {
        let (live, ema_net) = live_and_ema_networks();
        let mut ema = Ema::new(&ema_net, &live, 0.9, true, false);
        assert!((ema.current_decay() - 0.1).abs() < 1e-12); // (1+0)/(10+0)
        let w_live = live.vs.variables()["fc.weight"].shallow_clone();
        let w0 = w_live.copy();
        // Move the live weights by +1 twice; EMA follows e ← d e + (1-d) l.
        let mut expect = w0.copy();
        for step in 0..2 {
            let d = ema.current_decay();
            tch::no_grad(|| {
                let _ = w_live.shallow_clone().g_add_scalar_(1.0);
            });
            ema.update();
            expect = &expect * d + (&w0 + (step + 1) as f64) * (1.0 - d);
        }
        let got = &ema_net.vs.variables()["fc.weight"];
        assert!(got.allclose(&expect, 1e-6, 1e-6, false));
        // Buffers are copied, not averaged.
        let rv = "bn0.running_var";
        assert!(ema_net.vs.variables()[rv].equal(&live.vs.variables()[rv]));
        // Without warm-up the decay is the configured one.
        assert_eq!(Ema::new(&ema_net, &live, 0.999, false, false).current_decay(), 0.999);
    }

    #[test]
    fn batch_norm_statistics_are_averaged_when_asked() {
        let (live, ema_net) = live_and_ema_networks();
        let mut ema = Ema::new(&ema_net, &live, 0.9, false, true);
        let rv = "bn0.running_var";
        let live_rv = live.vs.variables()[rv].shallow_clone();
        let start = live_rv.copy();
        // The live statistics move by +2: the EMA's take one step of 1 − d = 0.1 toward them.
        tch::no_grad(|| {
            let _ = live_rv.shallow_clone().g_add_scalar_(2.0);
        });
        ema.update();
        let expect = &start * 0.9 + (&start + 2.0) * 0.1;
        assert!(ema_net.vs.variables()[rv].allclose(&expect, 1e-6, 1e-6, false));
    }
}
