//! Sweeps: a base experiment config plus a grid of axes over any config field, expanded into
//! jobs whose ids are their configs' identities ([`ExperimentConfig::content_hash`]: the values
//! that differ from the defaults), so re-planning gives the same ids, identical configs collapse
//! to one job, and a release that adds a config field changes no id.
mod lock;
mod runner;
mod stages;
mod state;

pub use crate::scheduler::SlurmSettings;
pub use lock::{LockError, SweepLock};
pub use runner::{job_log, last_lines, prepare_log, FailureGroups, RunnerError, SweepRunner, Tally, WaitOutcome};
pub use stages::{stages, Stage};
pub use state::{
    JobState, OpenSubmission, PlanSync, PlannedJob, StateDb, StateError, SyncError, TrackedJob, TrackedPrepare,
};

use crate::config::{ConfigError, ExperimentConfig};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use toml::{Spanned, Table, Value};

/// Errors in a sweep file, naming the file, the key and its line.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("cannot read sweep {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("invalid sweep {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// A sweep file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SweepFile {
    /// Name of the sweep (results go to `results/<name>/`). Default: the file's stem.
    name: Option<String>,
    /// Shuffle the job order with this seed (e.g. to spread expensive jobs). Default: no shuffle.
    shuffle_seed: Option<u64>,
    /// The experiment config every job starts from. Default: all defaults.
    base: Table,
    /// Axes: dotted config field → list of values, written quoted (`"mixmatch.lambda_u" = […]`)
    /// or as TOML dotted keys / sub-tables (`mixmatch.lambda_u = […]`). Default: no axis (one job).
    grid: BTreeMap<Spanned<String>, Value>,
    /// Partial combinations removed from the product (a job matching all fields of one is dropped).
    exclude: Vec<BTreeMap<Spanned<String>, Value>>,
    /// Extra combinations added after the product (fields not given take the base values).
    include: Vec<BTreeMap<Spanned<String>, Value>>,
    /// Resources and behaviour of Slurm job arrays. Default: see [`SlurmSettings`].
    slurm: SlurmSettings,
}

/// One planned job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The config's identity ([`ExperimentConfig::content_hash`]).
    pub id: String,
    pub config: ExperimentConfig,
    /// The axis values that define this job, as `field=value` pairs.
    pub label: Vec<(String, String)>,
}

/// An expanded sweep.
#[derive(Debug)]
pub struct Plan {
    pub name: String,
    pub jobs: Vec<Job>,
    /// Axes in order, with their values.
    pub axes: Vec<(String, Vec<Value>)>,
    /// The sweep file's `[slurm]` table.
    pub slurm: SlurmSettings,
    /// The work several jobs share, run once before them (see [`stages`]).
    pub stages: Vec<Stage>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Sets `path` (dotted) in `table`, failing when the field does not exist in `schema`.
fn set_field(table: &mut Table, schema: &Table, path: &str, value: Value) -> Result<(), String> {
    let parts: Vec<&str> = path.split('.').collect();
    let (mut t, mut s) = (table, schema);
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let known = s.get(*part).ok_or_else(|| format!("`{path}` names no config field (no `{part}`)"))?;
        if last {
            t.insert(part.to_string(), value);
            return Ok(());
        }
        s = known.as_table().ok_or_else(|| format!("`{path}`: `{part}` is not a table"))?;
        t = t
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("`{path}`: base sets `{part}` to a non-table"))?;
    }
    Ok(())
}

/// The axis whose values are tables merged at the config's root (several fields per value).
pub const VARIANT_AXIS: &str = "variant";

/// Optional config fields: absent from the serialised default, but valid axis names.
const OPTIONAL_FIELDS: [&str; 12] = [
    "dataset.path",
    "dataset.train_subset",
    "dataset.test_subset",
    "dataset.split_seed",
    "labeled.indices",
    "init.embedding_path",
    "rotnet.seed",
    "query.pool_subset",
    "train.warm_start",
    "train.eval_subset",
    "train.ema_average_batch_norm",
    "mixmatch.rampup_fraction",
];

