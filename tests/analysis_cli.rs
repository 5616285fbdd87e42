//! Report, plot and export follow the sweep: every swept field is a row field, nothing is merged
//! or dropped silently. Through the real binary, on real tiny runs and on synthetic result files.
mod common;

use ssal::config::{ExperimentConfig, Method, QueryStrategy};
use ssal::result::{write as write_json_atomic, CycleRecord, RunResult};
use std::path::Path;
use std::process::{Command, Output};

fn ssal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ssal")).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a bad-input exit: code 2 and one error line containing every `needle`.
fn refused(o: &Output, needles: &[&str]) {
    assert_eq!(o.status.code(), Some(2), "stdout: {}\nstderr: {}", stdout(o), stderr(o));
    let err = stderr(o);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
}

/// A result file of `config` with one accuracy per budget (cycles 0, 1, …).
fn result(config: ExperimentConfig, accuracies: &[(usize, f64)], complete: bool) -> RunResult {
    let cycles = accuracies
        .iter()
        .enumerate()
        .map(|(i, &(n_labeled, a))| CycleRecord {
            cycle: i,
            n_labeled,
            selected: vec![],
            class_histogram: vec![],
            class_distance: None,
            diversity: None,
            consistency: None,
            evaluations: vec![],
            accuracy: Some(a),
            train_seconds: 1.0,
            embed_seconds: 0.0,
            query_seconds: 0.0,
            eval_seconds: 0.5,
        })
        .collect();
    RunResult {
        ssal_version: "test".into(),
        git_commit: "test".into(),
        config_hash: config.content_hash(),
        config,
        device: "Cpu".into(),
        complete,
        labeled_indices: vec![],
        cycles,
        final_accuracy: accuracies.last().map(|a| a.1),
        wall_seconds: 2.0,
        environment: Default::default(),
    }
}

fn write(dir: &Path, r: &RunResult) {
    write_json_atomic(&dir.join(&r.config_hash).join("result.json"), r).unwrap();
}

fn ingest(db: &Path, dirs: &[&Path]) {
    let mut args = vec!["results", "ingest", "--db", db.to_str().unwrap()];
    args.extend(dirs.iter().map(|d| d.to_str().unwrap()));
    let o = ssal(&args);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Reads a CSV into (header, rows).
fn read_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r.records().map(|rec| rec.unwrap().iter().map(String::from).collect()).collect();
    (header, rows)
}

#[test]
#[cfg(feature = "torch")] // runs experiments
fn a_real_sweep_over_lambda_u_keeps_both_values_in_report_plot_and_export() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    common::write_idx_dataset(&data, 300, 100, false);
    let sweep = t.path().join("lam.toml");
    // The axis written as a natural TOML dotted key.
    std::fs::write(
        &sweep,
        format!(
            "[base]\ndevice = \"cpu\"\nmethod = \"mixmatch\"\n[base.dataset]\npath = \"{}\"\n[base.labeled]\nsize = 20\n\
             [base.train]\nsteps = 2\nbatch_size = 8\neval_every = 1\nmedian_of = 1\n\
             [grid]\nmixmatch.lambda_u = [1.0, 75.0]\nseed = [0, 1, 2]\n",
            data.display()
        ),
    )
    .unwrap();
    let results = t.path().join("results");
    let o = ssal(&[
        "sweep",
        "submit",
        sweep.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--backend",
        "local",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let db = t.path().join("r.db");
    ingest(&db, &[&results.join("lam")]);
    let db = db.to_str().unwrap();

    let report = ssal(&["report", "--db", db, "--baseline", "mixmatch.lambda_u=1"]);
    assert!(report.status.success(), "{}", stderr(&report));
    let md = stdout(&report);
    assert!(md.starts_with("| mixmatch.lambda_u | 20 labels | mean rank |"), "{md}");
    assert!(md.contains("| 1.0 (baseline) |") && md.contains("| 75.0 |"), "{md}");
    assert_eq!(md.matches("(n=3)").count(), 2, "both rows keep their three seeds: {md}");

    let export = ssal(&["results", "export", "--db", db]);
    assert!(export.status.success(), "{}", stderr(&export));
    let (header, rows) = read_csv(&stdout(&export));
    assert_eq!(header[..3], ["sweep", "run_id", "mixmatch.lambda_u"], "{header:?}");
    assert_eq!(rows.len(), 6, "one row per (run, cycle)");
    assert!(header.contains(&"train_seconds".to_string()) && header.contains(&"complete".to_string()));

    // Every report cell is the mean of the exported rows it stands for.
    let cells = ssal(&["report", "--db", db, "--format", "csv"]);
    let (ch, crows) = read_csv(&stdout(&cells));
    let col = |h: &[String], name: &str| h.iter().position(|x| x == name).unwrap();
    for cell in &crows {
        let lam = &cell[col(&ch, "mixmatch.lambda_u")];
        let n_labeled = &cell[col(&ch, "n_labeled")];
        let members: Vec<f64> = rows
            .iter()
            .filter(|r| &r[col(&header, "mixmatch.lambda_u")] == lam && &r[col(&header, "n_labeled")] == n_labeled)
            .map(|r| 100.0 * r[col(&header, "accuracy")].parse::<f64>().unwrap())
            .collect();
        let mean: f64 = cell[col(&ch, "mean")].parse().unwrap();
        assert_eq!(members.len(), cell[col(&ch, "n")].parse::<usize>().unwrap());
        assert!((mean - members.iter().sum::<f64>() / members.len() as f64).abs() < 1e-9, "{cell:?}");
    }

    let jsonl = ssal(&["results", "export", "--db", db, "--format", "jsonl", "--where", "mixmatch.lambda_u=75"]);
    let lines: Vec<serde_json::Value> = stdout(&jsonl).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["seed"].is_i64() && l["accuracy"].is_f64()), "{lines:?}");

    let plots = t.path().join("plots");
    let plot = ssal(&["plot", "--db", db, "--out", plots.to_str().unwrap()]);
    assert!(plot.status.success(), "{}", stderr(&plot));
    let svg = std::fs::read_to_string(plots.join("learning_curves.svg")).unwrap();
    assert!(svg.contains("mixmatch.lambda_u=1.0") && svg.contains("mixmatch.lambda_u=75.0"), "two series");
}

