//! Slurm through its commands: one job array per submission (`sbatch --parsable`, named
//! `ssal-<sweep>-<token>` so that it can be found again), one `squeue` per status check for all
//! tasks, `sacct` for tasks that left the queue, `scancel` to stop. Transient failures are retried
//! with back-off. Command output is parsed only in [`parse`].
mod script;

pub use script::{render_array_script, ArrayScript, ScriptError, SlurmSettings};

use super::{Observed, RunCommand, Scheduler, SchedulerError, Submission, Work};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Parsers of Slurm command output, tested on captured samples.
pub mod parse {
    use super::Observed;

    /// The job id printed by `sbatch --parsable` ("123" or "123;cluster").
    pub fn sbatch_job_id(stdout: &str) -> Option<String> {
        let id = stdout.lines().rev().find(|l| !l.trim().is_empty())?.trim().split(';').next()?;
        (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
    }

    /// `MaxArraySize` from `scontrol show config` (the number of indices an array may span).
    pub fn max_array_size(config: &str) -> Option<usize> {
        config.lines().find_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == "MaxArraySize").then(|| value.trim().parse().ok()).flatten()
        })
    }

    /// What a Slurm job state means for a sweep. PENDING, CONFIGURING, REQUEUED and PREEMPTED
    /// tasks will still run; only COMPLETED is a normal end. States this version does not know
    /// count as still queued, never as finished.
    pub fn job_state(state: &str) -> Observed {
        match state {
            "RUNNING" | "COMPLETING" | "SIGNALING" | "STAGE_OUT" => Observed::Running,
            "COMPLETED" => Observed::Ended { success: true, detail: None },
            "FAILED" | "TIMEOUT" | "NODE_FAIL" | "OUT_OF_MEMORY" | "BOOT_FAIL" | "DEADLINE" => {
                Observed::Ended { success: false, detail: Some(state.to_string()) }
            }
            "CANCELLED" => Observed::Cancelled,
            _ => Observed::QUEUED,
        }
    }

    /// The pending reason of a task whose dependency failed or was cancelled (`afterok` can
    /// no longer be met): Slurm keeps it pending for ever unless the site kills such jobs.
    pub const DEPENDENCY_NEVER_SATISFIED: &str = "DependencyNeverSatisfied";

    /// Lines of `squeue -h -r -t all -o '%i|%T|%r'` as (task id, state with the pending
    /// reason; a task waiting on a failed dependency is `DependencyFailed`); array tasks read
    /// `123_4`.
    pub fn squeue_states(stdout: &str) -> Result<Vec<(String, Observed)>, String> {
        stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut parts = l.trim().splitn(3, '|');
                let (Some(id), Some(state)) = (parts.next(), parts.next()) else {
                    return Err(format!("line {l:?} is not `id|state|reason`"));
                };
                // "CANCELLED by 0" appears in some versions' long form.
                let state = state.split_whitespace().next().unwrap_or_default();
                let reason = parts.next().map(str::trim).filter(|r| !r.is_empty() && *r != "None");
                let observed = match (job_state(state), reason) {
                    (Observed::Queued { .. }, Some(DEPENDENCY_NEVER_SATISFIED)) => Observed::DependencyFailed,
                    (Observed::Queued { .. }, reason) => Observed::Queued { reason: reason.map(String::from) },
                    (other, _) => other,
                };
                Ok((id.to_string(), observed))
            })
            .collect()
    }

    /// Lines of `sacct -X -P -n --format=JobID,State,ExitCode,Elapsed,MaxRSS,NodeList` as (task
    /// id, state), with what is known of an end as its detail ("TIMEOUT, exit 0:15, 02:00:01 on
    /// n1"). `CANCELLED by 1000` is a cancellation.
    pub fn sacct_states(stdout: &str) -> Result<Vec<(String, Observed)>, String> {
        stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let f: Vec<&str> = l.trim().split('|').collect();
                if f.len() < 2 {
                    return Err(format!("line {l:?} is not `JobID|State|ExitCode|Elapsed|MaxRSS|NodeList`"));
                }
                let state = f[1].split_whitespace().next().unwrap_or_default();
                let field = |i: usize| f.get(i).map(|s| s.trim()).filter(|s| !s.is_empty());
                let mut detail = state.to_string();
                if let Some(code) = field(2) {
                    detail.push_str(&format!(", exit {code}"));
                }
                if let Some(elapsed) = field(3) {
                    detail.push_str(&format!(", {elapsed}"));
                }
                if let Some(rss) = field(4) {
                    detail.push_str(&format!(", MaxRSS {rss}"));
                }
                if let Some(node) = field(5).filter(|n| *n != "None assigned") {
                    detail.push_str(&format!(" on {node}"));
                }
                let observed = match job_state(state) {
                    Observed::Ended { success, .. } => Observed::Ended { success, detail: Some(detail) },
                    other => other,
                };
                Ok((f[0].trim().to_string(), observed))
            })
            .collect()
    }

    /// The task ids a `sacct` / `squeue` id stands for: `123_4` itself, and a collapsed line of
    /// pending tasks `123_[0-2,5%4]` each of `123_0`, `123_1`, `123_2`, `123_5`.
    pub fn expand_array_tasks(id: &str) -> Vec<String> {
        let Some((job, rest)) = id.split_once("_[") else { return vec![id.to_string()] };
        let ranges = rest.trim_end_matches(']').split('%').next().unwrap_or_default();
        let mut out = Vec::new();
        for part in ranges.split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            if let (Ok(a), Ok(b)) = (a.trim().parse::<u64>(), b.trim().parse::<u64>()) {
                out.extend((a..=b).map(|i| format!("{job}_{i}")));
            }
        }
        out
    }

    /// The `sbatch` option that holds a submission until the job of `handle` (an array task
    /// `123_0`: its whole array, which for a prepare task is that one task) has completed
    /// successfully: `--dependency=afterok:123`.
    pub fn afterok(handle: &str) -> String {
        format!("--dependency=afterok:{}", array_id(handle))
    }

    /// The job id of an array task id (`123_4` → `123`, `123_[5-9]` → `123`).
    pub fn array_id(task: &str) -> &str {
        task.split('_').next().unwrap_or(task)
    }

    /// Whether a failed `sbatch` may nonetheless have been accepted by the controller (the
    /// reply was lost), so that it must be looked up before any retry.
    pub fn is_ambiguous(stderr: &str) -> bool {
        let s = stderr.to_ascii_lowercase();
        s.contains("socket timed out") || s.contains("zero bytes were transmitted")
    }

    /// Whether `sacct` says that accounting is not set up (then only `squeue` can be asked).
    pub fn accounting_disabled(stderr: &str) -> bool {
        let s = stderr.to_ascii_lowercase();
        s.contains("accounting storage is disabled") || s.contains("slurmdbd")
    }

    /// What to change when a pending reason cannot resolve by waiting; `None` for reasons that
    /// do (Priority, Resources, per-user job limits, …).
    pub fn unresolvable_reason(reason: &str) -> Option<&'static str> {
        match reason {
            "PartitionConfig" => Some("the request exceeds what the partition allows (cpus, mem, gres): lower [slurm] cpus_per_task / mem / gres or choose another partition"),
            "PartitionTimeLimit" => Some("[slurm] time exceeds the partition's time limit"),
            "PartitionNodeLimit" => Some("the request needs more nodes than the partition allows"),
            "ReqNodeNotAvail" => Some("the requested nodes are unavailable (down, drained or reserved): check [slurm] extra constraints"),
            "InvalidAccount" => Some("[slurm] account is not valid for this user or partition"),
            "InvalidQOS" => Some("[slurm] qos is not valid for this user or account"),
            "BadConstraints" => Some("no node satisfies the constraints in [slurm] extra"),
            r if r.ends_with("PerJobLimit") || r.contains("WallDuration") => {
                Some("a per-job limit of the account or QOS is exceeded: lower [slurm] cpus_per_task / mem / time")
            }
            _ => None,
        }
    }

    /// Whether an `sbatch` failure is worth retrying (controller busy, RPC rate limit, timeout).
    pub fn is_transient(stderr: &str) -> bool {
        let s = stderr.to_ascii_lowercase();
        [
            "temporarily unable to accept",
            "socket timed out",
            "unable to contact slurm controller",
            "rate limit",
            "resource temporarily unavailable",
            "try again",
            "slurm_persist_conn_open",
            "zero bytes were transmitted",
        ]
        .iter()
        .any(|p| s.contains(p))
    }
}

