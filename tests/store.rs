//! The results store: idempotent ingest, broken files skipped, changed files replaced, export.
use ssal::config::ExperimentConfig;
use ssal::result::{write as write_json_atomic, CycleRecord, RunResult};
use ssal::store::Store;
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
        environment: Default::default(),
    }
}

fn write(dir: &Path, name: &str, r: &RunResult) {
    write_json_atomic(&dir.join(name).join("result.json"), r).unwrap();
}

/// Every stored (seed, n_labeled, accuracy), for comparing database states.
fn accuracies(store: &Store) -> Vec<(i64, i64, Option<f64>)> {
    let cycles = store.cycles().unwrap();
    let mut out: Vec<_> = store
        .runs(None)
        .unwrap()
        .iter()
        .flat_map(|r| cycles[&r.path].iter().map(|c| (r.seed, c.n_labeled, c.accuracy)).collect::<Vec<_>>())
        .collect();
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
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
    let first = accuracies(&store);
    assert_eq!(first, vec![(0, 100, Some(0.7)), (1, 100, Some(0.8))]);
    assert_eq!(store.runs(None).unwrap()[0].sweep, "mysweep");
    // Again: nothing changes.
    let r = store.ingest_dir(&runs).unwrap();
    assert_eq!((r.added, r.replaced, r.unchanged), (0, 0, 2));
    assert_eq!(accuracies(&store), first);
    // A changed file replaces its rows (fields included), it does not add to them.
    write(&runs, "b", &result(1, 0.9));
    let r = store.ingest_dir(&runs).unwrap();
    assert_eq!((r.added, r.replaced, r.unchanged), (0, 1, 1));
    let rows = accuracies(&store);
    assert_eq!(rows, vec![(0, 100, Some(0.7)), (1, 100, Some(0.9))]);
    assert_eq!(store.field_values("seed").unwrap().len(), 2);
    // Re-opening the database keeps everything (schema already migrated); so does a read-only open.
    drop(store);
    assert_eq!(accuracies(&Store::open(&db).unwrap()), rows);
    assert_eq!(accuracies(&Store::open_read_only(&db).unwrap()), rows);
}

#[test]
fn every_config_field_is_indexed_with_the_time_split() {
    let t = tempfile::tempdir().unwrap();
    write(&t.path().join("s"), "a", &result(3, 0.5));
    let mut store = Store::open(&t.path().join("r.db")).unwrap();
    store.ingest_dir(&t.path().join("s")).unwrap();
    let run = &store.runs(None).unwrap()[0];
    let fields = store.run_fields(&run.path).unwrap();
    assert_eq!(fields, ExperimentConfig { seed: 3, ..Default::default() }.fields());
    assert_eq!(fields["seed"], "3");
    assert_eq!(fields["mixmatch.lambda_u"], "75.0");
    assert_eq!(fields["query.strategy"], "random");
    assert!(!fields.contains_key("dataset.path"), "unset optional fields are absent");
    let c = &store.cycles().unwrap()[&run.path][0];
    assert_eq!(
        (c.train_seconds, c.embed_seconds, c.query_seconds, c.eval_seconds),
        (Some(1.0), Some(0.5), Some(0.1), Some(0.2))
    );
    // Varying fields over a selection: one run varies in nothing.
    let (names, varying) = store.fields_and_varying(&[run.path.as_str()]).unwrap();
    assert!(varying.is_empty());
    assert!(names.contains(&"mixmatch.lambda_u".to_string()));
}

