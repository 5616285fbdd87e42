//! Initial-set selection inside `ssal run` (train.steps = 0: select and measure only).
#![cfg(feature = "torch")] // runs experiments: needs the libtorch build
mod common;

use std::path::Path;
use std::process::Output;
use tch::Tensor;

fn run(dir: &Path, cfg: &str, cache: &Path) -> (Output, serde_json::Value) {
    common::run_config(cfg, dir, &[("SSAL_CACHE", cache)])
}

fn base(data: &Path) -> String {
    format!(
        "device = \"cpu\"\nseed = 4\n[dataset]\npath = \"{}\"\n[labeled]\nsize = 2\n[train]\nsteps = 0\n",
        data.display()
    )
}

#[test]
fn k_center_on_imported_embedding_and_metrics() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    common::write_idx_dataset(&data, 50, 10, false);
    // Row i sits at position i on a line: after a random first pick, k-center greedy must take
    // the farther end (0 or 49).
    let emb = Tensor::arange(50, (tch::Kind::Float, tch::Device::Cpu)).view([50, 1]);
    emb.write_npy(t.path().join("emb.npy")).unwrap();
    let cfg = format!(
        "{}[init]\nstrategy = \"diversity\"\ntemperature = 0\nembedding = \"npy\"\nembedding_path = \"{}\"\n",
        base(&data),
        t.path().join("emb.npy").display()
    );
    let (o, r) = run(&t.path().join("a"), &cfg, t.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sel: Vec<usize> =
        r["labeled_indices"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let far_end = if sel[0] < 25 { 49 } else { 0 };
    assert_eq!(sel[1], far_end, "{sel:?}");
    assert!(r["final_accuracy"].is_null());
    let c = &r["cycles"][0];
    // Independent metrics: labels are i % 10 (uniform pool), positions are the indices.
    let (a, b) = (sel[0] % 10, sel[1] % 10);
    let want_distance = if a == b { 0.9 } else { 0.4 };
    assert!((c["class_distance"].as_f64().unwrap() - want_distance).abs() < 1e-12);
    assert_eq!(c["diversity"].as_f64().unwrap(), (sel[0] as f64 - sel[1] as f64).abs());
    assert_eq!(c["class_histogram"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum::<u64>(), 2);
    // A matrix of the wrong height is refused, naming the file.
    Tensor::zeros([49, 3], (tch::Kind::Float, tch::Device::Cpu)).write_npy(t.path().join("short.npy")).unwrap();
    let (o, _) = run(&t.path().join("b"), &cfg.replace("emb.npy", "short.npy"), t.path());
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("short.npy") && err.contains("49 rows") && err.contains("50 images"), "{err}");
}

#[test]
fn rotnet_embedding_is_cached_and_reused() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    common::write_idx_dataset(&data, 60, 10, false);
    let cfg = format!(
        "{}[init]\nstrategy = \"diversity\"\ntemperature = 0.5\nembedding = \"rotnet\"\n[rotnet]\nsteps = 3\nwidth = 4\nbatch_size = 8\n",
        base(&data)
    );
    let cache = t.path().join("cache");
    let (o, first) = run(&t.path().join("a"), &cfg, &cache);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let files: Vec<_> = std::fs::read_dir(cache.join("embeddings"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "npy"))
        .collect();
    assert_eq!(files.len(), 1);
    let (values, dim) = ssal::select::read_embeddings_npy(&files[0]).unwrap();
    assert_eq!((values.len() / dim, dim), (60, 8));
    let (o, second) = run(&t.path().join("b"), &cfg, &cache);
    assert!(o.status.success());
    assert_eq!(first["labeled_indices"], second["labeled_indices"]);
    assert_eq!(first["cycles"][0]["diversity"], second["cycles"][0]["diversity"]);
    // Without the cache the same seed recomputes the same embedding and selection.
    let (_, third) = run(&t.path().join("c"), &cfg, &t.path().join("fresh"));
    assert_eq!(first["labeled_indices"], third["labeled_indices"]);
}

