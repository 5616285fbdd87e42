//! A real single-node Slurm cluster (scripts/slurm-test-cluster.sh): a 6-job sweep goes in as
//! one job array with `--gres=gpu:1`, one task is cancelled mid-training, `resume` completes it;
//! a packed sweep runs two jobs per task past a failing one, and a requeued task skips the job
//! that completed; a task warned before its time limit (`--signal=B:USR1@N`) saves, requeues
//! itself and ends with the result of an uninterrupted run; three jobs sharing a RotNet wait
//! (`afterok`) for one prepare job that trains it once. Needs root and the packages
//! slurmctld, slurmd, slurm-client and munge (scripts/test.sh installs them); without them the
//! tests fail under CI and are skipped elsewhere. One cluster at a time (they share ports): the
//! tests take turns.
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

/// Held while a test's cluster runs: the clusters would share ports.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `test` with a scratch directory and the `SLURM_CONF` of a cluster started in it, one
/// test at a time; skipped where Slurm is not installed outside CI.
fn with_cluster(test: impl FnOnce(&Path, &Path)) {
    let _turn = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    if let Some(cluster) = start(t.path()) {
        test(t.path(), &cluster.conf);
    }
}

/// A cluster started under `t`, or `None` (skipped) where Slurm is not installed outside CI.
fn start(t: &Path) -> Option<Cluster> {
    let have_slurm = Path::new("/usr/sbin/slurmctld").exists() && Path::new("/usr/sbin/munged").exists();
    if !have_slurm {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the Slurm test: install slurmctld slurmd slurm-client munge"
        );
        eprintln!("skipped: Slurm is not installed (scripts/test.sh installs it)");
        return None;
    }
    let dir = t.join("cluster");
    let up = Command::new("bash").arg(script()).arg("start").arg(&dir).output().unwrap();
    let cluster = Cluster { conf: dir.join("slurm.conf"), dir };
    assert!(up.status.success(), "cluster did not start: {}", String::from_utf8_lossy(&up.stderr));
    Some(cluster)
}

/// Writes a small dataset and the sweep `tiny.toml` under `t`: supervised runs of `steps` steps
/// on it with 20 labels over `grid` (the `[grid]` table's lines), tasks of one CPU and 200 MB on
/// the debug partition, plus the `[slurm]` lines `slurm` (which give the `time`).
fn tiny_sweep(t: &Path, steps: usize, grid: &str, slurm: &str) -> PathBuf {
    let data = t.join("data");
    common::write_idx_dataset(&data, 300, 100, false);
    let sweep = t.join("tiny.toml");
    let text = format!(
        "[base]\ndevice = \"cpu\"\nmethod = \"supervised\"\n[base.dataset]\npath = \"{}\"\n[base.labeled]\nsize = 20\n\
         [base.train]\nsteps = {steps}\nbatch_size = 16\neval_every = 50\n[grid]\n{grid}\n\
         [slurm]\ncpus_per_task = 1\nmem = \"200M\"\npartition = \"debug\"\n{slurm}\n",
        data.display()
    );
    std::fs::write(&sweep, text).unwrap();
    sweep
}

