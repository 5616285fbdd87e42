//! The active-learning loop end to end on a small synthetic IDX dataset: records, every query
//! strategy, and resuming a killed run.
#![cfg(feature = "torch")] // runs experiments: needs the libtorch build
mod common;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn config(data: &Path, strategy: &str, steps: usize) -> String {
    format!(
        r#"method = "mixmatch"
seed = 11
device = "cpu"
[dataset]
path = "{}"
[labeled]
size = 20
[train]
steps = {steps}
batch_size = 16
eval_every = 10
median_of = 2
[mixmatch]
rampup_steps = 20
lambda_u = 10
[query]
strategy = "{strategy}"
budgets = [10, 10]
augmentations = 3
pool_subset = 120
"#,
        data.display()
    )
}

fn ssal_run(cfg: &str, dir: &Path) -> std::process::Child {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cfg.toml"), cfg).unwrap();
    Command::new(env!("CARGO_BIN_EXE_ssal"))
        .args(["run", "--config", dir.join("cfg.toml").to_str().unwrap(), "--out", dir.join("out").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: std::process::Child, dir: &Path) -> Value {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&std::fs::read_to_string(dir.join("out/result.json")).unwrap()).unwrap()
}

fn indices(v: &Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
}

#[test]
fn two_query_cycles_record_everything_for_every_strategy() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    common::write_idx_dataset(&data, 300, 100, true);
    for strategy in ["random", "entropy", "coreset", "badge", "consistency", "consistency_embedding"] {
        let dir = t.path().join(strategy);
        let r = finish(ssal_run(&config(&data, strategy, 10), &dir), &dir);
        assert_eq!(r["complete"], true, "{strategy}");
        let cycles = r["cycles"].as_array().unwrap();
        assert_eq!(cycles.iter().map(|c| c["n_labeled"].as_u64().unwrap()).collect::<Vec<_>>(), vec![20, 30, 40]);
        let mut all: Vec<u64> = cycles.iter().flat_map(|c| indices(&c["selected"])).collect();
        assert_eq!(all, indices(&r["labeled_indices"]), "{strategy}: labeled = concatenated selections");
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 40, "{strategy}: no image labeled twice");
        for c in &cycles[1..] {
            assert_eq!(c["selected"].as_array().unwrap().len(), 10);
            assert!(c["consistency"].as_f64().unwrap() >= 0.0, "{strategy}");
            assert!(c["diversity"].as_f64().unwrap() > 0.0, "{strategy}");
            assert!(c["accuracy"].as_f64().is_some());
        }
        assert!(cycles[0]["consistency"].is_null());
        let left: Vec<_> = std::fs::read_dir(dir.join("out")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(
            !left.iter().any(|n| n.to_string_lossy().ends_with(".ot")),
            "{strategy}: weights removed when complete: {left:?}"
        );
    }
}

/// Runs `cfg` once whole and once killed after cycle 1 and resumed; both must end identically.
/// Returns the resumed result.
fn killed_after_cycle_1_resumes_identically(t: &Path, cfg: &str, weights_left: &[&str]) -> Value {
    let whole = t.join("whole");
    let reference = finish(ssal_run(cfg, &whole), &whole);

    let killed = t.join("killed");
    let mut child = ssal_run(cfg, &killed);
    let result = killed.join("out/result.json");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let cycles = std::fs::read_to_string(&result)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .map_or(0, |v| v["cycles"].as_array().unwrap().len());
        if cycles >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "cycle 1 never finished");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial: Value = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    assert_eq!(partial["complete"], false, "killed during the last cycle");
    for name in weights_left {
        assert!(killed.join("out").join(name).exists(), "{name}: cycle 1's weights are kept for cycle 2");
    }

    let resumed = finish(ssal_run(cfg, &killed), &killed);
    assert_eq!(resumed["labeled_indices"], reference["labeled_indices"]);
    for (a, b) in resumed["cycles"].as_array().unwrap().iter().zip(reference["cycles"].as_array().unwrap()) {
        assert_eq!(a["selected"], b["selected"]);
        assert_eq!(a["evaluations"], b["evaluations"]);
        assert_eq!(a["consistency"], b["consistency"]);
    }
    assert_eq!(resumed["final_accuracy"], reference["final_accuracy"]);
    resumed
}

