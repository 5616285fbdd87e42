//! `ssal run` end to end on a small synthetic IDX dataset, through the real binary.
#![cfg(feature = "torch")] // runs experiments: needs the libtorch build
mod common;

use std::path::Path;

fn config(data: &Path, method: &str, seed: u64) -> String {
    format!(
        r#"method = "{method}"
seed = {seed}
device = "cpu"
[dataset]
path = "{}"
[labeled]
size = 40
[train]
steps = 60
batch_size = 32
eval_every = 20
median_of = 2
[mixmatch]
rampup_steps = 30
lambda_u = 10
"#,
        data.display()
    )
}

fn run(cfg_text: &str, dir: &Path) -> (std::process::Output, serde_json::Value) {
    common::run_config(cfg_text, dir, &[])
}

#[test]
fn supervised_learns_a_separable_toy_problem_and_records_everything() {
    let t = tempfile::tempdir().unwrap();
    common::write_idx_dataset(&t.path().join("data"), 400, 200, true);
    let (out, r) = run(&config(&t.path().join("data"), "supervised", 3), t.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(r["complete"], true);
    assert_eq!(r["labeled_indices"].as_array().unwrap().len(), 40);
    let evals = r["cycles"][0]["evaluations"].as_array().unwrap();
    assert_eq!(evals.iter().map(|e| e["step"].as_u64().unwrap()).collect::<Vec<_>>(), vec![20, 40, 60]);
    // The final accuracy is the median of the last two evaluations.
    let last: Vec<f64> = evals[1..].iter().map(|e| e["accuracy"].as_f64().unwrap()).collect();
    assert!((r["final_accuracy"].as_f64().unwrap() - (last[0] + last[1]) / 2.0).abs() < 1e-12);
    // The toy classes are trivially separable: far above the 10 % of chance.
    assert!(r["final_accuracy"].as_f64().unwrap() > 0.8, "{}", r["final_accuracy"]);
    assert_eq!(r["config"]["seed"], 3);
    assert_eq!(r["config_hash"].as_str().unwrap().len(), 16);
    assert!(!t.path().join("out").read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("tmp")));
}

#[test]
fn same_seed_same_result_on_the_cpu() {
    let t = tempfile::tempdir().unwrap();
    common::write_idx_dataset(&t.path().join("data"), 300, 100, false);
    let cfg = config(&t.path().join("data"), "mixmatch", 5);
    let (a_dir, b_dir) = (t.path().join("a"), t.path().join("b"));
    let (oa, a) = run(&cfg, &a_dir);
    let (_, b) = run(&cfg, &b_dir);
    assert!(oa.status.success(), "{}", String::from_utf8_lossy(&oa.stderr));
    assert_eq!(a["cycles"][0]["evaluations"], b["cycles"][0]["evaluations"]);
    assert_eq!(a["labeled_indices"], b["labeled_indices"]);
    let (_, c) = run(&config(&t.path().join("data"), "mixmatch", 6), &t.path().join("c"));
    assert_ne!(a["labeled_indices"], c["labeled_indices"]);
}

#[test]
fn bad_config_exits_2_naming_the_key() {
    let t = tempfile::tempdir().unwrap();
    let (out, r) = run("seed = 1\n[train]\nsteps = 5\nbatchsize = 3\n", t.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("batchsize") && err.contains("cfg.toml"), "{err}");
    assert!(r.is_null());
    // A missing dataset directory is named too.
    let (out, _) = run("[dataset]\npath = \"/nonexistent/fm\"\n", t.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/fm"));
}

#[test]
fn eval_subset_evaluates_early_points_on_a_seeded_subset_and_the_last_on_the_whole_test_set() {
    let t = tempfile::tempdir().unwrap();
    common::write_idx_dataset(&t.path().join("data"), 300, 100, false);
    let cfg =
        config(&t.path().join("data"), "supervised", 4).replace("median_of = 2", "median_of = 1\neval_subset = 30");
    let (out, r) = run(&cfg, &t.path().join("a"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let evals = r["cycles"][0]["evaluations"].as_array().unwrap();
    let sizes: Vec<Option<u64>> = evals.iter().map(|e| e["test_images"].as_u64()).collect();
    assert_eq!(sizes, vec![Some(30), Some(30), None], "subset until the last median_of evaluations");
    // Accuracies on 30 images are multiples of 1/30; the last, on all 100, of 1/100.
    for e in &evals[..2] {
        let a = e["accuracy"].as_f64().unwrap() * 30.0;
        assert!((a - a.round()).abs() < 1e-9, "{e}");
    }
    assert_eq!(r["final_accuracy"], evals[2]["accuracy"]);
    assert_eq!(r["config"]["train"]["eval_subset"], 30, "recorded");
    // The same seed evaluates on the same subset: the same curve again.
    let (_, again) = run(&cfg, &t.path().join("b"));
    assert_eq!(again["cycles"][0]["evaluations"], r["cycles"][0]["evaluations"]);
}

#[test]
fn a_result_written_under_an_older_ssals_id_is_resumed_and_rewritten_under_the_current_one() {
    use ssal::config::ExperimentConfig;
    let t = tempfile::tempdir().unwrap();
    common::write_idx_dataset(&t.path().join("data"), 300, 100, true);
    let text = config(&t.path().join("data"), "supervised", 2);
    let (out, done) = run(&text, t.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg = ExperimentConfig::from_toml_str(&text, Path::new("cfg.toml")).unwrap();
    let (id, legacy) = (cfg.content_hash(), cfg.legacy_content_hash().unwrap());
    assert_ne!(id, legacy);
    assert_eq!(done["config_hash"], id.as_str());
    let path = t.path().join("out/result.json");
    let write = |r: &serde_json::Value| std::fs::write(&path, serde_json::to_string_pretty(r).unwrap()).unwrap();

    // Finished under the legacy id: accepted as this config's, returned, not run again.
    let mut old = done.clone();
    old["config_hash"] = legacy.as_str().into();
    write(&old);
    let before = std::fs::read_to_string(&path).unwrap();
    let (out, _) = run(&text, t.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before, "a finished result is not rewritten");

    // Interrupted under the legacy id before its first cycle finished: resumed, and written
    // back under the current id with the same outcome.
    old["complete"] = false.into();
    old["cycles"] = serde_json::json!([]);
    old["labeled_indices"] = serde_json::json!([]);
    old["final_accuracy"] = serde_json::Value::Null;
    write(&old);
    let (out, resumed) = run(&text, t.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((resumed["config_hash"].as_str(), &resumed["complete"]), (Some(id.as_str()), &true.into()));
    assert_eq!(resumed["cycles"][0]["evaluations"], done["cycles"][0]["evaluations"]);

    // Any other hash is still another config's result, never overwritten.
    old["config_hash"] = "0123456789abcdef".into();
    write(&old);
    let (out, _) = run(&text, t.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another config"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
