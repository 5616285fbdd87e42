//! Exactly-once submission and failure diagnosis against a fake Slurm on PATH
//! (tests/fake_slurm: sbatch / squeue / sacct / scontrol / scancel with injectable failures).
mod legacy_ids;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Cluster {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
    sweep: PathBuf,
    results: PathBuf,
}

fn path_with_fake() -> String {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_slurm/bin");
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

/// `[slurm] ssal = "<this test's ssal>"`: the binary the array tasks run, named so that the
/// analysis-only build (which refuses to hand itself to the compute nodes) can submit too.
fn runner_line() -> String {
    format!("ssal = \"{}\"\n", env!("CARGO_BIN_EXE_ssal"))
}

impl Cluster {
    /// A fake cluster and a sweep of `jobs` seeds with `slurm` as its `[slurm]` table.
    fn new(jobs: usize, slurm: &str) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let state = root.join("slurm");
        std::fs::create_dir_all(&state).unwrap();
        let seeds: Vec<String> = (0..jobs).map(|s| s.to_string()).collect();
        let sweep = root.join("fake.toml");
        std::fs::write(&sweep, format!("[grid]\nseed = [{}]\n[slurm]\n{}{slurm}\n", seeds.join(", "), runner_line()))
            .unwrap();
        Cluster { results: root.join("results"), _tmp: tmp, root, state, sweep }
    }

    /// Rewrites the sweep file with `seeds` (and no `[slurm]` settings but the binary).
    fn set_seeds(&self, seeds: &[u32]) {
        let list: Vec<String> = seeds.iter().map(u32::to_string).collect();
        std::fs::write(&self.sweep, format!("[grid]\nseed = [{}]\n[slurm]\n{}", list.join(", "), runner_line()))
            .unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ssal"));
        c.args(args).env("PATH", path_with_fake()).env("FAKE_SLURM_DIR", &self.state);
        c
    }

    /// `ssal sweep VERB <sweep> --results R [extra]`.
    fn sweep(&self, verb: &str, extra: &[&str]) -> Output {
        let mut args = vec!["sweep", verb, self.sweep.to_str().unwrap(), "--results", self.results.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.command(&args).output().unwrap()
    }

    fn fake(&self, args: &[&str]) -> String {
        let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_slurm/bin/fake-slurm"))
            .args(args)
            .env("PATH", path_with_fake())
            .env("FAKE_SLURM_DIR", &self.state)
            .output()
            .unwrap();
        assert!(out.status.success(), "fake-slurm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn submissions(&self) -> usize {
        self.fake(&["count"]).trim().parse().unwrap()
    }

    fn status_json(&self) -> (Option<i32>, serde_json::Value) {
        let o = self.sweep("status", &["--format", "json"]);
        let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
        (o.status.code(), v)
    }
}

/// The job id of the cluster's first array.
fn first_job(c: &Cluster) -> String {
    let tasks = c.fake(&["tasks"]);
    tasks
        .lines()
        .find_map(|l| l.split('\t').next().filter(|j| !j.is_empty() && j.chars().all(|ch| ch.is_ascii_digit())))
        .unwrap_or_else(|| panic!("no task in {tasks:?}"))
        .to_string()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn two_concurrent_resumes_submit_every_job_exactly_once() {
    let c = Cluster::new(6, "");
    let spawn = || {
        c.command(&[
            "sweep",
            "resume",
            c.sweep.to_str().unwrap(),
            "--results",
            c.results.to_str().unwrap(),
            "--backend",
            "slurm",
        ])
        .spawn()
        .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", text(&a));
    assert!(b.status.success(), "{}", text(&b));
    assert_eq!(c.submissions(), 1, "one array for the six jobs, not two");
    let (_, status) = c.status_json();
    assert_eq!(status["states"]["submitted"], 6, "{status}");
    // A third resume finds everything queued and submits nothing.
    let again = c.sweep("resume", &["--backend", "slurm"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("submitted 0 jobs"), "{}", text(&again));
    assert_eq!(c.submissions(), 1);
}

#[test]
fn a_lock_held_by_another_ssal_refuses_with_no_wait_lock() {
    let c = Cluster::new(2, "");
    let dir = c.results.join("fake");
    let _held = ssal::sweep::SweepLock::try_acquire(&dir).unwrap();
    let o = c.sweep("resume", &["--backend", "slurm", "--no-wait-lock"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("locked by another ssal"), "{}", text(&o));
    assert_eq!(c.submissions(), 0);
}

/// `status` and `plan` while another ssal holds the sweep (a submitter with `sbatch` in flight)
/// only read: settling the journal then would close the submitter's entry as "not found" before
/// the controller records its array, and the next resume would submit those jobs a second time.
#[test]
fn status_while_another_ssal_submits_leaves_its_journal_alone() {
    let c = Cluster::new(3, "");
    assert!(c.sweep("submit", &["--backend", "slurm"]).status.success());
    // A fourth seed; another ssal holds the sweep and has journalled the new job's chunk, its
    // `sbatch` not answered yet (the controller has no such array).
    c.set_seeds(&[0, 1, 2, 3]);
    assert!(c.sweep("plan", &[]).status.success());
    let dir = c.results.join("fake");
    let held = ssal::sweep::SweepLock::try_acquire(&dir).unwrap();
    let mut db = ssal::sweep::StateDb::open(&dir.join("state.db")).unwrap();
    let new: Vec<String> = db.jobs().unwrap().into_iter().filter(|j| j.handle.is_none()).map(|j| j.job_id).collect();
    assert_eq!(new.len(), 1);
    db.journal_open("in0flight000", "slurm", &new, 1, None).unwrap();
    let open = |db: &ssal::sweep::StateDb| db.journal_open_entries("slurm").unwrap().len();

    let (code, status) = c.status_json();
    assert_eq!(code, Some(0), "{status}");
    assert_eq!(status["states"]["submitted"], 3, "the states the holder recorded: {status}");
    let o = c.sweep("status", &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && stderr.contains("held by another ssal") && stderr.contains("last recorded"),
        "{}",
        text(&o)
    );
    assert_eq!(open(&db), 1, "status left the holder's journal entry open");
    let o = c.sweep("plan", &[]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stderr).contains("held by another ssal"), "{}", text(&o));
    drop(held);
    // Once it is free, status settles the journal as before.
    let (code, _) = c.status_json();
    assert_eq!((code, open(&db)), (Some(0), 0));
}

#[test]
fn a_socket_timeout_after_acceptance_is_adopted_not_resubmitted() {
    let c = Cluster::new(3, "");
    c.fake(&["inject", "sbatch_timeout_after_accept", "1"]);
    let o = c.sweep("submit", &["--backend", "slurm"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(c.submissions(), 1);
    let (_, status) = c.status_json();
    assert_eq!(status["states"]["submitted"], 3, "{status}");
}

#[test]
fn an_ambiguous_submission_is_reconciled_by_the_next_call() {
    let c = Cluster::new(3, "");
    // Accepted, but the reply is lost and the queue cannot be asked: exit 3, nothing else sent.
    c.fake(&["inject", "sbatch_timeout_after_accept", "1"]);
    c.fake(&["inject", "squeue_fail", "100"]);
    let o = c.sweep("submit", &["--backend", "slurm"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot tell whether submission"), "{}", text(&o));
    assert_eq!(c.submissions(), 1);
    std::fs::remove_file(c.state.join("inject/squeue_fail")).ok();
    // The next resume adopts the accepted array instead of submitting it again.
    let o = c.sweep("resume", &["--backend", "slurm"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("submitted 0 jobs"), "{}", text(&o));
    assert_eq!(c.submissions(), 1);
    let (_, status) = c.status_json();
    assert_eq!(status["states"]["submitted"], 3, "{status}");
}

#[test]
fn an_empty_queue_answer_fails_nothing_and_resubmits_nothing() {
    let c = Cluster::new(3, "");
    assert!(c.sweep("submit", &["--backend", "slurm"]).status.success());
    // The controller restarts: squeue answers empty; sacct still knows the tasks are pending.
    c.fake(&["inject", "squeue_empty", "100"]);
    let (code, status) = c.status_json();
    assert_eq!(code, Some(0), "{status}");
    assert_eq!(status["states"]["submitted"], 3, "{status}");
    // Nor when sacct cannot be asked either: the jobs keep their state.
    c.fake(&["inject", "sacct_fail", "100"]);
    let o = c.sweep("resume", &["--backend", "slurm"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("submitted 0 jobs"), "{}", text(&o));
    assert_eq!(c.submissions(), 1);
}

#[test]
fn failures_say_why_and_where_their_log_is() {
    let c = Cluster::new(3, "max_attempts = 1");
    assert!(c.sweep("submit", &["--backend", "slurm"]).status.success());
    let job = first_job(&c);
    c.fake(&["set", &format!("{job}_0"), "OUT_OF_MEMORY", "0:125"]);
    c.fake(&["set", &format!("{job}_1"), "TIMEOUT", "0:15"]);
    c.fake(&["set", &format!("{job}_2"), "COMPLETED", "0"]);
    // Task 0 died before ssal started: only Slurm's own array output exists.
    let slurm_log = c.results.join(format!("fake/arrays/logs/{job}_0.out"));
    std::fs::create_dir_all(slurm_log.parent().unwrap()).unwrap();
    std::fs::write(&slurm_log, "slurmstepd: error: Detected 1 oom_kill event\n").unwrap();
    let (code, status) = c.status_json();
    assert_eq!(code, Some(1), "failed jobs exit 1: {status}");
    assert_eq!(status["states"]["failed"], 3, "no result.json for the completed task either: {status}");
    let failed = status["failed"].as_array().unwrap();
    let oom = failed.iter().find(|f| f["handle"] == format!("{job}_0")).unwrap();
    assert!(oom["detail"].as_str().unwrap().starts_with("OUT_OF_MEMORY"), "{oom}");
    assert!(oom["log"].as_str().unwrap().ends_with(&format!("{job}_0.out")), "{oom}");
    assert_eq!(oom["last_lines"][0], "slurmstepd: error: Detected 1 oom_kill event");
    let timeout = failed.iter().find(|f| f["handle"] == format!("{job}_1")).unwrap();
    assert!(timeout["detail"].as_str().unwrap().starts_with("TIMEOUT"), "{timeout}");
    let text_status = c.sweep("status", &[]);
    let out = String::from_utf8_lossy(&text_status.stdout);
    assert!(out.contains("failures by error:") && out.contains("oom_kill"), "{out}");
}

#[test]
fn a_pending_reason_that_cannot_resolve_is_an_error() {
    let c = Cluster::new(2, "");
    assert!(c.sweep("submit", &["--backend", "slurm"]).status.success());
    let job = first_job(&c);
    for i in 0..2 {
        c.fake(&["set", &format!("{job}_{i}"), "PENDING", "0", "PartitionConfig"]);
    }
    let o = c.sweep("status", &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("can never start (Slurm reason PartitionConfig)") && out.contains("cpus_per_task"), "{out}");
}

#[test]
fn unsafe_or_missing_inputs_are_refused_before_anything_is_submitted() {
    let c = Cluster::new(2, "partition = \"gpu\\ntouch X #\"");
    let o = c.sweep("plan", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("partition")
            && String::from_utf8_lossy(&o.stderr).contains("line break")
    );
    let c = Cluster::new(2, "");
    let o = c.sweep("submit", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--backend is required") && err.contains("slurm") && err.contains("local"), "{err}");
    std::fs::write(&c.sweep, "name = \"../../x\"\n[grid]\nseed = [0]\n").unwrap();
    let o = c.sweep("plan", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!c.root.join("x").exists());
    // Without Slurm on PATH: the scheduler is unavailable, exit 3.
    let c = Cluster::new(1, "");
    let o = Command::new(env!("CARGO_BIN_EXE_ssal"))
        .args([
            "sweep",
            "submit",
            c.sweep.to_str().unwrap(),
            "--results",
            c.results.to_str().unwrap(),
            "--backend",
            "slurm",
        ])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
}

#[test]
fn plan_check_asks_slurm_without_submitting() {
    let c = Cluster::new(2, "partition = \"debug\"");
    let o = c.sweep("plan", &["--check"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Slurm accepts the first array"), "{}", text(&o));
    assert_eq!(c.submissions(), 0);
    std::fs::create_dir_all(c.state.join("inject")).unwrap();
    std::fs::write(
        c.state.join("inject/test_only_error"),
        "sbatch: error: Batch job submission failed: Invalid partition name specified\n",
    )
    .unwrap();
    let o = c.sweep("plan", &["--check"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Invalid partition name"), "{}", text(&o));
    assert_eq!(c.submissions(), 0);
}

#[test]
fn batch_scripts_hold_absolute_paths() {
    let c = Cluster::new(1, "");
    let o = c
        .command(&["sweep", "submit", c.sweep.to_str().unwrap(), "--results", "results", "--backend", "slurm"])
        .current_dir(&c.root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let arrays = c.root.join("results/fake/arrays");
    let script = std::fs::read_dir(&arrays)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sh"))
        .unwrap();
    let body = std::fs::read_to_string(script).unwrap();
    let root = c.root.canonicalize().unwrap();
    assert!(
        body.contains(&format!("{}/results/fake/jobs", root.display()))
            || body.contains(&format!("{}/results/fake/jobs", c.root.display())),
        "{body}"
    );
    assert!(!body.contains("=results/"), "{body}");
}

#[test]
fn a_removed_value_retires_its_queued_job_which_resume_never_submits_until_it_is_back() {
    let c = Cluster::new(2, "");
    assert!(c.sweep("submit", &["--backend", "slurm"]).status.success());
    let job = first_job(&c);
    // Seed 0 leaves the file while its task is queued; seed 2 joins.
    c.set_seeds(&[1, 2]);
    let o = c.sweep("resume", &["--backend", "slurm"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("submitted 1 jobs"), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 job retired"), "{}", text(&o));
    assert_eq!(c.submissions(), 2);
    // The new array is seed 2's alone: its task 0 reads line 1 of its own task list, so a
    // retired job shifts no task onto another job.
    let tsv = std::fs::read_to_string(c.results.join("fake/plan.tsv")).unwrap();
    let seed2 = tsv.lines().find(|l| l.ends_with("[seed=2]")).unwrap().split('\t').nth(1).unwrap();
    let arrays = c.results.join("fake/arrays");
    let mut lists: Vec<_> = std::fs::read_dir(&arrays)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tasks"))
        .collect();
    lists.sort();
    assert_eq!(std::fs::read_to_string(lists.last().unwrap()).unwrap(), format!("{seed2}\n"));
    assert!(std::fs::read_to_string(lists.last().unwrap().with_extension("sh")).unwrap().contains("--array=0-0\n"));
    // The retired job is still followed at Slurm, shown apart from the plan's jobs.
    let (code, status) = c.status_json();
    assert_eq!(code, Some(0), "{status}");
    assert_eq!((status["states"]["submitted"].as_u64(), status["retired"].as_u64()), (Some(2), Some(1)), "{status}");
    let retired = &status["retired_jobs"][0];
    assert_eq!(
        (retired["state"].as_str(), retired["handle"].as_str()),
        (Some("submitted"), Some(&*format!("{job}_0")))
    );
    let o = c.sweep("status", &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("| retired | 1 |") && out.contains("1 is still queued or running: followed until the end"),
        "{out}"
    );
    // It fails: that is its own outcome, not the sweep's failure, and resume does not retry it.
    c.fake(&["set", &format!("{job}_0"), "FAILED", "1"]);
    let (code, status) = c.status_json();
    assert_eq!(code, Some(0), "{status}");
    assert_eq!(status["retired_jobs"][0]["state"], "failed", "{status}");
    assert_eq!(status["failed"].as_array().map(Vec::len), Some(0), "{status}");
    let o = c.sweep("resume", &["--backend", "slurm"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("submitted 0 jobs"), "{}", text(&o));
    assert_eq!(c.submissions(), 2);
    // Seed 0 back in the file: restored, and as a failed job resume tries it again.
    c.set_seeds(&[0, 1, 2]);
    let o = c.sweep("resume", &["--backend", "slurm"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("submitted 1 jobs"), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 retired job restored"), "{}", text(&o));
    assert_eq!(c.submissions(), 3);
    let (_, status) = c.status_json();
    assert_eq!((status["states"]["submitted"].as_u64(), status["retired"].as_u64()), (Some(3), Some(0)), "{status}");
}

/// The analysis-only build submits only when the sweep names the full build the tasks run: it
/// cannot run experiments itself.
#[test]
#[cfg(not(feature = "torch"))]
fn the_analysis_only_build_refuses_to_submit_itself_as_the_runner() {
    let c = Cluster::new(1, "");
    std::fs::write(&c.sweep, "[grid]\nseed = [0]\n").unwrap();
    let o = c.sweep("submit", &["--backend", "slurm"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("analysis-only build") && err.contains("[slurm] ssal"), "{err}");
    assert!(!c.state.join("submissions.log").exists() || c.submissions() == 0, "nothing was submitted");
}

#[test]
fn jobs_queued_under_an_older_ssals_ids_are_rekeyed_and_finish_where_their_tasks_look() {
    let c = Cluster::new(2, "");
    assert!(c.sweep("submit", &["--backend", "slurm"]).status.success());
    // What an ssal whose ids hashed the whole config left: jobs/<legacy id>, the state and the
    // array's task list keyed by those ids.
    let dir = c.results.join("fake");
    let tasks = std::fs::read_dir(dir.join("arrays"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "tasks"))
        .unwrap();
    let pairs = legacy_ids::as_left_by_an_older_ssal(&dir);
    let (legacy, ids): (Vec<String>, Vec<String>) = pairs.into_iter().unzip();

    // Re-keyed while queued: still submitted, under the same handles, nothing submitted again.
    let o = c.sweep("resume", &["--backend", "slurm"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("2 jobs re-keyed"), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("submitted 0 jobs"), "{}", text(&o));
    assert_eq!(c.submissions(), 1);
    let (_, status) = c.status_json();
    assert_eq!((status["states"]["submitted"].as_u64(), status["retired"].as_u64()), (Some(2), Some(0)), "{status}");

    // Task 0 runs as its array says, in jobs/<legacy id>, and finishes there; task 1 fails.
    let list = std::fs::read_to_string(&tasks).unwrap();
    let first = list.lines().next().unwrap();
    assert!(legacy.iter().any(|l| l == first), "the task list still names the old id");
    std::fs::write(dir.join("jobs").join(first).join("result.json"), "{\"complete\": true}").unwrap();
    let job = first_job(&c);
    c.fake(&["set", &format!("{job}_0"), "COMPLETED", "0"]);
    c.fake(&["set", &format!("{job}_1"), "FAILED", "1"]);
    let (code, status) = c.status_json();
    assert_eq!(code, Some(1), "{status}");
    assert_eq!(
        (status["states"]["done"].as_u64(), status["states"]["failed"].as_u64()),
        (Some(1), Some(1)),
        "{status}"
    );
    // The retry is submitted under the new id, whose directory leads to the old one.
    let o = c.sweep("resume", &["--backend", "slurm"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("submitted 1 jobs"), "{}", text(&o));
    let (_, status) = c.status_json();
    let retried = status["failed"].as_array().map_or(0, Vec::len);
    assert_eq!((status["states"]["submitted"].as_u64(), retried), (Some(1), 0), "{status}");
    let newest = std::fs::read_dir(dir.join("arrays"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tasks") && *p != tasks)
        .collect::<Vec<_>>();
    assert_eq!(newest.len(), 1);
    let new_id = std::fs::read_to_string(&newest[0]).unwrap().trim().to_string();
    assert!(!legacy.contains(&new_id) && ids.contains(&new_id), "{new_id}");
    assert!(dir.join("jobs").join(&new_id).join("config.toml").is_file());
    assert!(std::fs::symlink_metadata(dir.join("jobs").join(&new_id)).unwrap().is_symlink());
}

/// The task lists of the sweep's submissions, oldest first: their job ids, line by line.
fn task_lists(c: &Cluster) -> Vec<Vec<String>> {
    let mut lists: Vec<PathBuf> = std::fs::read_dir(c.results.join("fake/arrays"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tasks"))
        .collect();
    lists.sort();
    lists.iter().map(|p| std::fs::read_to_string(p).unwrap().lines().map(String::from).collect()).collect()
}

/// The handle each job has now, in the order of `ids`.
fn handles(c: &Cluster, ids: &[String]) -> Vec<String> {
    let jobs = ssal::sweep::StateDb::open(&c.results.join("fake/state.db")).unwrap().jobs().unwrap();
    ids.iter().map(|id| jobs.iter().find(|j| j.job_id == *id).unwrap().handle.clone().unwrap()).collect()
}

fn complete(c: &Cluster, id: &str) {
    std::fs::write(c.results.join("fake/jobs").join(id).join("result.json"), "{\"complete\": true}").unwrap();
}

#[test]
fn packed_jobs_share_array_tasks_are_reported_one_by_one_and_only_the_failed_one_is_resubmitted() {
    let c = Cluster::new(5, "jobs_per_task = 2");
    let o = c.sweep("plan", &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("slurm: 5 jobs in 3 array tasks (2 jobs per task"), "{out}");
    assert!(out.contains("first array (3 tasks;") && out.contains("#SBATCH --array=0-2\n"), "{out}");
    let o = c.sweep("submit", &["--backend", "slurm"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("submitted 5 jobs"), "{}", text(&o));
    assert_eq!(c.submissions(), 1);
    let ids = task_lists(&c).remove(0);
    assert_eq!(ids.len(), 5);
    let job = first_job(&c);
    let task = |i: usize| format!("{job}_{i}");
    assert_eq!(handles(&c, &ids), [task(0), task(0), task(1), task(1), task(2)]);
    // Task 0 ran its two jobs: the first completed, the second failed; tasks 1 and 2 completed.
    for id in [&ids[0], &ids[2], &ids[3], &ids[4]] {
        complete(&c, id);
    }
    let log = c.results.join("fake/jobs").join(&ids[1]).join("log.txt");
    std::fs::write(&log, "ssal: array task … runs job …\nerror: no such dataset\n").unwrap();
    c.fake(&["set", &task(0), "FAILED", "1"]);
    c.fake(&["set", &task(1), "COMPLETED", "0"]);
    c.fake(&["set", &task(2), "COMPLETED", "0"]);
    let (code, status) = c.status_json();
    assert_eq!(code, Some(1), "{status}");
    assert_eq!(
        (status["states"]["done"].as_u64(), status["states"]["failed"].as_u64()),
        (Some(4), Some(1)),
        "{status}"
    );
    let failed = &status["failed"][0];
    assert_eq!((failed["job_id"].as_str(), failed["handle"].as_str()), (Some(&*ids[1]), Some(&*task(0))), "{status}");
    let detail = failed["detail"].as_str().unwrap();
    assert!(detail.starts_with("FAILED, exit 1:0"), "{detail}");
    assert!(
        detail.ends_with(&format!(
            "job {} (one of 2 packed into task {}) did not complete; log {}",
            ids[1],
            task(0),
            log.display()
        )),
        "{detail}"
    );
    assert_eq!(failed["last_lines"][1], "error: no such dataset", "{status}");
    // resume submits the failed job alone, in a new array of one task.
    let o = c.sweep("resume", &["--backend", "slurm"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("submitted 1 jobs"), "{}", text(&o));
    assert_eq!(task_lists(&c)[1], [ids[1].clone()]);
    let (code, status) = c.status_json();
    assert_eq!(code, Some(0), "{status}");
    assert_eq!((status["states"]["done"].as_u64(), status["states"]["submitted"].as_u64()), (Some(4), Some(1)));
    let retry = handles(&c, &ids[1..2]).remove(0);
    assert!(retry.ends_with("_0") && retry != task(0), "{retry}");
}

#[test]
fn a_cancelled_packed_task_keeps_its_finished_job_and_resume_resubmits_the_rest() {
    let c = Cluster::new(3, "jobs_per_task = 2");
    assert!(c.sweep("submit", &["--backend", "slurm"]).status.success());
    let ids = task_lists(&c).remove(0);
    let job = first_job(&c);
    // Task 0 is cancelled after its first job finished; task 1 is still queued.
    complete(&c, &ids[0]);
    c.fake(&["set", &format!("{job}_0"), "CANCELLED"]);
    let (_, status) = c.status_json();
    let states = &status["states"];
    assert_eq!(
        (states["done"].as_u64(), states["cancelled"].as_u64(), states["submitted"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    let o = c.sweep("resume", &["--backend", "slurm"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("submitted 1 jobs"), "{}", text(&o));
    assert_eq!(task_lists(&c)[1], [ids[1].clone()]);
    // Cancelling the sweep cancels each of its tasks once.
    let o = c.sweep("cancel", &[]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("cancelled 2 jobs"), "{}", text(&o));
    let calls = std::fs::read_to_string(c.state.join("calls.log")).unwrap();
    let scancel: Vec<&str> = calls.lines().filter(|l| l.starts_with("scancel")).collect();
    let retry = handles(&c, &ids[1..2]).remove(0);
    assert_eq!(scancel, [format!("scancel {job}_1 {retry}")], "{calls}");
}

/// Issue 17, stages: jobs sharing a RotNet config wait for one prepare job. Its array is
/// submitted first (`ssal prepare` in the stage's directory), the jobs' array carries
/// `--dependency=afterok:<prepare job>`; when the prepare job fails, Slurm leaves the jobs
/// pending with reason DependencyNeverSatisfied, and `status` fails them naming the prepare job
/// and its log, and cancels them.
#[test]
fn jobs_wait_for_their_prepare_job_and_fail_naming_it_when_it_fails() {
    let c = Cluster::new(3, "max_attempts = 1");
    let sweep = std::fs::read_to_string(&c.sweep).unwrap();
    // An unusual RotNet width, so that no cache entry exists for it.
    let base = "[base]\ninit.embedding = \"rotnet\"\nrotnet.seed = 0\nrotnet.width = 3\n";
    std::fs::write(&c.sweep, format!("{base}{sweep}")).unwrap();
    let plan = c.sweep("plan", &[]);
    assert!(String::from_utf8_lossy(&plan.stdout).contains("stage 1: prepare 1 RotNet embedding for 3 jobs"));
    let o = c.sweep("submit", &["--backend", "slurm"]);
    assert!(o.status.success(), "{}", text(&o));
    let log = std::fs::read_to_string(c.state.join("submissions.log")).unwrap();
    let rows: Vec<Vec<&str>> = log.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "{log}");
    let (prepare, array) = (rows[0][0], rows[1][0]);
    // jobid ntasks name comment array dependency script
    assert_eq!((rows[0][1], rows[0][5]), ("1", ""), "{log}");
    assert_eq!((rows[1][1], rows[1][5]), ("3", format!("afterok:{prepare}").as_str()), "{log}");
    let prepare_script = std::fs::read_to_string(rows[0][6]).unwrap();
    assert!(prepare_script.contains(" prepare --config \"$job_dir/config.toml\""), "{prepare_script}");
    assert!(prepare_script.contains("/results/fake/prepare"), "{prepare_script}");
    let key = std::fs::read_to_string(
        c.results.join("fake/arrays").join(
            std::fs::read_dir(c.results.join("fake/arrays"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tasks"))
                .min()
                .unwrap(),
        ),
    )
    .unwrap()
    .trim()
    .to_string();
    let stage_dir = c.results.join("fake/prepare").join(&key);
    assert!(stage_dir.join("config.toml").is_file(), "{key}");
    let array_script = std::fs::read_to_string(rows[1][6]).unwrap();
    assert!(array_script.contains(" run --config \"$job_dir/config.toml\""), "{array_script}");
    // The prepare job fails; Slurm says its dependants can never start.
    std::fs::write(stage_dir.join("log.txt"), "error: cannot read the dataset\n").unwrap();
    c.fake(&["set", &format!("{prepare}_0"), "FAILED", "1"]);
    c.fake(&["set-all", array, "PENDING", "0", "DependencyNeverSatisfied"]);
    let (code, status) = c.status_json();
    assert_eq!(code, Some(1), "{status}");
    assert_eq!(status["states"]["failed"], 3, "{status}");
    let detail = status["failed"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("its prepare job {prepare}_0 (RotNet embedding {key}) failed"))
            && detail.contains(&stage_dir.join("log.txt").display().to_string()),
        "{detail}"
    );
    assert_eq!(status["prepares"][0]["state"], "failed", "{status}");
    let calls = std::fs::read_to_string(c.state.join("calls.log")).unwrap();
    assert!(calls.lines().any(|l| l.starts_with("scancel") && l.contains(&format!("{array}_0"))), "{calls}");
    // Resuming submits a new prepare job and the jobs again, waiting for it.
    let o = c.sweep("resume", &["--backend", "slurm"]);
    assert!(o.status.success(), "{}", text(&o));
    let log = std::fs::read_to_string(c.state.join("submissions.log")).unwrap();
    let rows: Vec<Vec<&str>> = log.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 4, "{log}");
    assert_eq!(rows[3][5], format!("afterok:{}", rows[2][0]), "{log}");
}
