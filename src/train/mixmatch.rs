//! The MixMatch loss (Berthelot et al. 2019): guessed, sharpened labels for K augmentations of
//! each unlabeled image, MixUp of everything with everything, soft cross-entropy on the labeled
//! part and a squared error on the unlabeled part weighted by a linearly ramped λ_u.
use crate::config::MixMatchConfig;
use crate::models::Network;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};
use tch::{Kind, Tensor};

/// p^(1/T), renormalised over classes.
pub fn sharpen(p: &Tensor, temperature: f64) -> Tensor {
    let pt = p.pow_tensor_scalar(1.0 / temperature);
    &pt / pt.sum_dim_intlist(&[1i64][..], true, Kind::Float)
}

/// The MixMatch loss for one step. `x` is an augmented labeled batch with one-hot `targets`;
/// `us` holds K augmentations of one unlabeled batch. The mixed batch goes through the network
/// in one forward pass, so batch-norm statistics come from labeled and unlabeled data together.
pub fn mixmatch_loss(
    net: &Network,
    x: &Tensor,
    targets: &Tensor,
    us: &[Tensor],
    cfg: &MixMatchConfig,
    step: usize,
    rng: &mut ChaCha8Rng,
) -> Tensor {
    let k = us.len() as f64;
    let guess = tch::no_grad(|| {
        let mean = us.iter().map(|u| net.logits(u, true).softmax(1, Kind::Float)).reduce(|a, b| a + b).unwrap() / k;
        sharpen(&mean, cfg.temperature)
    });
    let inputs = Tensor::cat(&std::iter::once(x).chain(us).collect::<Vec<_>>(), 0);
    let all_targets =
        Tensor::cat(&std::iter::once(targets).chain(std::iter::repeat_n(&guess, us.len())).collect::<Vec<_>>(), 0);
    let lambda: f64 = Beta::new(cfg.alpha, cfg.alpha).expect("alpha > 0").sample(rng);
    let lambda = lambda.max(1.0 - lambda);
    let n = inputs.size()[0];
    let mut perm: Vec<i64> = (0..n).collect();
    perm.shuffle(rng);
    let perm = Tensor::from_slice(&perm).to_device(inputs.device());
    let mixed = &inputs * lambda + inputs.index_select(0, &perm) * (1.0 - lambda);
    let mixed_t = &all_targets * lambda + all_targets.index_select(0, &perm) * (1.0 - lambda);
    let logits = net.logits(&mixed, true);
    let b = x.size()[0];
    let (lx, lu) = (logits.narrow(0, 0, b), logits.narrow(0, b, n - b));
    let (tx, tu) = (mixed_t.narrow(0, 0, b), mixed_t.narrow(0, b, n - b));
    let loss_x =
        -(lx.log_softmax(1, Kind::Float) * tx).sum_dim_intlist(&[1i64][..], false, Kind::Float).mean(Kind::Float);
    let loss_u = (lu.softmax(1, Kind::Float) - tu).square().mean(Kind::Float);
    loss_x + loss_u * unlabeled_weight(cfg, step)
}

/// λ_u · min(1, step / rampup_steps).
pub fn unlabeled_weight(cfg: &MixMatchConfig, step: usize) -> f64 {
    let ramp = if cfg.rampup_steps == 0 { 1.0 } else { (step as f64 / cfg.rampup_steps as f64).min(1.0) };
    cfg.lambda_u * ramp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharpen_matches_hand_computed_values() {
        let p = Tensor::from_slice(&[0.6f32, 0.4]).view([1, 2]);
        // T = 0.5: 0.36 / (0.36 + 0.16) = 0.6923…
        let s = Vec::<f32>::try_from(sharpen(&p, 0.5).view([-1])).unwrap();
        assert!((s[0] - 0.36 / 0.52).abs() < 1e-6 && (s[1] - 0.16 / 0.52).abs() < 1e-6);
        // T = 1 is the identity.
        assert!(sharpen(&p, 1.0).allclose(&p, 1e-6, 1e-6, false));
    }

    #[test]
    fn lambda_u_ramps_linearly() {
        let cfg = MixMatchConfig { lambda_u: 75.0, rampup_steps: 100, ..Default::default() };
        assert_eq!(unlabeled_weight(&cfg, 0), 0.0);
        assert_eq!(unlabeled_weight(&cfg, 50), 37.5);
        assert_eq!(unlabeled_weight(&cfg, 500), 75.0);
    }
}
