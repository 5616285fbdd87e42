//! The state of a sweep's jobs in SQLite (`results/<sweep>/state.db`, WAL): which backend has
//! each job under which handle, how often it was tried, and where its result and log go.
use rusqlite::{params, Connection};
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
}

/// Errors of the state database, naming its path.
#[derive(Debug, thiserror::Error)]
#[error("sweep state {path}: {source}")]
pub struct StateError {
    pub path: PathBuf,
    pub source: rusqlite::Error,
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
";

impl StateDb {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let err = |source| StateError { path: path.to_path_buf(), source };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(StateDb { conn, path: path.to_path_buf() })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StateError + '_ {
        move |source| StateError { path: self.path.clone(), source }
    }

    /// Records the plan's jobs (new ones as planned; known ones keep their state).
    pub fn sync_plan(&mut self, jobs: &[(String, PathBuf)]) -> Result<(), StateError> {
        let t = now();
        let tx = self.conn.transaction().map_err(|source| StateError { path: self.path.clone(), source })?;
        for (index, (id, dir)) in jobs.iter().enumerate() {
            tx.execute(
                "INSERT INTO jobs (job_id, plan_index, config_hash, state, planned_at, updated_at, dir, result_path, log_path)
                 VALUES (?1, ?2, ?1, 'planned', ?3, ?3, ?4, ?5, ?6)
                 ON CONFLICT(job_id) DO UPDATE SET plan_index = excluded.plan_index",
                params![
                    id,
                    index as i64,
                    t,
                    dir.to_string_lossy(),
                    dir.join("result.json").to_string_lossy(),
                    dir.join("log.txt").to_string_lossy()
                ],
            )
            .map_err(|source| StateError { path: self.path.clone(), source })?;
        }
        tx.commit().map_err(|source| StateError { path: self.path.clone(), source })
    }

    /// All jobs in plan order.
    pub fn jobs(&self) -> Result<Vec<TrackedJob>, StateError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT job_id, plan_index, backend, handle, state, attempts, submitted_at, finished_at, dir
                 FROM jobs ORDER BY plan_index",
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
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Marks jobs as handed to `backend` under `handles` (one more attempt each), in one transaction.
    pub fn mark_submitted(&mut self, backend: &str, submitted: &[(String, String)]) -> Result<(), StateError> {
        let t = now();
        let path = self.path.clone();
        let err = |source| StateError { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        for (id, handle) in submitted {
            tx.execute(
                "UPDATE jobs SET backend = ?2, handle = ?3, state = 'submitted', attempts = attempts + 1,
                 submitted_at = ?4, finished_at = NULL, updated_at = ?4 WHERE job_id = ?1",
                params![id, backend, handle, t],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
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
