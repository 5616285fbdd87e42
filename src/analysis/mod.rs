//! The one selection layer between the results store and everything that reads it (tables,
//! plots, exports): which runs are analysed (`--sweep`, `--where`, complete or not), which config
//! fields form the rows (`--group-by`, by default every field that varies) and the guarantee that
//! no two runs ever share a (row, label budget, seed): such a collision is an error naming the
//! fields in which the runs differ, never a silent merge.
use crate::store::{Store, StoreError, StoredCycle, StoredRun};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};

mod export;
pub use export::{write_tidy, ExportFormat};

/// The pseudo-field naming the sweep (ingested directory) a run came from.
pub const SWEEP_FIELD: &str = "sweep";

/// The seed field: never a row, it is what a row's runs are paired over.
pub const SEED_FIELD: &str = "seed";

/// Short names of earlier ssal versions, kept so that `--group-by strategy` and
/// `--baseline strategy=random` still work; each stands for exactly one config field.
const ALIASES: [(&str, &str); 4] = [
    ("dataset", "dataset.name"),
    ("strategy", "query.strategy"),
    ("temperature", "init.temperature"),
    ("init", "init.strategy"),
];

/// Why a selection cannot be made; every variant names the option or runs at fault.
#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{option}: unknown field {field:?}{}", suggest(.suggestions))]
    UnknownField { option: &'static str, field: String, suggestions: Vec<String> },
    #[error("{option}: {text:?} is not FIELD=VALUE")]
    NotAPair { option: &'static str, text: String },
    #[error("--where {field}={value} matches no run; its values are: {}", .values.join(", "))]
    NoMatch { field: String, value: String, values: Vec<String> },
    #[error("{0}")]
    Empty(String),
    #[error(
        "runs {first} and {second} both fall into row `{row}` at {n_labeled} labels with seed {seed}: {}; \
         add {} to --group-by or choose one with --where",
        describe_difference(.differing), suggest_fields(.differing)
    )]
    Collision {
        row: String,
        n_labeled: i64,
        seed: i64,
        first: String,
        second: String,
        differing: Vec<(String, String, String)>,
    },
    #[error("--baseline {spec}: field {field:?} does not form the rows (rows are grouped by {})", .grouping.join(", "))]
    BaselineField { spec: String, field: String, grouping: Vec<String> },
    #[error("--baseline {spec} matches {} rows, it must match exactly one; rows are: {}", .matches.len(), .rows.join(" | "))]
    Baseline { spec: String, matches: Vec<String>, rows: Vec<String> },
}

fn suggest(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; closest: {}", suggestions.join(", "))
    }
}

fn describe_difference(differing: &[(String, String, String)]) -> String {
    if differing.is_empty() {
        return "their configs are identical (the same run ingested twice from two paths?)".into();
    }
    let parts: Vec<String> = differing.iter().map(|(f, a, b)| format!("{f} = {a} vs {b}")).collect();
    format!("they differ in {}", parts.join(", "))
}

fn suggest_fields(differing: &[(String, String, String)]) -> String {
    if differing.is_empty() {
        return "nothing".into();
    }
    differing.iter().map(|(f, _, _)| f.as_str()).collect::<Vec<_>>().join(",")
}

/// One `--where FIELD=VALUE` filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub field: String,
    pub value: String,
}

impl std::str::FromStr for Filter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((f, v)) if !f.trim().is_empty() => Ok(Filter { field: f.trim().into(), value: v.trim().into() }),
            _ => Err(format!("{s:?} is not FIELD=VALUE")),
        }
    }
}

/// What to select: the options report, plot and export share.
#[derive(Debug, Clone, Default)]
pub struct SelectionQuery {
    /// Only runs of this sweep.
    pub sweep: Option<String>,
    /// Only runs whose field equals the value (all filters must hold).
    pub filters: Vec<Filter>,
    /// Fields forming the rows; `None`: every field that varies among the runs, except the seed.
    pub group_by: Option<Vec<String>>,
    /// Take runs that did not finish every cycle into the statistics (they are always counted).
    pub include_incomplete: bool,
}

/// One run in a selection, with its row and its stored cycles.
#[derive(Debug, Clone)]
pub struct SelectedRun {
    pub run: StoredRun,
    /// Values of the selection's varying and grouping fields (`sweep` included when it varies).
    pub fields: BTreeMap<String, String>,
    /// Index into [`Selection::rows`].
    pub row: usize,
    pub cycles: Vec<StoredCycle>,
}

