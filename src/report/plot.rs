//! SVG figures: learning curves (mean accuracy vs labels with a ±SE band, one line per method)
//! and the class-distance vs diversity scatter of initial sets (the paper's Fig. 4).
use super::{Column, Table};
use crate::analysis::Selection;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Errors drawing a figure.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{0}: nothing to plot")]
    Empty(String),
    #[error("cannot draw {path}: {message}")]
    Draw { path: String, message: String },
}

fn draw_err<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> PlotError + '_ {
    move |e| PlotError::Draw { path: path.display().to_string(), message: format!("{e:?}") }
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A white 900×600 chart with a caption and labelled axes.
fn frame<'a, 'b: 'a>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    caption: &str,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    (x_desc, y_desc): (&str, &str),
    path: &Path,
) -> Result<Chart<'a, 'b>, PlotError> {
    root.fill(&WHITE).map_err(draw_err(path))?;
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(draw_err(path))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|v| if v.abs() >= 10.0 { format!("{v:.0}") } else { format!("{v:.2}") })
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(draw_err(path))?;
    Ok(chart)
}

/// Draws the legend and writes the file.
fn finish<'a, 'b: 'a>(
    mut chart: Chart<'a, 'b>,
    root: &DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    position: SeriesLabelPosition,
    path: &Path,
) -> Result<(), PlotError> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err(path))?;
    root.present().map_err(draw_err(path))
}

fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let pad = ((hi - lo).abs() * 0.08).max(1e-6);
    (lo - pad, hi + pad)
}

/// Writes `path` (SVG): mean test accuracy against the number of labels per row of an accuracy
/// table.
pub fn plot_learning_curves(table: &Table, path: &Path) -> Result<(), PlotError> {
    let budgets: Vec<i64> = table
        .columns
        .iter()
        .filter_map(|c| match c {
            Column::Budget(b) => Some(*b),
            Column::Auc => None,
        })
        .collect();
    if budgets.is_empty() {
        return Err(PlotError::Empty("learning curves (no accuracies)".into()));
    }
    let (xmin, xmax) = (*budgets.first().unwrap() as f64, *budgets.last().unwrap() as f64);
    let lows = table.cells.values().map(|c| c.summary.mean - c.summary.se.max(0.0).min(1e9));
    let highs = table.cells.values().map(|c| c.summary.mean + if c.summary.se.is_nan() { 0.0 } else { c.summary.se });
    let (ymin, ymax) = padded(lows.fold(f64::INFINITY, f64::min), highs.fold(f64::NEG_INFINITY, f64::max));
    let (xmin, xmax) = padded(xmin, xmax);
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    let caption = "Test accuracy of the EMA model (mean ± SE over seeds)";
    let axes = ("labeled images", "test accuracy (%)");
    let mut chart = frame(&root, caption, xmin..xmax, ymin..ymax, axes, path)?;
    for (i, row) in table.labels.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64, f64)> = budgets
            .iter()
            .filter_map(|b| {
                table.cells.get(&(i, Column::Budget(*b))).map(|cell| (*b as f64, cell.summary.mean, cell.summary.se))
            })
            .collect();
        let se = |s: f64| if s.is_nan() { 0.0 } else { s };
        let mut band: Vec<(f64, f64)> = pts.iter().map(|&(x, m, s)| (x, m + se(s))).collect();
        band.extend(pts.iter().rev().map(|&(x, m, s)| (x, m - se(s))));
        chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.2).filled()))).map_err(draw_err(path))?;
        chart
            .draw_series(LineSeries::new(pts.iter().map(|&(x, m, _)| (x, m)), color.stroke_width(2)))
            .map_err(draw_err(path))?
            .label(row.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
        chart
            .draw_series(pts.iter().map(|&(x, m, _)| Circle::new((x, m), 4, color.filled())))
            .map_err(draw_err(path))?;
    }
    finish(chart, &root, SeriesLabelPosition::LowerRight, path)
}

