//! One experiment run: load data, choose the labeled set, train, evaluate, and record a
//! self-describing `result.json` (written atomically).
use crate::config::{DeviceChoice, ExperimentConfig, InitStrategy};
use crate::data::{AugmentParams, DataError, Dataset};
use crate::embed::{embeddings_for, EmbedError, EmbeddingMatrix, EmbeddingOrigin};
use crate::metrics::{class_distribution_distance, class_histogram, diversity};
use crate::models::Network;
use crate::result::{self, CycleRecord, Environment, RunResult};
use crate::seeds::Stream;
use crate::select::{diversity_sample, diversity_sample_on, query, score_pool, Embeddings, SelectError};
use crate::train::{first_line, train, Checkpointing, DeviceData, TrainError};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::index::sample;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
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

/// This process's environment for a run on `device`. Asks `nvidia-smi` (for at most 10 s)
/// only when the run uses a GPU.
pub fn current_environment(device: Device) -> Environment {
    let var = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| var("HOSTNAME"));
    let libtorch = loaded_libtorch_dir();
    let (mut torch_version, mut torch_cuda) = libtorch.as_deref().map(torch_version_in).unwrap_or_default();
    if torch_version.is_none() {
        let built = |v: &str| Some(v.to_string()).filter(|v| !v.is_empty());
        torch_version = built(env!("SSAL_TORCH_VERSION"));
        torch_cuda = built(env!("SSAL_TORCH_CUDA"));
    }
    let cuda_visible_devices = var("CUDA_VISIBLE_DEVICES");
    let on_gpu = matches!(device, Device::Cuda(_));
    Environment {
        host,
        torch_version,
        torch_cuda,
        libtorch: libtorch.map(|d| d.display().to_string()),
        cuda_available: tch::Cuda::is_available(),
        cuda_devices: tch::Cuda::device_count().max(0) as usize,
        cuda_runtime: on_gpu.then(tch::utils::version_cudart),
        cudnn: on_gpu.then(tch::utils::version_cudnn),
        gpu: if on_gpu { gpu_name(cuda_visible_devices.as_deref()) } else { None },
        cuda_visible_devices,
        slurm_job_id: var("SLURM_JOB_ID"),
        slurm_array_job_id: var("SLURM_ARRAY_JOB_ID"),
        slurm_array_task_id: var("SLURM_ARRAY_TASK_ID"),
        earlier: Vec::new(),
    }
}

/// The directory of the libtorch library this process has loaded (from `/proc/self/maps`).
fn loaded_libtorch_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find_map(|p| {
        let p = Path::new(p);
        let name = p.file_name()?.to_str()?;
        (name.starts_with("libtorch_cpu.so") || name == "libtorch.so").then(|| p.parent().map(Path::to_path_buf))?
    })
}

/// The torch version and its CUDA version from the `version.py` (a Python torch install) or
/// `build-version` (a libtorch download) next to a libtorch library directory.
pub fn torch_version_in(lib: &Path) -> (Option<String>, Option<String>) {
    let root = lib.parent().unwrap_or(lib);
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        let value = |key: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                let k = k.split(':').next()?.trim();
                (k == key).then(|| v.trim().trim_matches(['\'', '"']).to_string()).filter(|v| v != "None")
            })
        };
        return (value("__version__"), value("cuda"));
    }
    let version = std::fs::read_to_string(root.join("build-version")).ok().map(|v| v.trim().to_string());
    (version.filter(|v| !v.is_empty()), None)
}

/// The model of the first GPU this process sees, from `nvidia-smi` (absent when it is missing,
/// fails or takes more than 10 s).
fn gpu_name(visible: Option<&str>) -> Option<String> {
    let mut cmd = std::process::Command::new("nvidia-smi");
    cmd.args(["--query-gpu=name", "--format=csv,noheader"]);
    if let Some(first) = visible.and_then(|v| v.split(',').next()).filter(|f| !f.trim().is_empty()) {
        cmd.args(["-i", first.trim()]);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
    out.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_string)
}

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

/// A progress bar on stderr that stays silent when stderr is not a terminal.
pub fn progress_bar(prefix: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} steps ({eta}) {msg}")
            .expect("valid template"),
    );
    bar.set_prefix(prefix.to_string());
    bar
}

