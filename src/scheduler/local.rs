//! This machine as a scheduler: `ssal run` child processes, one at a time per device slot
//! (each slot may pin a GPU through `CUDA_VISIBLE_DEVICES`), output appended to the job's log.
use super::{Observed, RunCommand, Scheduler, SchedulerError, Task};
use std::collections::{HashMap, VecDeque};
use std::process::{Child, Command, Stdio};

/// Runs tasks as child processes on this machine.
pub struct LocalScheduler {
    run: RunCommand,
    /// One entry per slot: the `CUDA_VISIBLE_DEVICES` value it sets, or none.
    slots: Vec<Option<String>>,
    busy: Vec<Option<(String, Child)>>,
    queue: VecDeque<(String, Task)>,
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

    fn start(&self, task: &Task, slot: usize) -> Result<Child, SchedulerError> {
        let log_path = task.dir.join("log.txt");
        let open = || std::fs::OpenOptions::new().create(true).append(true).open(&log_path);
        let io = |e: std::io::Error| SchedulerError::Io(format!("{}: {e}", log_path.display()));
        let (stdout, stderr) = (open().map_err(io)?, open().map_err(io)?);
        let mut cmd = self.run.command(&task.dir);
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
                if let Some((handle, task)) = self.queue.pop_front() {
                    let child = self.start(&task, slot)?;
                    self.busy[slot] = Some((handle, child));
                }
            }
        }
        Ok(())
    }
}

impl Scheduler for LocalScheduler {
    fn name(&self) -> &'static str {
        "local"
    }

    fn max_batch(&self) -> usize {
        usize::MAX
    }

    fn submit(&mut self, tasks: &[Task], _token: &str) -> Result<Vec<String>, SchedulerError> {
        let handles: Vec<String> = tasks.iter().map(|t| format!("local-{}-{}", std::process::id(), t.job_id)).collect();
        self.queue.extend(handles.iter().cloned().zip(tasks.iter().cloned()));
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
        known.extend(self.queue.iter().map(|(h, _)| (h.clone(), Observed::QUEUED)));
        known.extend(self.busy.iter().flatten().map(|(h, _)| (h.clone(), Observed::Running)));
        Ok(handles.iter().filter_map(|h| known.get(h).map(|o| (h.clone(), o.clone()))).collect())
    }

    fn cancel(&mut self, handles: &[String]) -> Result<(), SchedulerError> {
        self.queue.retain(|(h, _)| !handles.contains(h));
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
