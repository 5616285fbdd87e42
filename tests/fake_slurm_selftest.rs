//! Self-test of the fake Slurm in tests/fake_slurm (bash scripts that integration tests put first
//! on PATH, with their state in $FAKE_SLURM_DIR): every command and injection once, and
//! concurrent submissions.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Self {
        Fake { dir: tempfile::tempdir().unwrap() }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("slurm")
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_slurm/bin");
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let mut command = Command::new(program);
        command.args(args).env("PATH", path).env("FAKE_SLURM_DIR", self.state());
        command
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program, args).output().unwrap()
    }

    /// Runs a command that must succeed; its stdout.
    fn ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.run(program, args);
        assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail with exit 1; its stderr.
    fn fails(&self, program: &str, args: &[&str]) -> String {
        let out = self.run(program, args);
        assert_eq!(out.status.code(), Some(1), "{program} {args:?}: {out:?}");
        String::from_utf8(out.stderr).unwrap()
    }

    fn script(&self, name: &str, sbatch_lines: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/bash\n# made by a test\n{sbatch_lines}\nset -u\necho hi\n")).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// An array job of `n` tasks like ssal's, with comment `ssal:abc`; its id.
    fn submit(&self, n: usize) -> String {
        let script = self.script(
            "array.sh",
            &format!("#SBATCH --job-name='ssal-tiny'\n#SBATCH --array=0-{}%2\n#SBATCH --comment='ssal:abc'", n - 1),
        );
        self.ok("sbatch", &["--parsable", &script]).trim().to_string()
    }

    fn squeue(&self, format: &str) -> String {
        self.ok("squeue", &["--me", "-h", "-r", "-t", "all", "-o", format])
    }

    fn count(&self) -> usize {
        self.ok("fake-slurm", &["count"]).trim().parse().unwrap()
    }

    fn inject(&self, name: &str, n: &str) {
        self.ok("fake-slurm", &["inject", name, n]);
    }
}

#[test]
fn unset_state_dir_is_a_clear_error() {
    let fake = Fake::new();
    let out = fake.command("squeue", &["-h"]).env_remove("FAKE_SLURM_DIR").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FAKE_SLURM_DIR is not set"), "{out:?}");
}

#[test]
fn sbatch_reads_the_script_and_squeue_lists_its_tasks() {
    let fake = Fake::new();
    assert_eq!(fake.submit(3), "1000");
    let fields = "%i|%T|%j|%k|%r";
    assert_eq!(
        fake.squeue(fields),
        "1000_0|PENDING|ssal-tiny|ssal:abc|Priority\n\
         1000_1|PENDING|ssal-tiny|ssal:abc|Priority\n\
         1000_2|PENDING|ssal-tiny|ssal:abc|Priority\n"
    );
    // No --array; double quotes, -J, a trailing comment; the command line overrides the script.
    let plain = fake.script("plain.sh", "#SBATCH -J \"o'brien\" # who\n#SBATCH --comment=from-script");
    assert_eq!(fake.ok("sbatch", &[&plain]), "Submitted batch job 1001\n");
    assert_eq!(fake.ok("sbatch", &["--parsable", "--comment=ssal:xyz", "--job-name=other", &plain]), "1002\n");
    let out = fake.squeue(fields);
    assert!(
        out.ends_with("1001|PENDING|o'brien|from-script|Priority\n1002|PENDING|other|ssal:xyz|Priority\n"),
        "{out}"
    );
    // Without -r pending array tasks collapse as on real Slurm; -j filters by job or task id.
    assert_eq!(fake.ok("squeue", &["-h", "-o", "%i|%T"]), "1000_[0-2]|PENDING\n1001|PENDING\n1002|PENDING\n");
    assert_eq!(fake.ok("squeue", &["-h", "-r", "-j", "1000_1,1002", "-o", "%i"]), "1000_1\n1002\n");
    assert_eq!(fake.count(), 3);
    let log = std::fs::read_to_string(fake.state().join("submissions.log")).unwrap();
    assert_eq!(
        log.lines().next().unwrap().split('\t').take(4).collect::<Vec<_>>(),
        ["1000", "3", "ssal-tiny", "ssal:abc"]
    );
    let calls = std::fs::read_to_string(fake.state().join("calls.log")).unwrap();
    assert!(calls.contains("squeue --me -h -r -t all -o %i\\|%T\\|%j\\|%k\\|%r\n"), "{calls}");
    assert_eq!(fake.ok("fake-slurm", &["tasks"]).lines().count(), 5);
}