/// Writes `path` (SVG): class-distribution distance against diversity of each run's initial set,
/// one colour per row label, group means as large markers.
pub fn plot_distance_vs_diversity(selection: &Selection, path: &Path) -> Result<(), PlotError> {
    let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for run in &selection.runs {
        let initial = run.cycles.iter().find(|c| c.cycle == 0);
        if let Some((Some(d), Some(c))) = initial.map(|c| (c.diversity, c.class_distance)) {
            groups.entry(selection.label(run.row)).or_default().push((d, c));
        }
    }
    let initial: Vec<(f64, f64)> = groups.values().flatten().copied().collect();
    if initial.is_empty() {
        return Err(PlotError::Empty("distance vs diversity (no initial sets with an embedding)".into()));
    }
    let xs = initial.iter().map(|p| p.0);
    let ys = initial.iter().map(|p| p.1);
    let (xmin, xmax) = padded(xs.clone().fold(f64::INFINITY, f64::min), xs.fold(f64::NEG_INFINITY, f64::max));
    let (ymin, ymax) = padded(0.0, ys.fold(f64::NEG_INFINITY, f64::max));
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    let caption = "Initial sets: class imbalance vs diversity (one point per seed)";
    let axes = ("diversity (mean pairwise L2 distance in the embedding)", "class-distribution distance (Eq. 6)");
    let mut chart = frame(&root, caption, xmin..xmax, ymin.max(0.0)..ymax, axes, path)?;
    for (i, (name, pts)) in groups.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.mix(0.6).filled())))
            .map_err(draw_err(path))?
            .label(name.clone())
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        let n = pts.len() as f64;
        let mean = (pts.iter().map(|p| p.0).sum::<f64>() / n, pts.iter().map(|p| p.1).sum::<f64>() / n);
        chart.draw_series(std::iter::once(TriangleMarker::new(mean, 10, color.filled()))).map_err(draw_err(path))?;
    }
    let corner = emptiest_corner(initial.iter().copied(), (xmin, xmax), (ymin.max(0.0), ymax));
    finish(chart, &root, corner, path)
}

/// The corner of the plot with the fewest points, where the legend hides the least.
fn emptiest_corner(points: impl Iterator<Item = (f64, f64)>, x: (f64, f64), y: (f64, f64)) -> SeriesLabelPosition {
    let mut counts = [0usize; 4]; // upper left, upper right, lower left, lower right
    for (px, py) in points {
        let right = (px - x.0) / (x.1 - x.0) > 0.5;
        let lower = (py - y.0) / (y.1 - y.0) < 0.5;
        counts[2 * lower as usize + right as usize] += 1;
    }
    let positions = [
        SeriesLabelPosition::UpperLeft,
        SeriesLabelPosition::UpperRight,
        SeriesLabelPosition::LowerLeft,
        SeriesLabelPosition::LowerRight,
    ];
    let best = (0..4).rev().min_by_key(|&i| counts[i]).expect("four corners");
    positions[best].clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::{cycle, selection};
    use crate::report::{build_table, Metric, TestChoice};
    use crate::store::StoredCycle;

    #[test]
    fn figures_carry_their_series_and_axes() {
        let t = tempfile::tempdir().unwrap();
        let with = |n, acc, seed: i64, div| StoredCycle {
            class_distance: Some(0.1 * seed as f64),
            diversity: Some(div),
            ..cycle(n, acc)
        };
        let runs = (0..3)
            .flat_map(|s| {
                [
                    ("mixmatch", s, vec![with(100, 0.7, s, 2.0 + s as f64)]),
                    (
                        "supervised",
                        s,
                        vec![with(100, 0.6, s, 1.0), StoredCycle { cycle: 1, ..with(1000, 0.8, s, 1.0) }],
                    ),
                ]
            })
            .collect();
        let sel = selection(runs);
        let table = build_table(&sel, Metric::Accuracy, None, TestChoice::Auto);
        let lc = t.path().join("lc.svg");
        plot_learning_curves(&table, &lc).unwrap();
        let svg = std::fs::read_to_string(&lc).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("method=mixmatch") && svg.contains("method=supervised"));
        assert!(svg.contains("labeled images") && svg.contains("test accuracy (%)"));
        let sc = t.path().join("sc.svg");
        plot_distance_vs_diversity(&sel, &sc).unwrap();
        let svg = std::fs::read_to_string(&sc).unwrap();
        assert!(svg.contains("class-distribution distance") && svg.contains("method=mixmatch"));
        // 6 initial sets → 6 per-seed circles plus one legend circle per group (2).
        assert_eq!(svg.matches("<circle").count(), 6 + 2);
        // Without accuracies there is nothing to draw, and it says so.
        let none = build_table(&sel, Metric::Consistency, None, TestChoice::Auto);
        assert!(matches!(plot_learning_curves(&none, &lc), Err(PlotError::Empty(_))));
    }
}
