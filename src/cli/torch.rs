//! The commands that need libtorch (the `torch` feature): running an experiment, scoring queries
//! under a retrained model, a dataset's row order, selection on a GPU and the device report.
use super::write_output;
use crate::config::{DeviceChoice, ExperimentConfig};
use anyhow::Context;
use std::path::{Path, PathBuf};

/// `ssal run`: one experiment, resumed if its output directory holds an interrupted one.
pub(super) fn run(config: &Path, out: Option<PathBuf>, checkpoint_every: u64) -> anyhow::Result<()> {
    let cfg = ExperimentConfig::load(config)?;
    if cfg.method == crate::config::Method::Mixmatch {
        if let Some(w) = cfg.mixmatch.rampup_warning(cfg.train.steps) {
            eprintln!("warning: {w}");
        }
    }
    let out = out.unwrap_or_else(|| crate::experiment::default_out_dir(&cfg, Path::new(super::RUNS_DIR)));
    crate::interrupt::install().context("cannot install signal handlers")?;
    let every = std::time::Duration::from_secs(checkpoint_every);
    let r = crate::experiment::run(&cfg, &out, every, &super::progress::TerminalProgress::default())?;
    let accuracy = r.final_accuracy.map_or("not trained".into(), |a| format!("{:.2}%", 100.0 * a));
    println!(
        "accuracy {accuracy} ({} labels, {:?}, {:.1}s on {}) → {}",
        r.labeled_indices.len(),
        cfg.method,
        r.wall_seconds,
        r.device,
        crate::result::path_in(&out).display()
    );
    Ok(())
}

/// `ssal prepare`: the config's shared work (its RotNet embedding) into the cache.
pub(super) fn prepare(config: &Path) -> anyhow::Result<()> {
    use crate::embed::EmbeddingOrigin;
    let cfg = ExperimentConfig::load(config)?;
    crate::interrupt::install().context("cannot install signal handlers")?;
    let origin = crate::experiment::prepare(&cfg, &super::progress::TerminalProgress::default())?;
    let entry = crate::cache::rotnet_entry(&cfg);
    match origin {
        EmbeddingOrigin::Trained => println!("RotNet embedding trained and cached: {}", entry.display()),
        EmbeddingOrigin::Cached => println!("RotNet embedding already cached: {}", entry.display()),
        EmbeddingOrigin::None | EmbeddingOrigin::Imported => {
            println!("nothing to prepare: {} needs no RotNet embedding", config.display())
        }
    }
    Ok(())
}

/// Diversity sampling where `device` says (the picks are the same on every device).
pub(super) fn diversity_sample_on(
    device: DeviceChoice,
    emb: &crate::select::Embeddings,
    k: usize,
    temperature: f64,
    labeled: &[usize],
    rng: &mut rand_chacha::ChaCha8Rng,
) -> anyhow::Result<Vec<usize>> {
    Ok(match crate::experiment::resolve_device(device)? {
        tch::Device::Cpu => crate::select::diversity_sample(emb, k, temperature, labeled, rng)?,
        gpu => crate::select::diversity_sample_on(emb, k, temperature, labeled, rng, gpu)?,
    })
}

/// `ssal data rows`: the training rows in order, or the sidecar of an embedding computed on them.
pub(super) fn data_rows(config: &Path, write_sidecar: Option<&Path>) -> anyhow::Result<()> {
    let dataset = crate::data::Dataset::load(&ExperimentConfig::load(config)?)?;
    match write_sidecar {
        Some(npy) => {
            let sidecar = crate::embed::RowsSidecar::write_for(npy, dataset.name, &dataset.train_rows)?;
            println!(
                "wrote {} ({} training rows of {})",
                sidecar.display(),
                dataset.train_rows.len(),
                config.display()
            );
            Ok(())
        }
        None => write_output(None, &dataset.train_rows.iter().map(|r| format!("{r}\n")).collect::<String>()),
    }
}

/// `ssal info`: version and what libtorch sees.
pub(super) fn info() -> anyhow::Result<()> {
    println!("ssal {} ({})", env!("CARGO_PKG_VERSION"), env!("SSAL_GIT_COMMIT"));
    println!("cuda available: {} ({} devices)", tch::Cuda::is_available(), tch::Cuda::device_count());
    println!("cudnn available: {}", tch::Cuda::cudnn_is_available());
    Ok(())
}

/// Whether `cause` is a run stopped by a signal (its state saved): exit code 75, not an error.
pub(super) fn is_interrupted_run(cause: &(dyn std::error::Error + 'static)) -> bool {
    cause
        .downcast_ref::<crate::experiment::RunError>()
        .is_some_and(|r| matches!(r, crate::experiment::RunError::Interrupted { .. }))
}

/// `ssal score-queries`: loads the runs, scores them and prints the table.
pub(super) fn score_queries(common: &Path, runs: &[PathBuf]) -> anyhow::Result<()> {
    let load = |dir: &Path| crate::result::load(&crate::result::path_in(dir));
    let common_result = load(common)?;
    let results = runs.iter().map(|d| load(d)).collect::<Result<Vec<_>, _>>()?;
    let out = crate::queries::score_first_queries(&common_result, &results)?;
    let n = |v: Option<f64>| v.map_or("—".to_string(), |x| format!("{x:.4}"));
    println!("| run | method | query.strategy | picks | consistency (common model) | diversity (common model) | consistency (own model) | diversity (own model) |");
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    for ((dir, r), s) in runs.iter().zip(&results).zip(&out.scores) {
        println!(
            "| {} | {:?} | {:?} | {} | {:.4} | {:.4} | {} | {} |",
            dir.display(),
            r.config.method,
            r.config.query.strategy,
            s.picks,
            s.consistency,
            s.diversity,
            n(s.own_consistency),
            n(s.own_diversity)
        );
    }
    if out.reproduced() {
        println!("common model: cycle 0 of {}, retrained; its evaluations equal the recorded ones", common.display());
    } else {
        let first = |e: &[crate::result::Evaluation]| e.first().map_or(f64::NAN, |e| e.accuracy);
        eprintln!(
            "warning: the retrained cycle-0 model of {} does not reproduce its recorded evaluations (first: recorded {:.4}, \
             retrained {:.4}); the run was made on another device or build, so the common model is comparable, not the same",
            common.display(),
            first(&out.recorded),
            first(&out.retrained)
        );
    }
    Ok(())
}
