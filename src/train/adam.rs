//! Adam whose moment estimates are plain tensors, so a checkpoint can save and restore them
//! (tch's optimizer keeps its state inside libtorch, out of reach of a checkpoint).
use tch::Tensor;

/// Adam (Kingma & Ba 2015) without weight decay; decay is applied separately (decoupled).
pub struct Adam {
    params: Vec<Tensor>,
    first: Vec<Tensor>,
    second: Vec<Tensor>,
    lr: f64,
    steps: i64,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl Adam {
    /// An optimizer over `params` (trainable tensors) with learning rate `lr`.
    pub fn new(params: Vec<Tensor>, lr: f64) -> Self {
        let zeros = |ps: &[Tensor]| ps.iter().map(|p| p.zeros_like()).collect::<Vec<_>>();
        Adam { first: zeros(&params), second: zeros(&params), params, lr, steps: 0 }
    }

    /// Back-propagates `loss` and takes one step.
    pub fn backward_step(&mut self, loss: &Tensor) {
        for p in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        loss.backward();
        self.steps += 1;
        let correction1 = 1.0 - BETA1.powi(self.steps as i32);
        let correction2 = 1.0 - BETA2.powi(self.steps as i32);
        tch::no_grad(|| {
            for ((p, m), v) in self.params.iter().zip(&mut self.first).zip(&mut self.second) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = m.g_mul_scalar_(BETA1).g_add_(&(&g * (1.0 - BETA1)));
                let _ = v.g_mul_scalar_(BETA2).g_add_(&(&g * &g * (1.0 - BETA2)));
                let denom = v.sqrt() / correction2.sqrt() + EPS;
                let _ = p.shallow_clone().g_sub_(&(&*m / denom * (self.lr / correction1)));
            }
        });
    }

    /// Steps taken so far (part of a checkpoint).
    pub fn steps(&self) -> i64 {
        self.steps
    }

    /// The moment tensors under stable names, for saving.
    pub fn named_state(&self) -> Vec<(String, Tensor)> {
        let moments = self.first.iter().enumerate().map(|(i, t)| (format!("adam.m.{i}"), t.shallow_clone()));
        moments.chain(self.second.iter().enumerate().map(|(i, t)| (format!("adam.v.{i}"), t.shallow_clone()))).collect()
    }

    /// Restores the moments saved by [`Adam::named_state`] and the step count; false when the
    /// saved state does not fit these parameters.
    pub fn restore(&mut self, state: &std::collections::HashMap<String, Tensor>, steps: i64) -> bool {
        let fits = (0..self.params.len()).all(|i| {
            [format!("adam.m.{i}"), format!("adam.v.{i}")]
                .iter()
                .all(|k| state.get(k).is_some_and(|t| t.size() == self.params[i].size()))
        });
        if !fits {
            return false;
        }
        tch::no_grad(|| {
            for i in 0..self.params.len() {
                self.first[i].copy_(&state[&format!("adam.m.{i}")]);
                self.second[i].copy_(&state[&format!("adam.v.{i}")]);
            }
        });
        self.steps = steps;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{Module, OptimizerConfig};
    use tch::{Device, Kind};

    /// Same model, same data, same start: this Adam and libtorch's must follow the same path.
    #[test]
    fn matches_libtorch_adam() {
        tch::manual_seed(3);
        let x = Tensor::randn([32, 5], (Kind::Float, Device::Cpu));
        let y = Tensor::randn([32, 2], (Kind::Float, Device::Cpu));
        let make = || {
            let vs = tch::nn::VarStore::new(Device::Cpu);
            let lin = tch::nn::linear(vs.root(), 5, 2, Default::default());
            (vs, lin)
        };
        let (vs_a, lin_a) = make();
        let (mut vs_b, lin_b) = make();
        vs_b.copy(&vs_a).unwrap();
        let mut ours = Adam::new(vs_a.trainable_variables(), 0.01);
        let mut theirs = tch::nn::Adam::default().build(&vs_b, 0.01).unwrap();
        let start = (lin_a.forward(&x) - &y).square().mean(Kind::Float).double_value(&[]);
        for _ in 0..50 {
            ours.backward_step(&(lin_a.forward(&x) - &y).square().mean(Kind::Float));
            theirs.backward_step(&(lin_b.forward(&x) - &y).square().mean(Kind::Float));
        }
        assert_eq!(ours.steps(), 50);
        for (name, a) in vs_a.variables() {
            let b = &vs_b.variables()[&name];
            let diff = (&a - b).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "{name} differs by {diff}");
        }
        // And it did move the weights: the loss fell.
        let loss = (lin_a.forward(&x) - &y).square().mean(Kind::Float).double_value(&[]);
        assert!(loss < 0.9 * start, "loss {loss} vs {start} at the start");
    }
}