/// The paper's method × strategy grid, synthetic: 2 methods × 3 strategies × 2 seeds.
fn method_strategy_grid(dir: &Path) {
    for (method, strategy) in [
        (Method::Mixmatch, QueryStrategy::Random),
        (Method::Mixmatch, QueryStrategy::Consistency),
        (Method::Supervised, QueryStrategy::Entropy),
        (Method::Supervised, QueryStrategy::Badge),
    ] {
        for seed in 0..3u64 {
            let mut c = ExperimentConfig { method, seed, ..Default::default() };
            c.query.strategy = strategy;
            c.query.budgets = vec![50];
            let base = 0.5 + 0.01 * seed as f64 + if strategy == QueryStrategy::Badge { 0.05 } else { 0.0 };
            write(dir, &result(c, &[(100, base), (150, base + 0.1)], true));
        }
    }
}

#[test]
fn grouping_that_would_merge_runs_is_refused_naming_the_fields() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("al");
    method_strategy_grid(&dir);
    let db = t.path().join("r.db");
    ingest(&db, &[&dir]);
    let db = db.to_str().unwrap();
    // The default rows are method × strategy: 4 rows, none merged.
    let o = ssal(&["report", "--db", db]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = stdout(&o);
    assert!(md.starts_with("| method | query.strategy | 100 labels | 150 labels | AUC | mean rank |"), "{md}");
    assert_eq!(md.matches("(n=3)").count(), 4 * 3, "{md}");
    // Grouping by method alone would put two strategies' runs in one (row, seed).
    refused(&ssal(&["report", "--db", db, "--group-by", "method"]), &["query.strategy", "--group-by", "--where"]);
    refused(
        &ssal(&["plot", "--db", db, "--group-by", "method", "--out", t.path().join("p").to_str().unwrap()]),
        &["query.strategy"],
    );
    // ... unless the other field is fixed by a filter (aliases of earlier versions still work).
    let o = ssal(&["report", "--db", db, "--group-by", "method", "--where", "strategy=random"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("| method |") && stdout(&o).contains("(n=3)"));
    // Unknown fields name the closest valid paths.
    refused(
        &ssal(&["report", "--db", db, "--group-by", "lambda_u"]),
        &["unknown field \"lambda_u\"", "mixmatch.lambda_u"],
    );
    refused(&ssal(&["report", "--db", db, "--where", "train.stepz=3"]), &["train.stepz", "train.steps"]);
    refused(&ssal(&["report", "--db", db, "--where", "seed=9"]), &["matches no run", "0, 1, 2"]);
    // A baseline must match exactly one row.
    refused(
        &ssal(&["report", "--db", db, "--baseline", "method=mixmatch"]),
        &["matches 2 rows", "query.strategy=random"],
    );
    refused(&ssal(&["report", "--db", db, "--baseline", "method=semi"]), &["matches 0 rows"]);
    let o = ssal(&["report", "--db", db, "--baseline", "strategy=random"]);
    assert!(stdout(&o).contains("random (baseline)"), "{}", stdout(&o));
    // Penalty matrix: BADGE is 5 points above everyone at every seed and budget.
    assert!(stdout(&o).contains("| supervised, badge | 1.00 | 1.00 | — | 1.00 |"), "{}", stdout(&o));
    // A field with no effect on a row's runs reads n/a (supervised runs still hold λ_u = 75).
    let o = ssal(&["report", "--db", db, "--group-by", "method,query.strategy,mixmatch.lambda_u"]);
    let md = stdout(&o);
    assert!(md.contains("| supervised | badge | n/a |") && md.contains("| mixmatch | random | 75.0 |"), "{md}");
}

#[test]
fn two_sweeps_incomplete_runs_and_duplicates_are_never_merged_silently() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("first"), t.path().join("second"));
    for seed in 0..3u64 {
        let c = ExperimentConfig { seed, ..Default::default() };
        write(&a, &result(c.clone(), &[(100, 0.6 + 0.01 * seed as f64)], true));
        write(&b, &result(c, &[(100, 0.7 + 0.01 * seed as f64)], true));
    }
    // An incomplete run in the first sweep (seed 3).
    write(&a, &result(ExperimentConfig { seed: 3, ..Default::default() }, &[(100, 0.1)], false));
    let db = t.path().join("r.db");
    ingest(&db, &[&a, &b]);
    let db_s = db.to_str().unwrap();
    // Same configs in two sweeps: the sweep is a row field, nothing replaces anything.
    let o = ssal(&["report", "--db", db_s]);
    let md = stdout(&o);
    assert!(md.starts_with("| sweep | 100 labels |"), "{md}");
    assert!(md.contains("| first | 61.00 ± 0.58 (n=3, 1 incomplete left out) |"), "{md}");
    assert!(md.contains("| second | **71.00 ± 0.58** (n=3) |"), "{md}");
    let o = ssal(&["report", "--db", db_s, "--sweep", "first", "--include-incomplete"]);
    assert!(stdout(&o).contains("(n=4 incl. 1 incomplete)"), "{}", stdout(&o));
    refused(&ssal(&["report", "--db", db_s, "--sweep", "thrid"]), &["no runs of sweep \"thrid\"", "first, second"]);
    let export = stdout(&ssal(&["results", "export", "--db", db_s]));
    assert_eq!(read_csv(&export).1.len(), 6, "the incomplete run is left out of the export too");
    // Pooling both sweeps by grouping on nothing is refused: seed 0 of each would share a cell.
    refused(&ssal(&["report", "--db", db_s, "--group-by", "method"]), &["sweep = first vs second"]);
    // The same run ingested twice from two directories of one name: refused, with both paths.
    let copy = t.path().join("again").join("first");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::create_dir_all(&copy).unwrap();
    for e in std::fs::read_dir(&a).unwrap() {
        let e = e.unwrap();
        std::fs::create_dir_all(copy.join(e.file_name())).unwrap();
        std::fs::copy(e.path().join("result.json"), copy.join(e.file_name()).join("result.json")).unwrap();
    }
    ingest(&db, &[&copy]);
    refused(&ssal(&["report", "--db", db_s, "--sweep", "first"]), &["identical", "again/first"]);
}

