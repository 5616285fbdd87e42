//! The results database: `result.json` files ingested into SQLite (one row per run and one per
//! (run, cycle)), idempotently, with a versioned schema.
use crate::config::{config_name, EmbeddingSource, InitStrategy};
use crate::result::RunResult;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Errors of the store itself (a bad result file is reported, not an error).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Sql { path: PathBuf, source: rusqlite::Error },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("database {path} was written by an older ssal: run `ssal results ingest` on it once to upgrade it")]
    Outdated { path: PathBuf },
}

/// Schema migrations; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    "
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
",
    // Every config field of a run as a (field, value) row, so that reports can group and filter
    // by any field; the per-cycle time split. Old runs get their fields from config_json (see
    // `backfill_fields`) and are re-read on the next ingest for their time split.
    "
    CREATE TABLE run_fields (
        path TEXT NOT NULL REFERENCES runs(path) ON DELETE CASCADE,
        field TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (path, field)
    ) WITHOUT ROWID;
    CREATE INDEX run_fields_by_field ON run_fields(field, value);
    ALTER TABLE cycles ADD COLUMN embed_seconds REAL;
    ALTER TABLE cycles ADD COLUMN train_seconds REAL;
    ALTER TABLE cycles ADD COLUMN query_seconds REAL;
    ALTER TABLE cycles ADD COLUMN eval_seconds REAL;
    UPDATE runs SET file_hash = '';
",
    // Booleans left out of a config when false (`train.warm_start`, …) become `false` rows in
    // `run_fields` (they were missing, shown as `none`): backfilled from config_json.
    "-- backfill only",
];

/// Migrations that call for `run_fields` to be backfilled from the stored configs when an older
/// database is opened: the one that introduced the table, and the one for fields absent when false.
const BACKFILL_AFTER: [usize; 2] = [2, 3];

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

/// One stored run: what identifies it, without its config fields or cycles.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    /// The canonical path of its `result.json` (the run's key in the database).
    pub path: String,
    /// The config's content hash (the sweep's job id).
    pub run_id: String,
    /// The name of the directory it was ingested from.
    pub sweep: String,
    pub seed: i64,
    /// Whether the run finished every cycle.
    pub complete: bool,
    pub wall_seconds: f64,
}

/// One stored (run, cycle): the metrics and the time split of that cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCycle {
    pub cycle: i64,
    pub n_labeled: i64,
    /// Test accuracy in [0, 1].
    pub accuracy: Option<f64>,
    pub class_distance: Option<f64>,
    pub diversity: Option<f64>,
    pub consistency: Option<f64>,
    pub embed_seconds: Option<f64>,
    pub train_seconds: Option<f64>,
    pub query_seconds: Option<f64>,
    pub eval_seconds: Option<f64>,
}

