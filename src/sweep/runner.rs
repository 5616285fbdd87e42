//! The sweep's state machine, written once against the `Scheduler` trait: submit what may run
//! (each chunk journalled before the scheduler is asked, so that it is submitted exactly once;
//! jobs that share a preparation not yet done wait for one prepare task), refresh states from
//! one scheduler poll plus the jobs' result files, retry failures, stop after too many, cancel.
use super::{JobState, Plan, PlanSync, PlannedJob, Stage, StateDb, StateError, SyncError, TrackedJob, TrackedPrepare};
use crate::scheduler::{Observed, Scheduler, SchedulerError, Submission, Task, Work};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Errors of running a sweep.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    #[error(transparent)]
    Plan(#[from] super::SweepError),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// Jobs per state: the plan's, and apart from them the retired ones (no longer in the plan).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub planned: BTreeMap<JobState, usize>,
    pub retired: BTreeMap<JobState, usize>,
}

impl Tally {
    /// The plan's jobs in `state`.
    pub fn get(&self, state: JobState) -> usize {
        self.planned.get(&state).copied().unwrap_or(0)
    }

    /// How many jobs are retired, whatever their state.
    pub fn retired(&self) -> usize {
        self.retired.values().sum()
    }
}

/// A planned sweep on disk with its state database.
pub struct SweepRunner {
    pub dir: PathBuf,
    pub db: StateDb,
    /// What opening it changed: jobs retired because the plan no longer holds them, retired
    /// jobs restored because it holds them again.
    pub synced: PlanSync,
    /// The plan's prepare stages (work its jobs share).
    stages: Vec<Stage>,
}

/// A fresh submission token: unique across processes and time (not a random choice of an
/// experiment, so not drawn from a run seed).
fn new_token(dir: &Path) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let seed = format!("{}|{}|{now}", dir.display(), std::process::id());
    blake3::hash(seed.as_bytes()).to_hex()[..12].to_string()
}

/// How a `wait` ended.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitOutcome {
    pub tally: Tally,
    /// Set when the circuit breaker stopped submitting: how many attempts failed and the error
    /// line they share most.
    pub stopped_by_failures: Option<String>,
}

/// Failed jobs grouped by what they say: (the line, the job ids), largest group first.
pub type FailureGroups = Vec<(String, Vec<String>)>;

/// The log a job left: its own `log.txt`, else Slurm's array output for its handle.
pub fn job_log(sweep_dir: &Path, job: &TrackedJob) -> Option<PathBuf> {
    let own = job.dir.join("log.txt");
    if own.is_file() {
        return Some(own);
    }
    let slurm = sweep_dir.join("arrays/logs").join(format!("{}.out", job.handle.as_deref()?));
    slurm.is_file().then_some(slurm)
}

/// The log a prepare task left: its stage's `log.txt`, else Slurm's array output for its handle.
pub fn prepare_log(sweep_dir: &Path, prepare: &TrackedPrepare) -> Option<PathBuf> {
    let own = prepare.dir.join("log.txt");
    if own.is_file() {
        return Some(own);
    }
    let slurm = sweep_dir.join("arrays/logs").join(format!("{}.out", prepare.handle));
    slurm.is_file().then_some(slurm)
}

/// The last `n` non-empty lines of a file.
pub fn last_lines(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<String> =
        text.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).map(String::from).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// The handles of `jobs`' tasks, each once (jobs packed into one task share its handle).
fn task_handles(jobs: &[TrackedJob]) -> Vec<String> {
    let unique: std::collections::BTreeSet<&String> = jobs.iter().filter_map(|j| j.handle.as_ref()).collect();
    unique.into_iter().cloned().collect()
}

/// Whether `dir/result.json` is a complete result.
fn has_complete_result(dir: &Path) -> bool {
    crate::result::is_complete(&crate::result::path_in(dir))
}

impl SweepRunner {
    /// Records the plan's jobs in `dir/state.db` and writes the plan under `dir` (configs,
    /// plan.tsv): jobs an older ssal planned under its ids are re-keyed to the plan's, known
    /// jobs the plan no longer holds are retired, retired ones it holds again restored
    /// ([`SweepRunner::synced`] says which). The state is synced first, so that a re-keyed job's
    /// directory link is in place before its config is written through it.
    pub fn open(plan: &Plan, dir: &Path) -> Result<Self, RunnerError> {
        std::fs::create_dir_all(dir).map_err(|source| super::SweepError::Write { path: dir.to_path_buf(), source })?;
        let mut db = StateDb::open(&dir.join("state.db"))?;
        let jobs: Vec<PlannedJob> = plan
            .jobs
            .iter()
            .map(|j| PlannedJob {
                id: j.id.clone(),
                legacy_id: j.config.legacy_content_hash(),
                dir: dir.join("jobs").join(&j.id),
                axes: j.describe(),
            })
            .collect();
        let synced = db.sync_plan(&jobs)?;
        plan.write(dir)?;
        Ok(SweepRunner { dir: dir.to_path_buf(), db, synced, stages: plan.stages.clone() })
    }

