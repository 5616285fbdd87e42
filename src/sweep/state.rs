//! The state of a sweep's jobs in SQLite (`results/<sweep>/state.db`, WAL): which backend has
//! each job under which handle, how often it was tried, where its result and log go, and whether
//! it is still in the sweep file's plan (a job whose values left the file is retired), and
//! re-keying the jobs an older ssal planned under its ids (see [`StateDb::sync_plan`]).
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Where a job stands. `Done` means a complete `result.json` exists; nothing else does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobState {
    Planned,
    Submitted,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    /// Every state, in display order.
    pub const ALL: [JobState; 6] = [
        JobState::Planned,
        JobState::Submitted,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The name stored in the database and shown in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Planned => "planned",
            JobState::Submitted => "submitted",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Queued or running somewhere: not to be submitted again.
    pub fn is_active(self) -> bool {
        matches!(self, JobState::Submitted | JobState::Running)
    }
}

/// One job's row.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedJob {
    pub job_id: String,
    pub plan_index: usize,
    pub backend: Option<String>,
    /// The scheduler's name for the task (Slurm: `<array job id>_<task index>`).
    pub handle: Option<String>,
    pub state: JobState,
    pub attempts: u32,
    pub submitted_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub dir: PathBuf,
    /// What the scheduler said of the last attempt's end (Slurm: state, exit code, time, node).
    pub detail: Option<String>,
    /// Why a queued job waits (Slurm's pending reason).
    pub pending_reason: Option<String>,
    /// The axis values that define the job (`[seed=0, method=mixmatch]`), as last planned.
    pub axes: Option<String>,
    /// When the job left the plan (its values were removed from the sweep file); `None` while it
    /// is in the plan. A retired job keeps its state, result and handle but is never submitted;
    /// `plan_index` is then its index in the last plan that held it.
    pub retired_at: Option<i64>,
    /// The handle of the prepare task the current attempt waits for (it was submitted with a
    /// dependency on it), if any.
    pub after: Option<String>,
}

impl TrackedJob {
    /// No longer in the sweep file's plan: never submitted, not counted with the plan's jobs.
    pub fn is_retired(&self) -> bool {
        self.retired_at.is_some()
    }
}

/// One job of the current plan, as [`StateDb::sync_plan`] records it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedJob {
    pub id: String,
    /// The id an older ssal gave the same config (the hash of the whole config, see
    /// [`crate::config::ExperimentConfig::legacy_content_hash`]): a known job under it is this
    /// job, and is re-keyed.
    pub legacy_id: Option<String>,
    pub dir: PathBuf,
    /// The axis values that define it, for people reading `status`.
    pub axes: String,
}

/// What [`StateDb::sync_plan`] changed: the job ids it retired (known, not in the plan), the
/// retired ones it restored (in the plan again) and the jobs it re-keyed from an older ssal's
/// ids to the plan's (old id, new id).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanSync {
    pub retired: Vec<String>,
    pub restored: Vec<String>,
    pub rekeyed: Vec<(String, String)>,
}

/// Errors of the state database, naming its path.
#[derive(Debug, thiserror::Error)]
#[error("sweep state {path}: {source}")]
pub struct StateError {
    pub path: PathBuf,
    pub source: rusqlite::Error,
}

/// Errors of [`StateDb::sync_plan`]: the database's, or a job that cannot be re-keyed because
/// the plan's directory for its new id is taken (nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "cannot re-key job {old} (an older ssal's id) as {new}: {link} {problem}; nothing was changed — move \
         {link} away and run the command again"
    )]
    Rekey { old: String, new: String, link: PathBuf, problem: String },
}

