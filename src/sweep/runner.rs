//! The sweep's state machine, written once against the `Scheduler` trait: submit what may run,
//! refresh states from one scheduler poll plus the jobs' result files, retry failures, cancel.
use super::{JobState, Plan, StateDb, StateError, TrackedJob};
use crate::scheduler::{Observed, Scheduler, SchedulerError, Task};
use std::collections::BTreeMap;
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
}

/// Jobs per state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally(pub BTreeMap<JobState, usize>);

impl Tally {
    /// Jobs in `state`.
    pub fn get(&self, state: JobState) -> usize {
        self.0.get(&state).copied().unwrap_or(0)
    }
}

/// A planned sweep on disk with its state database.
pub struct SweepRunner {
    pub dir: PathBuf,
    pub db: StateDb,
}

/// Whether `dir/result.json` is a complete result.
fn has_complete_result(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("result.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v["complete"] == serde_json::Value::Bool(true))
}

impl SweepRunner {
    /// Writes the plan under `dir` (configs, plan.tsv) and records its jobs in `dir/state.db`.
    pub fn open(plan: &Plan, dir: &Path) -> Result<Self, RunnerError> {
        plan.write(dir)?;
        let mut db = StateDb::open(&dir.join("state.db"))?;
        let jobs: Vec<(String, PathBuf)> =
            plan.jobs.iter().map(|j| (j.id.clone(), dir.join("jobs").join(&j.id))).collect();
        db.sync_plan(&jobs)?;
        Ok(SweepRunner { dir: dir.to_path_buf(), db })
    }

    /// Jobs per state.
    pub fn tally(&self) -> Result<Tally, RunnerError> {
        let mut t = Tally::default();
        for j in self.db.jobs()? {
            *t.0.entry(j.state).or_default() += 1;
        }
        Ok(t)
    }

    /// Brings every job's state up to date: a complete result file means done; active jobs of
    /// `scheduler`'s backend are looked up in one poll; an active job its scheduler no longer
    /// knows, or that ended without a complete result, has failed.
    pub fn refresh(&mut self, scheduler: Option<&mut dyn Scheduler>) -> Result<(), RunnerError> {
        let jobs = self.db.jobs()?;
        let mut active: Vec<&TrackedJob> = Vec::new();
        for j in &jobs {
            if j.state != JobState::Done && has_complete_result(&j.dir) {
                self.db.set_state(&j.job_id, JobState::Done)?;
            } else if j.state.is_active() {
                active.push(j);
            }
        }
        let Some(scheduler) = scheduler else { return Ok(()) };
        let ours: Vec<&TrackedJob> =
            active.into_iter().filter(|j| j.backend.as_deref() == Some(scheduler.name())).collect();
        if ours.is_empty() {
            return Ok(());
        }
        let handles: Vec<String> = ours.iter().filter_map(|j| j.handle.clone()).collect();
        let observed = scheduler.poll(&handles)?;
        for j in ours {
            let seen = j.handle.as_ref().and_then(|h| observed.get(h)).copied();
            let state = match seen {
                Some(Observed::Queued) => JobState::Submitted,
                Some(Observed::Running) => JobState::Running,
                Some(Observed::Cancelled) => JobState::Cancelled,
                Some(Observed::Ended { .. }) | None if has_complete_result(&j.dir) => JobState::Done,
                Some(Observed::Ended { .. }) | None => JobState::Failed,
            };
            if state != j.state {
                self.db.set_state(&j.job_id, state)?;
            }
        }
        Ok(())
    }

    /// Submits jobs that are not done and not active and satisfy `eligible`, keeping at most
    /// `max_queued` of the sweep's jobs active, in chunks the scheduler accepts. Returns how many.
    pub fn submit(
        &mut self,
        scheduler: &mut dyn Scheduler,
        max_queued: usize,
        eligible: impl Fn(&TrackedJob) -> bool,
    ) -> Result<usize, RunnerError> {
        let jobs = self.db.jobs()?;
        let active = jobs.iter().filter(|j| j.state.is_active()).count();
        let room = max_queued.saturating_sub(active);
        let ready: Vec<Task> = jobs
            .iter()
            .filter(|j| !j.state.is_active() && j.state != JobState::Done && eligible(j))
            .take(room)
            .map(|j| Task { job_id: j.job_id.clone(), dir: j.dir.clone() })
            .collect();
        for chunk in ready.chunks(scheduler.max_batch()) {
            let handles = scheduler.submit(chunk)?;
            let pairs: Vec<(String, String)> = chunk.iter().map(|t| t.job_id.clone()).zip(handles).collect();
            self.db.mark_submitted(scheduler.name(), &pairs)?;
        }
        Ok(ready.len())
    }

    /// Polls and submits until no job is active and none may be retried; failed jobs are retried
    /// until `max_attempts`. `on_change` sees the tally after every change. A stop request
    /// (SIGINT/SIGTERM) cancels the active jobs, which save their state, and returns.
    pub fn wait(
        &mut self,
        scheduler: &mut dyn Scheduler,
        max_queued: usize,
        max_attempts: u32,
        poll_every: std::time::Duration,
        mut on_change: impl FnMut(&Tally),
    ) -> Result<Tally, RunnerError> {
        let mut last = Tally::default();
        loop {
            self.refresh(Some(scheduler))?;
            self.submit(scheduler, max_queued, |j| match j.state {
                JobState::Planned => true,
                JobState::Failed => j.attempts < max_attempts,
                _ => false,
            })?;
            let tally = self.tally()?;
            if tally != last {
                on_change(&tally);
                last = tally.clone();
            }
            if crate::interrupt::requested() {
                self.cancel(scheduler)?;
                return self.tally();
            }
            if tally.get(JobState::Submitted) + tally.get(JobState::Running) == 0 {
                return Ok(tally);
            }
            std::thread::sleep(poll_every);
        }
    }

    /// Cancels every active job of `scheduler`'s backend.
    pub fn cancel(&mut self, scheduler: &mut dyn Scheduler) -> Result<usize, RunnerError> {
        let ours: Vec<TrackedJob> = self
            .db
            .jobs()?
            .into_iter()
            .filter(|j| j.state.is_active() && j.backend.as_deref() == Some(scheduler.name()))
            .collect();
        let handles: Vec<String> = ours.iter().filter_map(|j| j.handle.clone()).collect();
        scheduler.cancel(&handles)?;
        for j in &ours {
            self.db.set_state(&j.job_id, JobState::Cancelled)?;
        }
        Ok(ours.len())
    }
}
