//! Training (supervised or MixMatch) with Adam, decoupled weight decay and an EMA model that is
//! evaluated on the test set; the reported accuracy is the median of the last evaluations.
mod adam;
mod ema;
mod mixmatch;
mod state;

pub use adam::Adam;
pub use ema::Ema;
pub use mixmatch::{mixmatch_loss, sharpen};
pub(crate) use state::{load_state, named_variables, restore_variables, save_state};
pub use state::{Checkpointing, TrainError};

use crate::config::{ExperimentConfig, Method, MixMatchConfig, ModelKind, TrainConfig};
use crate::data::{DeviceData, EpochSampler};
use crate::models::Network;
use crate::progress::Progress;
use crate::result::Evaluation;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use tch::{Kind, Tensor};

/// libtorch errors carry a C++ stack trace after the message; people need the message.
pub(crate) fn first_line(e: &impl std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// Median of the last `n` accuracies (all of them when fewer).
pub fn median_of_last(evals: &[Evaluation], n: usize) -> f64 {
    let start = evals.len().saturating_sub(n);
    let mut v: Vec<f64> = evals[start..].iter().map(|e| e.accuracy).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Accuracy of `net` in evaluation mode on `images` (`u8`, on the device) with `labels`.
pub fn evaluate(net: &Network, data: &DeviceData, images: &Tensor, labels: &Tensor, batch_size: usize) -> f64 {
    let n = labels.size()[0];
    let mut correct = 0i64;
    tch::no_grad(|| {
        for start in (0..n).step_by(batch_size) {
            let len = batch_size.min((n - start) as usize) as i64;
            let x = data.normalise(&images.narrow(0, start, len));
            let pred = net.logits(&x, false).argmax(1, false);
            correct += pred.eq_tensor(&labels.narrow(0, start, len)).sum(Kind::Int64).int64_value(&[]);
        }
    });
    correct as f64 / n as f64
}

/// The fixed test subset of `train.eval_subset`: `size` of the `n_test` test images, drawn from
/// the run's seed alone (the same in every cycle and on resume), ascending.
pub fn eval_subset_indices(seed: u64, n_test: usize, size: usize) -> Vec<usize> {
    let mut rng = crate::seeds::Stream::EvalSubset.rng(seed);
    let mut picked = rand::seq::index::sample(&mut rng, n_test, size.min(n_test)).into_vec();
    picked.sort_unstable();
    picked
}

/// The steps after which a run of `steps` steps evaluates: every `every` steps and at the end.
fn evaluation_steps(steps: usize, every: usize) -> Vec<usize> {
    let mut at: Vec<usize> = (1..=steps / every).map(|i| i * every).collect();
    if steps % every != 0 {
        at.push(steps);
    }
    at
}

/// A trained pair of networks and its evaluation history.
pub struct TrainOutcome {
    pub live: Network,
    pub ema: Network,
    pub evaluations: Vec<Evaluation>,
    /// Median of the last `train.median_of` evaluations.
    pub accuracy: f64,
    /// Seconds spent in test evaluations (in this process: a resumed run counts its part only).
    pub eval_seconds: f64,
}

/// What training reads of a run's config: the network, the method, their two sections, and the
/// run's seed (for the fixed evaluation subset).
#[derive(Debug, Clone, Copy)]
pub struct TrainSetup<'a> {
    pub model: ModelKind,
    pub method: Method,
    pub train: &'a TrainConfig,
    pub mixmatch: &'a MixMatchConfig,
    pub seed: u64,
}

impl<'a> TrainSetup<'a> {
    /// The training `config` describes.
    pub fn of(config: &'a ExperimentConfig) -> Self {
        TrainSetup {
            model: config.model,
            method: config.method,
            train: &config.train,
            mixmatch: &config.mixmatch,
            seed: config.seed,
        }
    }
}

/// Trains a network on `labeled` (and, for MixMatch, `unlabeled`) training indices: a fresh one,
/// or, with `warm_start`, one that starts from those weights (the EMA starts there too).
/// With `checkpointing`, the whole training state is saved periodically and when a stop is
/// requested (then `TrainError::Interrupted`), and a saved state of the same cycle is resumed.
#[allow(clippy::too_many_arguments)]
pub fn train(
    setup: TrainSetup,
    data: &DeviceData,
    labeled: &[usize],
    unlabeled: &[usize],
    warm_start: Option<&Network>,
    rng: &mut ChaCha8Rng,
    progress: &dyn Progress,
    checkpointing: Option<&Checkpointing>,
) -> Result<TrainOutcome, TrainError> {
    let ds = data.dataset;
    let [c, _, _] = ds.image_shape();
    let classes = ds.num_classes as i64;
    let t = setup.train;
    let mut live = Network::new(setup.model, c, classes, data.device);
    if let Some(previous) = warm_start {
        live.vs.copy(&previous.vs).map_err(|e| TrainError::WarmStart(first_line(&e)))?;
    }
    // The ramp-up in steps, also when given as a fraction of the run.
    let mixmatch = MixMatchConfig { rampup_steps: setup.mixmatch.rampup_steps_for(t.steps), ..setup.mixmatch.clone() };
    let ema_net = Network::new(setup.model, c, classes, data.device);
    let mut ema = Ema::new(&ema_net, &live, t.ema_decay, t.ema_warmup, t.ema_average_batch_norm);
    let mut opt = Adam::new(live.vs.trainable_variables(), t.lr);
    let decayed: Vec<Tensor> = live.vs.trainable_variables().into_iter().filter(|t| t.dim() >= 2).collect();
    // Evaluations before the last `median_of` use the fixed subset, if one is configured.
    let n_test = data.test_labels.size()[0] as usize;
    let subset = t.eval_subset.filter(|&k| k < n_test).map(|k| {
        let idx = crate::data::index_tensor(&eval_subset_indices(setup.seed, n_test, k)).to_device(data.device);
        (data.test_images.index_select(0, &idx), data.test_labels.index_select(0, &idx), k)
    });
    let eval_at = evaluation_steps(t.steps, t.eval_every);
    let whole_set_from = eval_at[eval_at.len().saturating_sub(t.median_of)..].first().copied().unwrap_or(0);
    let mut loop_state = state::LoopState {
        step: 0,
        rng: rng.clone(),
        labeled: EpochSampler::new(labeled),
        unlabeled: (setup.method == Method::Mixmatch && !unlabeled.is_empty()).then(|| EpochSampler::new(unlabeled)),
        evaluations: Vec::new(),
    };
    if let Some(ck) = checkpointing {
        ck.restore(&live, &ema_net, &mut ema, &mut opt, labeled, &mut loop_state)?;
    }
    progress.begin("train", t.steps as u64, loop_state.step as u64);
    let mut last_save = Instant::now();
    let mut eval_seconds = 0.0;
    while loop_state.step < t.steps {
        if let Some(ck) = checkpointing {
            let stop = crate::interrupt::requested();
            if stop || last_save.elapsed() >= ck.every {
                ck.save(&live, &ema_net, &ema, &opt, labeled, &loop_state)?;
                last_save = Instant::now();
            }
            if stop {
                return Err(TrainError::Interrupted { step: loop_state.step });
            }
        }
        let step = loop_state.step;
        let rng = &mut loop_state.rng;
        let li = loop_state.labeled.next_batch(t.batch_size, rng);
        let x = data.augmented_batch(&li, rng);
        let y = data.train_label_batch(&li);
        let loss = match loop_state.unlabeled.as_mut() {
            None => live.logits(&x, true).cross_entropy_for_logits(&y),
            Some(unl) => {
                let ui = unl.next_batch(t.batch_size, rng);
                let us: Vec<Tensor> = (0..mixmatch.augmentations).map(|_| data.augmented_batch(&ui, rng)).collect();
                let onehot = y.onehot(classes).to_kind(Kind::Float);
                mixmatch_loss(&live, &x, &onehot, &us, &mixmatch, step, rng)
            }
        };
        opt.backward_step(&loss);
        tch::no_grad(|| {
            for w in &decayed {
                let _ = w.shallow_clone().g_mul_scalar_(1.0 - t.weight_decay);
            }
        });
        ema.update();
        if eval_at.binary_search(&(step + 1)).is_ok() {
            let eval_started = Instant::now();
            let (images, labels, test_images) = match &subset {
                Some((images, labels, k)) if step + 1 < whole_set_from => (images, labels, Some(*k)),
                _ => (&data.test_images, &data.test_labels, None),
            };
            let accuracy = evaluate(&ema_net, data, images, labels, t.eval_batch_size);
            eval_seconds += eval_started.elapsed().as_secs_f64();
            loop_state.evaluations.push(Evaluation { step: step + 1, accuracy, test_images });
            progress.status(&format!("loss {:.3} · EMA test acc {:.2}%", loss.double_value(&[]), 100.0 * accuracy));
        }
        progress.step();
        loop_state.step += 1;
    }
    progress.end();
    *rng = loop_state.rng;
    let evaluations = loop_state.evaluations;
    let accuracy = median_of_last(&evaluations, t.median_of);
    Ok(TrainOutcome { live, ema: ema_net, evaluations, accuracy, eval_seconds })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sampler_covers_the_pool_evenly() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut s = EpochSampler::new(&[10, 11, 12, 13, 14]);
        let mut counts = [0; 5];
        for _ in 0..6 {
            for i in s.next_batch(5, &mut rng) {
                counts[i - 10] += 1;
            }
        }
        assert_eq!(counts, [6; 5]);
        // A batch larger than the pool cycles through it.
        let b = EpochSampler::new(&[7, 8]).next_batch(5, &mut rng);
        assert_eq!(b.len(), 5);
        assert!(b.iter().filter(|&&i| i == 7).count() >= 2);
    }

    #[test]
    fn median_of_last_n() {
        let e = |a: &[f64]| {
            a.iter()
                .enumerate()
                .map(|(i, &x)| Evaluation { step: i, accuracy: x, test_images: None })
                .collect::<Vec<_>>()
        };
        assert_eq!(median_of_last(&e(&[0.1, 0.9, 0.5, 0.7]), 3), 0.7);
        assert_eq!(median_of_last(&e(&[0.1, 0.9, 0.5, 0.7]), 2), 0.6);
        assert_eq!(median_of_last(&e(&[0.3]), 20), 0.3);
    }

    #[test]
    fn evaluation_steps_every_n_and_at_the_end() {
        assert_eq!(evaluation_steps(10, 5), vec![5, 10]);
        assert_eq!(evaluation_steps(12, 5), vec![5, 10, 12]);
        assert_eq!(evaluation_steps(3, 5), vec![3]);
    }

    #[test]
    fn eval_subset_is_fixed_by_the_seed() {
        let a = eval_subset_indices(3, 10_000, 1000);
        assert_eq!(a, eval_subset_indices(3, 10_000, 1000), "same seed, same subset");
        assert_ne!(a, eval_subset_indices(4, 10_000, 1000), "another seed, another subset");
        assert_eq!(a.len(), 1000);
        assert!(a.windows(2).all(|w| w[0] < w[1]) && *a.last().unwrap() < 10_000, "distinct, ascending, in range");
        assert_eq!(eval_subset_indices(3, 50, 80), (0..50).collect::<Vec<_>>(), "larger than the test set: all of it");
    }
}