    /// The sweep in `dir` as its state database last recorded it, for a reader while another
    /// ssal holds the sweep: nothing is re-planned or synced, and no plan file is written.
    pub fn open_recorded(plan: &Plan, dir: &Path) -> Result<Self, RunnerError> {
        let db = StateDb::open(&dir.join("state.db"))?;
        Ok(SweepRunner { dir: dir.to_path_buf(), db, synced: PlanSync::default(), stages: plan.stages.clone() })
    }

    /// Jobs per state, the retired ones apart.
    pub fn tally(&self) -> Result<Tally, RunnerError> {
        let mut t = Tally::default();
        for j in self.db.jobs()? {
            let counts = if j.is_retired() { &mut t.retired } else { &mut t.planned };
            *counts.entry(j.state).or_default() += 1;
        }
        Ok(t)
    }

    /// Settles the journal: every submission of `scheduler`'s backend that was being made when
    /// an earlier call stopped (crash, kill, ambiguous answer) is looked up by its token and
    /// adopted if the scheduler has it, closed otherwise. Until that is known nothing new is
    /// submitted (the lookup's error is returned). Returns how many submissions were adopted.
    pub fn reconcile(&mut self, scheduler: &mut dyn Scheduler) -> Result<usize, RunnerError> {
        let mut adopted = 0;
        for entry in self.db.journal_open_entries(scheduler.name())? {
            match scheduler.find_submission(&entry.token, entry.job_ids.len(), entry.jobs_per_task)? {
                Some(handles) => {
                    let pairs: Vec<(String, String)> = entry.job_ids.into_iter().zip(handles).collect();
                    self.db.mark_submitted(scheduler.name(), &entry.token, &pairs)?;
                    adopted += 1;
                }
                None => self.db.journal_close(&entry.token, "not_found")?,
            }
        }
        Ok(adopted)
    }

    /// Brings every job's state up to date: a complete result file means done; open journal
    /// entries are reconciled; active jobs of `scheduler`'s backend are looked up in one poll;
    /// an active job that ended without a complete result has failed (with the scheduler's
    /// detail); a job the scheduler cannot account for keeps its state. Jobs packed into one
    /// task (sharing its handle) each take the task's state — running, cancelled, or ended — and
    /// each job of an ended task is done if its result is complete, failed otherwise, with a
    /// detail that names it as one of the task's jobs and says where its log is.
    pub fn refresh(&mut self, scheduler: Option<&mut dyn Scheduler>) -> Result<(), RunnerError> {
        let Some(scheduler) = scheduler else {
            return self.refresh_results();
        };
        self.reconcile(scheduler)?;
        self.refresh_results()?;
        let on_backend: Vec<TrackedJob> =
            self.db.jobs()?.into_iter().filter(|j| j.backend.as_deref() == Some(scheduler.name())).collect();
        // Jobs packed into one task: the same handle, handed over in the same submission (a
        // handle alone could be an earlier cluster's reused job id).
        let mut sharing: HashMap<(String, Option<i64>), usize> = HashMap::new();
        for j in &on_backend {
            if let Some(handle) = &j.handle {
                *sharing.entry((handle.clone(), j.submitted_at)).or_default() += 1;
            }
        }
        let ours: Vec<TrackedJob> = on_backend.into_iter().filter(|j| j.state.is_active()).collect();
        let prepares = self.active_prepares(scheduler.name())?;
        if ours.is_empty() && prepares.is_empty() {
            return Ok(());
        }
        let mut handles = task_handles(&ours);
        handles.extend(prepares.iter().map(|p| p.handle.clone()));
        let observed = scheduler.poll(&handles)?;
        self.refresh_prepares(&prepares, &observed)?;
        let prepares = self.db.prepares()?;
        let mut never_start: Vec<String> = Vec::new();
        for j in &ours {
            let seen = j.handle.as_ref().and_then(|h| observed.get(h)).cloned();
            let complete = || has_complete_result(&j.dir);
            let (state, detail) = match seen {
                Some(Observed::Queued { reason }) => {
                    if reason != j.pending_reason {
                        self.db.set_pending_reason(&j.job_id, reason.as_deref())?;
                    }
                    (JobState::Submitted, None)
                }
                Some(Observed::Running) => (JobState::Running, None),
                Some(Observed::Cancelled) => (JobState::Cancelled, None),
                Some(Observed::DependencyFailed) => {
                    never_start.extend(j.handle.clone());
                    (JobState::Failed, Some(self.dependency_failed(j, &prepares)))
                }
                Some(Observed::Unknown) if complete() => (JobState::Done, None),
                Some(Observed::Unknown) => (j.state, None),
                Some(Observed::Ended { detail, .. }) if complete() => (JobState::Done, detail),
                Some(Observed::Ended { detail, .. }) => (JobState::Failed, self.failed_detail(j, detail, &sharing)),
                None if complete() => (JobState::Done, None),
                None => {
                    let detail = Some("left the queue; no accounting record".to_string());
                    (JobState::Failed, self.failed_detail(j, detail, &sharing))
                }
            };
            if state != j.state {
                if matches!(state, JobState::Failed | JobState::Done | JobState::Cancelled) {
                    self.db.record_end(j, state, detail.as_deref())?;
                }
                if state != JobState::Submitted {
                    self.db.set_pending_reason(&j.job_id, None)?;
                }
                self.db.set_state(&j.job_id, state)?;
            }
        }
        if !never_start.is_empty() {
            never_start.sort();
            never_start.dedup();
            // Slurm keeps them pending for ever; a retry is a new submission with a new prepare.
            scheduler.cancel(&never_start)?;
        }
        Ok(())
    }