#[test]
fn a_sweep_runs_as_a_job_array_and_resume_completes_a_cancelled_task() {
    with_cluster(|t, conf| {
        let sweep = tiny_sweep(t, 400, "seed = [0, 1, 2, 3, 4, 5]", "gres = \"gpu:1\"\ntime = \"00:10:00\"");
        let results = t.join("results");
        let (file, res) = (sweep.to_str().unwrap(), results.to_str().unwrap());

        let out = ssal(&["sweep", "submit", file, "--results", res, "--backend", "slurm"], conf);
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
            Command::new("scancel").arg(victim.handle.as_ref().unwrap()).env("SLURM_CONF", conf).status().unwrap();
        assert!(cancel.success());

        // The other five finish; the cancelled one is reported as such.
        wait_for("the array to drain", Duration::from_secs(600), || {
            let out = ssal(&["sweep", "status", file, "--results", res], conf);
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
            conf,
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
        let out = ssal(&["sweep", "resume", file, "--results", res, "--backend", "slurm"], conf);
        assert!(String::from_utf8_lossy(&out.stdout).contains("submitted 0 jobs"));
    });
}

#[test]
fn packed_jobs_run_in_turn_past_a_failure_and_a_requeued_task_skips_the_completed_one() {
    with_cluster(|t, conf| {
        // Two seeds × (an initial set larger than the pool, which fails at once; a good one): each
        // task runs a failing job, then a good one.
        let grid = "seed = [0, 1]\nvariant = [{ labeled.size = 5000 }, { labeled.size = 20 }]";
        let sweep = tiny_sweep(t, 100, grid, "jobs_per_task = 2\ntime = \"00:10:00\"");
        let results = t.join("results");
        let (file, res) = (sweep.to_str().unwrap(), results.to_str().unwrap());
        let out = ssal(&["sweep", "submit", file, "--results", res, "--backend", "slurm"], conf);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let submitted = jobs(&results);
        let handles: Vec<String> = submitted.iter().map(|j| j.handle.clone().unwrap()).collect();
        assert_eq!(handles.len(), 4);
        assert!(handles[0] == handles[1] && handles[2] == handles[3] && handles[1] != handles[2], "{handles:?}");
        wait_for("the array to drain", Duration::from_secs(600), || {
            let _ = ssal(&["sweep", "status", file, "--results", res], conf);
            jobs(&results).iter().all(|j| !j.state.is_active())
        });
        let after = jobs(&results);
        let bad = |j: &TrackedJob| std::fs::read_to_string(j.dir.join("config.toml")).unwrap().contains("5000");
        for j in &after {
            if bad(j) {
                assert_eq!(j.state, JobState::Failed, "{j:?}");
                let detail = j.detail.clone().unwrap_or_default();
                assert!(
                    detail.contains(&format!("one of 2 packed into task {}", j.handle.as_ref().unwrap())),
                    "{detail}"
                );
                let log = std::fs::read_to_string(j.dir.join("log.txt")).unwrap();
                assert!(log.contains("exceeds the training pool"), "{log}");
            } else {
                assert_eq!(j.state, JobState::Done, "the failure before it did not stop it: {j:?}");
            }
        }
        // Requeued, task 0 runs its failing job again and skips the one that completed.
        let task = handles[0].clone();
        let good = after.iter().find(|j| j.handle.as_deref() == Some(&*task) && !bad(j)).unwrap().job_id.clone();
        let slurm_out = results.join("tiny/arrays/logs").join(format!("{task}.out"));
        let requeue = Command::new("scontrol").args(["requeue", &task]).env("SLURM_CONF", conf).output().unwrap();
        assert!(requeue.status.success(), "{}", String::from_utf8_lossy(&requeue.stderr));
        wait_for("the requeued task to skip the completed job", Duration::from_secs(400), || {
            std::fs::read_to_string(&slurm_out)
                .is_ok_and(|o| o.contains(&format!("skips job {good} (2 of 2): its result is complete")))
        });
        let out = std::fs::read_to_string(&slurm_out).unwrap();
        assert_eq!(out.matches("(1 of 2) failed (exit 2)").count(), 2, "{out}");
    });
}

#[test]
fn a_task_warned_before_its_time_limit_saves_requeues_itself_and_ends_as_an_uninterrupted_run() {
    with_cluster(|t, conf| {
        // A one-minute limit, warned 45 s before it (Slurm checks limits about every 30 s): the
        // task is signalled while it trains, long before its 1,500 steps could end.
        let sweep = tiny_sweep(t, 1500, "seed = [0]", "time = \"00:01:00\"\nsignal_seconds = 45");
        let results = t.join("results");
        let (file, res) = (sweep.to_str().unwrap(), results.to_str().unwrap());
        let out = ssal(&["sweep", "submit", file, "--results", res, "--backend", "slurm"], conf);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let job = jobs(&results).remove(0);
        // The same config, uninterrupted and outside Slurm, for reference (meanwhile).
        let whole = t.join("whole");
        let reference = Command::new(env!("CARGO_BIN_EXE_ssal"))
            .args(["run", "--config"])
            .arg(job.dir.join("config.toml"))
            .arg("--out")
            .arg(&whole)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();

        let log_path = job.dir.join("log.txt");
        wait_for("the warned task to save and requeue itself", Duration::from_secs(300), || {
            std::fs::read_to_string(&log_path)
                .is_ok_and(|l| l.contains("checkpointed before the time limit; requeueing"))
        });
        // Requeued, the task gets the time to finish (as a longer partition limit would give it).
        let task = job.handle.clone().unwrap();
        let longer = Command::new("scontrol")
            .args(["update", &format!("JobId={task}"), "TimeLimit=00:20:00"])
            .env("SLURM_CONF", conf)
            .output()
            .unwrap();
        assert!(longer.status.success(), "{}", String::from_utf8_lossy(&longer.stderr));
        wait_for("the requeued task to finish", Duration::from_secs(600), || {
            let _ = ssal(&["sweep", "status", file, "--results", res], conf);
            jobs(&results).iter().all(|j| !j.state.is_active())
        });
        let log = std::fs::read_to_string(&log_path).unwrap();
        assert!(log.contains("interrupted in cycle 0 at training step"), "{log}");
        assert!(log.contains("(restart 1)"), "Slurm itself requeued the task: {log}");
        let reference = reference.wait_with_output().unwrap();
        assert!(reference.status.success(), "{}", String::from_utf8_lossy(&reference.stderr));
        let done = jobs(&results).remove(0);
        assert_eq!((done.state, done.attempts), (JobState::Done, 1), "{done:?}");
        let read = |dir: &Path| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap()).unwrap()
        };
        let (resumed, whole) = (read(&done.dir), read(&whole));
        assert_eq!(resumed["cycles"][0]["evaluations"], whole["cycles"][0]["evaluations"], "{log}");
        assert_eq!(resumed["final_accuracy"], whole["final_accuracy"]);
    });
}

