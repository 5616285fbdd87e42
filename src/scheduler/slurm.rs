//! Slurm through its commands: one job array per submission (`sbatch --parsable`), one `squeue`
//! per status check for all tasks, `scancel` to stop. Command output is parsed only in [`parse`].
use super::{Observed, Scheduler, SchedulerError, Task};
use crate::sweep::{render_array_script, ArrayScript, SlurmSettings};
use std::collections::HashMap;
use std::path::PathBuf;
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
            "COMPLETED" => Observed::Ended { success: true },
            "FAILED" | "TIMEOUT" | "NODE_FAIL" | "OUT_OF_MEMORY" | "BOOT_FAIL" | "DEADLINE" => {
                Observed::Ended { success: false }
            }
            "CANCELLED" => Observed::Cancelled,
            _ => Observed::Queued,
        }
    }

    /// Lines of `squeue -h -r -t all -o '%i|%T'` as (task id, state); array tasks read `123_4`.
    pub fn squeue_states(stdout: &str) -> Result<Vec<(String, Observed)>, String> {
        stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (id, state) = l.trim().split_once('|').ok_or_else(|| format!("line {l:?} is not `id|state`"))?;
                // "CANCELLED by 0" appears in some versions' long form.
                let state = state.split_whitespace().next().unwrap_or_default();
                Ok((id.to_string(), job_state(state)))
            })
            .collect()
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
    ssal: PathBuf,
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

impl SlurmScheduler {
    /// Connects to the cluster (reading `MaxArraySize`); fails clearly when Slurm is missing.
    pub fn new(sweep: &str, sweep_dir: PathBuf, settings: SlurmSettings) -> Result<Self, SchedulerError> {
        let out = run("scontrol", &["show", "config"])?;
        let max_array = parse::max_array_size(&String::from_utf8_lossy(&out.stdout)).unwrap_or(1001);
        let ssal = match &settings.ssal {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(|e| SchedulerError::Io(format!("cannot locate ssal: {e}")))?,
        };
        let backoff = [1, 2, 4, 8, 16].map(Duration::from_secs).to_vec();
        Ok(SlurmScheduler { settings, sweep: sweep.to_string(), sweep_dir, ssal, max_array, backoff })
    }

    fn sbatch(&self, script: &std::path::Path) -> Result<String, SchedulerError> {
        let script = script.to_string_lossy();
        let mut waits = self.backoff.iter();
        loop {
            match run("sbatch", &["--parsable", &script]) {
                Ok(out) => {
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    return parse::sbatch_job_id(&stdout).ok_or_else(|| SchedulerError::Parse {
                        command: "sbatch --parsable".into(),
                        message: format!("no job id in {stdout:?}"),
                    });
                }
                Err(SchedulerError::Failed { stderr, .. }) if parse::is_transient(&stderr) => match waits.next() {
                    Some(wait) => {
                        eprintln!("ssal: sbatch: {stderr}; retrying in {}s", wait.as_secs());
                        std::thread::sleep(*wait);
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

    fn max_batch(&self) -> usize {
        self.max_array.max(1)
    }

    fn submit(&mut self, tasks: &[Task]) -> Result<Vec<String>, SchedulerError> {
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
        let script = render_array_script(
            &self.settings,
            &ArrayScript {
                sweep: &self.sweep,
                task_list: &task_list,
                tasks: tasks.len(),
                jobs_dir: &self.sweep_dir.join("jobs"),
                slurm_log: &arrays.join("logs/%A_%a.out"),
                ssal: &self.ssal,
            },
        )
        .map_err(|e| SchedulerError::Io(e.to_string()))?;
        std::fs::write(&script_path, script)
            .map_err(|e| SchedulerError::Io(format!("{}: {e}", script_path.display())))?;
        let array_id = self.sbatch(&script_path)?;
        Ok((0..tasks.len()).map(|i| format!("{array_id}_{i}")).collect())
    }

    fn poll(&mut self, handles: &[String]) -> Result<HashMap<String, Observed>, SchedulerError> {
        let out = run("squeue", &["--me", "-h", "-r", "-t", "all", "-o", "%i|%T"])?;
        let states = parse::squeue_states(&String::from_utf8_lossy(&out.stdout))
            .map_err(|message| SchedulerError::Parse { command: "squeue".into(), message })?;
        let wanted: std::collections::HashSet<&String> = handles.iter().collect();
        Ok(states.into_iter().filter(|(id, _)| wanted.contains(id)).collect())
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
        let sample = "1_0|CANCELLED\n1_2|PENDING\n1_4|PENDING\n1_1|RUNNING\n";
        let got = squeue_states(sample).unwrap();
        assert_eq!(
            got,
            vec![
                ("1_0".into(), Observed::Cancelled),
                ("1_2".into(), Observed::Queued),
                ("1_4".into(), Observed::Queued),
                ("1_1".into(), Observed::Running)
            ]
        );
        for queued in ["PENDING", "CONFIGURING", "REQUEUED", "PREEMPTED", "REQUEUE_HOLD", "SUSPENDED", "NEW_STATE"] {
            assert_eq!(job_state(queued), Observed::Queued, "{queued}");
        }
        assert_eq!(job_state("COMPLETED"), Observed::Ended { success: true });
        for failed in ["FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"] {
            assert_eq!(job_state(failed), Observed::Ended { success: false }, "{failed}");
        }
        assert_eq!(job_state("COMPLETING"), Observed::Running);
        assert!(squeue_states("garbage\n").is_err());
    }

    #[test]
    fn transient_sbatch_errors_are_recognised() {
        assert!(is_transient("sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying"));
        assert!(is_transient("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"));
        assert!(is_transient("sbatch: error: RPC rate limit exceeded"));
        assert!(!is_transient(
            "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified"
        ));
        assert!(!is_transient("sbatch: error: Batch job submission failed: Invalid job array specification"));
    }
}
