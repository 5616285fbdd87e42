//! One experiment run as a pipeline: the initial set, then per query cycle a query, training
//! and evaluation, each a step with the inputs it needs; every finished cycle is recorded in a
//! self-describing `result.json` (written atomically) so that a stopped run resumes where it was.
//! Progress goes to a [`Progress`]; nothing here prints.
mod environment;
mod files;
mod initial;

pub use environment::{current_environment, torch_version_in};
pub use files::default_out_dir;
pub use initial::{check_sizes, initial_labeled, resolve_device};
pub(crate) use initial::{load_for_run, unlabeled_pool};

use crate::config::{ExperimentConfig, QueryConfig};
use crate::data::{DataError, DeviceData};
use crate::embed::{embeddings_for, EmbedError, EmbeddingMatrix, EmbeddingOrigin};
use crate::metrics::{class_distribution_distance, class_histogram, diversity};
use crate::models::Network;
use crate::progress::Progress;
use crate::result::{self, CycleRecord, Environment, RunResult};
use crate::select::{query, score_pool, SelectError};
use crate::train::{train, Checkpointing, TrainError, TrainOutcome, TrainSetup};
use files::{cycle_weights, load_weights, previous_result, save_checkpoint, LEGACY_CHECKPOINT};
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    #[error("device = \"cuda\" but CUDA is not available (is libtorch_cuda linked and a GPU visible?)")]
    NoCuda,
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Resume(String),
    /// A size in the config that the dataset cannot satisfy (found before any training).
    #[error("{0}")]
    Size(String),
    #[error(transparent)]
    Train(TrainError),
    /// A stop was requested (signal); everything needed to go on is saved.
    #[error("interrupted in cycle {cycle}{at}; run the same command again to resume", at = step.map_or(String::new(), |s| format!(" at training step {s} (state saved)")))]
    Interrupted { cycle: usize, step: Option<usize> },
}

/// One cycle's picks and what they are worth.
struct Selection {
    /// Training indices, in the order they were picked.
    indices: Vec<usize>,
    /// Mean pairwise distance of the picks in the features they were chosen on.
    diversity: Option<f64>,
    /// Mean consistency of the picks under the model that chose them (query cycles).
    consistency: Option<f64>,
    /// Seconds spent obtaining features (RotNet or the model's pass over the pool).
    embed_seconds: f64,
    /// Seconds spent choosing among them.
    query_seconds: f64,
}

/// The embedding the config's initial set is chosen on, and where it came from (said in the
/// log: a RotNet trained here or read from the cache); a stop during RotNet training is an
/// interruption of cycle 0.
fn initial_embedding(
    config: &ExperimentConfig,
    data: &DeviceData,
    progress: &dyn Progress,
) -> Result<(Option<EmbeddingMatrix>, EmbeddingOrigin), RunError> {
    let (embedding, origin) = embeddings_for(config, data, progress).map_err(|e| match e {
        EmbedError::Interrupted { .. } => RunError::Interrupted { cycle: 0, step: None },
        e => RunError::Embed(e),
    })?;
    match origin {
        EmbeddingOrigin::Trained => progress.note("initial-set embedding: RotNet trained and cached"),
        EmbeddingOrigin::Cached => progress.note("initial-set embedding: RotNet from the cache"),
        EmbeddingOrigin::None | EmbeddingOrigin::Imported => {}
    }
    Ok((embedding, origin))
}

/// A sweep's prepare stage for the runs of `config`: the work they share, done once before
/// them — its RotNet embedding trained into the cache, or found there (`EmbeddingOrigin::None`
/// when the config needs none). Resumable like a run: a stop saves RotNet's state and the same
/// call goes on.
pub fn prepare(config: &ExperimentConfig, progress: &dyn Progress) -> Result<EmbeddingOrigin, RunError> {
    if crate::cache::needed_rotnet_key(config).is_none() {
        return Ok(EmbeddingOrigin::None);
    }
    let (dataset, device, augment) = load_for_run(config)?;
    let data = DeviceData::new(&dataset, device, augment);
    Ok(initial_embedding(config, &data, progress)?.1)
}

/// Cycle 0's picks: the initial set, on the embedding the config asks for.
fn select_initial(
    config: &ExperimentConfig,
    data: &DeviceData,
    progress: &dyn Progress,
) -> Result<Selection, RunError> {
    let started = Instant::now();
    let (embedding, _) = initial_embedding(config, data, progress)?;
    let query_started = Instant::now();
    let indices = initial_labeled(config, data.dataset.train.len(), embedding.as_ref(), data.device)?;
    let diversity = embedding.as_ref().map(|m| diversity(&m.values, m.dim, &indices));
    Ok(Selection {
        indices,
        diversity,
        consistency: None,
        embed_seconds: (query_started - started).as_secs_f64(),
        query_seconds: query_started.elapsed().as_secs_f64(),
    })
}