    /// Brings the active prepare tasks `prepares` up to date from the scheduler's answer
    /// `observed`. One that left the queue without a record succeeded if its stage's cache
    /// entry exists.
    fn refresh_prepares(
        &mut self,
        prepares: &[TrackedPrepare],
        observed: &HashMap<String, Observed>,
    ) -> Result<(), RunnerError> {
        for p in prepares {
            let cached = || self.stages.iter().any(|s| s.key == p.key && s.is_cached());
            let (state, detail) = match observed.get(&p.handle) {
                Some(Observed::Queued { .. }) | Some(Observed::Unknown) => (p.state, None),
                Some(Observed::Running) => (JobState::Running, None),
                Some(Observed::Ended { success: true, detail }) => (JobState::Done, detail.clone()),
                Some(Observed::Ended { success: false, detail }) => (JobState::Failed, detail.clone()),
                Some(Observed::Cancelled) => (JobState::Cancelled, None),
                Some(Observed::DependencyFailed) => (JobState::Failed, Some("waited for a task that failed".into())),
                None if cached() => (JobState::Done, None),
                None => (JobState::Failed, Some("left the queue; no accounting record".into())),
            };
            if state != p.state {
                self.db.set_prepare_state(p, state, detail.as_deref())?;
            }
        }
        Ok(())
    }

    /// Why `job` will never start: the prepare task it waited for (among `prepares`) failed or
    /// was cancelled — which one, how it ended, and where its log is.
    fn dependency_failed(&self, job: &TrackedJob, prepares: &[TrackedPrepare]) -> String {
        let after = job.after.as_deref().unwrap_or("?");
        let Some(p) = prepares.iter().find(|p| Some(&p.backend) == job.backend.as_ref() && p.handle == after) else {
            return format!("never started: the task it waited for ({after}) failed or was cancelled");
        };
        let how = match (&p.detail, p.state) {
            (Some(detail), _) => format!("failed ({detail})"),
            (None, JobState::Cancelled) => "was cancelled".to_string(),
            (None, _) => "failed".to_string(),
        };
        let log = prepare_log(&self.dir, p).map_or("no log written".into(), |l| format!("log {}", l.display()));
        format!("never started: its prepare job {after} (RotNet embedding {}) {how}; {log}", p.key)
    }

    /// What is known of the failed end of `job`: the scheduler's `detail` of its task's end and,
    /// for a job packed with others into that task (`sharing`: how many jobs each task, as
    /// handle and submission time, holds), that this job of the task did not complete and where
    /// its log is.
    fn failed_detail(
        &self,
        job: &TrackedJob,
        detail: Option<String>,
        sharing: &HashMap<(String, Option<i64>), usize>,
    ) -> Option<String> {
        let handle = job.handle.clone().unwrap_or_default();
        let n = sharing.get(&(handle.clone(), job.submitted_at)).copied().unwrap_or(1);
        if n < 2 {
            return detail;
        }
        let log = job_log(&self.dir, job).map_or("no log written".into(), |l| format!("log {}", l.display()));
        let packed = format!("job {} (one of {n} packed into task {handle}) did not complete; {log}", job.job_id);
        Some(match detail {
            Some(d) => format!("{d}; {packed}"),
            None => packed,
        })
    }

    /// The queued or running prepare tasks handed to `backend`.
    fn active_prepares(&self, backend: &str) -> Result<Vec<TrackedPrepare>, RunnerError> {
        let prepares = self.db.prepares()?;
        Ok(prepares.into_iter().filter(|p| p.backend == backend && p.state.is_active()).collect())
    }

    /// The queued or running jobs handed to `backend`.
    fn active_on(&self, backend: &str) -> Result<Vec<TrackedJob>, RunnerError> {
        let jobs = self.db.jobs()?;
        Ok(jobs.into_iter().filter(|j| j.state.is_active() && j.backend.as_deref() == Some(backend)).collect())
    }