/// One line on stderr for logs (Slurm output files), where progress bars stay hidden.
fn log(message: &str) {
    eprintln!("ssal: {message}");
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

/// A finished or interrupted earlier run of the same config in `path`, if any. A result of a
/// different config is never overwritten. A result an older ssal wrote under the config's
/// legacy id ([`ExperimentConfig::legacy_content_hash`]) is the same config's: it is resumed,
/// and takes the current id when it is next written.
fn previous_result(path: &Path, config: &ExperimentConfig) -> Result<Option<RunResult>, RunError> {
    let old = match result::load(path) {
        Ok(old) => old,
        Err(result::ResultError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(RunError::Resume(format!("{e}; move it away"))),
    };
    if !is_own_hash(config, &old.config_hash) {
        return Err(RunError::Resume(format!(
            "{} holds a result of another config (hash {}, this config {}); choose another --out",
            path.display(),
            old.config_hash,
            config.content_hash()
        )));
    }
    Ok(Some(old))
}

/// Where `ssal run` without `--out` puts a run: `root/<config id>`, or the run's directory under
/// its legacy id when only that exists (a run an older ssal started there resumes there).
pub fn default_out_dir(config: &ExperimentConfig, root: &Path) -> PathBuf {
    let current = root.join(config.content_hash());
    match config.legacy_content_hash().map(|legacy| root.join(legacy)) {
        Some(legacy) if !current.exists() && legacy.is_dir() => legacy,
        _ => current,
    }
}

/// Whether `hash` is `config`'s id, current or legacy (written by an ssal whose ids hashed the
/// whole config).
fn is_own_hash(config: &ExperimentConfig, hash: &str) -> bool {
    hash == config.content_hash() || config.legacy_content_hash().is_some_and(|legacy| legacy == hash)
}

/// The weights a finished cycle leaves for the next: `checkpoint-<cycle>.ot` (its EMA model, which
/// queries the next cycle) and `warm-start-<cycle>.ot` (its trained network, with
/// `train.warm_start`). Numbered by cycle, so that a stop between saving them and writing
/// `result.json` never pairs a result with the next cycle's weights.
fn cycle_weights(out_dir: &Path, stem: &str, cycle: usize) -> PathBuf {
    out_dir.join(format!("{stem}-{cycle}.ot"))
}

/// Where runs stopped by an earlier ssal keep their last EMA model (one unnumbered file).
const LEGACY_CHECKPOINT: &str = "checkpoint.ot";

/// A new network with the weights saved in `path`.
fn load_weights(
    config: &ExperimentConfig,
    shape: (i64, i64),
    device: Device,
    path: &Path,
) -> Result<Network, RunError> {
    let mut net = Network::new(config.model, shape.0, shape.1, device);
    net.vs
        .load(path)
        .map_err(|e| RunError::Resume(format!("cannot resume from {}: {}", path.display(), first_line(&e))))?;
    Ok(net)
}

fn save_checkpoint(net: &Network, path: &Path) -> Result<(), RunError> {
    crate::atomic_file::replace(path, |tmp| net.vs.save(tmp).map_err(|e| std::io::Error::other(first_line(&e))))
        .map_err(|source| RunError::Write { path: path.to_path_buf(), source })
}

/// Runs the experiment (initial set, then one query cycle per budget) and writes
/// `out_dir/result.json` after every cycle, with the EMA model of the last finished cycle in
/// `out_dir/checkpoint-<cycle>.ot` (see [`cycle_weights`]) and the current cycle's training state in `out_dir/train-state.ot`
/// (saved every `checkpoint_every` and when a stop is requested). Re-running an interrupted run
/// resumes where it stopped with the same result; re-running a finished one returns its result.
pub fn run(config: &ExperimentConfig, out_dir: &Path, checkpoint_every: Duration) -> Result<RunResult, RunError> {
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
    // The EMA model of the last finished cycle, needed to query the next one.
    let shape = (c, dataset.num_classes as i64);
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
        let embed_started = Instant::now();
        let query_started: Instant;
        let (selected, diversity_value, consistency_value) = if cycle == 0 {
            let bar = progress_bar("embed");
            let (embedding, origin) = embeddings_for(config, &data, &bar).map_err(|e| match e {
                EmbedError::Interrupted { .. } => RunError::Interrupted { cycle, step: None },
                e => RunError::Embed(e),
            })?;
            bar.finish_and_clear();
            match origin {
                EmbeddingOrigin::Trained => log("initial-set embedding: RotNet trained and cached"),
                EmbeddingOrigin::Cached => log("initial-set embedding: RotNet from the cache"),
                EmbeddingOrigin::None | EmbeddingOrigin::Imported => {}
            }
            query_started = Instant::now();
            let labeled = initial_labeled(config, dataset.train.len(), embedding.as_ref(), device)?;
            let div = embedding.as_ref().map(|m| diversity(&m.values, m.dim, &labeled));
            (labeled, div, None)
        } else {
            let net = model.as_ref().expect("a finished cycle precedes every query");
            let mut candidates = unlabeled_pool(dataset.train.len(), &result.labeled_indices);
            if let Some(n) = config.query.pool_subset.filter(|&n| n < candidates.len()) {
                let mut pick = sample(&mut rng, candidates.len(), n).into_vec();
                pick.sort_unstable();
                candidates = pick.into_iter().map(|i| candidates[i]).collect();
            }
            let q = &config.query;
            let view = score_pool(
                net,
                &data,
                &result.labeled_indices,
                &candidates,
                q.augmentations,
                config.train.eval_batch_size,
                &mut rng,
            )
            .map_err(|_| RunError::Interrupted { cycle, step: None })?;
            query_started = Instant::now();
            let picks = query(q.strategy, &view, q.budgets[cycle - 1], q.temperature, &mut rng)?;
            let rows: Vec<usize> = picks.iter().map(|&p| view.n_labeled + p).collect();
            let div = diversity(&view.features, view.feature_dim, &rows);
            let cons = rows.iter().map(|&r| view.consistency[r] as f64).sum::<f64>() / rows.len() as f64;
            (picks.into_iter().map(|p| candidates[p]).collect::<Vec<_>>(), Some(div), Some(cons))
        };
        let embed_seconds = (query_started - embed_started).as_secs_f64();
        let query_seconds = query_started.elapsed().as_secs_f64();
        result.labeled_indices.extend(&selected);
        let labeled = result.labeled_indices.clone();
        let classes = classes_of(&labeled);
        tch::manual_seed(torch_seed);
        let t0 = Instant::now();
        let (evaluations, accuracy, eval_seconds) = if config.train.steps == 0 {
            (Vec::new(), None, 0.0)
        } else {
            let unlabeled = unlabeled_pool(dataset.train.len(), &labeled);
            let bar = progress_bar(&format!("cycle {cycle}/{}", n_cycles - 1));
            let checkpointing = Checkpointing {
                path: train_state.clone(),
                every: checkpoint_every,
                config_hash: result.config_hash.clone(),
                legacy_config_hash: config.legacy_content_hash(),
                cycle,
            };
            log(&format!(
                "cycle {cycle}/{}: training on {} labels for {} steps",
                n_cycles - 1,
                labeled.len(),
                config.train.steps
            ));
            let outcome =
                match train(config, &data, &labeled, &unlabeled, warm.as_ref(), &mut rng, &bar, Some(&checkpointing)) {
                    Ok(outcome) => outcome,
                    Err(TrainError::Interrupted { step }) => {
                        return Err(RunError::Interrupted { cycle, step: Some(step) })
                    }
                    Err(e) => return Err(RunError::Train(e)),
                };
            bar.finish_and_clear();
            if cycle + 1 < n_cycles {
                save_checkpoint(&outcome.ema, &cycle_weights(out_dir, "checkpoint", cycle))?;
                if config.train.warm_start {
                    save_checkpoint(&outcome.live, &cycle_weights(out_dir, "warm-start", cycle))?;
                }
            }
            if config.train.warm_start {
                warm = Some(outcome.live);
            }
            model = Some(outcome.ema);
            (outcome.evaluations, Some(outcome.accuracy), outcome.eval_seconds)
        };
        result.cycles.push(CycleRecord {
            cycle,
            n_labeled: labeled.len(),
            selected,
            class_histogram: class_histogram(&classes, dataset.num_classes),
            class_distance: Some(class_distribution_distance(&classes, &reference)),
            diversity: diversity_value,
            consistency: consistency_value,
            evaluations,
            accuracy,
            train_seconds: t0.elapsed().as_secs_f64() - eval_seconds,
            embed_seconds,
            query_seconds,
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
    fn environment_keeps_earlier_processes_that_differ() {
        let a = Environment { host: Some("a".into()), ..Default::default() };
        let b = Environment { host: Some("b".into()), ..Default::default() };
        // A fresh run has nothing earlier; a resume on the same host adds nothing.
        assert!(a.clone().after(&Environment::default()).earlier.is_empty());
        assert!(a.clone().after(&a).earlier.is_empty());
        let resumed = b.clone().after(&a);
        assert_eq!(resumed.earlier, vec![a.clone()]);
        let again = a.clone().after(&resumed);
        assert_eq!(again.earlier, vec![a.clone(), b.clone()]);
        // Older result files without the field read as empty.
        let e: Environment = serde_json::from_str("{\"host\": \"h\"}").unwrap();
        assert_eq!(e.host.as_deref(), Some("h"));
    }

    #[test]
    fn torch_version_from_version_py_or_build_version() {
        let t = tempfile::tempdir().unwrap();
        let lib = t.path().join("torch/lib");
        std::fs::create_dir_all(&lib).unwrap();
        assert_eq!(torch_version_in(&lib), (None, None));
        std::fs::write(t.path().join("torch/build-version"), "2.11.0+cpu\n").unwrap();
        assert_eq!(torch_version_in(&lib), (Some("2.11.0+cpu".into()), None));
        std::fs::write(
            t.path().join("torch/version.py"),
            "__version__ = '2.11.0+cu130'\ndebug = False\ncuda: Optional[str] = '13.0'\nhip: Optional[str] = None\n",
        )
        .unwrap();
        assert_eq!(torch_version_in(&lib), (Some("2.11.0+cu130".into()), Some("13.0".into())));
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