impl Store {
    /// Opens (creating and migrating) the database at `path` for writing.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let sql = |source| StoreError::Sql { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
        }
        let conn = Connection::open(path).map_err(sql)?;
        // A rollback journal rather than WAL: between writes the database is one self-contained
        // file, which a reader can open in a read-only directory (WAL readers need -shm files).
        conn.pragma_update(None, "journal_mode", "DELETE").map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sql)?;
        let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sql)?;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
            conn.execute_batch(m).map_err(sql)?;
            conn.pragma_update(None, "user_version", i + 1).map_err(sql)?;
        }
        if version > 0 && BACKFILL_AFTER.iter().any(|&m| m > version) {
            backfill_fields(&conn).map_err(sql)?;
        }
        Ok(Store { conn, path: path.to_path_buf() })
    }

    /// Opens an existing, current database for reading only (reports, plots, exports), so that
    /// reading never writes and works in a read-only directory. An older schema is refused with
    /// the command that upgrades it.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let sql = |source| StoreError::Sql { path: path.to_path_buf(), source };
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sql)?;
        let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sql)?;
        if version < MIGRATIONS.len() {
            return Err(StoreError::Outdated { path: path.to_path_buf() });
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
        // A run is keyed by the canonical path of its result.json: one reached twice (a job
        // re-keyed from an older ssal's id is linked as `jobs/<new id>` → `jobs/<old id>`) is
        // one run, read once.
        let mut seen = std::collections::HashSet::new();
        files.retain(|f| seen.insert(f.canonicalize().unwrap_or_else(|_| f.clone())));
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
            let result = match crate::result::parse(&text) {
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

    /// The stored runs, of one sweep or all, ordered by path.
    pub fn runs(&self, sweep: Option<&str>) -> Result<Vec<StoredRun>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT path, run_id, sweep, seed, complete, wall_seconds FROM runs
                 WHERE ?1 IS NULL OR sweep = ?1 ORDER BY path",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([sweep], |r| {
                Ok(StoredRun {
                    path: r.get(0)?,
                    run_id: r.get(1)?,
                    sweep: r.get(2)?,
                    seed: r.get(3)?,
                    complete: r.get(4)?,
                    wall_seconds: r.get(5)?,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// The sweep names in the database.
    pub fn sweeps(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT DISTINCT sweep FROM runs ORDER BY sweep").map_err(self.sql())?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// Every config field name stored for any run.
    pub fn field_names(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT DISTINCT field FROM run_fields ORDER BY field").map_err(self.sql())?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// One field's value for every run that has it: run path → value text.
    pub fn field_values(&self, field: &str) -> Result<HashMap<String, String>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT path, value FROM run_fields WHERE field = ?1").map_err(self.sql())?;
        let rows = stmt.query_map([field], |r| Ok((r.get(0)?, r.get(1)?))).map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// Every field name stored for any run, and the fields whose value differs among `paths`
    /// (or that some of them lack). When `paths` are all the stored runs (one sweep per
    /// database, the usual case) both come from one grouped scan of the field index; a subset
    /// is joined against a temporary table of its paths.
    pub fn fields_and_varying(&self, paths: &[&str]) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let sql = self.sql();
        let n = paths.iter().collect::<std::collections::BTreeSet<_>>().len() as i64;
        let total: i64 = self.conn.query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0)).map_err(&sql)?;
        if n == total {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT field, MIN(value) <> MAX(value) OR COUNT(*) < ?1 FROM run_fields GROUP BY field ORDER BY field",
                )
                .map_err(&sql)?;
            let rows: Vec<(String, bool)> = stmt
                .query_map([n], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(&sql)?
                .collect::<Result<_, _>>()
                .map_err(&sql)?;
            let varying = rows.iter().filter(|r| r.1).map(|r| r.0.clone()).collect();
            return Ok((rows.into_iter().map(|r| r.0).collect(), varying));
        }
        self.conn
            .execute_batch("CREATE TEMP TABLE IF NOT EXISTS selection (path TEXT PRIMARY KEY); DELETE FROM selection;")
            .map_err(&sql)?;
        {
            let mut insert = self.conn.prepare_cached("INSERT OR IGNORE INTO selection VALUES (?1)").map_err(&sql)?;
            for p in paths {
                insert.execute([p]).map_err(&sql)?;
            }
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT f.field FROM run_fields f JOIN selection s ON s.path = f.path
                 GROUP BY f.field HAVING MIN(f.value) <> MAX(f.value) OR COUNT(*) < ?1 ORDER BY f.field",
            )
            .map_err(&sql)?;
        let varying = stmt.query_map([n], |r| r.get(0)).map_err(&sql)?.collect::<Result<_, _>>().map_err(&sql)?;
        Ok((self.field_names()?, varying))
    }

    /// All config fields of one run.
    pub fn run_fields(&self, path: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT field, value FROM run_fields WHERE path = ?1").map_err(self.sql())?;
        let rows = stmt.query_map([path], |r| Ok((r.get(0)?, r.get(1)?))).map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// Every stored cycle, by run path, in cycle order.
    pub fn cycles(&self) -> Result<HashMap<String, Vec<StoredCycle>>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT path, cycle, n_labeled, accuracy, class_distance, diversity, consistency,
                        embed_seconds, train_seconds, query_seconds, eval_seconds
                 FROM cycles ORDER BY path, cycle",
            )
            .map_err(self.sql())?;
        let mut out: HashMap<String, Vec<StoredCycle>> = HashMap::new();
        let mut rows = stmt.query([]).map_err(self.sql())?;
        while let Some(r) = rows.next().map_err(self.sql())? {
            let read = || -> rusqlite::Result<(String, StoredCycle)> {
                Ok((
                    r.get(0)?,
                    StoredCycle {
                        cycle: r.get(1)?,
                        n_labeled: r.get(2)?,
                        accuracy: r.get(3)?,
                        class_distance: r.get(4)?,
                        diversity: r.get(5)?,
                        consistency: r.get(6)?,
                        embed_seconds: r.get(7)?,
                        train_seconds: r.get(8)?,
                        query_seconds: r.get(9)?,
                        eval_seconds: r.get(10)?,
                    },
                ))
            };
            let (path, cycle) = read().map_err(self.sql())?;
            out.entry(path).or_default().push(cycle);
        }
        Ok(out)
    }
}

/// Fills in `run_fields` from the stored configs of a database older than the field index (or
/// than a field that is always indexed); rows already there are kept.
fn backfill_fields(conn: &Connection) -> rusqlite::Result<()> {
    let stored: Vec<(String, String)> = conn
        .prepare("SELECT path, config_json FROM runs")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut insert = conn.prepare("INSERT OR IGNORE INTO run_fields VALUES (?1, ?2, ?3)")?;
    for (path, json) in stored {
        let Ok(config) = serde_json::from_str::<serde_json::Value>(&json) else { continue };
        for (field, value) in crate::config::field_map(&config) {
            insert.execute(params![path, field, value])?;
        }
    }
    Ok(())
}

fn insert_run(tx: &rusqlite::Transaction, key: &str, hash: &str, sweep: &str, r: &RunResult) -> rusqlite::Result<()> {
    let c = &r.config;
    let init = match (c.labeled.indices.is_some(), c.init.strategy) {
        (true, _) => "explicit".to_string(),
        (false, InitStrategy::Random) => "random".to_string(),
        (false, InitStrategy::Diversity) => format!("diversity-{}", config_name(&c.init.embedding)),
    };
    let temperature = (c.init.strategy == InitStrategy::Diversity && c.init.embedding != EmbeddingSource::None)
        .then_some(c.init.temperature);
    tx.prepare_cached("INSERT INTO runs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)")?
        .execute(params![
            key,
            hash,
            r.config_hash,
            sweep,
            config_name(&c.dataset.name),
            config_name(&c.model),
            config_name(&c.method),
            init,
            temperature,
            (!c.query.budgets.is_empty()).then(|| config_name(&c.query.strategy)),
            c.seed as i64,
            r.complete,
            r.final_accuracy,
            r.wall_seconds,
            serde_json::to_string(c).expect("serialises"),
        ])?;
    let mut insert_cycle =
        tx.prepare_cached("INSERT INTO cycles VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")?;
    for cy in &r.cycles {
        insert_cycle.execute(params![
            key,
            cy.cycle as i64,
            cy.n_labeled as i64,
            cy.accuracy,
            cy.class_distance,
            cy.diversity,
            cy.consistency,
            cy.embed_seconds,
            cy.train_seconds,
            cy.query_seconds,
            cy.eval_seconds
        ])?;
    }
    let mut insert_field = tx.prepare_cached("INSERT INTO run_fields VALUES (?1, ?2, ?3)")?;
    for (field, value) in c.fields() {
        insert_field.execute(params![key, field, value])?;
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