#[test]
fn concurrent_runs_with_one_rotnet_config_train_it_once() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    common::write_idx_dataset(&data, 60, 10, false);
    // Long enough (a few seconds) that the three processes are all looking for it at once.
    let cfg = format!(
        "{}[init]\nstrategy = \"diversity\"\nembedding = \"rotnet\"\n[rotnet]\nsteps = 200\nwidth = 4\nbatch_size = 8\nseed = 0\n",
        base(&data)
    );
    let cache = t.path().join("cache");
    let children: Vec<_> = (0..3)
        .map(|i| {
            let dir = t.path().join(format!("r{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cfg.toml"), cfg.replace("seed = 4", &format!("seed = {i}"))).unwrap();
            std::process::Command::new(env!("CARGO_BIN_EXE_ssal"))
                .args([
                    "run",
                    "--config",
                    dir.join("cfg.toml").to_str().unwrap(),
                    "--out",
                    dir.join("out").to_str().unwrap(),
                ])
                .env("SSAL_CACHE", &cache)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let logs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stderr).into_owned()
        })
        .collect();
    let count = |what: &str| logs.iter().filter(|l| l.contains(what)).count();
    assert_eq!((count("RotNet trained"), count("RotNet from the cache")), (1, 2), "{logs:#?}");
}

/// A stop asked for while RotNet trains (minutes on a real pool) ends the run at the next step
/// with exit 75, saves RotNet's state beside the cache entry and caches no embedding; the rerun
/// goes on from the saved step and caches exactly the embedding of an uninterrupted training.
#[test]
fn sigterm_during_rotnet_training_saves_its_state_and_the_rerun_resumes_it() {
    use std::io::BufRead;
    let t = tempfile::tempdir().unwrap();
    common::write_idx_dataset(&t.path().join("data"), 300, 100, false);
    let cfg = format!(
        "{}[init]\nstrategy = \"diversity\"\nembedding = \"rotnet\"\n[rotnet]\nsteps = 3000\nwidth = 4\nbatch_size = 8\n",
        base(&t.path().join("data"))
    );
    let dir = t.path().join("run");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cfg.toml"), &cfg).unwrap();
    let cache = t.path().join("cache");
    let files = |suffix: &str| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(cache.join("embeddings"))
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .collect()
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ssal"))
        .args(["run", "--config", dir.join("cfg.toml").to_str().unwrap(), "--out", dir.join("out").to_str().unwrap()])
        .env("SSAL_CACHE", &cache)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The lock file appears when the cache entry is taken, right before RotNet starts training.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while files(".lock").is_empty() {
        assert!(std::time::Instant::now() < deadline, "RotNet never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let sent = std::time::Instant::now();
    assert!(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let err: Vec<String> = std::io::BufReader::new(child.stderr.take().unwrap()).lines().map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(75), "{err:?}");
    assert!(sent.elapsed() < std::time::Duration::from_secs(20), "stopped {:?} after the signal", sent.elapsed());
    assert!(err.iter().any(|l| l.contains("interrupted in cycle 0")), "{err:?}");
    assert!(files(".npy").is_empty(), "no embedding cached: {:?}", files(".npy"));
    assert_eq!(files(".state.ot").len(), 1, "RotNet's state saved");

    let (resumed, resumed_result) = run(&dir, &cfg, &cache);
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{log}");
    let at: usize = log
        .split("RotNet resumed at step ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume line: {log}"));
    assert!(at > 0 && at < 3000, "resumed at step {at}");
    assert!(files(".state.ot").is_empty(), "the state is removed once the embedding is cached");

    let fresh_cache = t.path().join("fresh-cache");
    let (fresh, fresh_result) = run(&t.path().join("fresh"), &cfg, &fresh_cache);
    assert!(fresh.status.success(), "{}", String::from_utf8_lossy(&fresh.stderr));
    let npy = |c: &Path| {
        let entry = std::fs::read_dir(c.join("embeddings"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "npy"))
            .unwrap();
        std::fs::read(entry).unwrap()
    };
    assert!(npy(&cache) == npy(&fresh_cache), "the resumed RotNet's embedding is the uninterrupted one's");
    assert_eq!(resumed_result["labeled_indices"], fresh_result["labeled_indices"]);
}
