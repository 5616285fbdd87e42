//! The results database: `result.json` files ingested into SQLite (one row per run and one per
//! (run, cycle)), idempotently, with a versioned schema.
use crate::config::{EmbeddingSource, InitStrategy};
use crate::experiment::RunResult;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

/// Errors of the store itself (a bad result file is reported, not an error).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Sql { path: PathBuf, source: rusqlite::Error },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Schema migrations; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE runs (
        path TEXT PRIMARY KEY,
        file_hash TEXT NOT NULL,
        run_id TEXT NOT NULL,
        sweep TEXT NOT NULL,
        dataset TEXT NOT NULL,
        model TEXT NOT NULL,
        method TEXT NOT NULL,
        init TEXT NOT NULL,
        temperature REAL,
        strategy TEXT,
        seed INTEGER NOT NULL,
        complete INTEGER NOT NULL,
        final_accuracy REAL,
        wall_seconds REAL NOT NULL,
        config_json TEXT NOT NULL
    );
    CREATE TABLE cycles (
        path TEXT NOT NULL REFERENCES runs(path) ON DELETE CASCADE,
        cycle INTEGER NOT NULL,
        n_labeled INTEGER NOT NULL,
        accuracy REAL,
        class_distance REAL,
        diversity REAL,
        consistency REAL,
        PRIMARY KEY (path, cycle)
    );
"];

/// An open results database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// What one ingest did.
#[derive(Debug, Default, PartialEq)]
pub struct IngestReport {
    pub added: usize,
    pub replaced: usize,
    pub unchanged: usize,
    /// Files that could not be read or parsed, with the reason; they were skipped.
    pub skipped: Vec<(PathBuf, String)>,
}

/// One exported (run, cycle) row.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleRow {
    pub run_id: String,
    pub sweep: String,
    pub dataset: String,
    pub model: String,
    pub init: String,
    pub temperature: Option<f64>,
    pub strategy: Option<String>,
    pub seed: i64,
    pub cycle: i64,
    pub n_labeled: i64,
    pub accuracy: Option<f64>,
    pub class_distance: Option<f64>,
    pub diversity: Option<f64>,
    pub consistency: Option<f64>,
    pub method: String,
}

fn snake<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

impl Store {
    /// Opens (creating and migrating) the database at `path`, in WAL mode.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let sql = |source| StoreError::Sql { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
        }
        let conn = Connection::open(path).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sql)?;
        let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sql)?;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
            conn.execute_batch(m).map_err(sql)?;
            conn.pragma_update(None, "user_version", i + 1).map_err(sql)?;
        }
        Ok(Store { conn, path: path.to_path_buf() })
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sql { path: self.path.clone(), source }
    }

    /// Ingests every `result.json` under `dir` (sweep name: the directory's name) in one
    /// transaction. Unchanged files are skipped; changed files replace their rows; unreadable
    /// files are reported and skipped.
    pub fn ingest_dir(&mut self, dir: &Path) -> Result<IngestReport, StoreError> {
        let sweep = dir.canonicalize().ok().and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
        let sweep = sweep.unwrap_or_else(|| dir.display().to_string());
        let mut files = Vec::new();
        collect_results(dir, &mut files).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
        files.sort();
        let mut report = IngestReport::default();
        let path = self.path.clone();
        let sql = |source| StoreError::Sql { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(sql)?;
        for file in files {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    report.skipped.push((file, e.to_string()));
                    continue;
                }
            };
            let result: RunResult = match serde_json::from_str(&text) {
                Ok(r) => r,
                Err(e) => {
                    report.skipped.push((file, format!("not a valid result.json: {e}")));
                    continue;
                }
            };
            let key = file.canonicalize().unwrap_or(file.clone()).to_string_lossy().into_owned();
            let hash = blake3::hash(text.as_bytes()).to_hex().to_string();
            let old: Option<String> = tx
                .prepare_cached("SELECT file_hash FROM runs WHERE path = ?1")
                .and_then(|mut q| q.query_row([&key], |r| r.get(0)).optional())
                .map_err(sql)?;
            match old {
                Some(h) if h == hash => {
                    report.unchanged += 1;
                    continue;
                }
                Some(_) => {
                    tx.execute("DELETE FROM runs WHERE path = ?1", [&key]).map_err(sql)?;
                    report.replaced += 1;
                }
                None => report.added += 1,
            }
            insert_run(&tx, &key, &hash, &sweep, &result).map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(report)
    }

    /// Every (run, cycle) row, ordered by sweep, configuration, seed and cycle.
    pub fn cycle_rows(&self) -> Result<Vec<CycleRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.run_id, r.sweep, r.dataset, r.model, r.init, r.temperature, r.strategy, r.seed,
                        c.cycle, c.n_labeled, c.accuracy, c.class_distance, c.diversity, c.consistency, r.method
                 FROM cycles c JOIN runs r ON r.path = c.path
                 ORDER BY r.sweep, r.dataset, r.method, r.init, r.temperature, r.strategy, r.seed, c.cycle, r.path",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(CycleRow {
                    run_id: r.get(0)?,
                    sweep: r.get(1)?,
                    dataset: r.get(2)?,
                    model: r.get(3)?,
                    init: r.get(4)?,
                    temperature: r.get(5)?,
                    strategy: r.get(6)?,
                    seed: r.get(7)?,
                    cycle: r.get(8)?,
                    n_labeled: r.get(9)?,
                    accuracy: r.get(10)?,
                    class_distance: r.get(11)?,
                    diversity: r.get(12)?,
                    consistency: r.get(13)?,
                    method: r.get(14)?,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }
}

