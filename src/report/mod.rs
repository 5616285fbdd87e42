//! Comparison tables in the style of the paper's Tables I–II: rows are the selection's rows
//! (configurations), columns label budgets plus the area under the learning curve, cells
//! mean ± SE with significance markers against a baseline row (Holm-adjusted over the budget
//! columns; the AUC column is its own family), the best cell per column in bold, each row's mean
//! rank, and the pairwise penalty matrix of Ash et al. 2020 under the table.
use crate::analysis::Selection;
use crate::stats::{compare_with_baseline_family, normalized_auc, penalty_matrix, ranks, summarize, Summary};
use crate::store::StoredCycle;
use std::collections::{BTreeMap, BTreeSet};

mod plot;
pub use plot::{plot_distance_vs_diversity, plot_learning_curves, PlotError};

/// Which per-cycle value a table compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Metric {
    /// Test accuracy of the EMA model in percent (median of the last evaluations of a cycle).
    Accuracy,
    /// Eq. 6 distance between the labeled set's class proportions and the pool's (lower is better).
    ClassDistance,
    /// Mean pairwise L2 distance of a cycle's selection in its embedding.
    Diversity,
    /// Mean prediction variance (Eq. 3) of a cycle's queried images under the previous model
    /// (the paper's Fig. 7a); higher means the strategy picked less consistent predictions.
    Consistency,
}

impl Metric {
    /// The metric's value in one stored cycle (accuracy in percent).
    pub fn value(self, r: &StoredCycle) -> Option<f64> {
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

/// Significance level of the stars' first step and of the penalty matrix.
pub const ALPHA: f64 = 0.05;

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
    /// Cohen's d_z (mean difference over the SD of the differences) when paired, Cohen's d with
    /// the pooled SD otherwise.
    pub effect_size: f64,
}

impl Comparison {
    /// The name of the effect size: `d_z` for paired tests, `d` for Welch's.
    pub fn effect_name(&self) -> &'static str {
        if self.paired {
            "d_z"
        } else {
            "d"
        }
    }
}

/// A column of the table: a label budget, or the area under the learning curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Column {
    Budget(i64),
    /// Normalised area under each run's learning curve over the budget columns.
    Auc,
}

/// A computed table.
#[derive(Debug)]
pub struct Table {
    pub metric: Metric,
    /// Field names forming the rows (the header's first cells).
    pub grouping: Vec<String>,
    /// Each row's values of the grouping fields.
    pub rows: Vec<Vec<String>>,
    /// Each row's `field=value` label.
    pub labels: Vec<String>,
    /// Budget columns, then `Auc` when there are at least two budgets and the metric is accuracy.
    pub columns: Vec<Column>,
    pub cells: BTreeMap<(usize, Column), Cell>,
    pub baseline: Option<usize>,
    /// Each row's mean rank over the budget columns (1 = best).
    pub mean_rank: Vec<f64>,
    /// The penalty matrix over the budget columns (see [`crate::stats::penalty_matrix`]).
    pub penalty: Vec<Vec<f64>>,
    /// Incomplete runs per row, and whether they are in the cells.
    pub incomplete: Vec<usize>,
    pub incomplete_included: bool,
    /// Runs left out of the AUC column because they lack a budget of their row.
    pub auc_left_out: usize,
}