/// Submits a sweep's tasks as Slurm job arrays with the sweep's `[slurm]` settings.
pub struct SlurmScheduler {
    settings: SlurmSettings,
    sweep: String,
    /// `results/<sweep>`: arrays/ (scripts, task lists) and jobs/ live here.
    sweep_dir: PathBuf,
    run: RunCommand,
    max_array: usize,
    /// Waits between `sbatch` attempts after a transient failure.
    backoff: Vec<Duration>,
}

fn run(program: &str, args: &[&str]) -> Result<std::process::Output, SchedulerError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| SchedulerError::Missing { command: program.to_string(), source })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(SchedulerError::Failed {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Asks Slurm whether it would accept `script` (`sbatch --test-only`), without submitting it;
/// returns Slurm's answer ("Job 12 to start at … on nodes n1 in partition debug").
pub fn slurm_test_only(script: &std::path::Path) -> Result<String, SchedulerError> {
    let out = run("sbatch", &["--test-only", &script.to_string_lossy()])?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    Ok(said.trim().trim_start_matches("sbatch: ").to_string())
}

/// Runs a query command, retrying transient failures after each wait of `backoff`.
fn run_retrying(program: &str, args: &[&str], backoff: &[Duration]) -> Result<std::process::Output, SchedulerError> {
    let mut waits = backoff.iter();
    loop {
        match run(program, args) {
            Err(SchedulerError::Failed { ref stderr, .. }) if parse::is_transient(stderr) => match waits.next() {
                Some(wait) => std::thread::sleep(*wait),
                None => return run(program, args),
            },
            other => return other,
        }
    }
}

/// The array size limit assumed where the cluster is not asked (Slurm's default `MaxArraySize`).
pub const DEFAULT_MAX_ARRAY_SIZE: usize = 1001;

/// The batch script of one array of `tasks` tasks whose job ids (or, for a prepare stage, its
/// key) are listed in `task_list`, each doing `work` with `run`: what a submission writes and
/// what `sweep plan` previews, built in this one place.
pub fn array_script(
    settings: &SlurmSettings,
    sweep: &str,
    sweep_dir: &Path,
    task_list: &Path,
    tasks: usize,
    run: &RunCommand,
    work: Work,
) -> Result<String, ScriptError> {
    let arrays = sweep_dir.join("arrays");
    let jobs_dir = match work {
        Work::Run => sweep_dir.join("jobs"),
        Work::Prepare => sweep_dir.join(super::PREPARE_DIR),
    };
    render_array_script(
        settings,
        &ArrayScript {
            sweep,
            task_list,
            tasks,
            jobs_dir: &jobs_dir,
            slurm_log: &arrays.join("logs/%A_%a.out"),
            run,
            work,
        },
    )
}

/// The handle of each of `jobs` jobs submitted as array `id`, `per_task` to a task: job i runs
/// in task i / per_task, and its handle is that task's (`<id>_<task>`).
fn task_handles(id: &str, jobs: usize, per_task: usize) -> Vec<String> {
    (0..jobs).map(|i| format!("{id}_{}", i / per_task.max(1))).collect()
}

/// The script of a sweep's first array of its `jobs` jobs, for a preview without a cluster: as
/// many tasks as the jobs need (`jobs_per_task` to a task) and `max_queued` and
/// [`DEFAULT_MAX_ARRAY_SIZE`] allow, the task list a placeholder, the binary `[slurm] ssal` or
/// this one. Returns the task count (0 without jobs; the script then shows one task) and the
/// script.
pub fn preview_first_array(
    settings: &SlurmSettings,
    sweep: &str,
    sweep_dir: &Path,
    jobs: usize,
) -> Result<(usize, String), ScriptError> {
    let tasks = settings.array_tasks(jobs).min(settings.max_queued).min(DEFAULT_MAX_ARRAY_SIZE);
    let ssal = settings.ssal.clone().unwrap_or_else(|| std::env::current_exe().unwrap_or("ssal".into()));
    let run = RunCommand { ssal, checkpoint_every: settings.checkpoint_every };
    let task_list = sweep_dir.join("arrays/<submission>.tasks");
    Ok((tasks, array_script(settings, sweep, sweep_dir, &task_list, tasks.max(1), &run, Work::Run)?))
}

impl SlurmScheduler {
    /// Connects to the cluster (reading `MaxArraySize`); fails clearly when Slurm is missing.
    pub fn new(sweep: &str, sweep_dir: PathBuf, settings: SlurmSettings) -> Result<Self, SchedulerError> {
        let out = run("scontrol", &["show", "config"])?;
        let max_array = parse::max_array_size(&String::from_utf8_lossy(&out.stdout)).unwrap_or(DEFAULT_MAX_ARRAY_SIZE);
        let run = RunCommand::for_jobs(
            settings.ssal.as_deref(),
            "set `[slurm] ssal = \"PATH\"` in the sweep file to the full build the compute nodes run",
            settings.checkpoint_every,
        )?;
        let backoff = [1, 2, 4, 8, 16].map(Duration::from_secs).to_vec();
        Ok(SlurmScheduler { settings, sweep: sweep.to_string(), sweep_dir, run, max_array, backoff })
    }

    /// The same scheduler with other waits between retries (tests use zero waits).
    pub fn with_backoff(mut self, backoff: Vec<Duration>) -> Self {
        self.backoff = backoff;
        self
    }

    /// The job name that carries a submission's token.
    fn job_name(&self, token: &str) -> String {
        format!("ssal-{}-{token}", self.sweep)
    }

    /// Submits `script` named after `token`, held until `after` has succeeded if given; after an
    /// answer that may hide an accepted job, the job is looked up by its name before anything is
    /// sent again. Returns one handle per job of the `jobs` it holds, `per_task` to a task.
    fn sbatch(
        &mut self,
        script: &std::path::Path,
        token: &str,
        jobs: usize,
        per_task: usize,
        after: Option<&str>,
    ) -> Result<Vec<String>, SchedulerError> {
        let script = script.to_string_lossy();
        let name = format!("--job-name={}", self.job_name(token));
        let backoff = self.backoff.clone();
        let mut waits = backoff.iter();
        let handles = |id: &str| task_handles(id, jobs, per_task);
        let mut args = vec!["--parsable".to_string(), name];
        args.extend(after.map(parse::afterok));
        args.push(script.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        loop {
            match run("sbatch", &args) {
                Ok(out) => {
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    return parse::sbatch_job_id(&stdout).map(|id| handles(&id)).ok_or_else(|| SchedulerError::Parse {
                        command: "sbatch --parsable".into(),
                        message: format!("no job id in {stdout:?}"),
                    });
                }
                Err(SchedulerError::Failed { stderr, .. }) if parse::is_transient(&stderr) => match waits.next() {
                    Some(wait) => {
                        std::thread::sleep(*wait);
                        if parse::is_ambiguous(&stderr) {
                            match self.find_submission(token, jobs, per_task) {
                                Ok(Some(found)) => return Ok(found),
                                Ok(None) => {}
                                Err(e) => {
                                    return Err(SchedulerError::Ambiguous {
                                        token: token.to_string(),
                                        why: format!("sbatch: {stderr}; then {e}"),
                                    })
                                }
                            }
                        }
                    }
                    None if parse::is_ambiguous(&stderr) => {
                        return Err(SchedulerError::Ambiguous {
                            token: token.to_string(),
                            why: format!("sbatch: {stderr}, still after {} retries", backoff.len()),
                        })
                    }
                    None => {
                        return Err(SchedulerError::Failed {
                            command: format!("sbatch --parsable {script}"),
                            status: "still failing after retries".into(),
                            stderr,
                        })
                    }
                },
                Err(e) => return Err(e),
            }
        }
    }
}

impl Scheduler for SlurmScheduler {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn jobs_per_task(&self) -> usize {
        self.settings.jobs_per_task
    }

    fn max_batch(&self) -> usize {
        self.max_array.max(1).saturating_mul(self.settings.jobs_per_task.max(1))
    }

    /// Writes the submission's task list and script under `arrays/` and submits it; a prepare
    /// submission is a one-task array running `ssal prepare` in its stage's directory, and a
    /// submission with `after` waits for it (`--dependency=afterok:…` on the command line, so a
    /// site's own template needs nothing for it).
    fn submit(&mut self, submission: &Submission) -> Result<Vec<String>, SchedulerError> {
        let Submission { tasks, token, work, after } = *submission;
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let arrays = self.sweep_dir.join("arrays");
        std::fs::create_dir_all(arrays.join("logs"))
            .map_err(|e| SchedulerError::Io(format!("cannot create {}: {e}", arrays.display())))?;
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let task_list = arrays.join(format!("{stamp}.tasks"));
        let ids: String = tasks.iter().map(|t| format!("{}\n", t.job_id)).collect();
        std::fs::write(&task_list, ids).map_err(|e| SchedulerError::Io(format!("{}: {e}", task_list.display())))?;
        let script_path = arrays.join(format!("{stamp}.sh"));
        let per_task = if work == Work::Prepare { 1 } else { self.settings.jobs_per_task };
        let array = tasks.len().div_ceil(per_task.max(1));
        let script = array_script(&self.settings, &self.sweep, &self.sweep_dir, &task_list, array, &self.run, work)
            .map_err(|e| SchedulerError::Io(e.to_string()))?;
        std::fs::write(&script_path, script)
            .map_err(|e| SchedulerError::Io(format!("{}: {e}", script_path.display())))?;
        self.sbatch(&script_path, token, tasks.len(), per_task, after)
    }

    fn find_submission(
        &mut self,
        token: &str,
        jobs: usize,
        jobs_per_task: usize,
    ) -> Result<Option<Vec<String>>, SchedulerError> {
        let name = self.job_name(token);
        let ambiguous = |e: SchedulerError| SchedulerError::Ambiguous { token: token.to_string(), why: e.to_string() };
        let out = run_retrying("squeue", &["--me", "-h", "-r", "-t", "all", "-o", "%i|%j"], &self.backoff)
            .map_err(ambiguous)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let queued = stdout.lines().filter_map(|l| l.trim().split_once('|')).find(|(_, n)| *n == name);
        let id = match queued {
            Some((task, _)) => Some(parse::array_id(task).to_string()),
            None => {
                let name_arg = format!("--name={name}");
                let args = ["-X", "-P", "-n", &name_arg, "-S", "now-30days", "--format=JobID"];
                let out = run_retrying("sacct", &args, &self.backoff).map_err(ambiguous)?;
                let stdout = String::from_utf8_lossy(&out.stdout);
                stdout.lines().map(str::trim).find(|l| !l.is_empty()).map(|l| parse::array_id(l).to_string())
            }
        };
        Ok(id.map(|id| task_handles(&id, jobs, jobs_per_task)))
    }

    /// One `squeue` for every task; tasks it no longer lists are looked up in `sacct` (their
    /// final state, exit code, time, memory and node). A task neither lists is `Unknown` (its
    /// state is kept) — except on a cluster without accounting when `squeue` listed other tasks:
    /// then it left the queue and is absent (the runner then reads its result file). An empty
    /// `squeue` answer (a controller restart answers so) never counts as "left".
    fn poll(&mut self, handles: &[String]) -> Result<HashMap<String, Observed>, SchedulerError> {
        let out = run_retrying("squeue", &["--me", "-h", "-r", "-t", "all", "-o", "%i|%T|%r"], &self.backoff)?;
        let states = parse::squeue_states(&String::from_utf8_lossy(&out.stdout))
            .map_err(|message| SchedulerError::Parse { command: "squeue".into(), message })?;
        let squeue_empty = states.is_empty();
        let wanted: std::collections::HashSet<&String> = handles.iter().collect();
        let mut known: HashMap<String, Observed> = states.into_iter().filter(|(id, _)| wanted.contains(id)).collect();
        let missing: Vec<&String> = handles.iter().filter(|h| !known.contains_key(*h)).collect();
        if missing.is_empty() {
            return Ok(known);
        }
        let arrays: std::collections::BTreeSet<&str> = missing.iter().map(|h| parse::array_id(h)).collect();
        let jobs = arrays.into_iter().collect::<Vec<_>>().join(",");
        let args = ["-X", "-P", "-n", "-j", &jobs, "--format=JobID,State,ExitCode,Elapsed,MaxRSS,NodeList"];
        match run_retrying("sacct", &args, &self.backoff) {
            Ok(out) => {
                let rows = parse::sacct_states(&String::from_utf8_lossy(&out.stdout))
                    .map_err(|message| SchedulerError::Parse { command: "sacct".into(), message })?;
                for (id, observed) in rows {
                    for task in parse::expand_array_tasks(&id) {
                        if wanted.contains(&task) && !known.contains_key(&task) {
                            known.insert(task, observed.clone());
                        }
                    }
                }
                // Accounting works but has no line yet (slurmdbd lags the controller): wait.
                let unaccounted: Vec<String> =
                    missing.iter().filter(|h| !known.contains_key(**h)).map(|h| (*h).clone()).collect();
                for h in unaccounted {
                    known.insert(h, Observed::Unknown);
                }
            }
            Err(SchedulerError::Failed { stderr, .. }) if parse::accounting_disabled(&stderr) && !squeue_empty => {}
            Err(_) => {
                for h in missing {
                    known.insert(h.clone(), Observed::Unknown);
                }
            }
        }
        Ok(known)
    }

    fn cancel(&mut self, handles: &[String]) -> Result<(), SchedulerError> {
        for chunk in handles.chunks(500) {
            let args: Vec<&str> = chunk.iter().map(String::as_str).collect();
            run("scancel", &args)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse::*;
    use super::Observed;

    #[test]
    fn sbatch_output_samples() {
        assert_eq!(sbatch_job_id("4242\n").as_deref(), Some("4242"));
        assert_eq!(sbatch_job_id("4242;cluster-a\n").as_deref(), Some("4242"));
        // A site's job_submit plugin may print notes before the id.
        assert_eq!(sbatch_job_id("NOTE: defaulting to partition gpu\n77\n").as_deref(), Some("77"));
        assert_eq!(sbatch_job_id("Submitted batch job 12\n"), None);
        assert_eq!(sbatch_job_id(""), None);
    }

    #[test]
    fn scontrol_show_config_sample() {
        // Captured from slurm-wlm 22.05.8 (scripts/slurm-test-cluster.sh).
        let sample = "Configuration data as of 2026-11-25T05:44:01\nMaxArraySize            = 1001\nMaxJobCount             = 10000\nMinJobAge               = 300 sec\n";
        assert_eq!(max_array_size(sample), Some(1001));
        assert_eq!(max_array_size("MaxJobCount = 10\n"), None);
    }

    #[test]
    fn squeue_sample_and_state_mapping() {
        // Captured from `squeue --me -h -r -t all -o '%i|%T'` on slurm-wlm 22.05.8.
        // (%r added later: the pending reason, "None" for tasks that are not pending.)
        let sample = "1_0|CANCELLED|None\n1_2|PENDING|Priority\n1_4|PENDING|PartitionConfig\n1_1|RUNNING|None\n";
        let got = squeue_states(sample).unwrap();
        assert_eq!(
            got,
            vec![
                ("1_0".into(), Observed::Cancelled),
                ("1_2".into(), Observed::Queued { reason: Some("Priority".into()) }),
                ("1_4".into(), Observed::Queued { reason: Some("PartitionConfig".into()) }),
                ("1_1".into(), Observed::Running)
            ]
        );
        // A task waiting with `--dependency=afterok:…` on a task that failed (the reason of
        // slurm-wlm 22.05's squeue, as documented in squeue(1)'s JOB REASON CODES): it never
        // starts; while the dependency runs it is only waiting.
        let sample = "9_0|PENDING|DependencyNeverSatisfied\n9_1|PENDING|Dependency\n";
        assert_eq!(
            squeue_states(sample).unwrap(),
            vec![
                ("9_0".into(), Observed::DependencyFailed),
                ("9_1".into(), Observed::Queued { reason: Some("Dependency".into()) })
            ]
        );
        assert_eq!(afterok("8_0"), "--dependency=afterok:8");
        // Without the reason column, as the first ssal versions asked.
        assert_eq!(squeue_states("1_1|PENDING\n").unwrap()[0].1, Observed::QUEUED);
        for queued in ["PENDING", "CONFIGURING", "REQUEUED", "PREEMPTED", "REQUEUE_HOLD", "SUSPENDED", "NEW_STATE"] {
            assert_eq!(job_state(queued), Observed::QUEUED, "{queued}");
        }
        assert_eq!(job_state("COMPLETED"), Observed::Ended { success: true, detail: None });
        for failed in ["FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"] {
            assert_eq!(job_state(failed), Observed::Ended { success: false, detail: Some(failed.into()) }, "{failed}");
        }
        assert_eq!(job_state("COMPLETING"), Observed::Running);
        assert!(squeue_states("garbage\n").is_err());
    }

    #[test]
    fn sacct_sample_and_reasons() {
        // The format of `sacct -X -P -n --format=JobID,State,ExitCode,Elapsed,MaxRSS,NodeList`
        // (slurm-wlm 22.05 documentation; MaxRSS is empty on allocation lines with -X).
        let sample =
            "7_0|COMPLETED|0:0|00:03:10||n1\n7_1|TIMEOUT|0:15|02:00:01||n2\n7_2|CANCELLED by 1000|0:0|00:00:05||n1\n\
                      7_3|OUT_OF_MEMORY|0:125|00:10:00|15.9G|n1\n7_4|PENDING|0:0|00:00:00||None assigned\n";
        let got = sacct_states(sample).unwrap();
        assert_eq!(
            got[0].1,
            Observed::Ended { success: true, detail: Some("COMPLETED, exit 0:0, 00:03:10 on n1".into()) }
        );
        assert_eq!(
            got[1].1,
            Observed::Ended { success: false, detail: Some("TIMEOUT, exit 0:15, 02:00:01 on n2".into()) }
        );
        assert_eq!(got[2].1, Observed::Cancelled);
        assert_eq!(
            got[3].1,
            Observed::Ended {
                success: false,
                detail: Some("OUT_OF_MEMORY, exit 0:125, 00:10:00, MaxRSS 15.9G on n1".into())
            }
        );
        assert_eq!(got[4].1, Observed::QUEUED);
        assert!(sacct_states("no separators\n").is_err());
        assert_eq!(array_id("123_4"), "123");
        assert_eq!(expand_array_tasks("123_[0-2,5%4]"), vec!["123_0", "123_1", "123_2", "123_5"]);
        assert_eq!(expand_array_tasks("123_4"), vec!["123_4"]);
        assert_eq!(array_id("123_[5-9]"), "123");
        assert!(unresolvable_reason("PartitionConfig").is_some());
        assert!(unresolvable_reason("QOSMaxWallDurationPerJobLimit").is_some());
        for waits in ["Priority", "Resources", "QOSMaxJobsPerUserLimit", "Dependency", "BeginTime"] {
            assert!(unresolvable_reason(waits).is_none(), "{waits}");
        }
        assert!(accounting_disabled("sacct: error: Slurm accounting storage is disabled"));
    }

    #[test]
    fn transient_sbatch_errors_are_recognised() {
        assert!(is_ambiguous("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"));
        assert!(!is_ambiguous("sbatch: error: Batch job submission failed: Resource temporarily unavailable"));
        assert!(is_transient("sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying"));
        assert!(is_transient("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"));
        assert!(is_transient("sbatch: error: RPC rate limit exceeded"));
        assert!(!is_transient(
            "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified"
        ));
        assert!(!is_transient("sbatch: error: Batch job submission failed: Invalid job array specification"));
    }
}
