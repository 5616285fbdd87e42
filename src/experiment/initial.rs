//! Before any training: the data and device a run needs, its sizes checked against the pool, and
//! the initial labeled set (explicit, random, or diversity-sampled on an embedding).
use super::RunError;
use crate::config::{DeviceChoice, ExperimentConfig, InitStrategy};
use crate::data::{AugmentParams, Dataset};
use crate::embed::EmbeddingMatrix;
use crate::seeds::Stream;
use crate::select::{diversity_sample, diversity_sample_on, Embeddings};
use rand::seq::index::sample;
use tch::Device;

/// Checks the config's sizes against a training pool of `pool` images before any work: the
/// initial set and every query budget must fit in what is left of the pool (and in
/// `query.pool_subset`), and a batch that is drawn may not be larger than the whole pool (batches
/// cycle through a smaller labeled set, so only that size is a mistake: it would allocate
/// without end; with `train.steps = 0` no batch is drawn).
pub fn check_sizes(config: &ExperimentConfig, pool: usize) -> Result<(), RunError> {
    let bad = |m: String| Err(RunError::Size(m));
    let initial = match &config.labeled.indices {
        Some(idx) => {
            check_indices(idx, pool)?;
            idx.len()
        }
        None => config.labeled.size,
    };
    if initial > pool {
        return bad(format!("labeled.size = {initial} exceeds the training pool of {pool} images"));
    }
    let q = &config.query;
    let total: usize = q.budgets.iter().sum();
    if initial + total > pool {
        return bad(format!(
            "query.budgets sum to {total} labels but the training pool of {pool} images leaves only {} \
             unlabeled after the initial {initial}",
            pool - initial
        ));
    }
    if let Some(n) = q.pool_subset {
        if let Some((i, b)) = q.budgets.iter().enumerate().find(|(_, &b)| b > n) {
            return bad(format!(
                "query.budgets[{i}] = {b} is larger than query.pool_subset = {n}, the candidates scored per cycle"
            ));
        }
    }
    let t = &config.train;
    if t.steps > 0 && t.batch_size > pool {
        return bad(format!(
            "train.batch_size = {} is larger than the whole training pool ({pool} images, {initial} of them \
             labeled at first): batches would repeat every image; use at most {pool}",
            t.batch_size
        ));
    }
    let r = &config.rotnet;
    if config.init.embedding == crate::config::EmbeddingSource::Rotnet && r.batch_size > pool {
        return bad(format!(
            "rotnet.batch_size = {} is larger than the whole training pool of {pool} images it trains on",
            r.batch_size
        ));
    }
    Ok(())
}

/// Resolves the configured device, failing loudly when CUDA is demanded but missing.
pub fn resolve_device(choice: DeviceChoice) -> Result<Device, RunError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceChoice::Cuda => Err(RunError::NoCuda),
    }
}