/// Builds the table of `metric` over a selection: one row per selection row, one column per
/// label budget (plus the AUC), each cell compared with the `baseline` row (an index into the
/// selection's rows) seed for seed.
pub fn build_table(selection: &Selection, metric: Metric, baseline: Option<usize>, test: TestChoice) -> Table {
    let mut values: BTreeMap<(usize, Column), BTreeMap<i64, f64>> = BTreeMap::new();
    for run in &selection.runs {
        for c in &run.cycles {
            if let Some(v) = metric.value(c) {
                values.entry((run.row, Column::Budget(c.n_labeled))).or_default().insert(run.run.seed, v);
            }
        }
    }
    let budgets: Vec<i64> = values
        .keys()
        .filter_map(|(_, c)| match c {
            Column::Budget(b) => Some(*b),
            Column::Auc => None,
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut auc_left_out = 0;
    if metric == Metric::Accuracy && budgets.len() >= 2 {
        let row_budgets = |row: usize| -> Vec<i64> {
            budgets.iter().copied().filter(|b| values.contains_key(&(row, Column::Budget(*b)))).collect()
        };
        let per_row: Vec<Vec<i64>> = (0..selection.rows.len()).map(row_budgets).collect();
        for run in &selection.runs {
            let mut pts: Vec<(f64, f64)> =
                run.cycles.iter().filter_map(|c| metric.value(c).map(|v| (c.n_labeled as f64, v))).collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let covers = pts.iter().map(|p| p.0 as i64).collect::<Vec<_>>() == per_row[run.row];
            if covers && pts.len() >= 2 {
                values.entry((run.row, Column::Auc)).or_default().insert(run.run.seed, normalized_auc(&pts));
            } else {
                auc_left_out += 1;
            }
        }
    }
    let mut columns: Vec<Column> = budgets.iter().map(|b| Column::Budget(*b)).collect();
    if values.keys().any(|(_, c)| *c == Column::Auc) {
        columns.push(Column::Auc);
    }
    let mut cells: BTreeMap<(usize, Column), Cell> = values
        .into_iter()
        .map(|(k, by_seed)| {
            let v: Vec<f64> = by_seed.values().copied().collect();
            (k, Cell { summary: summarize(&v), by_seed, comparison: None, same_runs_as_baseline: false })
        })
        .collect();
    if let Some(base) = baseline {
        // Holm over the budget columns, and separately over the AUC column (a summary of them).
        for family in [false, true] {
            compare_with_baseline(&mut cells, base, test, |c| (c == Column::Auc) == family);
        }
    }
    let rows = selection.rows.len();
    let higher = metric.higher_is_better();
    let mut rank_sums = vec![(0.0, 0usize); rows];
    let mut by_budget = Vec::new();
    for b in &budgets {
        let col = Column::Budget(*b);
        let means: Vec<f64> = (0..rows).map(|r| cells.get(&(r, col)).map_or(f64::NAN, |c| c.summary.mean)).collect();
        for (r, rank) in ranks(&means, higher).into_iter().enumerate() {
            if !rank.is_nan() {
                rank_sums[r].0 += rank;
                rank_sums[r].1 += 1;
            }
        }
        by_budget.push((0..rows).map(|r| cells.get(&(r, col)).map(|c| &c.by_seed)).collect::<Vec<_>>());
    }
    let penalty = penalty_matrix(&by_budget, rows, higher, test == TestChoice::Auto, ALPHA);
    Table {
        metric,
        grouping: selection.grouping.clone(),
        rows: (0..rows).map(|r| selection.shown_values(r)).collect(),
        labels: (0..rows).map(|r| selection.label(r)).collect(),
        columns,
        cells,
        baseline,
        mean_rank: rank_sums.iter().map(|&(s, n)| if n == 0 { f64::NAN } else { s / n as f64 }).collect(),
        penalty,
        incomplete: selection.incomplete.clone(),
        incomplete_included: selection.include_incomplete,
        auc_left_out,
    }
}

/// Tests every cell of the columns `in_family` against the baseline row's cell in the same
/// column (paired over seeds when both hold the same seeds and `test` allows it) and
/// Holm-adjusts the family's p-values.
fn compare_with_baseline(
    cells: &mut BTreeMap<(usize, Column), Cell>,
    base: usize,
    test: TestChoice,
    in_family: impl Fn(Column) -> bool,
) {
    let (mut pairs, mut same_runs) = (Vec::new(), Vec::new());
    for (&(row, col), cell) in cells.iter().filter(|((_, c), _)| in_family(*c)) {
        let Some(b) = cells.get(&(base, col)).filter(|_| row != base) else {
            continue;
        };
        if cell.by_seed == b.by_seed {
            same_runs.push((row, col));
            continue;
        }
        pairs.push(((row, col), &cell.by_seed, &b.by_seed));
    }
    for (key, c, p_holm) in compare_with_baseline_family(pairs, test == TestChoice::Auto) {
        let (paired, t, p, effect_size) = (c.paired, c.test.t, c.test.p, c.effect_size);
        cells.get_mut(&key).expect("cell").comparison = Some(Comparison { paired, t, p, p_holm, effect_size });
    }
    for key in same_runs {
        cells.get_mut(&key).expect("cell").same_runs_as_baseline = true;
    }
}

fn stars(p: f64) -> &'static str {
    if p < 0.001 {
        "***"
    } else if p < 0.01 {
        "**"
    } else if p < ALPHA {
        "*"
    } else {
        ""
    }
}

/// Escapes text for LaTeX (so that `\input` of a table compiles).
fn latex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(ch);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '±' => out.push_str("$\\pm$"),
            '≥' => out.push_str("$\\geq$"),
            'α' => out.push_str("$\\alpha$"),
            '—' => out.push_str("---"),
            '−' => out.push('-'),
            other => out.push(other),
        }
    }
    out
}