fn insert_run(tx: &rusqlite::Transaction, key: &str, hash: &str, sweep: &str, r: &RunResult) -> rusqlite::Result<()> {
    let c = &r.config;
    let init = match (c.labeled.indices.is_some(), c.init.strategy) {
        (true, _) => "explicit".to_string(),
        (false, InitStrategy::Random) => "random".to_string(),
        (false, InitStrategy::Diversity) => format!("diversity-{}", snake(&c.init.embedding)),
    };
    let temperature = (c.init.strategy == InitStrategy::Diversity && c.init.embedding != EmbeddingSource::None)
        .then_some(c.init.temperature);
    tx.prepare_cached("INSERT INTO runs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)")?
        .execute(params![
            key,
            hash,
            r.config_hash,
            sweep,
            snake(&c.dataset.name),
            snake(&c.model),
            snake(&c.method),
            init,
            temperature,
            (!c.query.budgets.is_empty()).then(|| snake(&c.query.strategy)),
            c.seed as i64,
            r.complete,
            r.final_accuracy,
            r.wall_seconds,
            serde_json::to_string(c).expect("serialises"),
        ])?;
    let mut insert_cycle = tx.prepare_cached("INSERT INTO cycles VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
    for cy in &r.cycles {
        insert_cycle.execute(params![
            key,
            cy.cycle as i64,
            cy.n_labeled as i64,
            cy.accuracy,
            cy.class_distance,
            cy.diversity,
            cy.consistency
        ])?;
    }
    Ok(())
}

fn collect_results(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_results(&path, out)?;
        } else if path.file_name().is_some_and(|n| n == "result.json") {
            out.push(path);
        }
    }
    Ok(())
}

/// The export header, in the documented column order.
pub const CSV_HEADER: [&str; 15] = [
    "run_id",
    "sweep",
    "dataset",
    "model",
    "init",
    "temperature",
    "strategy",
    "seed",
    "cycle",
    "n_labeled",
    "accuracy",
    "class_distance",
    "diversity",
    "consistency",
    "method",
];

/// Writes rows as CSV (empty cells where a value does not apply).
pub fn write_csv<W: std::io::Write>(rows: &[CycleRow], out: W) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER)?;
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for r in rows {
        w.write_record([
            r.run_id.clone(),
            r.sweep.clone(),
            r.dataset.clone(),
            r.model.clone(),
            r.init.clone(),
            opt(r.temperature),
            r.strategy.clone().unwrap_or_default(),
            r.seed.to_string(),
            r.cycle.to_string(),
            r.n_labeled.to_string(),
            opt(r.accuracy),
            opt(r.class_distance),
            opt(r.diversity),
            opt(r.consistency),
            r.method.clone(),
        ])?;
    }
    w.flush()?;
    Ok(())
}
