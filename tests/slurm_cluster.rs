//! A real single-node Slurm cluster (scripts/slurm-test-cluster.sh): a 6-job sweep goes in as
//! one job array with `--gres=gpu:1`, one task is cancelled mid-training, `resume` completes it.
//! Needs root and the packages slurmctld, slurmd, slurm-client and munge (scripts/test.sh
//! installs them); without them the test fails under CI and is skipped elsewhere.
#![cfg(feature = "torch")] // runs experiments: needs the libtorch build
mod common;

use ssal::sweep::{JobState, StateDb, TrackedJob};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-test-cluster.sh")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).arg("stop").arg(&self.dir).status();
    }
}

fn ssal(args: &[&str], conf: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ssal")).args(args).env("SLURM_CONF", conf).output().unwrap()
}

fn jobs(results: &Path) -> Vec<TrackedJob> {
    StateDb::open(&results.join("tiny/state.db")).unwrap().jobs().unwrap()
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_sweep_runs_as_a_job_array_and_resume_completes_a_cancelled_task() {
    let have_slurm = Path::new("/usr/sbin/slurmctld").exists() && Path::new("/usr/sbin/munged").exists();
    if !have_slurm {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the Slurm test: install slurmctld slurmd slurm-client munge"
        );
        eprintln!("skipped: Slurm is not installed (scripts/test.sh installs it)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("cluster");
    let up = Command::new("bash").arg(script()).arg("start").arg(&dir).output().unwrap();
    let cluster = Cluster { conf: dir.join("slurm.conf"), dir };
    assert!(up.status.success(), "cluster did not start: {}", String::from_utf8_lossy(&up.stderr));
    let conf = cluster.conf.clone();

    let data = t.path().join("data");
    common::write_idx_dataset(&data, 300, 100, false);
    let sweep = t.path().join("tiny.toml");
    std::fs::write(
        &sweep,
        format!(
            r#"[base]
device = "cpu"
method = "supervised"
[base.dataset]
path = "{}"
[base.labeled]
size = 20
[base.train]
steps = 400
batch_size = 16
eval_every = 50
[grid]
seed = [0, 1, 2, 3, 4, 5]
[slurm]
cpus_per_task = 1
mem = "200M"
time = "00:10:00"
gres = "gpu:1"
partition = "debug"
"#,
            data.display()
        ),
    )
    .unwrap();
    let results = t.path().join("results");
    let (file, res) = (sweep.to_str().unwrap(), results.to_str().unwrap());

    let out = ssal(&["sweep", "submit", file, "--results", res, "--backend", "slurm"], &conf);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("submitted 6 jobs"));
    let submitted = jobs(&results);
    assert_eq!(submitted.len(), 6);
    // One array: every handle is <same array id>_<index>.
    let array_ids: std::collections::BTreeSet<String> =
        submitted.iter().map(|j| j.handle.clone().unwrap().split('_').next().unwrap().to_string()).collect();
    assert_eq!(array_ids.len(), 1, "{submitted:?}");
    let script_text = std::fs::read_dir(results.join("tiny/arrays"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sh"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .unwrap();
    assert!(script_text.contains("#SBATCH --array=0-5\n") && script_text.contains("#SBATCH --gres=gpu:1\n"));

    // Cancel the first task once it is training; it saves its state on SIGTERM.
    let victim = submitted[0].clone();
    wait_for("the first task to train", Duration::from_secs(180), || {
        std::fs::read_to_string(victim.dir.join("log.txt")).is_ok_and(|l| l.contains("training on"))
    });
    let cancel =
        Command::new("scancel").arg(victim.handle.as_ref().unwrap()).env("SLURM_CONF", &conf).status().unwrap();
    assert!(cancel.success());

    // The other five finish; the cancelled one is reported as such.
    wait_for("the array to drain", Duration::from_secs(600), || {
        let out = ssal(&["sweep", "status", file, "--results", res], &conf);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        jobs(&results).iter().all(|j| !j.state.is_active())
    });
    let after = jobs(&results);
    let state_of = |id: &str, js: &[TrackedJob]| js.iter().find(|j| j.job_id == id).unwrap().state;
    assert_eq!(state_of(&victim.job_id, &after), JobState::Cancelled, "{after:?}");
    assert_eq!(after.iter().filter(|j| j.state == JobState::Done).count(), 5, "{after:?}");
    let log = std::fs::read_to_string(victim.dir.join("log.txt")).unwrap();
    assert!(log.contains("interrupted in cycle 0"), "{log}");
    assert!(victim.dir.join("train-state.ot").exists(), "state saved on scancel");

    // resume submits only the cancelled job and, with --wait, sees it through.
    let out = ssal(
        &["sweep", "resume", file, "--results", res, "--backend", "slurm", "--wait", "--poll-seconds", "1"],
        &conf,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("submitted 1 jobs"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let done = jobs(&results);
    assert!(done.iter().all(|j| j.state == JobState::Done), "{done:?}");
    for j in &done {
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(j.dir.join("result.json")).unwrap()).unwrap();
        assert_eq!(r["complete"], true);
        assert_eq!(r["cycles"][0]["evaluations"].as_array().unwrap().len(), 8);
    }
    assert_eq!(done.iter().find(|j| j.job_id == victim.job_id).unwrap().attempts, 2);
    // Running resume again submits nothing twice.
    let out = ssal(&["sweep", "resume", file, "--results", res, "--backend", "slurm"], &conf);
    assert!(String::from_utf8_lossy(&out.stdout).contains("submitted 0 jobs"));
    drop(cluster);
}