    /// Marks every job with a complete result file as done.
    fn refresh_results(&mut self) -> Result<(), RunnerError> {
        for j in self.db.jobs()? {
            if j.state != JobState::Done && has_complete_result(&j.dir) {
                self.db.set_state(&j.job_id, JobState::Done)?;
            }
        }
        Ok(())
    }

    /// Submits the plan's jobs that are not done and not active and satisfy `eligible` (never a
    /// retired one), keeping at most `max_queued` of the scheduler's tasks active (jobs packed
    /// into one task take one place; retired jobs that are still queued or running count: they
    /// hold places in the queue), in chunks the scheduler accepts. Each chunk is journalled
    /// under a fresh token, with the scheduler's packing, before the scheduler is asked; a
    /// definite refusal closes the entry, an ambiguous answer leaves it open for
    /// [`SweepRunner::reconcile`]. Returns how many jobs were submitted.
    pub fn submit(
        &mut self,
        scheduler: &mut dyn Scheduler,
        max_queued: usize,
        eligible: impl Fn(&TrackedJob) -> bool,
    ) -> Result<usize, RunnerError> {
        let jobs = self.db.jobs()?;
        let per_task = scheduler.jobs_per_task();
        let active_tasks: HashSet<&str> =
            jobs.iter().filter(|j| j.state.is_active()).map(|j| j.handle.as_deref().unwrap_or(&j.job_id)).collect();
        let room = max_queued.saturating_sub(active_tasks.len()).saturating_mul(per_task);
        let ready: Vec<Task> = jobs
            .iter()
            .filter(|j| !j.is_retired() && !j.state.is_active() && j.state != JobState::Done && eligible(j))
            .take(room)
            .map(|j| Task { job_id: j.job_id.clone(), dir: j.dir.clone() })
            .collect();
        // Jobs grouped by the prepare stage they wait for (none when it is done or they share
        // nothing), in plan order of each group's first job.
        // Each stage's cache entry is looked up once, each job's stage found by its id.
        let waits_for: HashMap<&str, usize> = (self.stages.iter().enumerate())
            .filter(|(_, s)| !s.is_cached())
            .flat_map(|(i, s)| s.jobs.iter().map(move |id| (id.as_str(), i)))
            .collect();
        let mut groups: Vec<(Option<usize>, Vec<Task>)> = Vec::new();
        for task in ready {
            let stage = waits_for.get(task.job_id.as_str()).copied();
            match groups.iter_mut().find(|(s, _)| *s == stage) {
                Some((_, tasks)) => tasks.push(task),
                None => groups.push((stage, vec![task])),
            }
        }
        let mut submitted = 0;
        for (stage, tasks) in groups {
            let stage: Option<Stage> = stage.map(|i| self.stages[i].clone());
            let after = stage.map(|s| self.prepare(scheduler, &s)).transpose()?;
            submitted += self.submit_chunks(scheduler, &tasks, after.as_deref())?;
        }
        Ok(submitted)
    }

    /// The handle of a prepare task for `stage` on `scheduler`'s backend: the one queued or
    /// running, else a new one. A prepare task is not journalled: one submitted twice (ssal
    /// stopped between the scheduler's answer and the record) costs a queued task, never a
    /// second training, since the embedding cache trains each entry once under a file lock.
    fn prepare(&mut self, scheduler: &mut dyn Scheduler, stage: &Stage) -> Result<String, RunnerError> {
        let active = self.active_prepares(scheduler.name())?.into_iter().rev().find(|p| p.key == stage.key);
        if let Some(p) = active {
            return Ok(p.handle);
        }
        let dir = stage.dir(&self.dir);
        let task = Task { job_id: stage.key.clone(), dir: dir.clone() };
        let token = new_token(&self.dir);
        let submission =
            Submission { tasks: std::slice::from_ref(&task), token: &token, work: Work::Prepare, after: None };
        let handle = scheduler.submit(&submission)?.pop().ok_or_else(|| SchedulerError::Parse {
            command: format!("{} submit", scheduler.name()),
            message: "no handle for the prepare task".into(),
        })?;
        self.db.record_prepare(scheduler.name(), &handle, &stage.key, &dir)?;
        Ok(handle)
    }

    /// Submits `ready` in chunks the scheduler accepts, each waiting for `after` if given, each
    /// journalled before the scheduler is asked. Returns how many jobs were submitted.
    fn submit_chunks(
        &mut self,
        scheduler: &mut dyn Scheduler,
        ready: &[Task],
        after: Option<&str>,
    ) -> Result<usize, RunnerError> {
        let per_task = scheduler.jobs_per_task();
        let mut submitted = 0;
        for chunk in ready.chunks(scheduler.max_batch()) {
            let token = new_token(&self.dir);
            let ids: Vec<String> = chunk.iter().map(|t| t.job_id.clone()).collect();
            self.db.journal_open(&token, scheduler.name(), &ids, per_task, after)?;
            match scheduler.submit(&Submission { tasks: chunk, token: &token, work: Work::Run, after }) {
                Ok(handles) => {
                    let pairs: Vec<(String, String)> = ids.into_iter().zip(handles).collect();
                    self.db.mark_submitted(scheduler.name(), &token, &pairs)?;
                    submitted += chunk.len();
                }
                Err(e @ SchedulerError::Ambiguous { .. }) => return Err(e.into()),
                Err(e) => {
                    self.db.journal_close(&token, "refused")?;
                    return Err(e.into());
                }
            }
        }
        Ok(submitted)
    }