#[test]
fn a_database_of_the_first_schema_is_upgraded_with_its_fields() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("old.db");
    // The first schema, as ssal 0.1 wrote it, with one run.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let config = serde_json::to_string(&ExperimentConfig { seed: 7, ..Default::default() }).unwrap();
    conn.execute_batch(
        "CREATE TABLE runs (path TEXT PRIMARY KEY, file_hash TEXT NOT NULL, run_id TEXT NOT NULL, sweep TEXT NOT NULL,
            dataset TEXT NOT NULL, model TEXT NOT NULL, method TEXT NOT NULL, init TEXT NOT NULL, temperature REAL,
            strategy TEXT, seed INTEGER NOT NULL, complete INTEGER NOT NULL, final_accuracy REAL,
            wall_seconds REAL NOT NULL, config_json TEXT NOT NULL);
         CREATE TABLE cycles (path TEXT NOT NULL REFERENCES runs(path) ON DELETE CASCADE, cycle INTEGER NOT NULL,
            n_labeled INTEGER NOT NULL, accuracy REAL, class_distance REAL, diversity REAL, consistency REAL,
            PRIMARY KEY (path, cycle));
         PRAGMA user_version = 1;",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO runs VALUES ('/r/result.json', 'h', 'id', 's', 'fashion_mnist', 'small_cnn', 'mixmatch',
            'random', NULL, NULL, 7, 1, 0.5, 1.0, ?1)",
        [&config],
    )
    .unwrap();
    drop(conn);
    // Reading commands refuse it with the command that upgrades it; opening for writing upgrades.
    let e = Store::open_read_only(&db).err().expect("outdated").to_string();
    assert!(e.contains("ssal results ingest"), "{e}");
    let store = Store::open(&db).unwrap();
    assert_eq!(store.field_values("seed").unwrap()["/r/result.json"], "7");
    assert_eq!(store.field_values("train.warm_start").unwrap()["/r/result.json"], "false");
    drop(store);
    assert!(Store::open_read_only(&db).is_ok());
}

#[test]
fn a_database_indexed_before_booleans_absent_when_false_were_fields_gets_them_as_false() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("r.db");
    write(&t.path().join("s/jobs"), "a", &result(3, 0.6));
    Store::open(&db).unwrap().ingest_dir(&t.path().join("s")).unwrap();
    // As the second schema left it: no row for a boolean the config left out because false.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let removed = conn
        .execute("DELETE FROM run_fields WHERE field IN ('train.warm_start', 'train.ema_average_batch_norm')", [])
        .unwrap();
    assert_eq!(removed, 2);
    conn.pragma_update(None, "user_version", 2).unwrap();
    drop(conn);
    assert!(Store::open_read_only(&db).is_err(), "refused until upgraded");
    let store = Store::open(&db).unwrap();
    for field in ["train.warm_start", "train.ema_average_batch_norm"] {
        assert_eq!(store.field_values(field).unwrap().values().collect::<Vec<_>>(), ["false"], "{field}");
    }
}

#[test]
fn a_run_rekeyed_from_an_older_ssals_id_stays_one_run() {
    // A sweep job an older ssal ran: jobs/<legacy id>/result.json carrying the legacy id.
    let t = tempfile::tempdir().unwrap();
    let jobs = t.path().join("mysweep/jobs");
    let mut r = result(4, 0.6);
    let (id, legacy) = (r.config.content_hash(), r.config.legacy_content_hash().unwrap());
    r.config_hash = legacy.clone();
    write(&jobs, &legacy, &r);
    let mut store = Store::open(&t.path().join("r.db")).unwrap();
    assert_eq!(store.ingest_dir(&t.path().join("mysweep")).unwrap().added, 1);
    // This ssal re-keys it (jobs/<id> links to the old directory) and later rewrites the
    // result under the new id: the same run, replaced, reached once through the link.
    std::os::unix::fs::symlink(&legacy, jobs.join(&id)).unwrap();
    let rep = store.ingest_dir(&t.path().join("mysweep")).unwrap();
    assert_eq!((rep.added, rep.replaced, rep.unchanged), (0, 0, 1));
    r.config_hash = id.clone();
    write(&jobs, &id, &r);
    let rep = store.ingest_dir(&t.path().join("mysweep")).unwrap();
    assert_eq!((rep.added, rep.replaced, rep.unchanged), (0, 1, 0));
    let runs = store.runs(None).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].run_id, id);
    assert!(runs[0].path.ends_with(&format!("{legacy}/result.json")), "{}", runs[0].path);
}

#[test]
fn a_directory_link_back_to_an_ancestor_ends_the_walk_and_stores_each_run_once() {
    // A results tree with a link that points at its own ancestor (a "latest" or "all" link):
    // the walk ends (the kernel stops resolving after 40 links) and each run is stored once
    // (files reached by several paths are read once, by canonical path).
    let t = tempfile::tempdir().unwrap();
    let runs = t.path().join("mysweep");
    write(&runs, "a", &result(0, 0.7));
    write(&runs, "b/c", &result(1, 0.8));
    std::os::unix::fs::symlink(&runs, runs.join("b/c/back-to-top")).unwrap();
    let mut store = Store::open(&t.path().join("r.db")).unwrap();
    let rep = store.ingest_dir(&runs).unwrap();
    assert_eq!((rep.added, rep.skipped.len()), (2, 0));
    assert_eq!(store.runs(None).unwrap().len(), 2);
}