#[test]
fn a_run_killed_after_cycle_1_resumes_to_the_same_result() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    common::write_idx_dataset(&data, 300, 100, false);
    let cfg = config(&data, "consistency_embedding", 40);
    let resumed = killed_after_cycle_1_resumes_identically(t.path(), &cfg, &["checkpoint-1.ot"]);
    let killed = t.path().join("killed");
    let result = killed.join("out/result.json");

    // A result of another config in the same directory is never overwritten.
    let other = cfg.replace("seed = 11", "seed = 12");
    std::fs::write(killed.join("cfg.toml"), &other).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ssal"))
        .args([
            "run",
            "--config",
            killed.join("cfg.toml").to_str().unwrap(),
            "--out",
            killed.join("out").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another config"));
    let kept: Value = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    assert_eq!(kept, resumed);
}

#[test]
fn sigterm_mid_training_saves_the_state_and_the_rerun_ends_exactly_as_an_uninterrupted_run() {
    use std::io::BufRead;
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    common::write_idx_dataset(&data, 300, 100, false);
    let cfg = config(&data, "consistency", 150).replace("budgets = [10, 10]", "budgets = [10]");
    let whole = t.path().join("whole");
    let reference = finish(ssal_run(&cfg, &whole), &whole);

    let stopped = t.path().join("stopped");
    let mut child = ssal_run(&cfg, &stopped);
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let line = lines.next().expect("stderr ended before cycle 1 trained").unwrap();
        let training = line.contains("cycle 1/1: training");
        seen.push(line);
        if training {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(75), "{seen:?} {rest:?}");
    assert!(rest.iter().any(|l| l.contains("interrupted in cycle 1 at training step")), "{rest:?}");
    assert!(stopped.join("out/train-state.ot").exists(), "state saved on SIGTERM");
    let partial: Value =
        serde_json::from_str(&std::fs::read_to_string(stopped.join("out/result.json")).unwrap()).unwrap();
    assert_eq!(partial["cycles"].as_array().unwrap().len(), 1);

    let resumed = finish(ssal_run(&cfg, &stopped), &stopped);
    assert_eq!(resumed["labeled_indices"], reference["labeled_indices"]);
    assert_eq!(resumed["cycles"][1]["evaluations"], reference["cycles"][1]["evaluations"]);
    assert_eq!(resumed["final_accuracy"], reference["final_accuracy"]);
    assert!(!stopped.join("out/train-state.ot").exists(), "state removed once the cycle is done");
}

#[test]
fn warm_start_continues_from_the_previous_cycle_and_resumes_its_weights() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    common::write_idx_dataset(&data, 300, 100, false);
    let cold_cfg = config(&data, "random", 40);
    let cold = t.path().join("cold");
    let cold = finish(ssal_run(&cold_cfg, &cold), &cold);
    let warm_cfg = cold_cfg.replace("median_of = 2", "median_of = 2\nwarm_start = true");
    // Killed after cycle 1, the run resumes the trained network of cycle 1 (warm-start-1.ot):
    // loading a fresh network or the EMA instead would change cycle 2's evaluations.
    let warm = killed_after_cycle_1_resumes_identically(t.path(), &warm_cfg, &["checkpoint-1.ot", "warm-start-1.ot"]);
    assert_eq!(warm["config"]["train"]["warm_start"], true, "recorded in the result");
    assert_eq!(warm["cycles"][0]["evaluations"], cold["cycles"][0]["evaluations"], "cycle 0 has nothing to start from");
    assert_eq!(warm["labeled_indices"], cold["labeled_indices"], "random queries do not depend on the model");
    for cycle in [1, 2] {
        assert_ne!(
            warm["cycles"][cycle]["evaluations"], cold["cycles"][cycle]["evaluations"],
            "cycle {cycle} starts warm"
        );
    }
    assert!(
        cold["config"]["train"].get("warm_start").is_none(),
        "the default is left out of the result (and the job id)"
    );
}

/// `ssal score-queries` with the given arguments: (exit code, stdout, stderr).
fn score_queries(args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_ssal")).arg("score-queries").args(args).output().unwrap();
    (o.status.code(), String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into())
}

/// The per-run rows of `score-queries`' table, split into cells (cell 1 is the run directory).
fn run_rows(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .filter(|l| l.contains("/out |"))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect()
}

