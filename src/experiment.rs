//! One experiment run: load data, choose the labeled set, train, evaluate, and record a
//! self-describing `result.json` (written atomically).
use crate::config::{DeviceChoice, ExperimentConfig, InitStrategy};
use crate::data::{AugmentParams, DataError, Dataset};
use crate::embed::{embeddings_for, EmbedError, EmbeddingMatrix};
use crate::metrics::{class_distribution_distance, class_histogram, diversity};
use crate::select::{diversity_sample, Embeddings, SelectError};
use crate::train::{train, DeviceData, Evaluation};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Device;

/// Errors of a run, each naming what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error("labeled.indices: {0}")]
    Labeled(String),
    #[error(
        "device = \"cuda\" but CUDA is not available (is libtorch_cuda linked and a GPU visible?)"
    )]
    NoCuda,
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One training cycle's record: who was labeled, how the EMA model scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleRecord {
    pub cycle: usize,
    pub n_labeled: usize,
    /// Indices added to the labeled set in this cycle, in the order chosen.
    pub selected: Vec<usize>,
    /// Labeled images per class after this cycle's selection (empty in files from ssal
    /// versions before set metrics).
    #[serde(default)]
    pub class_histogram: Vec<usize>,
    /// Eq. 6 distance between the labeled set's class proportions and the training pool's.
    #[serde(default)]
    pub class_distance: Option<f64>,
    /// Mean pairwise L2 distance of this cycle's selection in the selection embedding
    /// (RotNet / imported for the initial set); absent without an embedding.
    #[serde(default)]
    pub diversity: Option<f64>,
    pub evaluations: Vec<Evaluation>,
    /// Median of the last `train.median_of` evaluations; absent when `train.steps = 0`.
    pub accuracy: Option<f64>,
    pub train_seconds: f64,
}

/// Everything a run leaves behind: self-describing, so ingest needs no sweep file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub ssal_version: String,
    pub git_commit: String,
    pub config_hash: String,
    pub config: ExperimentConfig,
    pub device: String,
    /// False while the run is still going (the file is rewritten after each cycle).
    pub complete: bool,
    pub labeled_indices: Vec<usize>,
    pub cycles: Vec<CycleRecord>,
    /// Accuracy of the last cycle; absent when `train.steps = 0`.
    pub final_accuracy: Option<f64>,
    pub wall_seconds: f64,
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

/// The initial labeled set: explicit indices (validated), a seeded uniform draw, or diversity
/// sampling with temperature on the embedding.
pub fn initial_labeled(
    config: &ExperimentConfig,
    pool: usize,
    embedding: Option<&EmbeddingMatrix>,
) -> Result<Vec<usize>, RunError> {
    match &config.labeled.indices {
        Some(idx) => {
            if idx.is_empty() {
                return Err(RunError::Labeled("empty list".into()));
            }
            if let Some(bad) = idx.iter().find(|&&i| i >= pool) {
                return Err(RunError::Labeled(format!(
                    "index {bad} out of range: the training pool has {pool} images"
                )));
            }
            let mut seen = std::collections::HashSet::new();
            if let Some(dup) = idx.iter().find(|i| !seen.insert(**i)) {
                return Err(RunError::Labeled(format!("index {dup} appears twice")));
            }
            Ok(idx.clone())
        }
        None => {
            if config.labeled.size > pool {
                return Err(RunError::Labeled(format!(
                    "labeled.size = {} exceeds the training pool of {pool} images",
                    config.labeled.size
                )));
            }
            let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x1abe1);
            match (config.init.strategy, embedding) {
                (InitStrategy::Random, _) => {
                    Ok(sample(&mut rng, pool, config.labeled.size).into_vec())
                }
                (InitStrategy::Diversity, Some(m)) => {
                    let emb = Embeddings::new(&m.values, m.dim)?;
                    Ok(diversity_sample(
                        &emb,
                        config.labeled.size,
                        config.init.temperature,
                        &[],
                        &mut rng,
                    )?)
                }
                (InitStrategy::Diversity, None) => {
                    unreachable!("validated: diversity needs an embedding")
                }
            }
        }
    }
}

/// Writes `value` as pretty JSON to `path` via a temporary file and a rename, so a reader (or a
/// kill mid-write) never sees a partial file.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), RunError> {
    write_text_atomic(
        path,
        &serde_json::to_string_pretty(value).expect("result serialises"),
    )
}