    /// The plan's failed jobs grouped by the scheduler's detail or the last line of their log.
    pub fn failure_groups(&self) -> Result<FailureGroups, RunnerError> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for j in self.db.jobs()?.into_iter().filter(|j| j.state == JobState::Failed && !j.is_retired()) {
            let line = job_log(&self.dir, &j)
                .and_then(|log| last_lines(&log, 1).pop())
                .or(j.detail.clone())
                .unwrap_or_else(|| "no log and no scheduler detail".into());
            groups.entry(line).or_default().push(j.job_id);
        }
        let mut out: FailureGroups = groups.into_iter().collect();
        out.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Polls and submits until none of the plan's jobs is active and none may be retried (retired
    /// jobs still queued or running are polled meanwhile, not waited for); failed jobs are retried
    /// until `max_attempts`. Once `max_failures` attempts have failed nothing more is submitted
    /// (the circuit breaker: a config error fails every job the same way). A scheduler that does
    /// not answer is asked again at the next poll (`on_warning` hears of it), up to ten times in
    /// a row; it never changes a job's state. `on_change` sees the tally after every change. A
    /// stop request (SIGINT/SIGTERM) cancels the active jobs, which save their state, and returns.
    #[allow(clippy::too_many_arguments)]
    pub fn wait(
        &mut self,
        scheduler: &mut dyn Scheduler,
        max_queued: usize,
        max_attempts: u32,
        max_failures: u32,
        poll_every: std::time::Duration,
        mut on_change: impl FnMut(&Tally),
        mut on_warning: impl FnMut(&str),
    ) -> Result<WaitOutcome, RunnerError> {
        let mut last = Tally::default();
        let mut unanswered = 0;
        loop {
            match self.refresh(Some(scheduler)) {
                Ok(()) => unanswered = 0,
                Err(RunnerError::Scheduler(e)) if unanswered < 10 && !matches!(e, SchedulerError::Missing { .. }) => {
                    unanswered += 1;
                    on_warning(&format!("{e}; asking again in {}s ({unanswered}/10)", poll_every.as_secs()));
                    std::thread::sleep(poll_every);
                    continue;
                }
                Err(e) => return Err(e),
            }
            let failed_attempts = self.db.failed_attempts()?;
            let breaker = failed_attempts >= max_failures;
            if !breaker {
                self.submit(scheduler, max_queued, |j| match j.state {
                    JobState::Planned => true,
                    JobState::Failed => j.attempts < max_attempts,
                    _ => false,
                })?;
            }
            let tally = self.tally()?;
            if tally != last {
                on_change(&tally);
                last = tally.clone();
            }
            if crate::interrupt::requested() {
                self.cancel(scheduler)?;
                return Ok(WaitOutcome { tally: self.tally()?, stopped_by_failures: None });
            }
            if tally.get(JobState::Submitted) + tally.get(JobState::Running) == 0 {
                let stopped_by_failures = if breaker && tally.get(JobState::Planned) + tally.get(JobState::Failed) > 0 {
                    let groups = self.failure_groups()?;
                    let common = groups.first().map(|(line, ids)| format!("{} jobs: {line}", ids.len()));
                    Some(format!(
                        "{failed_attempts} attempts failed (max_failures = {max_failures}); most common error: {}",
                        common.unwrap_or_else(|| "unknown".into())
                    ))
                } else {
                    None
                };
                return Ok(WaitOutcome { tally, stopped_by_failures });
            }
            std::thread::sleep(poll_every);
        }
    }