#[test]
fn finished_tasks_leave_the_queue_but_stay_in_accounting() {
    let fake = Fake::new();
    let job = fake.submit(4);
    fake.ok("fake-slurm", &["set", "1000_0", "RUNNING"]);
    fake.ok("fake-slurm", &["set", "1000_1", "COMPLETED"]);
    fake.ok("fake-slurm", &["set", "1000_2", "FAILED", "3"]);
    fake.ok("fake-slurm", &["set", "1000_3", "PENDING", "0", "PartitionConfig"]);
    assert_eq!(fake.squeue("%i|%T|%r"), "1000_0|RUNNING|None\n1000_3|PENDING|PartitionConfig\n");
    // Until MinJobAge passes, `-t all` still lists them (default squeue states do not).
    std::fs::write(fake.state().join("keep_finished"), "").unwrap();
    assert_eq!(fake.squeue("%i|%T"), "1000_0|RUNNING\n1000_1|COMPLETED\n1000_2|FAILED\n1000_3|PENDING\n");
    assert_eq!(fake.ok("squeue", &["-h", "-r", "-o", "%i"]), "1000_0\n1000_3\n");

    let sacct = fake.ok("sacct", &["-X", "-P", "-n", "-j", &job, "--format=JobID,JobName,State,ExitCode,Comment"]);
    assert_eq!(
        sacct,
        "1000_0|ssal-tiny|RUNNING|0:0|ssal:abc\n\
         1000_1|ssal-tiny|COMPLETED|0:0|ssal:abc\n\
         1000_2|ssal-tiny|FAILED|3:0|ssal:abc\n\
         1000_3|ssal-tiny|PENDING|0:0|ssal:abc\n"
    );
    // Without -X the steps of tasks that ran appear too.
    let steps = fake.ok("sacct", &["-P", "-n", "-j", "1000_2", "-o", "JobID,State,MaxRSS"]);
    assert_eq!(steps, "1000_2|FAILED|\n1000_2.batch|FAILED|1024K\n1000_2.extern|COMPLETED|1024K\n");
    assert!(fake.fails("sacct", &["-X", "-P", "-n", "-o", "JobID,Bogus"]).contains("Invalid field requested"));
    fake.ok("fake-slurm", &["set-all", &job, "TIMEOUT"]);
    assert_eq!(fake.ok("sacct", &["-X", "-P", "-n", "-o", "State"]), "TIMEOUT\n".repeat(4));
    assert!(fake.fails("fake-slurm", &["set", "1000_9", "RUNNING"]).contains("no task 1000_9"));
}

#[test]
fn scancel_cancels_and_sacct_says_by_whom() {
    let fake = Fake::new();
    let job = fake.submit(3);
    fake.ok("fake-slurm", &["set", "1000_2", "COMPLETED"]);
    fake.ok("scancel", &["1000_0"]);
    fake.ok("scancel", &[&job]);
    assert_eq!(fake.squeue("%i"), "");
    assert_eq!(
        fake.ok("sacct", &["-X", "-P", "-n", "-j", &job, "-o", "JobID,State"]),
        "1000_0|CANCELLED by 0\n1000_1|CANCELLED by 0\n1000_2|COMPLETED\n"
    );
    assert!(fake.fails("scancel", &["4242"]).contains("Invalid job id specified"));
}

#[test]
fn concurrent_sbatch_calls_get_distinct_ids() {
    let fake = Fake::new();
    let script = fake.script("one.sh", "#SBATCH --array=0-1");
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..3).map(|_| fake.ok("sbatch", &["--parsable", &script]).trim().to_string()).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 12, "{ids:?}");
    assert_eq!(fake.count(), 12);
    assert_eq!(fake.squeue("%i").lines().count(), 24);
}