#[test]
fn score_queries_scores_every_runs_first_query_under_one_retrained_model() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    common::write_idx_dataset(&data, 300, 100, false);
    // Runs of two seeds; the random runs are the common ones (MixMatch runs of one seed share cycle 0).
    let mut dirs = std::collections::BTreeMap::new();
    for seed in [11, 12] {
        for strategy in ["random", "consistency"] {
            let dir = t.path().join(format!("{strategy}-{seed}"));
            let cfg = config(&data, strategy, 20).replace("seed = 11", &format!("seed = {seed}"));
            finish(ssal_run(&cfg, &dir), &dir);
            dirs.insert((strategy, seed), dir.join("out").to_str().unwrap().to_string());
        }
    }
    let d = |strategy: &'static str, seed: u64| dirs[&(strategy, seed)].as_str();
    let (code, stdout, stderr) = score_queries(&["--common", d("random", 11), d("random", 11), d("consistency", 11)]);
    assert_eq!(code, Some(0), "{stderr}");
    // On the CPU the retrained cycle-0 model is the run's own: same evaluations.
    assert!(stderr.contains("equal the recorded ones"), "{stderr}");
    let rows = run_rows(&stdout);
    assert_eq!(rows.len(), 2, "{stdout}");
    assert_eq!(
        (rows[0][2].as_str(), rows[0][4].as_str(), rows[1][4].as_str()),
        ("11", "random", "consistency"),
        "{stdout}"
    );
    // Both MixMatch runs share cycle 0, so the common model is also the one Consistency queried
    // with: its picks (the least consistent candidates) are less consistent than random picks.
    let c = |row: &Vec<String>| row[6].parse::<f64>().unwrap();
    assert!(c(&rows[1]) > c(&rows[0]), "{stdout}");
    assert!(!stdout.contains("Over seeds"), "one common run: no summary\n{stdout}");

    // One common run per seed: each run is scored under its own seed's, exactly as alone.
    let all = [d("random", 11), d("consistency", 11), d("random", 12), d("consistency", 12)];
    let mut args = vec!["--common", d("random", 11), "--common", d("random", 12)];
    args.extend(all);
    let (code, stdout, stderr) = score_queries(&args);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr.matches("equal the recorded ones").count(), 2, "{stderr}");
    let rows = run_rows(&stdout);
    assert_eq!(rows.len(), 4, "{stdout}");
    // (Consistency draws augmentations over the union of the scored picks, so "alone" means
    // with the same runs of that seed.)
    let (_, alone, _) = score_queries(&["--common", d("random", 12), d("random", 12), d("consistency", 12)]);
    assert_eq!(run_rows(&alone)[1][6..8], rows[3][6..8], "seed 12 under seed 12's model\n{alone}\n{stdout}");
    let (_, crossed, _) = score_queries(&["--common", d("random", 11), d("consistency", 12)]);
    assert_ne!(run_rows(&crossed)[0][6], rows[3][6], "another seed's model scores otherwise\n{crossed}");
    // The summary: one row per strategy, the mean of its seeds' values, tested against the common runs.
    let summary = |label: &str| -> String {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {label}")))
            .unwrap_or_else(|| panic!("{label}\n{stdout}"))
            .into()
    };
    let line = summary("query.strategy=consistency |");
    let summary_mean: f64 = line.split('|').nth(2).unwrap().split('±').next().unwrap().trim().parse().unwrap();
    assert!((summary_mean - (c(&rows[1]) + c(&rows[3])) / 2.0).abs() <= 1e-4, "{line}\n{stdout}");
    assert!(line.contains("(n=2), paired p = "), "{line}\n{stdout}");
    assert!(summary("query.strategy=random (common runs)").contains("(n=2) |"), "{stdout}");

    // Refused with the reason: two common runs of one seed, and a run that never queried.
    let (code, _, stderr) =
        score_queries(&["--common", d("random", 11), "--common", d("consistency", 11), d("random", 11)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("two common runs have seed 11"), "{stderr}");
    let single = t.path().join("single");
    finish(ssal_run(&config(&data, "random", 20).replace("budgets = [10, 10]", "budgets = []"), &single), &single);
    // Checked before any model is trained, and named by its directory.
    let single_out = single.join("out");
    let args =
        ["--common", d("random", 12), "--common", d("random", 11), d("random", 12), single_out.to_str().unwrap()];
    let (code, _, stderr) = score_queries(&args);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("has not finished its first query"), "{stderr}");
    assert!(stderr.contains(single_out.to_str().unwrap()) && !stderr.contains("common model:"), "{stderr}");
}

/// The accuracies and selections of one small run, pinned: restructuring the code (issue 19) must
/// not change a run's `result.json` for the same seed on the CPU. A change that alters the numbers
/// on purpose updates these values and says why in its commit.
#[test]
fn a_pinned_small_run_keeps_its_selections_and_accuracies() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    common::write_idx_dataset(&data, 300, 100, true);
    let dir = t.path().join("run");
    let r = finish(ssal_run(&config(&data, "consistency_embedding", 10), &dir), &dir);
    let selected: Vec<Vec<u64>> = r["cycles"].as_array().unwrap().iter().map(|c| indices(&c["selected"])).collect();
    let accuracies: Vec<Vec<f64>> = r["cycles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["evaluations"].as_array().unwrap().iter().map(|e| e["accuracy"].as_f64().unwrap()).collect())
        .collect();
    let pinned_selected: Vec<Vec<u64>> = vec![
        vec![98, 103, 138, 197, 185, 163, 125, 273, 247, 275, 85, 130, 269, 111, 251, 7, 183, 70, 294, 54],
        vec![22, 132, 82, 244, 74, 75, 272, 203, 144, 37],
        vec![205, 135, 194, 115, 224, 254, 14, 246, 234, 276],
    ];
    let pinned_accuracies = vec![vec![0.6], vec![0.7], vec![0.6]];
    assert_eq!(selected, pinned_selected);
    assert_eq!(accuracies, pinned_accuracies);
}