/// What a cell's comparison with the baseline is, for the CSV `role` column.
fn role(table: &Table, row: usize, cell: &Cell) -> &'static str {
    match (table.baseline, &cell.comparison) {
        (None, _) => "",
        (Some(b), _) if b == row => "baseline",
        (_, Some(_)) => "tested",
        _ if cell.same_runs_as_baseline => "same_runs_as_baseline",
        _ => "not_tested",
    }
}

impl Column {
    /// The column's header text.
    pub fn header(self) -> String {
        match self {
            Column::Budget(b) => format!("{b} labels"),
            Column::Auc => "AUC".into(),
        }
    }
}

impl Table {
    /// Whether `row` holds the best mean of `col`; rows tied for it are all best (a shared
    /// initial cycle gives every strategy the same value), never one picked by its order.
    fn is_best(&self, row: usize, col: Column) -> bool {
        let means = (0..self.rows.len()).filter_map(|r| self.cells.get(&(r, col)).map(|c| c.summary.mean));
        let best = if self.metric.higher_is_better() {
            means.fold(f64::NEG_INFINITY, f64::max)
        } else {
            means.fold(f64::INFINITY, f64::min)
        };
        self.cells.get(&(row, col)).is_some_and(|c| c.summary.mean == best)
    }

    fn precision(&self) -> usize {
        if self.metric == Metric::Accuracy {
            2
        } else {
            4
        }
    }

    /// The header's row fields ("row" when one row stands for everything).
    fn row_headers(&self) -> Vec<String> {
        if self.grouping.is_empty() {
            vec!["row".into()]
        } else {
            self.grouping.clone()
        }
    }

    /// A row's short name (its values), for the penalty matrix.
    fn short_name(&self, row: usize) -> String {
        if self.rows[row].is_empty() {
            "all".into()
        } else {
            self.rows[row].join(", ")
        }
    }

    /// The `(n=…)` note of a row's cells.
    fn n_note(&self, row: usize, n: usize) -> String {
        match (self.incomplete[row], self.incomplete_included) {
            (0, _) => format!("(n={n})"),
            (k, false) => format!("(n={n}, {k} incomplete left out)"),
            (k, true) => format!("(n={n} incl. {k} incomplete)"),
        }
    }

