//! This machine as a scheduler: `ssal run` (and `ssal prepare`) child processes, one at a time
//! per device slot (each slot may pin a GPU through `CUDA_VISIBLE_DEVICES`), output appended to
//! the task's log. A task submitted after a prepare task starts once that has succeeded, and is
//! reported as never starting if it did not.
use super::{Observed, RunCommand, Scheduler, SchedulerError, Submission, Task, Work};
use std::collections::{HashMap, VecDeque};
use std::process::{Child, Command, Stdio};

/// A task waiting for a slot: its handle, what it runs, and the handle it waits for.
struct Queued {
    handle: String,
    task: Task,
    work: Work,
    after: Option<String>,
}

/// Where a queued task's `after` stands.
#[derive(PartialEq)]
enum Dependency {
    Met,
    Waiting,
    /// Failed, cancelled, or unknown to this process (a task of an earlier process, which
    /// ended with it): the task can never start.
    Failed,
}

/// Runs tasks as child processes on this machine.
pub struct LocalScheduler {
    run: RunCommand,
    /// One entry per slot: the `CUDA_VISIBLE_DEVICES` value it sets, or none.
    slots: Vec<Option<String>>,
    busy: Vec<Option<(String, Child)>>,
    queue: VecDeque<Queued>,
    ended: HashMap<String, Observed>,
}

impl LocalScheduler {
    /// A scheduler with one slot per entry of `devices` (GPU ids), or a single slot when empty.
    pub fn new(devices: &[String], checkpoint_every: u64) -> Result<Self, SchedulerError> {
        let hint = "the local backend runs jobs with this binary; use the full build";
        let run = RunCommand::for_jobs(None, hint, checkpoint_every)?;
        let slots: Vec<Option<String>> =
            if devices.is_empty() { vec![None] } else { devices.iter().cloned().map(Some).collect() };
        let busy = slots.iter().map(|_| None).collect();
        Ok(LocalScheduler { run, slots, busy, queue: VecDeque::new(), ended: HashMap::new() })
    }

    fn start(&self, task: &Task, work: Work, slot: usize) -> Result<Child, SchedulerError> {
        let log_path = task.dir.join("log.txt");
        let open = || std::fs::OpenOptions::new().create(true).append(true).open(&log_path);
        let io = |e: std::io::Error| SchedulerError::Io(format!("{}: {e}", log_path.display()));
        let (stdout, stderr) = (open().map_err(io)?, open().map_err(io)?);
        let mut cmd = self.run.command(work, &task.dir);
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        if let Some(device) = &self.slots[slot] {
            cmd.env("CUDA_VISIBLE_DEVICES", device);
        }
        cmd.spawn().map_err(|e| SchedulerError::Io(format!("cannot start {}: {e}", self.run.ssal.display())))
    }

    /// Reaps finished children and starts queued tasks in free slots.
    fn step(&mut self) -> Result<(), SchedulerError> {
        for slot in 0..self.busy.len() {
            if let Some((handle, child)) = &mut self.busy[slot] {
                let status = child.try_wait().map_err(|e| SchedulerError::Io(e.to_string()))?;
                if let Some(status) = status {
                    let observed = match status.code() {
                        Some(code) if code == i32::from(crate::interrupt::EXIT_INTERRUPTED) => Observed::Cancelled,
                        None => Observed::Cancelled,
                        Some(code) => Observed::Ended { success: code == 0, detail: Some(format!("exit code {code}")) },
                    };
                    self.ended.insert(handle.clone(), observed);
                    self.busy[slot] = None;
                }
            }
            if self.busy[slot].is_none() {
                let ready = self.queue.iter().position(|q| self.dependency(q.after.as_deref()) == Dependency::Met);
                if let Some(q) = ready.and_then(|i| self.queue.remove(i)) {
                    let child = self.start(&q.task, q.work, slot)?;
                    self.busy[slot] = Some((q.handle, child));
                }
            }
        }
        Ok(())
    }

    /// Whether a task waiting for `after` may start.
    fn dependency(&self, after: Option<&str>) -> Dependency {
        let Some(after) = after else { return Dependency::Met };
        match self.ended.get(after) {
            Some(Observed::Ended { success: true, .. }) => Dependency::Met,
            Some(_) => Dependency::Failed,
            None if self.queue.iter().any(|q| q.handle == after) => Dependency::Waiting,
            None if self.busy.iter().flatten().any(|(h, _)| h == after) => Dependency::Waiting,
            None => Dependency::Failed,
        }
    }
}

impl Scheduler for LocalScheduler {
    fn name(&self) -> &'static str {
        "local"
    }

    fn max_batch(&self) -> usize {
        usize::MAX
    }

    fn submit(&mut self, submission: &Submission) -> Result<Vec<String>, SchedulerError> {
        let Submission { tasks, work, after, .. } = *submission;
        let prefix = if work == Work::Prepare { "local-prepare" } else { "local" };
        let handles: Vec<String> =
            tasks.iter().map(|t| format!("{prefix}-{}-{}", std::process::id(), t.job_id)).collect();
        self.queue.extend(handles.iter().zip(tasks).map(|(handle, task)| Queued {
            handle: handle.clone(),
            task: task.clone(),
            work,
            after: after.map(String::from),
        }));
        self.step()?;
        Ok(handles)
    }

    /// Local tasks are children of the process that submitted them and end with it: a
    /// submission of an earlier process is never running any more.
    fn find_submission(
        &mut self,
        _token: &str,
        _jobs: usize,
        _jobs_per_task: usize,
    ) -> Result<Option<Vec<String>>, SchedulerError> {
        Ok(None)
    }

    fn poll(&mut self, handles: &[String]) -> Result<HashMap<String, Observed>, SchedulerError> {
        self.step()?;
        let mut known: HashMap<String, Observed> = self.ended.clone();
        known.extend(self.queue.iter().map(|q| {
            let observed = match self.dependency(q.after.as_deref()) {
                Dependency::Failed => Observed::DependencyFailed,
                Dependency::Met | Dependency::Waiting => Observed::QUEUED,
            };
            (q.handle.clone(), observed)
        }));
        known.extend(self.busy.iter().flatten().map(|(h, _)| (h.clone(), Observed::Running)));
        Ok(handles.iter().filter_map(|h| known.get(h).map(|o| (h.clone(), o.clone()))).collect())
    }

    fn cancel(&mut self, handles: &[String]) -> Result<(), SchedulerError> {
        self.queue.retain(|q| !handles.contains(&q.handle));
        for h in handles {
            self.ended.entry(h.clone()).or_insert(Observed::Cancelled);
        }
        for (handle, child) in self.busy.iter_mut().flatten() {
            if handles.contains(handle) {
                // SIGTERM, so the run saves its training state before it exits.
                let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
                let _ = child.wait();
            }
        }
        self.step()
    }
}