#[test]
fn runs_that_differ_only_in_their_budgets_share_a_row_without_colliding() {
    // The initial-set sweep's shape: labeled.size in {40, 100}; grouping by the initial-set
    // strategy puts both sizes in one row, in two budget columns, and nothing collides.
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("init");
    for size in [40usize, 100] {
        for seed in 0..3u64 {
            let mut c = ExperimentConfig { seed, ..Default::default() };
            c.labeled.size = size;
            write(&dir, &result(c, &[(size, 0.5 + size as f64 / 1000.0)], true));
        }
    }
    let db = t.path().join("r.db");
    ingest(&db, &[&dir]);
    let o = ssal(&["report", "--db", db.to_str().unwrap(), "--group-by", "init"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = stdout(&o);
    assert!(md.starts_with("| init.strategy | 40 labels | 100 labels |"), "{md}");
    assert!(md.contains("| random | **54.00 ± 0.00** (n=3) | **60.00 ± 0.00** (n=3) |"), "{md}");
    // By default labeled.size is a row field of its own (it varies).
    let o = ssal(&["report", "--db", db.to_str().unwrap()]);
    assert!(stdout(&o).starts_with("| labeled.size |"), "{}", stdout(&o));
}

#[test]
fn reading_commands_write_nothing() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("al");
    method_strategy_grid(&dir);
    let ro = t.path().join("db");
    std::fs::create_dir_all(&ro).unwrap();
    let db = ro.join("r.db");
    ingest(&db, &[&dir]);
    let before: Vec<_> = std::fs::read_dir(&ro).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(before.len(), 1, "ingest leaves one self-contained file: {before:?}");
    let bytes = std::fs::read(&db).unwrap();
    for args in [vec!["report"], vec!["results", "export"], vec!["plot", "--out", t.path().join("p").to_str().unwrap()]]
    {
        let mut all = args.clone();
        all.extend(["--db", db.to_str().unwrap()]);
        let o = ssal(&all);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    let after: Vec<_> = std::fs::read_dir(&ro).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(after, before, "no journal or WAL files next to the database");
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "the database is unchanged");
}