    /// Renders the table (and, except in CSV, the comparisons and the penalty matrix under it).
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Csv => self.render_csv(),
            Format::Md | Format::Latex => self.render_grid(format),
        }
    }

    fn render_grid(&self, format: Format) -> String {
        let prec = self.precision();
        let latex = format == Format::Latex;
        let esc = |t: &str| if latex { latex_escape(t) } else { t.to_string() };
        let mut header: Vec<String> = self.row_headers();
        header.extend(self.columns.iter().map(|c| c.header()));
        header.push("mean rank".into());
        let fields = self.row_headers().len();
        let mut out = String::new();
        if latex {
            out.push_str(&format!(
                "\\begin{{tabular}}{{{}{}}}\n\\hline\n{} \\\\\n\\hline\n",
                "l".repeat(fields),
                "r".repeat(self.columns.len() + 1),
                header.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" & ")
            ));
        } else {
            out.push_str(&format!(
                "| {} |\n|{}{}\n",
                header.join(" | "),
                "---|".repeat(fields),
                "---:|".repeat(self.columns.len() + 1)
            ));
        }
        for row in 0..self.rows.len() {
            let mut line: Vec<String> = if self.rows[row].is_empty() {
                vec!["all".into()]
            } else {
                self.rows[row].iter().map(|v| esc(v)).collect()
            };
            if self.baseline == Some(row) {
                line.last_mut().expect("a row field").push_str(" (baseline)");
            }
            for col in &self.columns {
                let Some(cell) = self.cells.get(&(row, *col)) else {
                    line.push(String::new());
                    continue;
                };
                let s = &cell.summary;
                let se = if s.se.is_nan() { "n/a".to_string() } else { format!("{:.prec$}", s.se) };
                let pm = if latex { "$\\pm$" } else { "±" };
                let mut text = format!("{:.prec$} {pm} {se}", s.mean);
                if self.is_best(row, *col) {
                    text = if latex { format!("\\textbf{{{text}}}") } else { format!("**{text}**") };
                }
                if let Some(c) = &cell.comparison {
                    let st = stars(c.p_holm);
                    if !st.is_empty() {
                        text.push_str(&if latex {
                            format!("$^{{{st}}}$")
                        } else {
                            format!(" {}", st.replace('*', "\\*"))
                        });
                    }
                }
                line.push(format!("{text} {}", self.n_note(row, s.n)));
            }
            let rank = self.mean_rank[row];
            line.push(if rank.is_nan() { String::new() } else { format!("{rank:.2}") });
            if latex {
                out.push_str(&format!("{} \\\\\n", line.join(" & ")));
            } else {
                out.push_str(&format!("| {} |\n", line.join(" | ")));
            }
        }
        let mut notes = self.notes();
        notes.extend(self.comparison_lines());
        if latex {
            out.push_str("\\hline\n\\end{tabular}\n");
            if !notes.is_empty() {
                out.push_str("\\begin{flushleft}\\footnotesize\n");
                out.push_str(&notes.iter().map(|n| latex_escape(n)).collect::<Vec<_>>().join(" \\\\\n"));
                out.push_str("\n\\end{flushleft}\n");
            }
        } else {
            out.push('\n');
            for n in &notes {
                out.push_str(n);
                out.push('\n');
            }
        }
        out.push_str(&self.render_penalty(format));
        out
    }

    /// Lines that say what the table leaves out and how its columns are defined.
    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let incomplete: usize = self.incomplete.iter().sum();
        if incomplete > 0 && !self.incomplete_included {
            notes.push(format!(
                "{incomplete} incomplete run(s) left out of the cells (--include-incomplete takes them in)."
            ));
        }
        if self.columns.contains(&Column::Auc) {
            notes.push(format!(
                "AUC: area under each run's learning curve over its label budgets (trapezoids), divided by the budget range{}.",
                if self.auc_left_out > 0 {
                    format!("; {} run(s) without every budget of their row left out of it", self.auc_left_out)
                } else {
                    String::new()
                }
            ));
        }
        notes
    }

    fn render_penalty(&self, format: Format) -> String {
        let budgets = self.columns.iter().filter(|c| matches!(c, Column::Budget(_))).count();
        if self.rows.len() < 2 || budgets == 0 {
            return String::new();
        }
        let latex = format == Format::Latex;
        let names: Vec<String> = (0..self.rows.len())
            .map(|r| if latex { latex_escape(&self.short_name(r)) } else { self.short_name(r) })
            .collect();
        let intro = format!(
            "Penalty matrix (Ash et al. 2020): entry (row, column) is the share of the {budgets} budget(s) at which the row \
             is significantly better than the column (two-sided, the table's t-test, α = {ALPHA}); a column's \
             sum says how often it was beaten (lower is better)."
        );
        let cell = |r: usize, c: usize| if r == c { "—".to_string() } else { format!("{:.2}", self.penalty[r][c]) };
        let sums: Vec<String> = (0..self.rows.len())
            .map(|c| format!("{:.2}", (0..self.rows.len()).map(|r| self.penalty[r][c]).sum::<f64>()))
            .collect();
        let mut out = String::new();
        if latex {
            out.push_str(&format!(
                "\n{}\n\n\\begin{{tabular}}{{l{}}}\n\\hline\n & {} \\\\\n\\hline\n",
                latex_escape(&intro),
                "r".repeat(names.len()),
                names.join(" & ")
            ));
            for r in 0..names.len() {
                let row: Vec<String> = (0..names.len()).map(|c| cell(r, c).replace('—', "--")).collect();
                out.push_str(&format!("{} & {} \\\\\n", names[r], row.join(" & ")));
            }
            out.push_str(&format!("\\hline\ncolumn sum & {} \\\\\n\\hline\n\\end{{tabular}}\n", sums.join(" & ")));
        } else {
            out.push_str(&format!("\n{intro}\n\n| | {} |\n|---|{}\n", names.join(" | "), "---:|".repeat(names.len())));
            for r in 0..names.len() {
                let row: Vec<String> = (0..names.len()).map(|c| cell(r, c)).collect();
                out.push_str(&format!("| {} | {} |\n", names[r], row.join(" | ")));
            }
            out.push_str(&format!("| column sum | {} |\n", sums.join(" | ")));
        }
        out
    }

    fn render_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<String> = vec!["row".into()];
        header.extend(self.grouping.iter().cloned());
        header.extend(
            [
                "n_labeled",
                "n",
                "incomplete",
                "mean",
                "sd",
                "se",
                "ci95_low",
                "ci95_high",
                "role",
                "test",
                "t",
                "p",
                "p_holm",
                "effect_size",
                "effect_size_kind",
                "mean_rank",
            ]
            .map(String::from),
        );
        let _ = w.write_record(&header);
        let f = |x: f64| if x.is_nan() { String::new() } else { x.to_string() };
        for row in 0..self.rows.len() {
            for col in &self.columns {
                let Some(cell) = self.cells.get(&(row, *col)) else {
                    continue;
                };
                let s = &cell.summary;
                let (test, t, p, ph, d, kind) = match &cell.comparison {
                    Some(c) => (
                        (if c.paired { "paired" } else { "welch" }).to_string(),
                        f(c.t),
                        f(c.p),
                        f(c.p_holm),
                        f(c.effect_size),
                        c.effect_name().to_string(),
                    ),
                    None => Default::default(),
                };
                let mut record = vec![self.labels[row].clone()];
                record.extend(self.rows[row].iter().cloned());
                record.extend([
                    match col {
                        Column::Budget(b) => b.to_string(),
                        Column::Auc => "auc".into(),
                    },
                    s.n.to_string(),
                    self.incomplete[row].to_string(),
                    f(s.mean),
                    f(s.sd),
                    f(s.se),
                    f(s.ci95.0),
                    f(s.ci95.1),
                    role(self, row, cell).to_string(),
                    test,
                    t,
                    p,
                    ph,
                    d,
                    kind,
                    f(self.mean_rank[row]),
                ]);
                let _ = w.write_record(&record);
            }
        }
        String::from_utf8(w.into_inner().expect("in-memory")).expect("utf-8")
    }

    /// One line per comparison with its test and p-values, for the text under a table.
    pub fn comparison_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for row in 0..self.rows.len() {
            for col in &self.columns {
                let Some(cell) = self.cells.get(&(row, *col)) else { continue };
                let at = match col {
                    Column::Budget(b) => format!("at {b} labels"),
                    Column::Auc => "in AUC".into(),
                };
                let name = &self.labels[row];
                if cell.same_runs_as_baseline {
                    out.push(format!("{name} vs baseline {at}: the same values seed for seed, not tested"));
                }
                if let Some(c) = cell.comparison {
                    out.push(format!(
                        "{name} vs baseline {at}: {} t = {:.3}, p = {:.3e}, Holm p = {:.3e}, Cohen's {} = {:.2}",
                        if c.paired { "paired" } else { "Welch" },
                        c.t,
                        c.p,
                        c.p_holm,
                        c.effect_name(),
                        c.effect_size
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
    use crate::analysis::SelectedRun;
    use crate::store::StoredRun;

    /// A stored cycle with only the accuracy (in [0, 1]) set.
    pub(crate) fn cycle(n_labeled: i64, accuracy: f64) -> StoredCycle {
        StoredCycle {
            cycle: 0,
            n_labeled,
            accuracy: Some(accuracy),
            class_distance: None,
            diversity: None,
            consistency: None,
            embed_seconds: None,
            train_seconds: None,
            query_seconds: None,
            eval_seconds: None,
        }
    }

    /// A selection grouped by `method`: (method, seed, cycles) per run, rows in sorted order.
    pub(crate) fn selection(runs: Vec<(&str, i64, Vec<StoredCycle>)>) -> Selection {
        let rows: Vec<Vec<String>> =
            runs.iter().map(|r| vec![r.0.to_string()]).collect::<BTreeSet<_>>().into_iter().collect();
        let selected = runs
            .into_iter()
            .map(|(method, seed, cycles)| SelectedRun {
                run: StoredRun {
                    path: format!("{method}/{seed}"),
                    run_id: format!("{method}{seed}"),
                    sweep: "s".into(),
                    seed,
                    complete: true,
                    wall_seconds: 1.0,
                },
                fields: [("method".to_string(), method.to_string())].into(),
                row: rows.iter().position(|r| r[0] == method).unwrap(),
                cycles,
            })
            .collect();
        Selection {
            grouping: vec!["method".into()],
            varying: vec!["method".into()],
            incomplete: vec![0; rows.len()],
            rows,
            runs: selected,
            incomplete_without_row: 0,
            include_incomplete: false,
        }
    }

    const A: [f64; 5] = [0.871, 0.862, 0.880, 0.869, 0.875];
    const B: [f64; 5] = [0.850, 0.861, 0.848, 0.866, 0.857];

    #[test]
    fn table_groups_compares_and_marks() {
        // Paired over seeds 0–4 (values from the stats tests: paired p = 0.0611 with SciPy).
        let mut runs = Vec::new();
        for s in 0..5 {
            runs.push(("mixmatch", s, vec![cycle(100, A[s as usize])]));
            runs.push(("supervised", s, vec![cycle(100, B[s as usize])]));
        }
        let sel = selection(runs.clone());
        let base = sel.find_row("method=supervised").unwrap();
        let t = build_table(&sel, Metric::Accuracy, Some(base), TestChoice::Auto);
        assert_eq!(t.labels, vec!["method=mixmatch", "method=supervised"]);
        assert_eq!(t.columns, vec![Column::Budget(100)], "one budget: no AUC column");
        let c = t.cells[&(0, Column::Budget(100))].comparison.unwrap();
        assert!(c.paired);
        assert!((c.p - 0.061075298914380835).abs() < 1e-7);
        assert_eq!(c.p_holm, c.p); // one comparison
        assert_eq!(c.effect_name(), "d_z");
        assert!((c.effect_size - 1.1555568236570182).abs() < 1e-9, "NumPy d_z");
        let md = t.render(Format::Md);
        // Header names the grouping field; best (mixmatch, 87.14) in bold, no star at p = 0.06.
        assert!(md.starts_with("| method | 100 labels | mean rank |\n"), "{md}");
        assert!(md.contains("| mixmatch | **87.14 ± 0.30** (n=5) | 1.00 |"), "{md}");
        assert!(md.contains("| supervised (baseline) | 85.64 ± 0.34 (n=5) | 2.00 |"), "{md}");
        // Dropping a seed from one side makes the test Welch's, with Cohen's d.
        let t2 = build_table(&selection(runs[1..].to_vec()), Metric::Accuracy, Some(1), TestChoice::Auto);
        let c2 = t2.cells[&(0, Column::Budget(100))].comparison.unwrap();
        assert!(!c2.paired && c2.effect_name() == "d");
        // Asking for Welch gives SciPy's ttest_ind(equal_var=False) p = 0.010596 on these samples;
        // the star goes outside the bold, escaped.
        let t3 = build_table(&sel, Metric::Accuracy, Some(base), TestChoice::Welch);
        let c3 = t3.cells[&(0, Column::Budget(100))].comparison.unwrap();
        assert!(!c3.paired && (c3.p - 0.010596181343654547).abs() < 1e-7);
        assert!((c3.effect_size - 2.104550749748676).abs() < 1e-9, "pooled Cohen's d");
        assert!(t3.render(Format::Md).contains("**87.14 ± 0.30** \\* (n=5)"), "{}", t3.render(Format::Md));
        let csv = t.render(Format::Csv);
        let mut lines = csv.lines();
        assert_eq!(
            lines.next().unwrap(),
            "row,method,n_labeled,n,incomplete,mean,sd,se,ci95_low,ci95_high,role,test,t,p,p_holm,effect_size,effect_size_kind,mean_rank"
        );
        assert!(lines.next().unwrap().starts_with("method=mixmatch,mixmatch,100,5,0,87.14"), "{csv}");
        assert!(lines.next().unwrap().contains(",baseline,,"), "{csv}");
        let latex = t.render(Format::Latex);
        assert!(latex.contains("\\textbf{87.14 $\\pm$ 0.30}"), "{latex}");
    }

    #[test]
    fn identical_cells_are_not_tested_nor_counted_by_holm() {
        // Two methods sharing their initial cycle (same values seed for seed at 100 labels).
        let mut runs = Vec::new();
        for s in 0..5 {
            let first = 0.5 + 0.01 * s as f64;
            runs.push(("mixmatch", s, vec![cycle(100, first), cycle(150, A[s as usize])]));
            runs.push(("supervised", s, vec![cycle(100, first), cycle(150, B[s as usize])]));
        }
        let t = build_table(&selection(runs), Metric::Accuracy, Some(1), TestChoice::Auto);
        let initial = &t.cells[&(0, Column::Budget(100))];
        assert!(initial.comparison.is_none() && initial.same_runs_as_baseline);
        let c = t.cells[&(0, Column::Budget(150))].comparison.unwrap();
        assert_eq!(c.p_holm, c.p, "the untested identical cell must not count as a comparison");
        let lines = t.comparison_lines();
        assert_eq!(lines.len(), 3, "{lines:?}"); // 100 (not tested), 150, AUC
        assert!(lines[0].ends_with("at 100 labels: the same values seed for seed, not tested"), "{lines:?}");
        assert!(t.render(Format::Csv).contains(",same_runs_as_baseline,"));
        // Tied for best (the shared initial cycle): both bold, not the first by order.
        let md = t.render(Format::Md);
        assert_eq!(md.matches("| **52.00 ± 0.71** (n=5) |").count(), 2, "{md}");
    }

    #[test]
    fn auc_column_is_the_mean_curve_height_and_its_own_holm_family() {
        // Two budgets, 100 and 300: AUC = (a + b) / 2 per run.
        let mut runs = Vec::new();
        for s in 0..5 {
            runs.push(("mixmatch", s, vec![cycle(100, A[s as usize]), cycle(300, A[s as usize] + 0.02)]));
            runs.push(("supervised", s, vec![cycle(100, B[s as usize]), cycle(300, B[s as usize] + 0.01)]));
        }
        let t = build_table(&selection(runs), Metric::Accuracy, Some(1), TestChoice::Auto);
        assert_eq!(t.columns, vec![Column::Budget(100), Column::Budget(300), Column::Auc]);
        let auc = &t.cells[&(0, Column::Auc)];
        assert!((auc.by_seed[&0] - 100.0 * (0.871 + 0.891) / 2.0).abs() < 1e-9);
        // Holm over the two budget columns only: their adjusted p is 2·min p, the AUC's its own.
        let c = auc.comparison.unwrap();
        assert_eq!(c.p_holm, c.p);
        let (p100, p300) = (
            t.cells[&(0, Column::Budget(100))].comparison.unwrap(),
            t.cells[&(0, Column::Budget(300))].comparison.unwrap(),
        );
        assert!((p100.p_holm.min(p300.p_holm) - 2.0 * p100.p.min(p300.p)).abs() < 1e-12);
        assert!(t.render(Format::Md).contains("| method | 100 labels | 300 labels | AUC | mean rank |"));
    }

    #[test]
    fn penalty_matrix_and_mean_rank_follow_the_cells() {
        // mixmatch beats supervised by a constant 1 point at every seed and both budgets.
        let mut runs = Vec::new();
        for s in 0..3 {
            let x = 0.5 + 0.1 * s as f64;
            runs.push(("mixmatch", s, vec![cycle(100, x + 0.01), cycle(200, x + 0.02)]));
            runs.push(("supervised", s, vec![cycle(100, x), cycle(200, x + 0.01)]));
        }
        let t = build_table(&selection(runs), Metric::Accuracy, None, TestChoice::Auto);
        assert_eq!(t.penalty, vec![vec![0.0, 1.0], vec![0.0, 0.0]]);
        assert_eq!(t.mean_rank, vec![1.0, 2.0]);
        let md = t.render(Format::Md);
        assert!(
            md.contains("| mixmatch | — | 1.00 |\n| supervised | 0.00 | — |\n| column sum | 0.00 | 1.00 |"),
            "{md}"
        );
    }

    #[test]
    fn latex_output_escapes_everything_it_prints() {
        let mut runs = Vec::new();
        for s in 0..3 {
            runs.push(("consistency_embedding", s, vec![cycle(100, 0.5 + 0.01 * s as f64)]));
            runs.push(("random", s, vec![cycle(100, 0.4 + 0.02 * s as f64)]));
        }
        let sel = selection(runs);
        let t = build_table(&sel, Metric::Accuracy, Some(1), TestChoice::Auto);
        let latex = t.render(Format::Latex);
        assert!(latex.contains("consistency\\_embedding"), "{latex}");
        // No bare underscore, percent or ampersand outside a command anywhere in the output.
        for (i, ch) in latex.char_indices() {
            if ch == '_' || ch == '%' {
                assert_eq!(&latex[i - 1..i], "\\", "unescaped {ch:?} at {i}: {latex}");
            }
        }
        assert!(!latex.contains("Cohen's d_z"), "{latex}");
    }

    #[test]
    fn consistency_metric_reads_the_query_consistency() {
        // Cycles without a consistency (initial sets) are left out of the table.
        let with = |n: i64, c: Option<f64>| StoredCycle { consistency: c, ..cycle(n, 0.7) };
        let sel = selection(vec![
            ("mixmatch", 0, vec![with(100, None), with(150, Some(0.02))]),
            ("mixmatch", 1, vec![with(100, None), with(150, Some(0.04))]),
        ]);
        let t = build_table(&sel, Metric::Consistency, None, TestChoice::Auto);
        assert_eq!(t.columns, vec![Column::Budget(150)], "no AUC for metrics other than accuracy");
        assert!((t.cells[&(0, Column::Budget(150))].summary.mean - 0.03).abs() < 1e-12);
    }
}