/// The full default config as a TOML table plus optional fields, for checking axis names.
fn schema() -> Table {
    let mut t: Table = toml::from_str(&ExperimentConfig::default().canonical_toml()).expect("valid");
    for path in OPTIONAL_FIELDS {
        let (table, field) = path.split_once('.').expect("dotted");
        t.get_mut(table)
            .and_then(Value::as_table_mut)
            .expect("config table")
            .insert(field.into(), Value::Boolean(false));
    }
    t
}

fn lookup<'a>(schema: &'a Table, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let first = schema.get(parts.next()?)?;
    parts.try_fold(first, |v, p| v.as_table()?.get(p))
}

/// Applies one axis value: a table given for a table field (or for the `variant` axis, whose
/// field is the whole config) is merged key by key; any other value replaces the field.
fn apply(table: &mut Table, schema: &Table, path: &str, value: &Value) -> Result<(), String> {
    let is_variant = path == VARIANT_AXIS;
    match value {
        Value::Table(entries) if is_variant || lookup(schema, path).is_some_and(Value::is_table) => {
            for (k, v) in entries {
                let sub = if is_variant { k.clone() } else { format!("{path}.{k}") };
                apply(table, schema, &sub, v)?;
            }
            Ok(())
        }
        _ if is_variant => Err(format!("`{VARIANT_AXIS}` values must be tables of config fields, got {value}")),
        _ => set_field(table, schema, path, value.clone()),
    }
}

fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Turns one `[grid]` entry into axes: a list is an axis named by its dotted path; a table (a
/// TOML dotted key or sub-table such as `mixmatch.lambda_u = […]`) holds further entries.
fn flatten_axes(path: &str, value: &Value, out: &mut Vec<(String, Vec<Value>)>) -> Result<(), String> {
    match value {
        Value::Array(values) => {
            out.push((path.to_string(), values.clone()));
            Ok(())
        }
        Value::Table(entries) => entries.iter().try_for_each(|(k, v)| flatten_axes(&format!("{path}.{k}"), v, out)),
        other => Err(format!("axis `{path}` must be a list of values, got {other}")),
    }
}

/// Parses and expands a sweep file.
pub fn plan_file(path: &Path) -> Result<Plan, SweepError> {
    let text = std::fs::read_to_string(path).map_err(|source| SweepError::Io { path: path.into(), source })?;
    plan_str(&text, path)
}

/// Parses and expands sweep text; `origin` names it in errors.
pub fn plan_str(text: &str, origin: &Path) -> Result<Plan, SweepError> {
    let invalid = |message: String| SweepError::Invalid { path: origin.into(), message };
    let file: SweepFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    file.slurm.validate().map_err(|e| invalid(e.to_string()))?;
    if let Some(name) = &file.name {
        let bad = name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']);
        if bad {
            return Err(invalid(format!("name {name:?} must be a plain directory name (no path separators)")));
        }
    }
    let schema = schema();
    let name = file
        .name
        .clone()
        .unwrap_or_else(|| origin.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or("sweep".into()));
    let check = |key: &Spanned<String>| -> Result<(), SweepError> {
        if key.get_ref() == VARIANT_AXIS {
            return Ok(());
        }
        set_field(&mut Table::new(), &schema, key.get_ref(), Value::Boolean(false))
            .map_err(|m| invalid(format!("line {}: {m}", line_of(text, key.span().start))))
    };
    let mut axes = Vec::new();
    for (key, value) in &file.grid {
        let line = line_of(text, key.span().start);
        let mut flat = Vec::new();
        flatten_axes(key.get_ref(), value, &mut flat).map_err(|m| invalid(format!("line {line}: {m}")))?;
        for (name, values) in flat {
            if name != VARIANT_AXIS {
                set_field(&mut Table::new(), &schema, &name, Value::Boolean(false))
                    .map_err(|m| invalid(format!("line {line}: {m}")))?;
            }
            if values.is_empty() {
                return Err(invalid(format!("line {line}: axis `{name}` has no values")));
            }
            axes.push((name, values));
        }
    }
    for k in file.exclude.iter().chain(&file.include).flat_map(|m| m.keys()) {
        check(k)?;
    }
    let build = |fields: &[(String, Value)]| -> Result<Job, SweepError> {
        let mut table = file.base.clone();
        for (k, v) in fields {
            apply(&mut table, &schema, k, v).map_err(&invalid)?;
        }
        let label: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.clone(), short(v))).collect();
        let config: ExperimentConfig = Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid(format!("job {}: {}", describe(&label), e.message())))?;
        config.validate().map_err(|e| match e {
            ConfigError::Invalid(m) => invalid(format!("job {}: {m}", describe(&label))),
            other => invalid(other.to_string()),
        })?;
        Ok(Job { id: config.content_hash(), config, label })
    };
    let excluded = |fields: &[(String, Value)]| {
        file.exclude.iter().any(|ex| ex.iter().all(|(k, v)| fields.iter().any(|(fk, fv)| fk == k.get_ref() && fv == v)))
    };
    let mut jobs = Vec::new();
    let mut seen = BTreeSet::new();
    let total: usize = axes.iter().map(|(_, v)| v.len()).product();
    let mut fields: Vec<(String, Value)> = Vec::with_capacity(axes.len());
    for mut flat in 0..total {
        fields.clear();
        // Mixed-radix decode, last axis fastest.
        let mut digits = vec![0; axes.len()];
        for (a, (_, values)) in axes.iter().enumerate().rev() {
            digits[a] = flat % values.len();
            flat /= values.len();
        }
        for (a, (k, values)) in axes.iter().enumerate() {
            fields.push((k.clone(), values[digits[a]].clone()));
        }
        if excluded(&fields) {
            continue;
        }
        let job = build(&fields)?;
        if seen.insert(job.id.clone()) {
            jobs.push(job);
        }
    }
    for inc in &file.include {
        let f: Vec<(String, Value)> = inc.iter().map(|(k, v)| (k.get_ref().clone(), v.clone())).collect();
        let job = build(&f)?;
        if seen.insert(job.id.clone()) {
            jobs.push(job);
        }
    }
    if let Some(seed) = file.shuffle_seed {
        jobs.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    }
    let stages = stages(&jobs);
    Ok(Plan { name, jobs, axes, slurm: file.slurm, stages })
}