    /// Cancels every active job and prepare task of `scheduler`'s backend, retired jobs
    /// included; returns how many jobs.
    pub fn cancel(&mut self, scheduler: &mut dyn Scheduler) -> Result<usize, RunnerError> {
        self.reconcile(scheduler)?;
        let ours = self.active_on(scheduler.name())?;
        let prepares = self.active_prepares(scheduler.name())?;
        let mut handles = task_handles(&ours);
        handles.extend(prepares.iter().map(|p| p.handle.clone()));
        scheduler.cancel(&handles)?;
        for j in &ours {
            self.db.set_state(&j.job_id, JobState::Cancelled)?;
        }
        for p in &prepares {
            self.db.set_prepare_state(p, JobState::Cancelled, None)?;
        }
        Ok(ours.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A scheduler in memory: every submission is recorded; tasks end as `outcome` says at the
    /// first poll; `ambiguous` submissions are accepted but answered with an ambiguous error.
    /// With `per_task` > 1 it packs that many jobs into a task, as Slurm does.
    #[derive(Default)]
    struct Memory {
        submissions: Vec<(String, Vec<String>)>,
        ambiguous: usize,
        unreachable: bool,
        outcome: Option<Observed>,
        per_task: usize,
        /// What each submission ran and waited for.
        afters: Vec<(Work, Option<String>)>,
        cancelled: Vec<String>,
    }

    /// The handles of `jobs` jobs submitted under `token`, `per_task` to a task.
    fn packed(token: &str, jobs: usize, per_task: usize) -> Vec<String> {
        (0..jobs).map(|i| format!("{token}_{}", i / per_task.max(1))).collect()
    }

    impl Scheduler for Memory {
        fn name(&self) -> &'static str {
            "memory"
        }
        fn jobs_per_task(&self) -> usize {
            self.per_task.max(1)
        }
        fn max_batch(&self) -> usize {
            2
        }
        fn submit(&mut self, submission: &Submission) -> Result<Vec<String>, SchedulerError> {
            let Submission { tasks, token, work, after } = *submission;
            let per_task = if work == Work::Prepare { 1 } else { self.per_task };
            let handles = packed(token, tasks.len(), per_task);
            self.afters.push((work, after.map(String::from)));
            self.submissions.push((token.to_string(), handles.clone()));
            if self.ambiguous > 0 {
                self.ambiguous -= 1;
                return Err(SchedulerError::Ambiguous { token: token.into(), why: "socket timed out".into() });
            }
            Ok(handles)
        }
        fn find_submission(
            &mut self,
            token: &str,
            jobs: usize,
            jobs_per_task: usize,
        ) -> Result<Option<Vec<String>>, SchedulerError> {
            if self.unreachable {
                return Err(SchedulerError::Failed {
                    command: "squeue".into(),
                    status: "1".into(),
                    stderr: "down".into(),
                });
            }
            Ok(self.submissions.iter().any(|(t, _)| t == token).then(|| packed(token, jobs, jobs_per_task)))
        }
        fn poll(&mut self, handles: &[String]) -> Result<HashMap<String, Observed>, SchedulerError> {
            let o = self.outcome.clone().unwrap_or(Observed::QUEUED);
            Ok(handles.iter().map(|h| (h.clone(), o.clone())).collect())
        }
        fn cancel(&mut self, handles: &[String]) -> Result<(), SchedulerError> {
            self.cancelled.extend(handles.iter().cloned());
            Ok(())
        }
    }

    fn runner(dir: &Path, jobs: usize) -> SweepRunner {
        let seeds: Vec<String> = (0..jobs).map(|s| s.to_string()).collect();
        let text = format!("[grid]\nseed = [{}]\n", seeds.join(", "));
        let plan = crate::sweep::plan_str(&text, Path::new("t.toml")).unwrap();
        SweepRunner::open(&plan, dir).unwrap()
    }

    #[test]
    fn an_ambiguous_submission_is_adopted_not_repeated() {
        let t = tempfile::tempdir().unwrap();
        let mut r = runner(t.path(), 3);
        // The first chunk (2 jobs) is accepted but answered ambiguously, and the scheduler
        // cannot be asked: the error comes back, the journal entry stays open.
        let mut s = Memory { ambiguous: 1, unreachable: true, ..Default::default() };
        assert!(matches!(
            r.submit(&mut s, 100, |_| true),
            Err(RunnerError::Scheduler(SchedulerError::Ambiguous { .. }))
        ));
        // Until the scheduler answers, nothing else is submitted.
        assert!(r.refresh(Some(&mut s)).is_err());
        assert_eq!(s.submissions.len(), 1);
        // Once it answers, the open submission is adopted; only the third job is submitted anew.
        s.unreachable = false;
        r.refresh(Some(&mut s)).unwrap();
        assert_eq!(r.tally().unwrap().get(JobState::Submitted), 2);
        assert_eq!(r.submit(&mut s, 100, |j| j.state == JobState::Planned).unwrap(), 1);
        assert_eq!(s.submissions.len(), 2);
        assert_eq!(r.submit(&mut s, 100, |j| j.state == JobState::Planned).unwrap(), 0);
        // A journal entry the scheduler does not have is closed without adopting anything.
        let mut other = Memory::default();
        r.db.journal_open("lost", "memory", &["x".into()], 1, None).unwrap();
        assert_eq!(r.reconcile(&mut other).unwrap(), 0);
        assert!(r.db.journal_open_entries("memory").unwrap().is_empty());
    }

    #[test]
    fn unknown_answers_keep_states_and_the_breaker_stops_resubmitting() {
        let t = tempfile::tempdir().unwrap();
        let mut r = runner(t.path(), 4);
        let mut s = Memory { outcome: Some(Observed::Unknown), ..Default::default() };
        r.submit(&mut s, 100, |_| true).unwrap();
        r.refresh(Some(&mut s)).unwrap();
        assert_eq!(r.tally().unwrap().get(JobState::Submitted), 4, "an unknown answer changes nothing");
        // Every task fails the same way: with max_failures = 3 the breaker opens before the
        // retries (max_attempts = 5) would submit 4 × 5 tasks.
        s.outcome = Some(Observed::Ended { success: false, detail: Some("FAILED, exit 1:0".into()) });
        let out = r.wait(&mut s, 100, 5, 3, std::time::Duration::ZERO, |_| {}, |_| {}).unwrap();
        assert_eq!(out.tally.get(JobState::Failed), 4);
        let why = out.stopped_by_failures.expect("breaker open");
        assert!(why.contains("4 attempts failed") && why.contains("4 jobs: FAILED, exit 1:0"), "{why}");
        assert_eq!(s.submissions.len(), 2, "two chunks of two, no retries");
        assert_eq!(r.failure_groups().unwrap()[0].1.len(), 4);
    }

    #[test]
    fn retired_jobs_are_polled_and_cancelled_but_never_submitted() {
        let t = tempfile::tempdir().unwrap();
        let mut s = Memory::default();
        assert_eq!(runner(t.path(), 3).submit(&mut s, 100, |_| true).unwrap(), 3);
        // Seed 2 leaves the sweep file while it is queued: it is retired, still tracked.
        let mut r = runner(t.path(), 2);
        assert_eq!(r.synced.retired.len(), 1);
        let tally = r.tally().unwrap();
        assert_eq!((tally.get(JobState::Submitted), tally.retired.get(&JobState::Submitted)), (2, Some(&1)));
        // Its end is still polled; failed, it is not retried however eligible it looks.
        s.outcome = Some(Observed::Ended { success: false, detail: Some("FAILED, exit 1:0".into()) });
        r.refresh(Some(&mut s)).unwrap();
        let tally = r.tally().unwrap();
        assert_eq!((tally.get(JobState::Failed), tally.retired.get(&JobState::Failed)), (2, Some(&1)));
        assert_eq!(r.failure_groups().unwrap()[0].1.len(), 2, "the plan's failures only");
        assert_eq!(r.submit(&mut s, 100, |_| true).unwrap(), 2);
        // Cancel stops the retired job's next attempt too once it is back and queued again.
        let mut r = runner(t.path(), 3);
        assert_eq!(r.synced.restored.len(), 1);
        assert_eq!(r.submit(&mut s, 100, |_| true).unwrap(), 1);
        let mut r = runner(t.path(), 2);
        s.outcome = None;
        assert_eq!(r.cancel(&mut s).unwrap(), 3, "two of the plan and one retired");
        assert_eq!(r.tally().unwrap().retired.get(&JobState::Cancelled), Some(&1));
    }

    #[test]
    fn packed_jobs_share_a_task_and_end_one_by_one() {
        let t = tempfile::tempdir().unwrap();
        let mut r = runner(t.path(), 3);
        let mut s = Memory { per_task: 2, ..Default::default() };
        // One place in the queue is one task: two jobs go in, packed together.
        assert_eq!(r.submit(&mut s, 1, |_| true).unwrap(), 2);
        let jobs = r.db.jobs().unwrap();
        let handles: Vec<Option<&str>> = jobs.iter().map(|j| j.handle.as_deref()).collect();
        let task = format!("{}_0", s.submissions[0].0);
        assert_eq!(handles, [Some(task.as_str()), Some(task.as_str()), None]);
        assert_eq!(r.submit(&mut s, 1, |_| true).unwrap(), 0, "the queue is full");
        // The task runs: both jobs run. It ends having completed only the first.
        s.outcome = Some(Observed::Running);
        r.refresh(Some(&mut s)).unwrap();
        assert_eq!(r.tally().unwrap().get(JobState::Running), 2);
        std::fs::write(crate::result::path_in(&jobs[0].dir), r#"{"complete": true}"#).unwrap();
        std::fs::write(jobs[1].dir.join("log.txt"), "error: out of data\n").unwrap();
        s.outcome = Some(Observed::Ended { success: false, detail: Some("FAILED, exit 1:0".into()) });
        r.refresh(Some(&mut s)).unwrap();
        let jobs = r.db.jobs().unwrap();
        assert_eq!((jobs[0].state, jobs[1].state), (JobState::Done, JobState::Failed));
        let detail = jobs[1].detail.clone().unwrap();
        let log = jobs[1].dir.join("log.txt");
        assert_eq!(
            detail,
            format!(
                "FAILED, exit 1:0; job {} (one of 2 packed into task {task}) did not complete; log {}",
                jobs[1].job_id,
                log.display()
            )
        );
        // The failed job is retried alone in a new task, packed with the job still planned.
        assert_eq!(r.submit(&mut s, 1, |j| j.state != JobState::Done).unwrap(), 2);
        let jobs = r.db.jobs().unwrap();
        let retry = format!("{}_0", s.submissions[1].0);
        assert_eq!((jobs[1].handle.as_deref(), jobs[2].handle.as_deref()), (Some(&*retry), Some(&*retry)));
        assert_eq!((jobs[0].handle.as_deref(), jobs[1].attempts), (Some(task.as_str()), 2));
    }

    #[test]
    fn an_adopted_submission_is_mapped_onto_tasks_as_it_was_packed() {
        let t = tempfile::tempdir().unwrap();
        let mut r = runner(t.path(), 2);
        let mut s = Memory { per_task: 2, ambiguous: 1, unreachable: true, ..Default::default() };
        assert!(r.submit(&mut s, 100, |_| true).is_err());
        // The sweep file's jobs_per_task changes before the submission is reconciled: the jobs
        // still get the handle of the one task they were packed into.
        s.per_task = 1;
        s.unreachable = false;
        assert_eq!(r.reconcile(&mut s).unwrap(), 1);
        let task = format!("{}_0", s.submissions[0].0);
        let handles: Vec<Option<String>> = r.db.jobs().unwrap().into_iter().map(|j| j.handle).collect();
        assert_eq!(handles, [Some(task.clone()), Some(task)]);
    }

    #[test]
    fn jobs_sharing_an_embedding_wait_for_one_prepare_task_and_fail_with_it() {
        let t = tempfile::tempdir().unwrap();
        // Three seeds share one RotNet (fixed seed; an unusual width, so no real cache has it),
        // a fourth job needs no embedding.
        let text = "[base]\ninit.embedding = \"rotnet\"\nrotnet.seed = 0\nrotnet.width = 3\n\
                    [grid]\nseed = [0, 1, 2]\n[[include]]\ninit.embedding = \"none\"\n";
        let plan = crate::sweep::plan_str(text, Path::new("t.toml")).unwrap();
        assert!(!plan.stages[0].is_cached());
        let mut r = SweepRunner::open(&plan, t.path()).unwrap();
        let mut s = Memory { per_task: 2, ..Default::default() };
        assert_eq!(r.submit(&mut s, 100, |_| true).unwrap(), 4);
        let prepare = format!("{}_0", s.submissions[0].0);
        // The prepare task first, then the jobs that wait for it (two chunks of max_batch 2),
        // then the job that shares nothing, waiting for nothing.
        assert_eq!(
            s.afters,
            [
                (Work::Prepare, None),
                (Work::Run, Some(prepare.clone())),
                (Work::Run, Some(prepare.clone())),
                (Work::Run, None)
            ]
        );
        // Every job of the stage waits for that one task.
        let jobs = r.db.jobs().unwrap();
        assert_eq!(jobs.iter().filter(|j| j.after.as_deref() == Some(&*prepare)).count(), 3);
        // The prepare task fails: the jobs waiting for it never start; they fail naming it and
        // its log, and are cancelled at the scheduler (Slurm would keep them pending).
        s.outcome = Some(Observed::DependencyFailed);
        let mut observed = HashMap::new();
        observed.insert(prepare.clone(), Observed::Ended { success: false, detail: Some("FAILED, exit 1:0".into()) });
        r.refresh_prepares(&r.db.prepares().unwrap(), &observed).unwrap();
        std::fs::create_dir_all(plan.stages[0].dir(t.path())).unwrap();
        std::fs::write(plan.stages[0].dir(t.path()).join("log.txt"), "error: no data\n").unwrap();
        r.refresh(Some(&mut s)).unwrap();
        let jobs = r.db.jobs().unwrap();
        let failed: Vec<&TrackedJob> = jobs.iter().filter(|j| j.state == JobState::Failed).collect();
        assert_eq!(failed.len(), 4, "the fake fails every waiting task, the fourth one too");
        let detail = failed[0].detail.clone().unwrap();
        let log = plan.stages[0].dir(t.path()).join("log.txt");
        assert_eq!(
            detail,
            format!(
                "never started: its prepare job {prepare} (RotNet embedding {}) failed (FAILED, exit 1:0); log {}",
                plan.stages[0].key,
                log.display()
            )
        );
        assert!(s.cancelled.contains(&failed[0].handle.clone().unwrap()));
        // A retry submits a new prepare task: the failed one is never waited for again.
        s.outcome = None;
        let before = s.submissions.len();
        assert_eq!(r.submit(&mut s, 100, |j| j.state == JobState::Failed).unwrap(), 4);
        assert_eq!(s.afters[before].0, Work::Prepare);
        let again = format!("{}_0", s.submissions[before].0);
        assert_eq!(s.afters[before + 1], (Work::Run, Some(again)));
        assert_eq!(r.db.prepares().unwrap().len(), 2);
    }
}
