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
        "accuracy {accuracy} ({} labels, {}, {:.1}s on {}) → {}",
        r.labeled_indices.len(),
        crate::config::config_name(&cfg.method),
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

/// `ssal score-queries`: loads the runs, scores each under the common model of its seed (or the
/// one common model) and prints one row per run, then, with one common run per seed, each
/// configuration's mean over seeds, tested against the row of the common runs.
pub(super) fn score_queries(commons: &[PathBuf], runs: &[PathBuf]) -> anyhow::Result<()> {
    use crate::queries::{common_for_each_run, rows_by_config, score_first_queries};
    let load = |dir: &PathBuf| crate::result::load(&crate::result::path_in(dir));
    let common_results = commons.iter().map(load).collect::<Result<Vec<_>, _>>()?;
    let results = runs.iter().map(load).collect::<Result<Vec<_>, _>>()?;
    let common_names: Vec<String> = commons.iter().map(|d| d.display().to_string()).collect();
    let run_names: Vec<String> = runs.iter().map(|d| d.display().to_string()).collect();
    fn keyed<'a>(names: &'a [String], rs: &[crate::result::RunResult]) -> Vec<(&'a str, u64)> {
        names.iter().map(String::as_str).zip(rs.iter().map(|r| r.config.seed)).collect()
    }
    let common_of = common_for_each_run(&keyed(&common_names, &common_results), &keyed(&run_names, &results))?;
    // Every run is checked before any model is trained (minutes each).
    for (i, run) in results.iter().enumerate() {
        crate::queries::check_scorable(&common_results[common_of[i]], run)
            .with_context(|| format!("run {} under the common run {}", run_names[i], common_names[common_of[i]]))?;
    }

    let mut scores = vec![None; runs.len()];
    for (c, common) in common_results.iter().enumerate() {
        let members: Vec<usize> = (0..runs.len()).filter(|&i| common_of[i] == c).collect();
        if members.is_empty() {
            eprintln!(
                "warning: no run has the seed of common run {} ({}); it scores nothing",
                common_names[c], common.config.seed
            );
            continue;
        }
        let member_results: Vec<_> = members.iter().map(|&i| results[i].clone()).collect();
        let out = score_first_queries(common, &member_results)
            .with_context(|| format!("scoring under the cycle-0 model of {}", common_names[c]))?;
        report_reproduction(&common_names[c], &out);
        for (&i, score) in members.iter().zip(out.scores) {
            scores[i] = Some(score);
        }
    }
    let scores: Vec<_> = scores.into_iter().map(|s| s.expect("every run has a common run")).collect();

    let n = |v: Option<f64>| v.map_or("—".to_string(), |x| format!("{x:.4}"));
    println!("| run | seed | method | query.strategy | picks | consistency (common model) | diversity (common model) | consistency (own model) | diversity (own model) |");
    println!("|---|---:|---|---|---:|---:|---:|---:|---:|");
    for ((name, r), s) in run_names.iter().zip(&results).zip(&scores) {
        println!(
            "| {name} | {} | {} | {} | {} | {:.4} | {:.4} | {} | {} |",
            r.config.seed,
            crate::config::config_name(&r.config.method),
            crate::config::config_name(&r.config.query.strategy),
            s.picks,
            s.consistency,
            s.diversity,
            n(s.own_consistency),
            n(s.own_diversity)
        );
    }
    if commons.len() > 1 {
        let scored: Vec<_> =
            run_names.iter().zip(&results).zip(&scores).map(|((n, r), s)| (n.as_str(), &r.config, s)).collect();
        print_score_summary(&rows_by_config(&scored)?, |i| commons.contains(&runs[i]));
    }
    Ok(())
}

/// Says on stderr whether the retrained cycle-0 model of a common run reproduced its recorded
/// evaluations (the same model) or not (another device or build: a comparable model).
fn report_reproduction(common: &str, out: &crate::queries::CommonScores) {
    if out.reproduced() {
        eprintln!("common model: cycle 0 of {common}, retrained; its evaluations equal the recorded ones");
    } else {
        let first = |e: &[crate::result::Evaluation]| e.first().map_or(f64::NAN, |e| e.accuracy);
        eprintln!(
            "warning: the retrained cycle-0 model of {common} does not reproduce its recorded evaluations (first: recorded {:.4}, \
             retrained {:.4}); the run was made on another device or build, so the common model is comparable, not the same",
            first(&out.recorded),
            first(&out.retrained)
        );
    }
}

/// The per-configuration table over seeds: mean ± SE of both scores and, against the row that
/// holds the common runs (if they are among the runs), paired t-tests over seeds with Holm's
/// adjustment over the rows, one family per score.
fn print_score_summary(rows: &[crate::queries::ScoreRow], is_common: impl Fn(usize) -> bool) {
    use crate::stats::{compare_with_baseline_family, summarize};
    let baseline = rows.iter().position(|r| r.runs.iter().any(|&i| is_common(i)));
    let tests = |pick: fn(&crate::queries::ScoreRow) -> &std::collections::BTreeMap<i64, f64>| {
        let pairs = (0..rows.len())
            .filter_map(|i| baseline.filter(|&b| b != i).map(|b| (i, pick(&rows[i]), pick(&rows[b]))))
            .collect();
        let mut by_row = vec![None; rows.len()];
        for (i, c, p_holm) in compare_with_baseline_family(pairs, true) {
            by_row[i] = Some((c, p_holm));
        }
        by_row
    };
    let (consistency_tests, diversity_tests) = (tests(|r| &r.consistency), tests(|r| &r.diversity));
    let cell = |values: &std::collections::BTreeMap<i64, f64>, test: &Option<(crate::stats::SampleComparison, f64)>| {
        let s = summarize(&values.values().copied().collect::<Vec<_>>());
        let se = if s.se.is_nan() { "n/a".to_string() } else { format!("{:.4}", s.se) };
        let mut text = format!("{:.4} ± {se} (n={})", s.mean, s.n);
        if let Some((c, holm)) = test {
            let kind = if c.paired { "paired" } else { "Welch" };
            text += &format!(", {kind} p = {:.2e} (Holm {:.2e})", c.test.p, holm);
        }
        text
    };
    println!();
    println!("Over seeds, each run scored under the common model of its seed (mean ± SE; tests against the common runs' row):");
    println!();
    println!("| configuration | consistency (common model) | diversity (common model) |");
    println!("|---|---:|---:|");
    for (i, r) in rows.iter().enumerate() {
        let label = if r.label.is_empty() { "(all runs)" } else { &r.label };
        let mark = if baseline == Some(i) { " (common runs)" } else { "" };
        println!(
            "| {label}{mark} | {} | {} |",
            cell(&r.consistency, &consistency_tests[i]),
            cell(&r.diversity, &diversity_tests[i])
        );
    }
}