/// The runs to analyse, each in exactly one row, at most one per (row, label budget, seed).
#[derive(Debug, Clone)]
pub struct Selection {
    /// Fields forming the rows, in order: those asked for, or by default every varying one.
    pub grouping: Vec<String>,
    /// Every field that varies among the selected runs, except the seed.
    pub varying: Vec<String>,
    /// Each row's values of the grouping fields, sorted (numbers numerically).
    pub rows: Vec<Vec<String>>,
    pub runs: Vec<SelectedRun>,
    /// Incomplete runs per row: left out of `runs`, or in it when `include_incomplete`.
    pub incomplete: Vec<usize>,
    /// Incomplete runs whose row has no complete run (left out with their row).
    pub incomplete_without_row: usize,
    pub include_incomplete: bool,
}

/// Whether two field values are equal, numbers compared as numbers (`75` equals `75.0`).
pub fn same_value(a: &str, b: &str) -> bool {
    a == b || matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y)) if x == y)
}

/// Orders values numerically when both are numbers, else as text.
pub fn compare_values(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal).then_with(|| a.cmp(b)),
        _ => a.cmp(b),
    }
}

/// Resolves a field name written by a user (an alias or a dotted path) against the known ones.
fn resolve(option: &'static str, name: &str, known: &BTreeSet<String>) -> Result<String, SelectionError> {
    let name = name.trim();
    let field = ALIASES.iter().find(|(a, _)| *a == name).map_or(name, |(_, f)| f);
    if known.contains(field) {
        return Ok(field.to_string());
    }
    // Closest names: those ending in the given name (`lambda_u` → `mixmatch.lambda_u`), then by
    // edit distance.
    let mut scored: Vec<(usize, &String)> = known
        .iter()
        .map(|k| {
            let tail = k.rsplit('.').next().unwrap_or(k);
            let d =
                if tail == name { 0 } else { 1 + strsim::levenshtein(name, k).min(strsim::levenshtein(name, tail)) };
            (d, k)
        })
        .collect();
    scored.sort();
    let suggestions = scored.iter().filter(|(d, _)| *d <= 1 + name.len() / 2).take(3).map(|(_, k)| (*k).clone());
    Err(SelectionError::UnknownField { option, field: name.to_string(), suggestions: suggestions.collect() })
}

