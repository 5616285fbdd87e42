//! Tidy export of a selection: one row per (run, cycle), every varying config field its own
//! column, so that `pandas.read_csv` (or `read_json(lines=True)`) needs no options.
use super::{Selection, SWEEP_FIELD};

/// Format of a tidy export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// JSON Lines: one object per (run, cycle), numbers as numbers.
    Jsonl,
}

/// Columns after the varying fields, in order.
const RUN_COLUMNS: [&str; 4] = ["seed", "complete", "wall_seconds", "cycle"];
const CYCLE_COLUMNS: [&str; 9] = [
    "n_labeled",
    "accuracy",
    "class_distance",
    "diversity",
    "consistency",
    "embed_seconds",
    "train_seconds",
    "query_seconds",
    "eval_seconds",
];

/// The header: sweep, run_id, the varying config fields (dotted names), then the run and cycle
/// columns.
pub fn header(selection: &Selection) -> Vec<String> {
    let mut h = vec![SWEEP_FIELD.to_string(), "run_id".into()];
    h.extend(selection.varying.iter().filter(|f| *f != SWEEP_FIELD).cloned());
    h.extend(RUN_COLUMNS.iter().chain(&CYCLE_COLUMNS).map(|c| c.to_string()));
    h
}

/// A value as JSON: numbers, booleans and lists as themselves, anything else as a string.
fn typed(text: &str) -> serde_json::Value {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_) | serde_json::Value::Array(_))) => v,
        _ => serde_json::Value::String(text.to_string()),
    }
}

/// Writes the selection's (run, cycle) rows in `format`, in row then seed then cycle order.
pub fn write_tidy<W: std::io::Write>(selection: &Selection, format: ExportFormat, mut out: W) -> std::io::Result<()> {
    let header = header(selection);
    let mut order: Vec<&super::SelectedRun> = selection.runs.iter().collect();
    order.sort_by_key(|r| (r.row, r.run.seed, r.run.path.clone()));
    let mut csv = (format == ExportFormat::Csv).then(|| csv::Writer::from_writer(Vec::new()));
    if let Some(w) = csv.as_mut() {
        w.write_record(&header)?;
    }
    for run in order {
        for c in &run.cycles {
            let num = |v: Option<f64>| v.map_or(serde_json::Value::Null, serde_json::Value::from);
            let mut values: Vec<serde_json::Value> = vec![run.run.sweep.clone().into(), run.run.run_id.clone().into()];
            values.extend(selection.varying.iter().filter(|f| *f != SWEEP_FIELD).map(|f| typed(&run.fields[f])));
            values.extend([
                run.run.seed.into(),
                run.run.complete.into(),
                run.run.wall_seconds.into(),
                c.cycle.into(),
                c.n_labeled.into(),
                num(c.accuracy),
                num(c.class_distance),
                num(c.diversity),
                num(c.consistency),
                num(c.embed_seconds),
                num(c.train_seconds),
                num(c.query_seconds),
                num(c.eval_seconds),
            ]);
            match csv.as_mut() {
                Some(w) => w.write_record(values.iter().map(|v| match v {
                    serde_json::Value::Null => String::new(),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                }))?,
                None => {
                    let object: serde_json::Map<String, serde_json::Value> =
                        header.iter().cloned().zip(values).collect();
                    serde_json::to_writer(&mut out, &object)?;
                    out.write_all(b"\n")?;
                }
            }
        }
    }
    if let Some(w) = csv {
        out.write_all(&w.into_inner().map_err(|e| e.into_error())?)?;
    }
    out.flush()
}
