//! The results store: idempotent ingest, broken files skipped, changed files replaced, export.
use ssal::config::ExperimentConfig;
use ssal::experiment::{write_json_atomic, CycleRecord, RunResult};
use ssal::store::{write_csv, Store, CSV_HEADER};
use std::path::Path;

fn result(seed: u64, accuracy: f64) -> RunResult {
    let config = ExperimentConfig { seed, ..Default::default() };
    let cycle = CycleRecord {
        cycle: 0,
        n_labeled: 100,
        selected: vec![1, 2],
        class_histogram: vec![1, 1],
        class_distance: Some(0.4),
        diversity: None,
        consistency: None,
        evaluations: vec![],
        accuracy: Some(accuracy),
        train_seconds: 1.0,
        embed_seconds: 0.5,
        query_seconds: 0.1,
        eval_seconds: 0.2,
    };
    RunResult {
        ssal_version: "test".into(),
        git_commit: "test".into(),
        config_hash: config.content_hash(),
        config,
        device: "Cpu".into(),
        complete: true,
        labeled_indices: vec![1, 2],
        cycles: vec![cycle],
        final_accuracy: Some(accuracy),
        wall_seconds: 2.0,
    }
}

fn write(dir: &Path, name: &str, r: &RunResult) {
    write_json_atomic(&dir.join(name).join("result.json"), r).unwrap();
}

#[test]
fn ingest_is_idempotent_skips_broken_files_and_replaces_changed_ones() {
    let t = tempfile::tempdir().unwrap();
    let runs = t.path().join("mysweep");
    write(&runs, "a", &result(0, 0.7));
    write(&runs, "b", &result(1, 0.8));
    std::fs::create_dir_all(runs.join("broken")).unwrap();
    std::fs::write(runs.join("broken/result.json"), "{\"ssal_version\": \"x\", ").unwrap();
    let db = t.path().join("r.db");
    let mut store = Store::open(&db).unwrap();
    let r = store.ingest_dir(&runs).unwrap();
    assert_eq!((r.added, r.replaced, r.unchanged), (2, 0, 0));
    assert_eq!(r.skipped.len(), 1);
    assert!(r.skipped[0].0.ends_with("broken/result.json"));
    let first = store.cycle_rows().unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].sweep, "mysweep");
    // Again: nothing changes.
    let r = store.ingest_dir(&runs).unwrap();
    assert_eq!((r.added, r.replaced, r.unchanged), (0, 0, 2));
    assert_eq!(store.cycle_rows().unwrap(), first);
    // A changed file replaces its rows, it does not add to them.
    write(&runs, "b", &result(1, 0.9));
    let r = store.ingest_dir(&runs).unwrap();
    assert_eq!((r.added, r.replaced, r.unchanged), (0, 1, 1));
    let rows = store.cycle_rows().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows.iter().find(|r| r.seed == 1).unwrap().accuracy, Some(0.9));
    // Re-opening the database keeps everything (schema already migrated).
    drop(store);
    assert_eq!(Store::open(&db).unwrap().cycle_rows().unwrap(), rows);
}

#[test]
fn export_has_the_documented_columns_in_order() {
    let t = tempfile::tempdir().unwrap();
    write(&t.path().join("s"), "a", &result(3, 0.5));
    let mut store = Store::open(&t.path().join("r.db")).unwrap();
    store.ingest_dir(&t.path().join("s")).unwrap();
    let mut out = Vec::new();
    write_csv(&store.cycle_rows().unwrap(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "run_id,sweep,dataset,model,init,temperature,strategy,seed,cycle,n_labeled,accuracy,class_distance,diversity,consistency,method"
    );
    let fields: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(fields.len(), CSV_HEADER.len());
    assert_eq!(
        &fields[1..],
        ["s", "fashion_mnist", "small_cnn", "random", "", "", "3", "0", "100", "0.5", "0.4", "", "", "mixmatch"]
    );
}