impl Selection {
    /// Selects runs from the store: filters, then complete runs (unless asked otherwise), then
    /// rows; refuses two runs of one seed in one (row, label budget) cell.
    pub fn select(store: &Store, query: &SelectionQuery) -> Result<Selection, SelectionError> {
        let mut runs = store.runs(query.sweep.as_deref())?;
        if runs.is_empty() {
            let sweeps = store.sweeps()?;
            return Err(SelectionError::Empty(match &query.sweep {
                Some(s) if !sweeps.is_empty() => format!("no runs of sweep {s:?}; sweeps are: {}", sweeps.join(", ")),
                _ => "no runs in the database (run `ssal results ingest DIR` first)".into(),
            }));
        }
        // Field names, and what varies among all runs of the sweep (one scan of the index when
        // they are the whole database); a filtered subset is asked again below.
        let (names, all_varying) = {
            let all_paths: Vec<&str> = runs.iter().map(|r| r.path.as_str()).collect();
            store.fields_and_varying(&all_paths)?
        };
        let sweep_runs = runs.len();
        let mut known: BTreeSet<String> = names.into_iter().collect();
        known.insert(SWEEP_FIELD.into());
        // Each field's values by run path, read from the index once per field (the sweep from
        // the runs already loaded).
        let sweep_of: HashMap<String, String> = runs.iter().map(|r| (r.path.clone(), r.sweep.clone())).collect();
        let mut values: HashMap<String, HashMap<String, String>> = HashMap::new();
        let load = |field: &str, values: &mut HashMap<String, HashMap<String, String>>| -> Result<(), SelectionError> {
            if !values.contains_key(field) {
                let v = if field == SWEEP_FIELD { sweep_of.clone() } else { store.field_values(field)? };
                values.insert(field.to_string(), v);
            }
            Ok(())
        };
        for filter in &query.filters {
            let field = resolve("--where", &filter.field, &known)?;
            load(&field, &mut values)?;
            let by_path = &values[&field];
            let value_of = |r: &StoredRun| by_path.get(&r.path).map_or("none", String::as_str).to_string();
            let present: BTreeSet<String> = runs.iter().map(value_of).collect();
            runs.retain(|r| same_value(&value_of(r), &filter.value));
            if runs.is_empty() {
                let mut present: Vec<String> = present.into_iter().collect();
                present.sort_by(|a, b| compare_values(a, b));
                return Err(SelectionError::NoMatch { field, value: filter.value.clone(), values: present });
            }
        }
        let (included, left_out): (Vec<StoredRun>, Vec<StoredRun>) =
            runs.into_iter().partition(|r| r.complete || query.include_incomplete);
        if included.is_empty() {
            return Err(SelectionError::Empty(format!(
                "all {} selected runs are incomplete (add --include-incomplete to analyse them)",
                left_out.len()
            )));
        }
        let varying = if included.len() == sweep_runs {
            all_varying
        } else {
            let paths: Vec<&str> = included.iter().map(|r| r.path.as_str()).collect();
            store.fields_and_varying(&paths)?.1
        };
        let mut varying: Vec<String> = varying.into_iter().filter(|f| f != SEED_FIELD).collect();
        if included.iter().map(|r| &r.sweep).collect::<BTreeSet<_>>().len() > 1 {
            varying.insert(0, SWEEP_FIELD.into());
        }
        let wanted: Vec<String> = match &query.group_by {
            Some(names) => {
                let mut fields = Vec::new();
                for name in names {
                    let f = resolve("--group-by", name, &known)?;
                    if f == SEED_FIELD {
                        return Err(SelectionError::Empty(
                            "--group-by: seed cannot form rows: a row's runs are paired over their seeds".into(),
                        ));
                    }
                    if !fields.contains(&f) {
                        fields.push(f);
                    }
                }
                fields
            }
            None => varying.clone(),
        };
        // Asked-for fields stay rows even when constant; by default only varying fields do.
        let grouping = wanted;
        let mut field_values: BTreeMap<String, HashMap<String, String>> = BTreeMap::new();
        for f in varying.iter().chain(&grouping) {
            if !field_values.contains_key(f) {
                load(f, &mut values)?;
                field_values.insert(f.clone(), values.remove(f).expect("just loaded"));
            }
        }
        let fields_of = |r: &StoredRun| -> BTreeMap<String, String> {
            field_values
                .iter()
                .map(|(f, v)| (f.clone(), v.get(&r.path).cloned().unwrap_or_else(|| "none".into())))
                .collect()
        };
        let row_of =
            |fields: &BTreeMap<String, String>| -> Vec<String> { grouping.iter().map(|g| fields[g].clone()).collect() };
        let mut row_set: Vec<Vec<String>> =
            included.iter().map(|r| row_of(&fields_of(r))).collect::<BTreeSet<_>>().into_iter().collect();
        row_set.sort_by(|a, b| {
            a.iter().zip(b).map(|(x, y)| compare_values(x, y)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
        });
        let index: HashMap<Vec<String>, usize> = row_set.iter().cloned().enumerate().map(|(i, r)| (r, i)).collect();
        let mut incomplete = vec![0; row_set.len()];
        let mut incomplete_without_row = 0;
        for r in included.iter().filter(|r| !r.complete).chain(&left_out) {
            // A left-out run's row is read from its own fields (they may include a value that
            // no included run has: then its row is absent).
            match index.get(&row_of(&fields_of(r))) {
                Some(&i) => incomplete[i] += 1,
                None => incomplete_without_row += 1,
            }
        }
        let mut cycles = store.cycles()?;
        // A cell is (row, budget); two runs of one seed in one cell would be merged.
        let mut by_cell_seed: HashMap<(usize, i64, i64), usize> = HashMap::new();
        let mut selected = Vec::with_capacity(included.len());
        for run in included {
            let fields = fields_of(&run);
            let row = index[&row_of(&fields)];
            let cycles = cycles.remove(&run.path).unwrap_or_default();
            for c in &cycles {
                if let Some(&other) = by_cell_seed.get(&(row, c.n_labeled, run.seed)) {
                    let first: &SelectedRun = &selected[other];
                    return Err(collision(store, &grouping, &row_set[row], &first.run, &run, c.n_labeled)?);
                }
            }
            for c in &cycles {
                by_cell_seed.insert((row, c.n_labeled, run.seed), selected.len());
            }
            selected.push(SelectedRun { run, fields, row, cycles });
        }
        Ok(Selection {
            grouping,
            varying,
            rows: row_set,
            runs: selected,
            incomplete,
            incomplete_without_row,
            include_incomplete: query.include_incomplete,
        })
    }

    /// A row's label: `field=value` for each grouping field, or "all" for the only row.
    pub fn label(&self, row: usize) -> String {
        if self.grouping.is_empty() {
            return "all".into();
        }
        self.grouping.iter().zip(self.shown_values(row)).map(|(f, v)| format!("{f}={v}")).collect::<Vec<_>>().join(", ")
    }

    /// A row's grouping values as a reader should see them: a value that has no effect on the
    /// row's runs (`mixmatch.*` of supervised runs, the temperature of a random initial set; see
    /// [`crate::config::is_inert`]) reads `n/a` instead of the default the config still holds.
    pub fn shown_values(&self, row: usize) -> Vec<String> {
        let decider = |field: &str| -> Option<String> {
            if let Some(i) = self.grouping.iter().position(|g| g == field) {
                return Some(self.rows[row][i].clone());
            }
            let mut values = self.runs.iter().filter(|r| r.row == row).map(|r| r.fields.get(field));
            let first = values.next()??;
            values.all(|v| v == Some(first)).then(|| first.clone())
        };
        self.grouping
            .iter()
            .zip(&self.rows[row])
            .map(|(f, v)| if crate::config::is_inert(f, &decider) { "n/a".to_string() } else { v.clone() })
            .collect()
    }

    /// The one row that `spec` (`field=value[,field=value]`, fields as in `--group-by`) names.
    pub fn find_row(&self, spec: &str) -> Result<usize, SelectionError> {
        let mut known: BTreeSet<String> = self.grouping.iter().cloned().collect();
        known.extend(self.varying.iter().cloned());
        let mut want = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Filter { field, value } =
                part.parse().map_err(|_| SelectionError::NotAPair { option: "--baseline", text: part.into() })?;
            let field = ALIASES.iter().find(|(a, _)| *a == field).map_or(field.clone(), |(_, f)| f.to_string());
            let Some(col) = self.grouping.iter().position(|g| *g == field) else {
                return Err(SelectionError::BaselineField {
                    spec: spec.into(),
                    field,
                    grouping: if self.grouping.is_empty() {
                        vec!["nothing (one row)".into()]
                    } else {
                        self.grouping.clone()
                    },
                });
            };
            want.push((col, value));
        }
        let matches: Vec<usize> =
            (0..self.rows.len()).filter(|&r| want.iter().all(|(c, v)| same_value(&self.rows[r][*c], v))).collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            _ => Err(SelectionError::Baseline {
                spec: spec.into(),
                matches: matches.iter().map(|&r| self.label(r)).collect(),
                rows: (0..self.rows.len()).map(|r| self.label(r)).collect(),
            }),
        }
    }
}

