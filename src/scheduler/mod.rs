//! Where jobs run: Slurm job arrays or child processes on this machine, behind one small trait so
//! the sweep's state machine (`sweep::runner`) is written once.
mod local;
mod run_command;
mod slurm;

pub use local::LocalScheduler;
pub use run_command::RunCommand;
pub use slurm::{parse, preview_first_array, slurm_test_only, SlurmScheduler, SlurmSettings};

use std::collections::HashMap;
use std::path::PathBuf;

/// One job to run: its id and its directory (`config.toml` in, `result.json` and `log.txt` out).
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub job_id: String,
    pub dir: PathBuf,
}

/// Where a sweep's directory keeps its prepare stages, one directory per stage named by its
/// key (as `jobs/` holds its jobs, one directory per job id).
pub const PREPARE_DIR: &str = "prepare";

/// What a submission's tasks run: a job (`ssal run`) or the preparation several jobs share
/// (`ssal prepare`, e.g. their RotNet embedding), each with its directory's `config.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    Run,
    Prepare,
}

/// One submission: its tasks, the token it carries (Slurm: in the job name) so that it can be
/// found again after a crash or an ambiguous answer, what they run, and the handle of a prepare
/// task they must wait for (they start only once it has ended successfully).
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    pub tasks: &'a [Task],
    pub token: &'a str,
    pub work: Work,
    pub after: Option<&'a str>,
}

/// What the scheduler says of a submitted task. A task a scheduler no longer knows is absent
/// from a poll's answer; the caller then looks at the task's result file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// Waiting to start (pending, configuring, requeued, preempted and waiting again, …), with
    /// the scheduler's reason when it gives one (Slurm's `%r`: `Priority`, `PartitionConfig`, …).
    Queued {
        reason: Option<String>,
    },
    Running,
    /// Ended by itself; `success` is the exit status (the result file has the last word), and
    /// `detail` what the scheduler knows of the end (Slurm: state, exit code, elapsed time,
    /// peak memory, node).
    Ended {
        success: bool,
        detail: Option<String>,
    },
    /// Cancelled by a person or by ssal.
    Cancelled,
    /// Waiting for a task that failed or was cancelled (its submission's `after`), so it will
    /// never start (Slurm: pending with reason `DependencyNeverSatisfied`).
    DependencyFailed,
    /// The scheduler cannot tell now (e.g. its queue answered empty and its accounting is not
    /// reachable): the job keeps its state; nothing is resubmitted on a guess.
    Unknown,
}

impl Observed {
    /// A queued task without a reason.
    pub const QUEUED: Observed = Observed::Queued { reason: None };
}

/// Errors of talking to a scheduler.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("`{command}` not found: is this a Slurm login node with Slurm on PATH? ({source})")]
    Missing { command: String, source: std::io::Error },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed { command: String, status: String, stderr: String },
    /// The scheduler may or may not have accepted a submission (Slurm: "Socket timed out" after
    /// the controller took the job) and could not be asked which.
    #[error(
        "cannot tell whether submission {token} was accepted ({why}); nothing else was submitted: \
         run the same command again once the scheduler answers, it adopts the submission if it exists"
    )]
    Ambiguous { token: String, why: String },
    #[error("cannot understand the output of `{command}`: {message}")]
    Parse { command: String, message: String },
    #[error("{0}")]
    Io(String),
    /// The jobs would run this binary, which is the analysis-only build (no libtorch).
    #[error("this ssal is the analysis-only build (no libtorch) and cannot run experiments: {0}")]
    CannotRun(&'static str),
}

/// A backend: submit jobs, ask how they are, find a submission again, cancel them. A scheduler
/// may pack several jobs into one of its tasks (run one after another); the jobs of a task share
/// its handle.
pub trait Scheduler {
    /// Short name stored with each job ("slurm" or "local").
    fn name(&self) -> &'static str;
    /// How many jobs one task runs (Slurm: `[slurm] jobs_per_task`); 1 unless the backend packs.
    fn jobs_per_task(&self) -> usize {
        1
    }
    /// How many jobs may be handed over at once (Slurm: the array size limit times
    /// `jobs_per_task`).
    fn max_batch(&self) -> usize;
    /// Hands a submission's tasks over as one batch (a prepare submission holds one task and is
    /// never packed); returns one handle per task, in order (the same handle for the jobs
    /// packed into one scheduler task).
    fn submit(&mut self, submission: &Submission) -> Result<Vec<String>, SchedulerError>;
    /// The handles of the submission carrying `token`, of `jobs` jobs packed `jobs_per_task` to
    /// a task (as they were when it was submitted), if the scheduler has it, queued or finished;
    /// `None` when it certainly does not.
    fn find_submission(
        &mut self,
        token: &str,
        jobs: usize,
        jobs_per_task: usize,
    ) -> Result<Option<Vec<String>>, SchedulerError>;
    /// The state of every handle the scheduler still knows, in one query.
    fn poll(&mut self, handles: &[String]) -> Result<HashMap<String, Observed>, SchedulerError>;
    /// Stops the given tasks (running ones get SIGTERM, so they checkpoint first), every job
    /// packed into them.
    fn cancel(&mut self, handles: &[String]) -> Result<(), SchedulerError>;
}