/// Makes `link` (the plan's directory for a job's new id) a symbolic link to `dir` (where the
/// job has its files under its old id), so that whatever reaches the job by its id — a Slurm
/// array task, `sweep plan`'s config, a person — finds them, while the files stay where they
/// are (the results store keys runs by that path). Idempotent: a link already there is kept; a
/// directory there holding no more than a `config.toml` (written by planning) is replaced;
/// anything else is an error (the problem, for [`SyncError::Rekey`]).
fn link_job_dir(dir: &Path, link: &Path) -> Result<(), String> {
    let target = match (dir.parent(), link.parent(), dir.file_name()) {
        (Some(a), Some(b), Some(name)) if a == b => PathBuf::from(name),
        _ => dir.to_path_buf(),
    };
    match std::fs::symlink_metadata(link) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot be read: {e}")),
        Ok(m) if m.is_symlink() => {
            let same =
                std::fs::canonicalize(link).ok().zip(std::fs::canonicalize(dir).ok()).is_some_and(|(a, b)| a == b);
            return if same { Ok(()) } else { Err(format!("is a link that does not lead to {}", dir.display())) };
        }
        Ok(m) if m.is_dir() => {
            let entries: Vec<_> = std::fs::read_dir(link)
                .and_then(|d| d.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>())
                .map_err(|e| format!("cannot be read: {e}"))?;
            if entries.iter().any(|n| n != "config.toml") {
                return Err("holds files of its own".into());
            }
            let _ = std::fs::remove_file(link.join("config.toml"));
            std::fs::remove_dir(link).map_err(|e| format!("cannot be removed: {e}"))?;
        }
        Ok(_) => return Err("is not a directory".into()),
    }
    std::os::unix::fs::symlink(&target, link).map_err(|e| format!("cannot be made a link to {}: {e}", dir.display()))
}

/// The state database of one sweep.
pub struct StateDb {
    conn: Connection,
    path: PathBuf,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    plan_index INTEGER NOT NULL,
    config_hash TEXT NOT NULL,
    backend TEXT,
    handle TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    planned_at INTEGER NOT NULL,
    submitted_at INTEGER,
    finished_at INTEGER,
    updated_at INTEGER NOT NULL,
    dir TEXT NOT NULL,
    result_path TEXT NOT NULL,
    log_path TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
-- The submission journal: a chunk is written here, with the token its scheduler submission
-- carries, before the scheduler is asked; accepted or refused closes it. An entry still open
-- after a crash or an ambiguous answer is reconciled by looking the token up.
CREATE TABLE IF NOT EXISTS submissions (
    token TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    job_ids TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    closed_at INTEGER
);
-- Prepare tasks (work several jobs share, run once before them), newest last.
CREATE TABLE IF NOT EXISTS prepares (
    backend TEXT NOT NULL,
    handle TEXT NOT NULL,
    key TEXT NOT NULL,
    dir TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT,
    submitted_at INTEGER NOT NULL,
    PRIMARY KEY (backend, handle)
);
-- Every attempt's end as the scheduler reported it.
CREATE TABLE IF NOT EXISTS attempts (
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    handle TEXT,
    state TEXT NOT NULL,
    detail TEXT,
    ended_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
";

/// A prepare task of the sweep (one stage's shared work, e.g. a RotNet embedding), as handed
/// to a backend: what its dependants' failures name.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedPrepare {
    pub backend: String,
    pub handle: String,
    /// The stage's key (the embedding's cache key).
    pub key: String,
    /// The stage's directory (its `config.toml` and `log.txt`).
    pub dir: PathBuf,
    pub state: JobState,
    /// What the scheduler said of its end.
    pub detail: Option<String>,
}

/// Columns added after the first version, as (table, column, definition): an older database
/// gets them, empty, when it is opened (no job of it is retired until a plan without it is
/// synced; a submission without `jobs_per_task` packed one job per task; one without `after`
/// waited for nothing).
const ADDED_COLUMNS: [(&str, &str, &str); 7] = [
    ("jobs", "detail", "TEXT"),
    ("jobs", "pending_reason", "TEXT"),
    ("jobs", "axes", "TEXT"),
    ("jobs", "retired_at", "INTEGER"),
    ("submissions", "jobs_per_task", "INTEGER"),
    ("jobs", "after", "TEXT"),
    ("submissions", "after", "TEXT"),
];

/// An open journal entry: a submission being made when an earlier call stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenSubmission {
    pub token: String,
    /// The jobs handed over, in submission order.
    pub job_ids: Vec<String>,
    /// How many jobs the scheduler packed into each of its tasks.
    pub jobs_per_task: usize,
}