fn describe(label: &[(String, String)]) -> String {
    let parts: Vec<String> = label.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("[{}]", parts.join(", "))
}

impl Job {
    /// The axis values that define the job, as plan.tsv shows them: `[seed=0, method=mixmatch]`.
    pub fn describe(&self) -> String {
        describe(&self.label)
    }
}

impl Plan {
    /// Writes `dir/jobs/<id>/config.toml` for every job, `dir/plan.tsv` (index, id, axes) and
    /// `dir/prepare/<key>/config.toml` for every prepare stage.
    /// A file that already holds its text is left alone, and one that changes is replaced whole:
    /// every `sweep status` re-plans while jobs start, and a job that read its config while it
    /// was being rewritten in place once saw an empty file and ran the defaults.
    pub fn write(&self, dir: &Path) -> Result<(), SweepError> {
        let w = |path: PathBuf, text: String| {
            if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
                return Ok(());
            }
            crate::atomic_file::write(&path, text.as_bytes()).map_err(|source| SweepError::Write { path, source })
        };
        let mut tsv = String::from("index\tjob_id\taxes\n");
        for (i, job) in self.jobs.iter().enumerate() {
            w(dir.join("jobs").join(&job.id).join("config.toml"), job.config.canonical_toml())?;
            tsv.push_str(&format!("{i}\t{}\t{}\n", job.id, describe(&job.label)));
        }
        for stage in &self.stages {
            w(stage.dir(dir).join("config.toml"), stage.config.canonical_toml())?;
        }
        w(dir.join("plan.tsv"), tsv)
    }

    /// Jobs per value of each axis, for the dry-run summary.
    pub fn counts_per_axis(&self) -> Vec<(String, Vec<(String, usize)>)> {
        self.axes
            .iter()
            .map(|(axis, values)| {
                let counts = values
                    .iter()
                    .map(|v| {
                        let s = short(v);
                        let n =
                            self.jobs.iter().filter(|j| j.label.iter().any(|(k, lv)| k == axis && *lv == s)).count();
                        (s, n)
                    })
                    .collect();
                (axis.clone(), counts)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWEEP: &str = r#"
[base]
method = "mixmatch"
[base.train]
steps = 10

[grid]
seed = [0, 1, 2]
method = ["supervised", "mixmatch"]
"labeled.size" = [40, 100]

[[exclude]]
method = "supervised"
"labeled.size" = 40

[[include]]
seed = 9
"train.steps" = 99
"#;

    fn plan(text: &str) -> Result<Plan, SweepError> {
        plan_str(text, Path::new("sweeps/demo.toml"))
    }

    #[test]
    fn expands_product_minus_excludes_plus_includes() {
        let p = plan(SWEEP).unwrap();
        assert_eq!(p.name, "demo");
        // 3 × 2 × 2 = 12, minus 3 (supervised with 40 labels), plus 1 include.
        assert_eq!(p.jobs.len(), 10);
        assert!(!p
            .jobs
            .iter()
            .any(|j| j.config.method == crate::config::Method::Supervised && j.config.labeled.size == 40));
        let inc = p.jobs.last().unwrap();
        assert_eq!((inc.config.seed, inc.config.train.steps, inc.config.labeled.size), (9, 99, 100));
        // Base values reach every job.
        assert!(p.jobs[..9].iter().all(|j| j.config.train.steps == 10));
        let counts = p.counts_per_axis();
        assert_eq!(counts[0].0, "labeled.size");
        assert_eq!(counts[0].1, vec![("40".into(), 3), ("100".into(), 6)]);
    }

    #[test]
    fn rewriting_a_plan_leaves_unchanged_configs_alone_and_replaces_changed_ones_whole() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let p = plan(SWEEP).unwrap();
        p.write(t.path()).unwrap();
        let config = t.path().join("jobs").join(&p.jobs[0].id).join("config.toml");
        let inode = |path: &Path| std::fs::metadata(path).unwrap().ino();
        let before = inode(&config);
        // A job reading its config while `sweep status` re-plans must never see it half-written:
        // the same text is not written again...
        p.write(t.path()).unwrap();
        assert_eq!(inode(&config), before);
        // ...and other text replaces the file by a rename, never by truncating it in place.
        std::fs::write(&config, "").unwrap();
        p.write(t.path()).unwrap();
        assert_ne!(inode(&config), before);
        assert_eq!(std::fs::read_to_string(&config).unwrap(), p.jobs[0].config.canonical_toml());
    }

    #[test]
    fn ids_are_stable_and_duplicates_collapse() {
        let a = plan(SWEEP).unwrap();
        let b = plan(SWEEP).unwrap();
        assert_eq!(a.jobs.iter().map(|j| &j.id).collect::<Vec<_>>(), b.jobs.iter().map(|j| &j.id).collect::<Vec<_>>());
        // The id is the config's content hash.
        assert!(a.jobs.iter().all(|j| j.id == j.config.content_hash()));
        // Listing the default value next to itself gives one job, not two.
        let p = plan("[grid]\nseed = [0, 0]\n\"train.steps\" = [1000, 1000]\n").unwrap();
        assert_eq!(p.jobs.len(), 1);
        // An include that equals a grid job adds nothing.
        let p = plan("[grid]\nseed = [0, 1]\n[[include]]\nseed = 1\n").unwrap();
        assert_eq!(p.jobs.len(), 2);
    }

    #[test]
    fn optional_fields_are_axes() {
        let p = plan(
            "[grid]\ntrain.warm_start = [false, true]\ntrain.eval_subset = [500]\nmixmatch.rampup_fraction = [0.1]\n",
        )
        .unwrap();
        assert_eq!(p.jobs.len(), 2);
        assert!(p
            .jobs
            .iter()
            .all(|j| j.config.train.eval_subset == Some(500) && j.config.mixmatch.rampup_fraction == Some(0.1)));
        assert_eq!(p.jobs.iter().filter(|j| j.config.train.warm_start).count(), 1);
    }

    #[test]
    fn shuffle_is_seeded_permutation() {
        let text = format!("shuffle_seed = 3\n{SWEEP}");
        let a = plan(&text).unwrap();
        let plain = plan(SWEEP).unwrap();
        let mut x: Vec<_> = a.jobs.iter().map(|j| j.id.clone()).collect();
        let mut y: Vec<_> = plain.jobs.iter().map(|j| j.id.clone()).collect();
        assert_ne!(x, y);
        x.sort();
        y.sort();
        assert_eq!(x, y);
    }

    #[test]
    fn table_values_merge_into_their_field_and_variants_into_the_root() {
        let text = r#"
[base.init]
embedding = "rotnet"
[grid]
seed = [0, 1]
init = [{ strategy = "random" }, { strategy = "diversity", temperature = 0.25 }]
variant = [{ method = "supervised", query.strategy = "entropy" }, { query = { strategy = "consistency" } }]
"#;
        let p = plan(text).unwrap();
        assert_eq!(p.jobs.len(), 8);
        use crate::config::{EmbeddingSource, InitStrategy, Method, QueryStrategy};
        for j in &p.jobs {
            // The base's embedding survives the merge of every init value.
            assert_eq!(j.config.init.embedding, EmbeddingSource::Rotnet);
            if j.config.init.strategy == InitStrategy::Diversity {
                assert_eq!(j.config.init.temperature, 0.25);
            }
            match j.config.query.strategy {
                QueryStrategy::Entropy => assert_eq!(j.config.method, Method::Supervised),
                QueryStrategy::Consistency => assert_eq!(j.config.method, Method::Mixmatch),
                other => panic!("unexpected {other:?}"),
            }
        }
        let e = plan("[grid]\nvariant = [{ methd = \"supervised\" }]\n").unwrap_err().to_string();
        assert!(e.contains("methd"), "{e}");
        let e = plan("[grid]\nvariant = [1]\n").unwrap_err().to_string();
        assert!(e.contains("must be tables"), "{e}");
        // Optional fields are valid axes.
        assert_eq!(plan("[grid]\n\"rotnet.seed\" = [0, 1]\n").unwrap().jobs.len(), 2);
    }

    #[test]
    fn dotted_axis_keys_parse_like_quoted_ones() {
        let quoted = plan("[grid]\n\"mixmatch.lambda_u\" = [1.0, 75.0]\nseed = [0, 1]\n").unwrap();
        let dotted = plan("[grid]\nmixmatch.lambda_u = [1.0, 75.0]\nseed = [0, 1]\n").unwrap();
        let table = plan("[grid]\nseed = [0, 1]\n[grid.mixmatch]\nlambda_u = [1.0, 75.0]\n").unwrap();
        let ids = |p: &Plan| p.jobs.iter().map(|j| j.id.clone()).collect::<BTreeSet<_>>();
        assert_eq!(quoted.jobs.len(), 4);
        assert_eq!(ids(&quoted), ids(&dotted));
        assert_eq!(ids(&quoted), ids(&table));
        assert!(dotted.axes.iter().any(|(a, _)| a == "mixmatch.lambda_u"), "{:?}", dotted.axes);
        let e = plan("[grid]\nmixmatch.lambda_z = [1.0]\n").unwrap_err().to_string();
        assert!(e.contains("mixmatch.lambda_z") && e.contains("line 2"), "{e}");
        let e = plan("[grid]\nmixmatch.lambda_u = 1.0\n").unwrap_err().to_string();
        assert!(e.contains("must be a list"), "{e}");
    }

    #[test]
    fn errors_name_key_and_line() {
        let e = plan("[grid]\nseed = [0]\n\"train.stepz\" = [1]\n").unwrap_err().to_string();
        assert!(e.contains("train.stepz") && e.contains("line 3") && e.contains("demo.toml"), "{e}");
        let e = plan("nmae = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("nmae") && e.contains("line 1"), "{e}");
        let e = plan("[grid]\nmethod = [\"supervised\", \"semi\"]\n").unwrap_err().to_string();
        assert!(e.contains("method=semi") && e.contains("unknown variant"), "{e}");
        let e = plan("[grid]\nseed = []\n").unwrap_err().to_string();
        assert!(e.contains("no values") && e.contains("line 2"), "{e}");
        let e = plan("[grid]\n\"train.lr\" = [-1.0]\n").unwrap_err().to_string();
        assert!(e.contains("lr"), "{e}");
        let e = plan("[[exclude]]\nsed = 1\n").unwrap_err().to_string();
        assert!(e.contains("sed") && e.contains("line 2"), "{e}");
    }
}