#[test]
fn jobs_sharing_a_rotnet_wait_for_one_prepare_job_that_trains_it_once() {
    with_cluster(|t, conf| {
        // Three seeds share one small RotNet (its seed fixed); the cache is the test's own.
        let sweep = tiny_sweep(t, 50, "seed = [0, 1, 2]", "time = \"00:10:00\"");
        let mut text = std::fs::read_to_string(&sweep).unwrap();
        text.push_str(
            "[base.init]\nstrategy = \"diversity\"\nembedding = \"rotnet\"\n\
             [base.rotnet]\nseed = 0\nsteps = 20\nwidth = 4\nbatch_size = 8\n",
        );
        std::fs::write(&sweep, text).unwrap();
        let (results, cache) = (t.join("results"), t.join("cache"));
        let (file, res) = (sweep.to_str().unwrap(), results.to_str().unwrap());
        let out = Command::new(env!("CARGO_BIN_EXE_ssal"))
            .args(["sweep", "submit", file, "--results", res, "--backend", "slurm"])
            .env("SLURM_CONF", conf)
            .env("SSAL_CACHE", &cache)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // Right after submission the jobs' tasks depend on the prepare job, the one other task.
        let submitted = jobs(&results);
        let handles: Vec<String> = submitted.iter().map(|j| j.handle.clone().unwrap()).collect();
        let queue = Command::new("squeue").args(["-h", "-r", "-o", "%i|%E"]).env("SLURM_CONF", conf).output().unwrap();
        let queue = String::from_utf8_lossy(&queue.stdout).into_owned();
        let tasks: Vec<(&str, &str)> = queue.lines().filter_map(|l| l.trim().split_once('|')).collect();
        let prepare: Vec<&str> = tasks.iter().map(|t| t.0).filter(|id| !handles.iter().any(|h| h == id)).collect();
        assert_eq!(prepare.len(), 1, "{queue}");
        let prepare_array = prepare[0].split('_').next().unwrap();
        for h in &handles {
            let dependency = tasks.iter().find(|t| t.0 == h).map(|t| t.1).unwrap_or_default();
            assert!(dependency.starts_with(&format!("afterok:{prepare_array}")), "{h}: {queue}");
        }
        wait_for("the sweep to drain", Duration::from_secs(600), || {
            let _ = ssal(&["sweep", "status", file, "--results", res], conf);
            jobs(&results).iter().all(|j| !j.state.is_active())
        });
        let done = jobs(&results);
        assert!(done.iter().all(|j| j.state == JobState::Done), "{done:?}");
        let entries = common::cached_embeddings(&cache);
        assert_eq!(entries.len(), 1, "{entries:?}");
        let prepares: Vec<PathBuf> =
            std::fs::read_dir(results.join("tiny/prepare")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(prepares.len(), 1, "{prepares:?}");
        let mut logs = vec![std::fs::read_to_string(prepares[0].join("log.txt")).unwrap()];
        assert!(logs[0].contains("RotNet embedding trained and cached"), "{}", logs[0]);
        for j in &done {
            let log = std::fs::read_to_string(j.dir.join("log.txt")).unwrap();
            assert!(log.contains("RotNet from the cache"), "{log}");
            logs.push(log);
        }
        let trained: usize = logs.iter().map(|l| l.matches("RotNet trained and cached").count()).sum();
        assert_eq!(trained, 1, "{logs:#?}");
    });
}
