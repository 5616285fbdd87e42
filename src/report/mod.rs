//! Comparison tables in the style of the paper's Tables I–II: rows are methods, columns label
//! budgets, cells mean ± SE with significance markers against a baseline row (Holm-adjusted
//! over the table), the best cell per column in bold.
use crate::stats::{cohens_d, holm_bonferroni, paired_t_test, summarize, welch_t_test, Summary};
use crate::store::CycleRow;
use std::collections::{BTreeMap, BTreeSet};

mod plot;
pub use plot::{plot_distance_vs_diversity, plot_learning_curves, PlotError};

/// Which per-cycle value a table compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Metric {
    Accuracy,
    ClassDistance,
    Diversity,
    /// Mean prediction variance (Eq. 3) of a cycle's queried images under the previous model
    /// (the paper's Fig. 7a); higher means the strategy picked less consistent predictions.
    Consistency,
}

impl Metric {
    fn value(self, r: &CycleRow) -> Option<f64> {
        match self {
            Metric::Accuracy => r.accuracy.map(|a| 100.0 * a),
            Metric::ClassDistance => r.class_distance,
            Metric::Diversity => r.diversity,
            Metric::Consistency => r.consistency,
        }
    }
    /// Whether larger values are better (class distance: smaller is better).
    fn higher_is_better(self) -> bool {
        self != Metric::ClassDistance
    }
}

/// Output format of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Md,
    Latex,
    Csv,
}

/// Which t-test compares a cell with the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TestChoice {
    /// Paired over seeds when both cells hold the same seeds (runs that share seeds share their
    /// initial set or data draw), Welch's otherwise.
    Auto,
    /// Welch's unequal-variance test, for independent samples.
    Welch,
}

/// The grouping keys a row label can use.
pub const ROW_KEYS: [&str; 6] = ["dataset", "model", "method", "init", "temperature", "strategy"];

fn key_value(r: &CycleRow, key: &str) -> String {
    match key {
        "dataset" => r.dataset.clone(),
        "model" => r.model.clone(),
        "method" => r.method.clone(),
        "init" => r.init.clone(),
        "temperature" => r.temperature.map(|t| t.to_string()).unwrap_or("none".into()),
        "strategy" => r.strategy.clone().unwrap_or("none".into()),
        other => panic!("unknown key {other}"),
    }
}

/// One cell: its values by seed, summary and comparison with the baseline.
#[derive(Debug, Clone)]
pub struct Cell {
    pub by_seed: BTreeMap<i64, f64>,
    pub summary: Summary,
    pub comparison: Option<Comparison>,
    /// The baseline's own values seed for seed (e.g. the shared initial cycle of strategies):
    /// not tested, and not counted towards Holm's correction of the real comparisons.
    pub same_runs_as_baseline: bool,
}

/// A test of a cell against the baseline row's cell in the same column.
#[derive(Debug, Clone, Copy)]
pub struct Comparison {
    pub paired: bool,
    pub t: f64,
    pub p: f64,
    pub p_holm: f64,
    pub cohens_d: f64,
}

/// A computed table.
#[derive(Debug)]
pub struct Table {
    pub metric: Metric,
    pub rows: Vec<String>,
    pub columns: Vec<i64>,
    pub cells: BTreeMap<(String, i64), Cell>,
    pub baseline: Option<String>,
}

/// Labels rows by those of `keys` whose values vary across `data` ("all" when none do).
pub fn row_labeler<'a>(data: &[CycleRow], keys: &'a [String]) -> impl Fn(&CycleRow) -> String + 'a {
    let varying: Vec<&'a String> =
        keys.iter().filter(|k| data.iter().map(|r| key_value(r, k)).collect::<BTreeSet<_>>().len() > 1).collect();
    move |r: &CycleRow| -> String {
        if varying.is_empty() {
            return "all".into();
        }
        varying.iter().map(|k| format!("{k}={}", key_value(r, k))).collect::<Vec<_>>().join(", ")
    }
}