/// Cycle `cycle`'s query: `budget` picks among the unlabeled pool (a seeded subset of
/// `query.pool_subset` of it), scored by `model`, the previous cycle's EMA model.
#[allow(clippy::too_many_arguments)]
fn select_queries(
    q: &QueryConfig,
    budget: usize,
    eval_batch_size: usize,
    model: &Network,
    data: &DeviceData,
    labeled: &[usize],
    cycle: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Selection, RunError> {
    let started = Instant::now();
    let mut candidates = unlabeled_pool(data.dataset.train.len(), labeled);
    if let Some(n) = q.pool_subset.filter(|&n| n < candidates.len()) {
        let mut pick = sample(rng, candidates.len(), n).into_vec();
        pick.sort_unstable();
        candidates = pick.into_iter().map(|i| candidates[i]).collect();
    }
    let view = score_pool(model, data, labeled, &candidates, q.augmentations, eval_batch_size, rng)
        .map_err(|_| RunError::Interrupted { cycle, step: None })?;
    let query_started = Instant::now();
    let picks = query(q.strategy, &view, budget, q.temperature, rng)?;
    let rows: Vec<usize> = picks.iter().map(|&p| view.n_labeled + p).collect();
    let diversity = diversity(&view.features, view.feature_dim, &rows);
    let consistency = rows.iter().map(|&r| view.consistency[r] as f64).sum::<f64>() / rows.len() as f64;
    Ok(Selection {
        indices: picks.into_iter().map(|p| candidates[p]).collect(),
        diversity: Some(diversity),
        consistency: Some(consistency),
        embed_seconds: (query_started - started).as_secs_f64(),
        query_seconds: query_started.elapsed().as_secs_f64(),
    })
}

/// Cycle `cycle`'s training on `labeled` (MixMatch also on the rest of the pool), resuming a
/// saved training state of the same cycle, starting from `warm` when given.
#[allow(clippy::too_many_arguments)]
fn train_cycle(
    setup: TrainSetup,
    data: &DeviceData,
    labeled: &[usize],
    warm: Option<&Network>,
    checkpointing: &Checkpointing,
    rng: &mut ChaCha8Rng,
    progress: &dyn Progress,
) -> Result<TrainOutcome, RunError> {
    let unlabeled = unlabeled_pool(data.dataset.train.len(), labeled);
    let cycle = checkpointing.cycle;
    train(setup, data, labeled, &unlabeled, warm, rng, progress, Some(checkpointing)).map_err(|e| match e {
        TrainError::Interrupted { step } => RunError::Interrupted { cycle, step: Some(step) },
        e => RunError::Train(e),
    })
}

/// Runs the experiment (initial set, then one query cycle per budget) and writes
/// `out_dir/result.json` after every cycle, with the EMA model of the last finished cycle in
/// `out_dir/checkpoint-<cycle>.ot` (see [`files`]) and the current cycle's training state in
/// `out_dir/train-state.ot` (saved every `checkpoint_every` and when a stop is requested).
/// Re-running an interrupted run resumes where it stopped with the same result; re-running a
/// finished one returns its result.
pub fn run(
    config: &ExperimentConfig,
    out_dir: &Path,
    checkpoint_every: Duration,
    progress: &dyn Progress,
) -> Result<RunResult, RunError> {
    let started = Instant::now();
    let result_path = result::path_in(out_dir);
    let train_state = out_dir.join("train-state.ot");
    let previous = previous_result(&result_path, config)?;
    if let Some(done) = previous.as_ref().filter(|r| r.complete) {
        return Ok(done.clone());
    }
    std::fs::create_dir_all(out_dir).map_err(|source| RunError::Write { path: out_dir.to_path_buf(), source })?;
    let (dataset, device, augment) = load_for_run(config)?;
    let data = DeviceData::new(&dataset, device, augment);
    let train_labels: Vec<usize> = dataset.train.label_vec().iter().map(|&l| l as usize).collect();
    let pool_hist = class_histogram(&train_labels, dataset.num_classes);
    let reference: Vec<f64> = pool_hist.iter().map(|&c| c as f64 / train_labels.len() as f64).collect();
    let classes_of = |idx: &[usize]| idx.iter().map(|&i| train_labels[i]).collect::<Vec<_>>();
    let n_cycles = 1 + config.query.budgets.len();
    let mut result = previous.unwrap_or_else(|| RunResult {
        ssal_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: env!("SSAL_GIT_COMMIT").to_string(),
        config_hash: config.content_hash(),
        config: config.clone(),
        device: format!("{device:?}"),
        complete: false,
        labeled_indices: Vec::new(),
        cycles: Vec::new(),
        final_accuracy: None,
        wall_seconds: 0.0,
        environment: Environment::default(),
    });
    // A result resumed from an older ssal is written back under the current id.
    result.config_hash = config.content_hash();
    result.environment = current_environment(device).after(&result.environment);
    let earlier_wall = result.wall_seconds;
    let [c, _, _] = dataset.image_shape();
    let shape = (c, dataset.num_classes as i64);
    let setup = TrainSetup::of(config);
    // The EMA model of the last finished cycle, needed to query the next one.
    let mut model: Option<Network> = None;
    // With train.warm_start, the trained (not averaged) network of the last finished cycle.
    let mut warm: Option<Network> = None;
    if let Some(last) = result.cycles.len().checked_sub(1) {
        let ema = cycle_weights(out_dir, "checkpoint", last);
        let ema = if ema.exists() { ema } else { out_dir.join(LEGACY_CHECKPOINT) };
        model = Some(load_weights(config, shape, device, &ema)?);
        if config.train.warm_start && config.train.steps > 0 {
            warm = Some(load_weights(config, shape, device, &cycle_weights(out_dir, "warm-start", last))?);
        }
    }
    for cycle in result.cycles.len()..n_cycles {
        if crate::interrupt::requested() {
            return Err(RunError::Interrupted { cycle, step: None });
        }
        let (mut rng, torch_seed) = crate::seeds::cycle(config.seed, cycle);
        let selection = match (cycle, &model) {
            (0, _) => select_initial(config, &data, progress)?,
            (_, None) => unreachable!("a finished cycle, which trains a model, precedes every query"),
            (_, Some(net)) => {
                let (q, budget) = (&config.query, config.query.budgets[cycle - 1]);
                let eval_batch = config.train.eval_batch_size;
                select_queries(q, budget, eval_batch, net, &data, &result.labeled_indices, cycle, &mut rng)?
            }
        };
        result.labeled_indices.extend(&selection.indices);
        let labeled = result.labeled_indices.clone();
        let classes = classes_of(&labeled);
        tch::manual_seed(torch_seed);
        let t0 = Instant::now();
        let trained = if config.train.steps == 0 {
            None
        } else {
            progress.note(&format!(
                "cycle {cycle}/{}: training on {} labels for {} steps",
                n_cycles - 1,
                labeled.len(),
                config.train.steps
            ));
            let checkpointing = Checkpointing {
                path: train_state.clone(),
                every: checkpoint_every,
                config_hash: result.config_hash.clone(),
                legacy_config_hash: config.legacy_content_hash(),
                cycle,
            };
            let trained = train_cycle(setup, &data, &labeled, warm.as_ref(), &checkpointing, &mut rng, progress)?;
            if cycle + 1 < n_cycles {
                save_checkpoint(&trained.ema, &cycle_weights(out_dir, "checkpoint", cycle))?;
                if config.train.warm_start {
                    save_checkpoint(&trained.live, &cycle_weights(out_dir, "warm-start", cycle))?;
                }
            }
            Some(trained)
        };
        let eval_seconds = trained.as_ref().map_or(0.0, |t| t.eval_seconds);
        let accuracy = trained.as_ref().map(|t| t.accuracy);
        let train_seconds = t0.elapsed().as_secs_f64() - eval_seconds;
        let evaluations = match trained {
            Some(t) => {
                if config.train.warm_start {
                    warm = Some(t.live);
                }
                model = Some(t.ema);
                t.evaluations
            }
            None => Vec::new(),
        };
        result.cycles.push(CycleRecord {
            cycle,
            n_labeled: labeled.len(),
            selected: selection.indices,
            class_histogram: class_histogram(&classes, dataset.num_classes),
            class_distance: Some(class_distribution_distance(&classes, &reference)),
            diversity: selection.diversity,
            consistency: selection.consistency,
            evaluations,
            accuracy,
            train_seconds,
            embed_seconds: selection.embed_seconds,
            query_seconds: selection.query_seconds,
            eval_seconds,
        });
        result.final_accuracy = accuracy;
        result.complete = cycle + 1 == n_cycles;
        result.wall_seconds = earlier_wall + started.elapsed().as_secs_f64();
        result::write(&result_path, &result).map_err(|source| RunError::Write { path: result_path.clone(), source })?;
        let _ = std::fs::remove_file(&train_state);
        // The previous cycle's weights are now superseded (and the last cycle saves none).
        if let Some(previous) = cycle.checked_sub(1) {
            for stem in ["checkpoint", "warm-start"] {
                let _ = std::fs::remove_file(cycle_weights(out_dir, stem, previous));
            }
        }
        let _ = std::fs::remove_file(out_dir.join(LEGACY_CHECKPOINT));
    }
    Ok(result)
}