/// The error for two runs in one (row, seed), with the fields in which their configs differ.
fn collision(
    store: &Store,
    grouping: &[String],
    row: &[String],
    a: &StoredRun,
    b: &StoredRun,
    n_labeled: i64,
) -> Result<SelectionError, SelectionError> {
    let (fa, fb) = (store.run_fields(&a.path)?, store.run_fields(&b.path)?);
    let keys: BTreeSet<&String> = fa.keys().chain(fb.keys()).collect();
    let none = "none".to_string();
    let mut differing: Vec<(String, String, String)> = keys
        .into_iter()
        .filter(|k| fa.get(*k) != fb.get(*k))
        .map(|k| (k.clone(), fa.get(k).unwrap_or(&none).clone(), fb.get(k).unwrap_or(&none).clone()))
        .collect();
    if a.sweep != b.sweep {
        differing.insert(0, (SWEEP_FIELD.into(), a.sweep.clone(), b.sweep.clone()));
    }
    let label = if grouping.is_empty() {
        "all".into()
    } else {
        grouping.iter().zip(row).map(|(f, v)| format!("{f}={v}")).collect::<Vec<_>>().join(", ")
    };
    let name = |r: &StoredRun| format!("{} ({})", r.run_id, r.path);
    Ok(SelectionError::Collision { row: label, n_labeled, seed: a.seed, first: name(a), second: name(b), differing })
}