/// Groups rows by the keys that vary among `keys`, columns by `n_labeled`, and compares each
/// cell with the baseline row (the first row whose label contains every `k=v` of `baseline`).
pub fn build_table(
    data: &[CycleRow],
    metric: Metric,
    keys: &[String],
    baseline: Option<&str>,
    test: TestChoice,
) -> Table {
    let label = row_labeler(data, keys);
    let mut values: BTreeMap<(String, i64), BTreeMap<i64, f64>> = BTreeMap::new();
    for r in data {
        if let Some(v) = metric.value(r) {
            values.entry((label(r), r.n_labeled)).or_default().insert(r.seed, v);
        }
    }
    let rows: Vec<String> = values.keys().map(|(l, _)| l.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let columns: Vec<i64> = values.keys().map(|(_, c)| *c).collect::<BTreeSet<_>>().into_iter().collect();
    let baseline = baseline.and_then(|b| {
        let want: Vec<&str> = b.split(',').map(str::trim).collect();
        rows.iter().find(|r| want.iter().all(|w| r.split(", ").any(|part| part == *w))).cloned()
    });
    let mut cells: BTreeMap<(String, i64), Cell> = values
        .into_iter()
        .map(|(k, by_seed)| {
            let v: Vec<f64> = by_seed.values().copied().collect();
            (k, Cell { summary: summarize(&v), by_seed, comparison: None, same_runs_as_baseline: false })
        })
        .collect();
    if let Some(base) = &baseline {
        let (mut tests, mut same_runs) = (Vec::new(), Vec::new());
        for ((row, col), cell) in &cells {
            let Some(b) = cells.get(&(base.clone(), *col)).filter(|_| row != base) else {
                continue;
            };
            if cell.by_seed == b.by_seed {
                same_runs.push((row.clone(), *col));
                continue;
            }
            let shared: Vec<i64> = cell.by_seed.keys().filter(|s| b.by_seed.contains_key(s)).copied().collect();
            let paired =
                test == TestChoice::Auto && shared.len() == cell.by_seed.len() && shared.len() == b.by_seed.len();
            let (x, y): (Vec<f64>, Vec<f64>) =
                (cell.by_seed.values().copied().collect(), b.by_seed.values().copied().collect());
            let test = if paired { paired_t_test(&x, &y) } else { welch_t_test(&x, &y) };
            tests.push(((row.clone(), *col), paired, test.t, test.p, cohens_d(&x, &y)));
        }
        let adjusted = holm_bonferroni(&tests.iter().map(|t| t.3).collect::<Vec<_>>());
        for ((key, paired, t, p, d), p_holm) in tests.into_iter().zip(adjusted) {
            cells.get_mut(&key).expect("cell").comparison = Some(Comparison { paired, t, p, p_holm, cohens_d: d });
        }
        for key in same_runs {
            cells.get_mut(&key).expect("cell").same_runs_as_baseline = true;
        }
    }
    Table { metric, rows, columns, cells, baseline }
}

fn stars(p: f64) -> &'static str {
    if p < 0.001 {
        "***"
    } else if p < 0.01 {
        "**"
    } else if p < 0.05 {
        "*"
    } else {
        ""
    }
}

impl Table {
    fn best(&self, col: i64) -> Option<&str> {
        let better = |a: f64, b: f64| {
            if self.metric.higher_is_better() {
                a > b
            } else {
                a < b
            }
        };
        self.rows
            .iter()
            .filter_map(|r| self.cells.get(&(r.clone(), col)).map(|c| (r.as_str(), c.summary.mean)))
            .fold(None, |best: Option<(&str, f64)>, (r, m)| match best {
                Some((_, bm)) if !better(m, bm) => best,
                _ => Some((r, m)),
            })
            .map(|(r, _)| r)
    }

    fn precision(&self) -> usize {
        if self.metric == Metric::Accuracy {
            2
        } else {
            4
        }
    }