/// Writes `text` to `path` via a temporary file in the same directory and a rename.
pub fn write_text_atomic(path: &Path, text: &str) -> Result<(), RunError> {
    let err = |source| RunError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// A progress bar on stderr that stays silent when stderr is not a terminal.
pub fn progress_bar(prefix: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} steps ({eta}) {msg}",
        )
        .expect("valid template"),
    );
    bar.set_prefix(prefix.to_string());
    bar
}

/// Runs the experiment and writes `out_dir/result.json`.
pub fn run(config: &ExperimentConfig, out_dir: &Path) -> Result<RunResult, RunError> {
    let started = Instant::now();
    let device = resolve_device(config.device)?;
    let dataset = Dataset::load(config)?;
    let augment = AugmentParams {
        crop_padding: config.dataset.crop_padding,
        horizontal_flip: config.dataset.horizontal_flip,
    };
    let data = DeviceData::new(&dataset, device, augment);
    let bar = progress_bar("embed");
    let embedding = embeddings_for(config, &data, &bar)?;
    bar.finish_and_clear();
    let labeled = initial_labeled(config, dataset.train.len(), embedding.as_ref())?;
    let train_labels: Vec<usize> = dataset
        .train
        .label_vec()
        .iter()
        .map(|&l| l as usize)
        .collect();
    let pool_hist = class_histogram(&train_labels, dataset.num_classes);
    let reference: Vec<f64> = pool_hist
        .iter()
        .map(|&c| c as f64 / train_labels.len() as f64)
        .collect();
    let labeled_classes: Vec<usize> = labeled.iter().map(|&i| train_labels[i]).collect();
    // Seeded after the (possibly cached) embedding so a cache hit and a miss train identically.
    tch::manual_seed(config.seed as i64);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let is_labeled: std::collections::HashSet<usize> = labeled.iter().copied().collect();
    let unlabeled: Vec<usize> = (0..dataset.train.len())
        .filter(|i| !is_labeled.contains(i))
        .collect();
    let t0 = Instant::now();
    let (evaluations, accuracy) = if config.train.steps == 0 {
        (Vec::new(), None)
    } else {
        let bar = progress_bar("train");
        let outcome = train(config, &data, &labeled, &unlabeled, &mut rng, &bar);
        bar.finish_and_clear();
        (outcome.evaluations, Some(outcome.accuracy))
    };
    let cycle = CycleRecord {
        cycle: 0,
        n_labeled: labeled.len(),
        selected: labeled.clone(),
        class_histogram: class_histogram(&labeled_classes, dataset.num_classes),
        class_distance: Some(class_distribution_distance(&labeled_classes, &reference)),
        diversity: embedding
            .as_ref()
            .map(|m| diversity(&m.values, m.dim, &labeled)),
        evaluations,
        accuracy,
        train_seconds: t0.elapsed().as_secs_f64(),
    };
    let result = RunResult {
        ssal_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: env!("SSAL_GIT_COMMIT").to_string(),
        config_hash: config.content_hash(),
        config: config.clone(),
        device: format!("{device:?}"),
        complete: true,
        labeled_indices: labeled,
        final_accuracy: cycle.accuracy,
        cycles: vec![cycle],
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    write_json_atomic(&out_dir.join("result.json"), &result)?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_indices_are_validated() {
        let mut c = ExperimentConfig::default();
        c.labeled.indices = Some(vec![1, 5, 1]);
        assert!(initial_labeled(&c, 10, None)
            .unwrap_err()
            .to_string()
            .contains("twice"));
        c.labeled.indices = Some(vec![1, 10]);
        assert!(initial_labeled(&c, 10, None)
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        c.labeled.indices = Some(vec![3, 1]);
        assert_eq!(initial_labeled(&c, 10, None).unwrap(), vec![3, 1]);
    }

    #[test]
    fn random_draw_is_seeded_and_distinct() {
        let mut c = ExperimentConfig::default();
        c.labeled.size = 50;
        let a = initial_labeled(&c, 100, None).unwrap();
        assert_eq!(a, initial_labeled(&c, 100, None).unwrap());
        let set: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(set.len(), 50);
        c.seed = 1;
        assert_ne!(a, initial_labeled(&c, 100, None).unwrap());
        c.labeled.size = 101;
        assert!(initial_labeled(&c, 100, None).is_err());
    }
}