/// Explicit initial indices must be distinct and in `0..pool`.
fn check_indices(idx: &[usize], pool: usize) -> Result<(), RunError> {
    if idx.is_empty() {
        return Err(RunError::Labeled("empty list".into()));
    }
    if let Some(bad) = idx.iter().find(|&&i| i >= pool) {
        return Err(RunError::Labeled(format!("index {bad} out of range: the training pool has {pool} images")));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = idx.iter().find(|i| !seen.insert(**i)) {
        return Err(RunError::Labeled(format!("index {dup} appears twice")));
    }
    Ok(())
}

/// The initial labeled set: explicit indices (validated), a seeded uniform draw, or diversity
/// sampling with temperature on the embedding (its distance passes on `device` when that is a GPU).
pub fn initial_labeled(
    config: &ExperimentConfig,
    pool: usize,
    embedding: Option<&EmbeddingMatrix>,
    device: Device,
) -> Result<Vec<usize>, RunError> {
    match &config.labeled.indices {
        Some(idx) => {
            check_indices(idx, pool)?;
            Ok(idx.clone())
        }
        None => {
            if config.labeled.size > pool {
                return Err(RunError::Labeled(format!(
                    "labeled.size = {} exceeds the training pool of {pool} images",
                    config.labeled.size
                )));
            }
            let mut rng = Stream::InitialSet.rng(config.seed);
            match (config.init.strategy, embedding) {
                (InitStrategy::Random, _) => Ok(sample(&mut rng, pool, config.labeled.size).into_vec()),
                (InitStrategy::Diversity, Some(m)) => {
                    let emb = Embeddings::new(&m.values, m.dim)?;
                    let (k, t) = (config.labeled.size, config.init.temperature);
                    Ok(match device {
                        Device::Cpu => diversity_sample(&emb, k, t, &[], &mut rng)?,
                        gpu => diversity_sample_on(&emb, k, t, &[], &mut rng, gpu)?,
                    })
                }
                (InitStrategy::Diversity, None) => {
                    unreachable!("validated: diversity needs an embedding")
                }
            }
        }
    }
}

/// Training indices in `0..pool` that are not in `labeled`, ascending.
pub(crate) fn unlabeled_pool(pool: usize, labeled: &[usize]) -> Vec<usize> {
    let is_labeled: std::collections::HashSet<usize> = labeled.iter().copied().collect();
    (0..pool).filter(|i| !is_labeled.contains(i)).collect()
}

/// What a run's data needs before it can move to the device: the dataset (sizes checked against
/// the config), the device and the augmentation.
pub(crate) fn load_for_run(config: &ExperimentConfig) -> Result<(Dataset, Device, AugmentParams), RunError> {
    let device = resolve_device(config.device)?;
    let dataset = Dataset::load(config)?;
    check_sizes(config, dataset.train.len())?;
    let augment =
        AugmentParams { crop_padding: config.dataset.crop_padding, horizontal_flip: config.dataset.horizontal_flip };
    Ok((dataset, device, augment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_indices_are_validated() {
        let mut c = ExperimentConfig::default();
        c.labeled.indices = Some(vec![1, 5, 1]);
        assert!(initial_labeled(&c, 10, None, Device::Cpu).unwrap_err().to_string().contains("twice"));
        c.labeled.indices = Some(vec![1, 10]);
        assert!(initial_labeled(&c, 10, None, Device::Cpu).unwrap_err().to_string().contains("out of range"));
        c.labeled.indices = Some(vec![3, 1]);
        assert_eq!(initial_labeled(&c, 10, None, Device::Cpu).unwrap(), vec![3, 1]);
    }

    #[test]
    fn sizes_are_checked_against_the_pool() {
        let mut c = ExperimentConfig::default();
        c.labeled.size = 20;
        c.query.budgets = vec![30, 50];
        assert!(check_sizes(&c, 100).is_ok());
        let e = check_sizes(&c, 99).unwrap_err().to_string();
        assert!(e.contains("sum to 80") && e.contains("only 79 unlabeled"), "{e}");
        c.query.pool_subset = Some(40);
        let e = check_sizes(&c, 100).unwrap_err().to_string();
        assert!(e.contains("query.budgets[1] = 50") && e.contains("pool_subset = 40"), "{e}");
        c.query.pool_subset = None;
        c.train.batch_size = 101;
        let e = check_sizes(&c, 100).unwrap_err().to_string();
        assert!(e.contains("batch_size = 101") && e.contains("100 images"), "{e}");
        c.train.steps = 0; // no batch is drawn
        assert!(check_sizes(&c, 100).is_ok());
        c.train.steps = 10;
        c.train.batch_size = 100; // larger than the labeled set: it cycles, which is fine
        assert!(check_sizes(&c, 100).is_ok());
        c.labeled.indices = Some(vec![1, 1]);
        assert!(check_sizes(&c, 100).unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn random_draw_is_seeded_and_distinct() {
        let mut c = ExperimentConfig::default();
        c.labeled.size = 50;
        let a = initial_labeled(&c, 100, None, Device::Cpu).unwrap();
        assert_eq!(a, initial_labeled(&c, 100, None, Device::Cpu).unwrap());
        let set: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(set.len(), 50);
        c.seed = 1;
        assert_ne!(a, initial_labeled(&c, 100, None, Device::Cpu).unwrap());
        c.labeled.size = 101;
        assert!(initial_labeled(&c, 100, None, Device::Cpu).is_err());
    }
}