#[test]
fn sbatch_injections() {
    let fake = Fake::new();
    // Accepted by the controller, but the client never heard back.
    fake.inject("sbatch_timeout_after_accept", "1");
    let script =
        fake.script("array.sh", "#SBATCH --job-name='ssal-tiny'\n#SBATCH --array=0-1\n#SBATCH --comment='ssal:abc'");
    let out = fake.run("sbatch", &["--parsable", &script]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Socket timed out on send/recv operation"));
    assert_eq!(fake.squeue("%i|%k"), "1000_0|ssal:abc\n1000_1|ssal:abc\n");
    assert_eq!(fake.count(), 1);

    // Transient twice, then through; the count goes down on each use.
    fake.inject("sbatch_transient", "2");
    for _ in 0..2 {
        assert!(fake.fails("sbatch", &["--parsable", &script]).contains("Resource temporarily unavailable"));
    }
    assert_eq!(fake.ok("sbatch", &["--parsable", &script]), "1001\n");

    fake.inject("sbatch_refuse", "1");
    assert!(fake
        .fails("sbatch", &["--parsable", &script])
        .contains("Invalid account or account/partition combination"));
    assert_eq!(fake.count(), 2);

    std::fs::write(fake.state().join("inject/pending_reason"), "Resources\n").unwrap();
    assert_eq!(fake.ok("sbatch", &["--parsable", &script]), "1002\n");
    assert_eq!(fake.ok("squeue", &["-h", "-r", "-j", "1002", "-o", "%i %r"]), "1002_0 Resources\n1002_1 Resources\n");
}

#[test]
fn squeue_and_sacct_injections() {
    let fake = Fake::new();
    fake.submit(2);
    fake.inject("squeue_fail", "1");
    assert!(fake.fails("squeue", &["-h", "-o", "%i"]).contains("slurm_load_jobs error: Socket timed out"));
    // A restarted controller: squeue lists nothing, accounting still knows the tasks.
    fake.inject("squeue_empty", "1");
    assert_eq!(fake.squeue("%i|%T"), "");
    assert_eq!(fake.ok("sacct", &["-X", "-P", "-n", "--format=JobID,State"]), "1000_0|PENDING\n1000_1|PENDING\n");
    assert_eq!(fake.squeue("%i|%T"), "1000_0|PENDING\n1000_1|PENDING\n");
    fake.inject("sacct_fail", "1");
    assert!(fake.fails("sacct", &["-X", "-P", "-n", "-o", "JobID"]).contains("Problem talking to the database"));
    assert_eq!(fake.ok("sacct", &["-X", "-P", "-n", "-o", "JobID"]), "1000_0\n1000_1\n");
}

#[test]
fn test_only_and_array_limits() {
    let fake = Fake::new();
    let script = fake.script("array.sh", "#SBATCH --array=0-9");
    let out = fake.run("sbatch", &["--test-only", &script]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("to start at 2026-01-01T00:00:00 using 1 processors"),
        "{out:?}"
    );
    assert_eq!(fake.count(), 0);
    assert_eq!(fake.ok("fake-slurm", &["tasks"]), "");
    let message = "sbatch: error: Invalid partition name specified";
    fake.inject("test_only_error", message);
    assert!(fake.fails("sbatch", &["--test-only", &script]).contains(message));

    let config = fake.ok("scontrol", &["show", "config"]);
    assert!(
        config.contains("MaxArraySize            = 1001\n") && config.contains("MinJobAge               = 300 sec")
    );
    std::fs::write(fake.state().join("max_array_size"), "10\n").unwrap();
    assert!(fake.ok("scontrol", &["show", "config"]).contains("MaxArraySize            = 10\n"));
    assert_eq!(fake.ok("sbatch", &["--parsable", &script]), "1000\n");
    let err = fake.fails("sbatch", &["--parsable", "--array=0-10", &script]);
    assert!(err.contains("Invalid job array specification"), "{err}");
    assert_eq!(fake.count(), 1);
    // Client-side refusals.
    assert!(fake.fails("sbatch", &["--array=x", &script]).contains("Invalid --array"));
    assert!(fake.fails("sbatch", &["/no/such/script.sh"]).contains("Unable to open file"));
}