impl StateDb {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let err = |source| StateError { path: path.to_path_buf(), source };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        for (table, column, kind) in ADDED_COLUMNS {
            let present: bool = conn
                .query_row("SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2", [table, column], |r| r.get(0))
                .map_err(err)?;
            if !present {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}")).map_err(err)?;
            }
        }
        Ok(StateDb { conn, path: path.to_path_buf() })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StateError + '_ {
        move |source| StateError { path: self.path.clone(), source }
    }

    /// Records the plan's jobs: new ones as planned; known ones keep their state, take their new
    /// plan index and axes and, if they were retired, are restored. Known jobs missing from the
    /// plan are retired (state, handle and attempts untouched). One transaction.
    ///
    /// First, a known job whose id is a planned job's legacy id (an older ssal planned it) is
    /// re-keyed to the plan's id, whatever its state, before anything is compared: its row, its
    /// attempts and the journal entries naming it take the new id; it keeps its state, handle
    /// and directory (`dir`, where its result and log are), and the plan's directory for the new
    /// id becomes a symbolic link to that directory (made before the transaction commits, so a
    /// crash in between leaves a link that the next sync finds in place). A job queued or
    /// running under its old id goes on undisturbed: its task still finds its directory by the
    /// old name. A legacy job whose new id is already known is left alone (and retired).
    pub fn sync_plan(&mut self, jobs: &[PlannedJob]) -> Result<PlanSync, SyncError> {
        let t = now();
        let path = self.path.clone();
        let err = |source| StateError { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        let mut sync = PlanSync::default();
        let ids: HashSet<String> = {
            let mut stmt = tx.prepare("SELECT job_id FROM jobs").map_err(err)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(err)?;
            rows.collect::<Result<_, _>>().map_err(err)?
        };
        for job in jobs {
            let Some(legacy) = job.legacy_id.as_ref().filter(|l| **l != job.id && ids.contains(*l)) else { continue };
            if ids.contains(&job.id) {
                continue;
            }
            let dir: Option<String> = tx
                .query_row("SELECT dir FROM jobs WHERE job_id = ?1", [legacy], |r| r.get(0))
                .optional()
                .map_err(err)?;
            // Where its files are: the directory under its old id next to the plan's (this
            // sweep's own), else the recorded one; with neither, nothing on disk to keep, and it
            // takes the plan's directory. The sibling comes first: a sweep directory that was
            // copied or moved records the original's paths, and linking there would let this
            // sweep write into the original.
            let recorded = PathBuf::from(dir.unwrap_or_default());
            let sibling = job.dir.with_file_name(legacy);
            let found = [&sibling, &recorded].into_iter().find(|d| d.is_dir()).cloned();
            if let Some(found) = &found {
                link_job_dir(found, &job.dir).map_err(|problem| SyncError::Rekey {
                    old: legacy.clone(),
                    new: job.id.clone(),
                    link: job.dir.clone(),
                    problem,
                })?;
            }
            let dir = found.unwrap_or_else(|| job.dir.clone());
            if dir != recorded {
                tx.execute(
                    "UPDATE jobs SET dir = ?2, result_path = ?3, log_path = ?4 WHERE job_id = ?1",
                    params![
                        legacy,
                        dir.to_string_lossy(),
                        crate::result::path_in(&dir).to_string_lossy(),
                        dir.join("log.txt").to_string_lossy()
                    ],
                )
                .map_err(err)?;
            }
            tx.execute(
                "UPDATE jobs SET job_id = ?2, config_hash = ?2, updated_at = ?3 WHERE job_id = ?1",
                params![legacy, job.id, t],
            )
            .map_err(err)?;
            tx.execute("UPDATE attempts SET job_id = ?2 WHERE job_id = ?1", params![legacy, job.id]).map_err(err)?;
            sync.rekeyed.push((legacy.clone(), job.id.clone()));
        }
        if !sync.rekeyed.is_empty() {
            let renamed: HashMap<&str, &str> = sync.rekeyed.iter().map(|(o, n)| (o.as_str(), n.as_str())).collect();
            let entries: Vec<(String, String)> = {
                let mut stmt = tx.prepare("SELECT token, job_ids FROM submissions").map_err(err)?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(err)?;
                rows.collect::<Result<_, _>>().map_err(err)?
            };
            for (token, text) in entries {
                let Ok(old) = serde_json::from_str::<Vec<String>>(&text) else { continue };
                let new: Vec<String> = old
                    .iter()
                    .map(|id| renamed.get(id.as_str()).map_or_else(|| id.clone(), |n| n.to_string()))
                    .collect();
                if new != old {
                    let text = serde_json::to_string(&new).expect("strings serialise");
                    tx.execute("UPDATE submissions SET job_ids = ?2 WHERE token = ?1", params![token, text])
                        .map_err(err)?;
                }
            }
        }
        let known: Vec<(String, bool)> = {
            let mut stmt =
                tx.prepare("SELECT job_id, retired_at IS NOT NULL FROM jobs ORDER BY plan_index").map_err(err)?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(err)?;
            rows.collect::<Result<_, _>>().map_err(err)?
        };
        let planned: HashSet<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        for (id, retired) in known {
            match (planned.contains(id.as_str()), retired) {
                (false, false) => {
                    tx.execute("UPDATE jobs SET retired_at = ?2, updated_at = ?2 WHERE job_id = ?1", params![id, t])
                        .map_err(err)?;
                    sync.retired.push(id);
                }
                (true, true) => sync.restored.push(id),
                _ => {}
            }
        }
        for (index, job) in jobs.iter().enumerate() {
            tx.execute(
                "INSERT INTO jobs (job_id, plan_index, config_hash, state, planned_at, updated_at, dir, result_path, log_path, axes)
                 VALUES (?1, ?2, ?1, 'planned', ?3, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(job_id) DO UPDATE SET plan_index = excluded.plan_index, axes = excluded.axes,
                     retired_at = NULL",
                params![
                    job.id,
                    index as i64,
                    t,
                    job.dir.to_string_lossy(),
                    crate::result::path_in(&job.dir).to_string_lossy(),
                    job.dir.join("log.txt").to_string_lossy(),
                    job.axes
                ],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(sync)
    }

    /// All jobs: the plan's in plan order, then the retired ones (by their last plan index).
    pub fn jobs(&self) -> Result<Vec<TrackedJob>, StateError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT job_id, plan_index, backend, handle, state, attempts, submitted_at, finished_at, dir,
                        detail, pending_reason, axes, retired_at, after
                 FROM jobs ORDER BY retired_at IS NOT NULL, plan_index, job_id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                let state: String = r.get(4)?;
                Ok(TrackedJob {
                    job_id: r.get(0)?,
                    plan_index: r.get::<_, i64>(1)? as usize,
                    backend: r.get(2)?,
                    handle: r.get(3)?,
                    state: JobState::parse(&state).unwrap_or(JobState::Failed),
                    attempts: r.get::<_, i64>(5)? as u32,
                    submitted_at: r.get(6)?,
                    finished_at: r.get(7)?,
                    dir: PathBuf::from(r.get::<_, String>(8)?),
                    detail: r.get(9)?,
                    pending_reason: r.get(10)?,
                    axes: r.get(11)?,
                    retired_at: r.get(12)?,
                    after: r.get(13)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Opens a journal entry for a chunk about to be submitted under `token`, `jobs_per_task` to
    /// a scheduler task, waiting for the prepare task `after` if given: committed before the
    /// scheduler is asked, so that a crash in between leaves a trace to reconcile (and the
    /// packing to map the jobs onto the tasks found, and the dependency their failure names).
    pub fn journal_open(
        &mut self,
        token: &str,
        backend: &str,
        job_ids: &[String],
        jobs_per_task: usize,
        after: Option<&str>,
    ) -> Result<(), StateError> {
        let ids = serde_json::to_string(job_ids).expect("strings serialise");
        self.conn
            .execute(
                "INSERT INTO submissions (token, backend, job_ids, state, created_at, jobs_per_task, after)
                 VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6)",
                params![token, backend, ids, now(), jobs_per_task as i64, after],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Closes a journal entry without submitting its jobs (`refused`, `not_found`).
    pub fn journal_close(&self, token: &str, state: &str) -> Result<(), StateError> {
        self.conn
            .execute("UPDATE submissions SET state = ?2, closed_at = ?3 WHERE token = ?1", params![token, state, now()])
            .map_err(self.err())?;
        Ok(())
    }

    /// The open journal entries of `backend`, oldest first.
    pub fn journal_open_entries(&self, backend: &str) -> Result<Vec<OpenSubmission>, StateError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT token, job_ids, jobs_per_task FROM submissions WHERE state = 'open' AND backend = ?1
                 ORDER BY created_at",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([backend], |r| {
                let ids: String = r.get(1)?;
                Ok(OpenSubmission {
                    token: r.get(0)?,
                    job_ids: serde_json::from_str(&ids).unwrap_or_default(),
                    jobs_per_task: r.get::<_, Option<i64>>(2)?.map_or(1, |n| n.max(1) as usize),
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Marks jobs as handed to `backend` under `handles` (one more attempt each, waiting for the
    /// entry's `after`) and closes the journal entry `token` as accepted, in one transaction.
    pub fn mark_submitted(
        &mut self,
        backend: &str,
        token: &str,
        submitted: &[(String, String)],
    ) -> Result<(), StateError> {
        let t = now();
        let path = self.path.clone();
        let err = |source| StateError { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        for (id, handle) in submitted {
            tx.execute(
                "UPDATE jobs SET backend = ?2, handle = ?3, state = 'submitted', attempts = attempts + 1,
                 submitted_at = ?4, finished_at = NULL, updated_at = ?4, detail = NULL, pending_reason = NULL,
                 after = (SELECT after FROM submissions WHERE token = ?5)
                 WHERE job_id = ?1",
                params![id, backend, handle, t, token],
            )
            .map_err(err)?;
        }
        tx.execute("UPDATE submissions SET state = 'accepted', closed_at = ?2 WHERE token = ?1", params![token, t])
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Records how a job's current attempt ended (its state and the scheduler's detail).
    pub fn record_end(&self, job: &TrackedJob, state: JobState, detail: Option<&str>) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO attempts VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![job.job_id, job.attempts, job.handle, state.as_str(), detail, now()],
            )
            .map_err(self.err())?;
        self.conn
            .execute("UPDATE jobs SET detail = ?2 WHERE job_id = ?1", params![job.job_id, detail])
            .map_err(self.err())?;
        Ok(())
    }

    /// How many attempts of the plan's jobs ended failed (the circuit breaker's count). Retired
    /// jobs' attempts do not count: removing a broken value from the sweep file and resuming
    /// does not find the breaker already open.
    pub fn failed_attempts(&self) -> Result<u32, StateError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM attempts a JOIN jobs j ON j.job_id = a.job_id
                 WHERE a.state = 'failed' AND j.retired_at IS NULL",
                [],
                |r| r.get(0),
            )
            .map_err(self.err())
    }

    /// Sets why a queued job waits (`None` once it no longer does).
    pub fn set_pending_reason(&self, job_id: &str, reason: Option<&str>) -> Result<(), StateError> {
        self.conn
            .execute("UPDATE jobs SET pending_reason = ?2 WHERE job_id = ?1", params![job_id, reason])
            .map_err(self.err())?;
        Ok(())
    }

    /// Records a prepare task handed to `backend` as `handle` for the stage `key` in `dir`.
    pub fn record_prepare(&self, backend: &str, handle: &str, key: &str, dir: &Path) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO prepares (backend, handle, key, dir, state, submitted_at)
                 VALUES (?1, ?2, ?3, ?4, 'submitted', ?5)",
                params![backend, handle, key, dir.to_string_lossy(), now()],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Every prepare task, oldest first.
    pub fn prepares(&self) -> Result<Vec<TrackedPrepare>, StateError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT backend, handle, key, dir, state, detail FROM prepares
                 ORDER BY submitted_at, rowid",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                let state: String = r.get(4)?;
                Ok(TrackedPrepare {
                    backend: r.get(0)?,
                    handle: r.get(1)?,
                    key: r.get(2)?,
                    dir: PathBuf::from(r.get::<_, String>(3)?),
                    state: JobState::parse(&state).unwrap_or(JobState::Failed),
                    detail: r.get(5)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Sets a prepare task's state and what the scheduler said of its end.
    pub fn set_prepare_state(
        &self,
        prepare: &TrackedPrepare,
        state: JobState,
        detail: Option<&str>,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE prepares SET state = ?3, detail = ?4 WHERE backend = ?1 AND handle = ?2",
                params![prepare.backend, prepare.handle, state.as_str(), detail],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Sets one job's state (terminal states get a finish time).
    pub fn set_state(&self, job_id: &str, state: JobState) -> Result<(), StateError> {
        let t = now();
        let finished = matches!(state, JobState::Done | JobState::Failed | JobState::Cancelled).then_some(t);
        self.conn
            .execute(
                "UPDATE jobs SET state = ?2, updated_at = ?3, finished_at = COALESCE(?4, finished_at) WHERE job_id = ?1",
                params![job_id, state.as_str(), t, finished],
            )
            .map_err(self.err())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(ids: &[&str]) -> Vec<PlannedJob> {
        ids.iter()
            .map(|id| PlannedJob {
                id: id.to_string(),
                legacy_id: None,
                dir: PathBuf::from("/s/jobs").join(id),
                axes: format!("[{id}]"),
            })
            .collect()
    }

    #[test]
    fn jobs_leaving_the_plan_are_retired_with_their_state_and_restored_when_back() {
        let t = tempfile::tempdir().unwrap();
        let mut db = StateDb::open(&t.path().join("state.db")).unwrap();
        assert_eq!(db.sync_plan(&planned(&["a", "b"])).unwrap(), PlanSync::default());
        db.set_state("a", JobState::Done).unwrap();
        let sync = db.sync_plan(&planned(&["b", "c"])).unwrap();
        assert_eq!(sync, PlanSync { retired: vec!["a".into()], ..Default::default() });
        let jobs = db.jobs().unwrap();
        let ids: Vec<(&str, bool)> = jobs.iter().map(|j| (j.job_id.as_str(), j.is_retired())).collect();
        assert_eq!(ids, vec![("b", false), ("c", false), ("a", true)], "the plan's jobs first");
        assert_eq!(jobs[2].state, JobState::Done, "a retired job keeps its outcome");
        assert_eq!(jobs[2].axes.as_deref(), Some("[a]"));
        // Syncing the same plan again changes nothing.
        assert_eq!(db.sync_plan(&planned(&["b", "c"])).unwrap(), PlanSync::default());
        let sync = db.sync_plan(&planned(&["a", "b", "c"])).unwrap();
        assert_eq!(sync, PlanSync { restored: vec!["a".into()], ..Default::default() });
        let a = db.jobs().unwrap().into_iter().find(|j| j.job_id == "a").unwrap();
        assert!(!a.is_retired());
        assert_eq!((a.state, a.plan_index), (JobState::Done, 0));
    }

    /// A job planned by an older ssal under `old` in `jobs`, with a file in its directory.
    fn legacy_job(jobs: &Path, old: &str) -> PlannedJob {
        std::fs::create_dir_all(jobs.join(old)).unwrap();
        std::fs::write(jobs.join(old).join("result.json"), old).unwrap();
        PlannedJob { id: old.into(), legacy_id: None, dir: jobs.join(old), axes: format!("[{old}]") }
    }

    /// The same job as this ssal plans it: id `new`, legacy id `old`.
    fn rekeyed(jobs: &Path, old: &str, new: &str) -> PlannedJob {
        PlannedJob { id: new.into(), legacy_id: Some(old.into()), dir: jobs.join(new), axes: format!("[{old}]") }
    }

    #[test]
    fn jobs_of_an_older_ssal_are_rekeyed_with_their_state_directory_attempts_and_journal() {
        let t = tempfile::tempdir().unwrap();
        let jobs = t.path().join("jobs");
        let mut db = StateDb::open(&t.path().join("state.db")).unwrap();
        db.sync_plan(&[legacy_job(&jobs, "old-a"), legacy_job(&jobs, "old-b"), legacy_job(&jobs, "old-c")]).unwrap();
        db.set_state("old-a", JobState::Done).unwrap();
        // b is queued at the scheduler; c's submission is in flight (journalled, unanswered).
        db.journal_open("t1", "slurm", &["old-b".into()], 1, None).unwrap();
        db.mark_submitted("slurm", "t1", &[("old-b".into(), "7_1".into())]).unwrap();
        let b = db.jobs().unwrap().into_iter().find(|j| j.job_id == "old-b").unwrap();
        db.record_end(&b, JobState::Failed, Some("exit 1")).unwrap();
        db.journal_open("t2", "slurm", &["old-c".into()], 1, None).unwrap();
        // Planning planned through the old dir: planning now writes the new one (config only).
        std::fs::create_dir_all(jobs.join("new-c")).unwrap();
        std::fs::write(jobs.join("new-c/config.toml"), "").unwrap();

        let plan =
            [rekeyed(&jobs, "old-a", "new-a"), rekeyed(&jobs, "old-b", "new-b"), rekeyed(&jobs, "old-c", "new-c")];
        let sync = db.sync_plan(&plan).unwrap();
        let pairs = |p: &[(&str, &str)]| p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        assert_eq!(
            sync,
            PlanSync {
                retired: vec![],
                restored: vec![],
                rekeyed: pairs(&[("old-a", "new-a"), ("old-b", "new-b"), ("old-c", "new-c")])
            }
        );
        let all = db.jobs().unwrap();
        let summary: Vec<(&str, JobState, Option<&str>, bool)> =
            all.iter().map(|j| (j.job_id.as_str(), j.state, j.handle.as_deref(), j.is_retired())).collect();
        assert_eq!(
            summary,
            [
                ("new-a", JobState::Done, None, false),
                ("new-b", JobState::Submitted, Some("7_1"), false),
                ("new-c", JobState::Planned, None, false)
            ]
        );
        // Files stay where they are; the new id's directory leads to them.
        for (j, old) in all.iter().zip(["old-a", "old-b", "old-c"]) {
            assert_eq!(j.dir, jobs.join(old));
            assert!(std::fs::symlink_metadata(jobs.join(&j.job_id)).unwrap().is_symlink());
            assert_eq!(std::fs::read_to_string(jobs.join(&j.job_id).join("result.json")).unwrap(), old);
        }
        assert_eq!(std::fs::read_link(jobs.join("new-a")).unwrap(), PathBuf::from("old-a"), "relative");
        assert_eq!(db.failed_attempts().unwrap(), 1, "b's attempt moved with it");
        let open = OpenSubmission { token: "t2".into(), job_ids: vec!["new-c".into()], jobs_per_task: 1 };
        assert_eq!(db.journal_open_entries("slurm").unwrap(), vec![open]);
        // Again: nothing to do.
        assert_eq!(db.sync_plan(&plan).unwrap(), PlanSync::default());
    }

    #[test]
    fn a_copied_sweep_is_rekeyed_onto_its_own_directories_not_the_originals() {
        let t = tempfile::tempdir().unwrap();
        let (original, copy) = (t.path().join("original"), t.path().join("copy"));
        std::fs::create_dir_all(&original).unwrap();
        let mut db = StateDb::open(&original.join("state.db")).unwrap();
        db.sync_plan(&[legacy_job(&original.join("jobs"), "old-a")]).unwrap();
        drop(db);
        let jobs = copy.join("jobs");
        std::fs::create_dir_all(jobs.join("old-a")).unwrap();
        std::fs::copy(original.join("state.db"), copy.join("state.db")).unwrap();
        std::fs::write(jobs.join("old-a/result.json"), "copy").unwrap();
        let mut db = StateDb::open(&copy.join("state.db")).unwrap();
        assert_eq!(db.sync_plan(&[rekeyed(&jobs, "old-a", "new-a")]).unwrap().rekeyed.len(), 1);
        assert_eq!(std::fs::read_link(jobs.join("new-a")).unwrap(), PathBuf::from("old-a"), "relative, in the copy");
        assert_eq!(db.jobs().unwrap()[0].dir, jobs.join("old-a"), "the copy's own directory is recorded");
        assert_eq!(std::fs::read_to_string(jobs.join("new-a/result.json")).unwrap(), "copy");
    }

    #[test]
    fn a_rekey_whose_new_directory_holds_files_changes_nothing() {
        let t = tempfile::tempdir().unwrap();
        let jobs = t.path().join("jobs");
        let mut db = StateDb::open(&t.path().join("state.db")).unwrap();
        db.sync_plan(&[legacy_job(&jobs, "old-a"), legacy_job(&jobs, "old-b")]).unwrap();
        std::fs::create_dir_all(jobs.join("new-b")).unwrap();
        std::fs::write(jobs.join("new-b/result.json"), "{}").unwrap();
        let plan = [rekeyed(&jobs, "old-a", "new-a"), rekeyed(&jobs, "old-b", "new-b")];
        let e = db.sync_plan(&plan).unwrap_err().to_string();
        assert!(e.contains("cannot re-key job old-b") && e.contains("new-b holds files of its own"), "{e}");
        let ids: Vec<String> = db.jobs().unwrap().into_iter().map(|j| j.job_id).collect();
        assert_eq!(ids, ["old-a", "old-b"], "the transaction rolled back");
        // Moved away, the next sync re-keys both (a's link from the failed try is kept).
        std::fs::remove_dir_all(jobs.join("new-b")).unwrap();
        assert_eq!(db.sync_plan(&plan).unwrap().rekeyed.len(), 2);
    }

    #[test]
    fn retired_jobs_failures_leave_the_breakers_count() {
        let t = tempfile::tempdir().unwrap();
        let mut db = StateDb::open(&t.path().join("state.db")).unwrap();
        db.sync_plan(&planned(&["a", "b"])).unwrap();
        for id in ["a", "b"] {
            let job = db.jobs().unwrap().into_iter().find(|j| j.job_id == id).unwrap();
            db.record_end(&job, JobState::Failed, Some("exit 1")).unwrap();
        }
        assert_eq!(db.failed_attempts().unwrap(), 2);
        db.sync_plan(&planned(&["b"])).unwrap();
        assert_eq!(db.failed_attempts().unwrap(), 1);
    }

    #[test]
    fn a_database_of_the_first_schema_opens_and_migrates() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("state.db");
        {
            // The jobs table as the first version wrote it, with one done job.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE jobs (
                    job_id TEXT PRIMARY KEY, plan_index INTEGER NOT NULL, config_hash TEXT NOT NULL,
                    backend TEXT, handle TEXT, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                    planned_at INTEGER NOT NULL, submitted_at INTEGER, finished_at INTEGER,
                    updated_at INTEGER NOT NULL, dir TEXT NOT NULL, result_path TEXT NOT NULL,
                    log_path TEXT NOT NULL);
                 CREATE INDEX jobs_state ON jobs(state);
                 INSERT INTO jobs VALUES ('a', 0, 'a', 'slurm', '7_0', 'done', 1, 1, 2, 3, 3,
                    '/s/jobs/a', '/s/jobs/a/result.json', '/s/jobs/a/log.txt');
                 CREATE TABLE submissions (token TEXT PRIMARY KEY, backend TEXT NOT NULL, job_ids TEXT NOT NULL,
                    state TEXT NOT NULL, created_at INTEGER NOT NULL, closed_at INTEGER);
                 INSERT INTO submissions VALUES ('t', 'slurm', '[\"a\"]', 'open', 1, NULL);",
            )
            .unwrap();
        }
        let mut db = StateDb::open(&path).unwrap();
        // A submission journalled before packing existed ran one job per task.
        let open = OpenSubmission { token: "t".into(), job_ids: vec!["a".into()], jobs_per_task: 1 };
        assert_eq!(db.journal_open_entries("slurm").unwrap(), vec![open]);
        let jobs = db.jobs().unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!((jobs[0].state, jobs[0].handle.as_deref()), (JobState::Done, Some("7_0")));
        assert!(!jobs[0].is_retired() && jobs[0].axes.is_none());
        // The migrated database retires and restores like a new one.
        assert_eq!(db.sync_plan(&planned(&["b"])).unwrap().retired, vec!["a".to_string()]);
        drop(db);
        let db = StateDb::open(&path).unwrap();
        let jobs = db.jobs().unwrap();
        assert_eq!(
            jobs.iter().map(|j| (j.job_id.as_str(), j.is_retired())).collect::<Vec<_>>(),
            [("b", false), ("a", true)]
        );
    }
}