    /// Renders the table.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Csv => self.render_csv(),
            Format::Md | Format::Latex => self.render_grid(format),
        }
    }

    fn render_grid(&self, format: Format) -> String {
        let prec = self.precision();
        let latex = format == Format::Latex;
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|c| format!("{c} labels")).collect();
        if latex {
            out.push_str(&format!(
                "\\begin{{tabular}}{{l{}}}\n\\hline\nmethod & {} \\\\\n\\hline\n",
                "r".repeat(self.columns.len()),
                header.join(" & ")
            ));
        } else {
            out.push_str(&format!("| method | {} |\n|---|{}\n", header.join(" | "), "---|".repeat(self.columns.len())));
        }
        for row in &self.rows {
            let mut cells = Vec::new();
            for col in &self.columns {
                let Some(cell) = self.cells.get(&(row.clone(), *col)) else {
                    cells.push(String::new());
                    continue;
                };
                let s = &cell.summary;
                let se = if s.se.is_nan() { "n/a".to_string() } else { format!("{:.prec$}", s.se) };
                let pm = if latex { "$\\pm$" } else { "±" };
                let mut text = format!("{:.prec$} {pm} {se}", s.mean);
                if let Some(c) = &cell.comparison {
                    let st = stars(c.p_holm);
                    if !st.is_empty() {
                        text.push_str(&if latex { format!("$^{{{st}}}$") } else { st.to_string() });
                    }
                }
                if self.best(*col) == Some(row.as_str()) {
                    text = if latex { format!("\\textbf{{{text}}}") } else { format!("**{text}**") };
                }
                cells.push(format!("{text} (n={})", s.n));
            }
            let name =
                if self.baseline.as_deref() == Some(row.as_str()) { format!("{row} (baseline)") } else { row.clone() };
            if latex {
                out.push_str(&format!("{} & {} \\\\\n", name.replace('_', "\\_"), cells.join(" & ")));
            } else {
                out.push_str(&format!("| {name} | {} |\n", cells.join(" | ")));
            }
        }
        if latex {
            out.push_str("\\hline\n\\end{tabular}\n");
        }
        out
    }

    fn render_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record([
            "row",
            "n_labeled",
            "n",
            "mean",
            "sd",
            "se",
            "ci95_low",
            "ci95_high",
            "test",
            "t",
            "p",
            "p_holm",
            "cohens_d",
        ]);
        let f = |x: f64| {
            if x.is_nan() {
                String::new()
            } else {
                x.to_string()
            }
        };
        for row in &self.rows {
            for col in &self.columns {
                let Some(cell) = self.cells.get(&(row.clone(), *col)) else {
                    continue;
                };
                let s = &cell.summary;
                let (test, t, p, ph, d) = match &cell.comparison {
                    Some(c) => (
                        (if c.paired { "paired" } else { "welch" }).to_string(),
                        f(c.t),
                        f(c.p),
                        f(c.p_holm),
                        f(c.cohens_d),
                    ),
                    None => Default::default(),
                };
                let _ = w.write_record([
                    row.clone(),
                    col.to_string(),
                    s.n.to_string(),
                    f(s.mean),
                    f(s.sd),
                    f(s.se),
                    f(s.ci95.0),
                    f(s.ci95.1),
                    test,
                    t,
                    p,
                    ph,
                    d,
                ]);
            }
        }
        String::from_utf8(w.into_inner().expect("in-memory")).expect("utf-8")
    }

    /// One line per comparison with its test and p-values, for the text under a table.
    pub fn comparison_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for row in &self.rows {
            for col in &self.columns {
                let Some(cell) = self.cells.get(&(row.clone(), *col)) else { continue };
                if cell.same_runs_as_baseline {
                    out.push(format!("{row} vs baseline at {col} labels: the same values seed for seed, not tested"));
                }
                if let Some(c) = cell.comparison {
                    out.push(format!(
                        "{row} vs baseline at {col} labels: {} t = {:.3}, p = {:.3e}, Holm p = {:.3e}, Cohen's d = {:.2}",
                        if c.paired { "paired" } else { "Welch" },
                        c.t,
                        c.p,
                        c.p_holm,
                        c.cohens_d
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stored row with only what the tables look at set.
    pub(crate) fn sample_row(method: &str, seed: i64, n: i64, acc: f64) -> CycleRow {
        CycleRow {
            run_id: format!("{method}{seed}"),
            sweep: "s".into(),
            dataset: "fashion_mnist".into(),
            model: "small_cnn".into(),
            init: "random".into(),
            temperature: None,
            strategy: None,
            seed,
            cycle: 0,
            n_labeled: n,
            accuracy: Some(acc),
            class_distance: None,
            diversity: None,
            consistency: None,
            method: method.into(),
        }
    }

    #[test]
    fn table_groups_compares_and_marks() {
        // Paired over seeds 0–4 (values from the stats tests: paired p = 0.0611 with SciPy).
        let a = [0.871, 0.862, 0.880, 0.869, 0.875];
        let b = [0.850, 0.861, 0.848, 0.866, 0.857];
        let mut data = Vec::new();
        for s in 0..5 {
            data.push(sample_row("mixmatch", s, 100, a[s as usize]));
            data.push(sample_row("supervised", s, 100, b[s as usize]));
        }
        let keys: Vec<String> = ROW_KEYS.iter().map(|s| s.to_string()).collect();
        let t = build_table(&data, Metric::Accuracy, &keys, Some("method=supervised"), TestChoice::Auto);
        assert_eq!(t.rows, vec!["method=mixmatch", "method=supervised"]);
        assert_eq!(t.baseline.as_deref(), Some("method=supervised"));
        let c = t.cells[&("method=mixmatch".to_string(), 100)].comparison.unwrap();
        assert!(c.paired);
        assert!((c.p - 0.061075298914380835).abs() < 1e-7);
        assert_eq!(c.p_holm, c.p); // one comparison
        let md = t.render(Format::Md);
        // Best (mixmatch, 87.14) in bold, no star at p = 0.06.
        assert!(md.contains("| method=mixmatch | **87.14 ± 0.30** (n=5) |"), "{md}");
        assert!(md.contains("method=supervised (baseline)"), "{md}");
        // Dropping a seed from one side makes the test Welch's.
        let t2 = build_table(&data[1..], Metric::Accuracy, &keys, Some("method=supervised"), TestChoice::Auto);
        assert!(!t2.cells[&("method=mixmatch".to_string(), 100)].comparison.unwrap().paired);
        // Asking for Welch gives SciPy's ttest_ind(equal_var=False) p = 0.010596 on these samples.
        let t3 = build_table(&data, Metric::Accuracy, &keys, Some("method=supervised"), TestChoice::Welch);
        let c3 = t3.cells[&("method=mixmatch".to_string(), 100)].comparison.unwrap();
        assert!(!c3.paired && (c3.p - 0.010596181343654547).abs() < 1e-7);
        assert!(t3.render(Format::Md).contains("**87.14 ± 0.30***"), "{}", t3.render(Format::Md));
        let csv = t.render(Format::Csv);
        assert!(csv.lines().nth(1).unwrap().starts_with("method=mixmatch,100,5,87.14"), "{csv}");
        assert!(t.render(Format::Latex).contains("\\textbf{87.14 $\\pm$ 0.30}"));
    }

    #[test]
    fn identical_cells_are_not_tested_nor_counted_by_holm() {
        // Two strategies sharing their initial cycle (same values seed for seed at 100 labels).
        let (a, b) = ([0.871, 0.862, 0.880, 0.869, 0.875], [0.850, 0.861, 0.848, 0.866, 0.857]);
        let mut data = Vec::new();
        for s in 0..5 {
            for m in ["mixmatch", "supervised"] {
                data.push(sample_row(m, s, 100, 0.5 + 0.01 * s as f64));
            }
            data.push(sample_row("mixmatch", s, 150, a[s as usize]));
            data.push(sample_row("supervised", s, 150, b[s as usize]));
        }
        let keys: Vec<String> = ROW_KEYS.iter().map(|s| s.to_string()).collect();
        let t = build_table(&data, Metric::Accuracy, &keys, Some("method=supervised"), TestChoice::Auto);
        assert!(t.cells[&("method=mixmatch".to_string(), 100)].comparison.is_none());
        assert!(t.cells[&("method=mixmatch".to_string(), 100)].same_runs_as_baseline);
        assert!(!t.cells[&("method=mixmatch".to_string(), 150)].same_runs_as_baseline);
        let c = t.cells[&("method=mixmatch".to_string(), 150)].comparison.unwrap();
        assert_eq!(c.p_holm, c.p, "the untested identical cell must not count as a comparison");
        let lines = t.comparison_lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].ends_with("at 100 labels: the same values seed for seed, not tested"), "{lines:?}");
    }

    #[test]
    fn consistency_metric_reads_the_query_consistency() {
        // Cycle rows without a consistency (initial sets) are left out of the table.
        let mut data = vec![sample_row("mixmatch", 0, 100, 0.7), sample_row("mixmatch", 1, 100, 0.7)];
        for (seed, c) in [(0, 0.02), (1, 0.04)] {
            data.push(CycleRow { n_labeled: 150, consistency: Some(c), ..sample_row("mixmatch", seed, 150, 0.8) });
        }
        let keys: Vec<String> = ROW_KEYS.iter().map(|s| s.to_string()).collect();
        let t = build_table(&data, Metric::Consistency, &keys, None, TestChoice::Auto);
        assert_eq!(t.columns, vec![150]);
        let cell = &t.cells[&("all".to_string(), 150)];
        assert!((cell.summary.mean - 0.03).abs() < 1e-12);
    }
}
