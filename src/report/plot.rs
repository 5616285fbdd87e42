//! SVG figures: learning curves (mean accuracy vs labels with a ±SE band, one line per row), a
//! dot plot with ±SE whiskers when the table has a single budget (one position per row), and the
//! class-distance vs diversity scatter of initial sets (the paper's Fig. 4). Every figure keeps
//! its legend in a panel right of the data, sized from its longest label, with each row's n.
use super::{Column, Table};
use crate::analysis::Selection;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;
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

type Area<'b> = DrawingArea<SVGBackend<'b>, Shift>;
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The Okabe–Ito colours (distinguishable with the common colour-vision deficiencies) without
/// their yellow, which is too pale on white.
const PALETTE: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xB2), // blue
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0x00, 0x9E, 0x73), // bluish green
    RGBColor(0xCC, 0x79, 0xA7), // reddish purple
    RGBColor(0xE6, 0x9F, 0x00), // orange
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0x00, 0x00, 0x00), // black
];

/// Marker shapes; rows beyond the palette's length reuse its colours with the next shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Circle,
    Square,
    Diamond,
    Cross,
}

const SHAPES: [Shape; 4] = [Shape::Circle, Shape::Square, Shape::Diamond, Shape::Cross];

/// A row's colour and marker (by row index, so that a row looks the same in every figure).
fn look(row: usize) -> (RGBColor, Shape) {
    (PALETTE[row % PALETTE.len()], SHAPES[(row / PALETTE.len()) % SHAPES.len()])
}

/// Draws a marker of radius `r` pixels centred on `at` (in `area`'s coordinates).
fn draw_marker<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    (shape, r, color): (Shape, i32, RGBAColor),
    path: &Path,
) -> Result<(), PlotError>
where
    CT::From: Clone,
{
    let fill = color.filled();
    let at = EmptyElement::at(at);
    match shape {
        Shape::Circle => area.draw(&(at + Circle::new((0, 0), r, fill))),
        Shape::Square => area.draw(&(at + Rectangle::new([(-r + 1, -r + 1), (r - 1, r - 1)], fill))),
        Shape::Diamond => area.draw(&(at + Polygon::new(vec![(0, -r - 1), (r + 1, 0), (0, r + 1), (-r - 1, 0)], fill))),
        Shape::Cross => area.draw(&(at + Cross::new((0, 0), r, color.stroke_width(2)))),
    }
    .map_err(draw_err(path))
}

const FONT: &str = "sans-serif";
/// Font sizes as plotters counts them (the SVG's font-size is the size / 1.24).
const CAPTION: u32 = 22;
const DESC: u32 = 18;
const TICK: u32 = 16;
const LEGEND: u32 = 16;
/// Width of the panel holding the axes and the data (the legend panel is added right of it).
const PLOT_W: u32 = 820;
const MIN_H: u32 = 600;
const CAPTION_H: u32 = 45;
const MARGIN: u32 = 15;
const MARGIN_RIGHT: u32 = 25;
const Y_AREA: u32 = 80;
/// Height of the data area at least, whatever the tick labels under it take.
const MIN_DATA_H: u32 = 380;
/// The x label area of a numeric axis: tick labels plus the axis title.
const X_AREA: u32 = 65;
const LINE_H: i32 = 18;
const ENTRY_GAP: i32 = 8;
/// Legend labels longer than this many characters break after a comma.
const LEGEND_WRAP: usize = 44;

fn style(size: u32, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).pos(Pos::new(h, v))
}

/// A generous estimate of the rendered width in pixels of `text` (about 0.62 em per character
/// of a sans-serif font at the SVG's font-size), so that labels sized by it are not cut off.
fn text_width(text: &str, size: u32) -> i32 {
    (text.chars().count() as f64 * char_width(size)).ceil() as i32
}

fn char_width(size: u32) -> f64 {
    size as f64 / 1.24 * 0.62
}

/// Breaks `text` after its ", " separators into lines of at most `max_chars` characters where
/// possible (a single longer part keeps its own line).
fn wrap(text: &str, max_chars: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for part in text.split(", ") {
        let fits = lines.last().is_some_and(|l| l.chars().count() + 2 + part.chars().count() <= max_chars);
        match lines.last_mut() {
            Some(line) if fits => {
                line.push_str(", ");
                line.push_str(part);
            }
            Some(line) => {
                line.push(',');
                lines.push(part.to_string());
            }
            None => lines.push(part.to_string()),
        }
    }
    lines
}

/// What a legend entry shows left of its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Glyph {
    /// A line with the row's marker (learning curves).
    Curve,
    /// The row's marker alone.
    Point,
    /// The group-mean triangle of the scatter, in black.
    Mean,
}

struct Entry {
    lines: Vec<String>,
    row: usize,
    glyph: Glyph,
}

impl Entry {
    /// An entry for `label` with its `note` (the n) on the last line when it fits.
    fn new(label: &str, note: &str, row: usize, glyph: Glyph) -> Self {
        let mut lines = wrap(label, LEGEND_WRAP);
        if note.is_empty() {
            return Entry { lines, row, glyph };
        }
        let last = lines.last_mut().expect("split yields a part");
        if last.chars().count() + 1 + note.chars().count() <= LEGEND_WRAP + 8 {
            last.push(' ');
            last.push_str(note);
        } else {
            lines.push(note.to_string());
        }
        Entry { lines, row, glyph }
    }
}

/// `(n=5)`, or `(n=3–5)` when the count differs between the points of one series.
fn n_note(ns: impl Iterator<Item = usize>) -> String {
    let (lo, hi) = ns.fold((usize::MAX, 0), |(lo, hi), n| (lo.min(n), hi.max(n)));
    if lo >= hi {
        format!("(n={hi})")
    } else {
        format!("(n={lo}–{hi})")
    }
}

const LEGEND_TEXT_X: i32 = 48;

fn legend_width(entries: &[Entry]) -> u32 {
    let text = entries.iter().flat_map(|e| &e.lines).map(|l| text_width(l, LEGEND)).max().unwrap_or(0);
    (LEGEND_TEXT_X + text + 15) as u32
}

fn legend_height(entries: &[Entry]) -> u32 {
    entries.iter().map(|e| e.lines.len() as i32 * LINE_H + ENTRY_GAP).sum::<i32>() as u32
}

/// A figure: the caption over everything, the plot panel left and the legend drawn right of it.
struct Figure<'b> {
    root: Area<'b>,
    plot: Area<'b>,
    path: &'b Path,
}

impl<'b> Figure<'b> {
    /// Sizes the figure so that the legend and an `x_area` tall band of x tick labels fit.
    fn new(path: &'b Path, caption: &str, entries: &[Entry], x_area: u32) -> Result<Self, PlotError> {
        let legend_w = legend_width(entries);
        let width = (PLOT_W + legend_w).max(text_width(caption, CAPTION) as u32 + 40);
        let height = MIN_H
            .max(CAPTION_H + 2 * MARGIN + legend_height(entries))
            .max(CAPTION_H + 2 * MARGIN + MIN_DATA_H + x_area);
        let root = SVGBackend::new(path, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err(path))?;
        let title = Text::new(caption.to_string(), (width as i32 / 2, 14), style(CAPTION, HPos::Center, VPos::Top));
        root.draw(&title).map_err(draw_err(path))?;
        let (_, body) = root.split_vertically(CAPTION_H);
        let (plot, legend) = body.split_horizontally(width - legend_w);
        let mut y = MARGIN as i32;
        for e in entries {
            let (color, shape) = look(e.row);
            let yc = y + LINE_H / 2;
            let glyph_x = 12 + 15;
            match e.glyph {
                Glyph::Curve => {
                    let line = PathElement::new(vec![(12, yc), (42, yc)], color.stroke_width(2));
                    legend.draw(&line).map_err(draw_err(path))?;
                    draw_marker(&legend, (glyph_x, yc), (shape, 4, color.to_rgba()), path)?;
                }
                Glyph::Point => {
                    draw_marker(&legend, (glyph_x, yc), (shape, 5, color.to_rgba()), path)?;
                }
                Glyph::Mean => {
                    legend.draw(&TriangleMarker::new((glyph_x, yc), 8, BLACK.filled())).map_err(draw_err(path))?;
                }
            }
            for (i, line) in e.lines.iter().enumerate() {
                let at = (LEGEND_TEXT_X, yc + i as i32 * LINE_H);
                legend
                    .draw(&Text::new(line.clone(), at, style(LEGEND, HPos::Left, VPos::Center)))
                    .map_err(draw_err(path))?;
            }
            y += e.lines.len() as i32 * LINE_H + ENTRY_GAP;
        }
        Ok(Figure { root, plot, path })
    }

    /// The axes: numeric x tick labels from plotters when `numeric_x`, else none (the caller
    /// draws its own with [`Figure::x_tick`]).
    fn chart<'a>(
        &'a self,
        x: std::ops::Range<f64>,
        y: std::ops::Range<f64>,
        x_area: u32,
        numeric_x: bool,
        (x_desc, y_desc): (&str, &str),
    ) -> Result<Chart<'a, 'b>, PlotError> {
        let mut chart = ChartBuilder::on(&self.plot)
            .margin(MARGIN)
            .margin_right(MARGIN_RIGHT)
            .x_label_area_size(x_area)
            .y_label_area_size(Y_AREA)
            .build_cartesian_2d(x, y)
            .map_err(draw_err(self.path))?;
        let mut mesh = chart.configure_mesh();
        if !numeric_x {
            mesh.x_labels(0).disable_x_mesh();
        }
        mesh.y_labels(8)
            .max_light_lines(1)
            .x_desc(x_desc)
            .y_desc(y_desc)
            .axis_desc_style((FONT, DESC))
            .label_style((FONT, TICK))
            .draw()
            .map_err(draw_err(self.path))?;
        Ok(chart)
    }

    /// A tick mark under the x axis at `x` with its label's `lines` under it, or the lines
    /// joined and turned to read upwards when `rotate`.
    fn x_tick(&self, chart: &Chart<'_, 'b>, x: f64, lines: &[String], rotate: bool) -> Result<(), PlotError> {
        let y0 = chart.y_range().start;
        let (px, py) = chart.backend_coord(&(x, y0));
        let err = draw_err(self.path);
        self.root.draw(&PathElement::new(vec![(px, py), (px, py + 5)], BLACK)).map_err(&err)?;
        if rotate {
            let text = lines.join(" ");
            let style = style(TICK, HPos::Right, VPos::Center).transform(FontTransform::Rotate270);
            self.root.draw(&Text::new(text, (px, py + 9), style)).map_err(&err)?;
        } else {
            for (i, line) in lines.iter().enumerate() {
                let at = (px, py + 9 + i as i32 * LINE_H);
                self.root.draw(&Text::new(line.clone(), at, style(TICK, HPos::Center, VPos::Top))).map_err(&err)?;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<(), PlotError> {
        self.root.present().map_err(draw_err(self.path))
    }
}

/// The range with 8 % of its width added on each side (at least 0.5 % of its magnitude, so that
/// equal values still get distinct tick labels).
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let pad = ((hi - lo).abs() * 0.08).max(lo.abs().max(hi.abs()) * 0.005).max(1e-6);
    (lo - pad, hi + pad)
}

/// One row of an accuracy table: its (budget, mean, SE, n) points.
struct Series {
    row: usize,
    points: Vec<(i64, f64, f64, usize)>,
}

/// Writes `path` (SVG): mean test accuracy against the number of labels per row of an accuracy
/// table; with a single budget, one position per row with ±SE whiskers instead.
pub fn plot_learning_curves(table: &Table, path: &Path) -> Result<(), PlotError> {
    let budgets: Vec<i64> = table
        .columns
        .iter()
        .filter_map(|c| match c {
            Column::Budget(b) => Some(*b),
            Column::Auc => None,
        })
        .collect();
    let series: Vec<Series> = (0..table.labels.len())
        .map(|row| Series {
            row,
            points: budgets
                .iter()
                .filter_map(|b| table.cells.get(&(row, Column::Budget(*b))).map(|c| (*b, c.summary)))
                .map(|(b, s)| (b, s.mean, if s.se.is_finite() { s.se } else { 0.0 }, s.n))
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if series.is_empty() {
        return Err(PlotError::Empty("learning curves (no accuracies)".into()));
    }
    let points = series.iter().flat_map(|s| &s.points);
    let lo = points.clone().map(|p| p.1 - p.2).fold(f64::INFINITY, f64::min);
    let hi = points.map(|p| p.1 + p.2).fold(f64::NEG_INFINITY, f64::max);
    let (ymin, ymax) = padded(lo, hi);
    if budgets.len() == 1 {
        plot_one_budget(table, budgets[0], &series, ymin..ymax, path)
    } else {
        plot_curves(table, &budgets, &series, ymin..ymax, path)
    }
}

/// One legend entry per series: the row's label with its n, drawn as `glyph`.
fn legend_entries(table: &Table, series: &[Series], glyph: Glyph) -> Vec<Entry> {
    series
        .iter()
        .map(|s| Entry::new(&table.labels[s.row], &n_note(s.points.iter().map(|p| p.3)), s.row, glyph))
        .collect()
}

fn plot_curves(
    table: &Table,
    budgets: &[i64],
    series: &[Series],
    y: std::ops::Range<f64>,
    path: &Path,
) -> Result<(), PlotError> {
    let entries = legend_entries(table, series, Glyph::Curve);
    let caption = "Test accuracy of the EMA model (mean ± SE over seeds)";
    let fig = Figure::new(path, caption, &entries, X_AREA)?;
    let (xmin, xmax) = padded(budgets[0] as f64, budgets[budgets.len() - 1] as f64);
    let axes = ("labeled images", "test accuracy (%)");
    let mut chart = fig.chart(xmin..xmax, y.clone(), X_AREA, false, axes)?;
    let err = draw_err(path);
    // Light vertical lines at the measured budgets, instead of plotters' round-number mesh.
    let grid = budgets.iter().map(|&b| PathElement::new(vec![(b as f64, y.start), (b as f64, y.end)], BLACK.mix(0.1)));
    chart.draw_series(grid).map_err(&err)?;
    // Every band first, so that no band covers another row's line.
    for s in series {
        let color = look(s.row).0;
        let mut band: Vec<(f64, f64)> = s.points.iter().map(|&(b, m, se, _)| (b as f64, m + se)).collect();
        band.extend(s.points.iter().rev().map(|&(b, m, se, _)| (b as f64, m - se)));
        chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.15).filled()))).map_err(&err)?;
    }
    for s in series {
        let (color, shape) = look(s.row);
        let line = s.points.iter().map(|&(b, m, _, _)| (b as f64, m));
        chart.draw_series(LineSeries::new(line, color.stroke_width(2))).map_err(&err)?;
        for &(b, m, _, _) in &s.points {
            draw_marker(chart.plotting_area(), (b as f64, m), (shape, 4, color.to_rgba()), path)?;
        }
    }
    // A tick at every budget, or at every k-th for the smallest k whose labels do not run into
    // each other: the measured budgets, each printed once and evenly picked, however close.
    let extent = |b: i64| {
        let (px, _) = chart.backend_coord(&(b as f64, y.start));
        let half = text_width(&b.to_string(), TICK) / 2;
        (px - half, px + half)
    };
    let spaced = |k: usize| budgets.iter().step_by(k).zip(budgets.iter().step_by(k).skip(1));
    let stride =
        (1..budgets.len()).find(|&k| spaced(k).all(|(&a, &b)| extent(a).1 + 6 < extent(b).0)).unwrap_or(budgets.len());
    for &b in budgets.iter().step_by(stride) {
        fig.x_tick(&chart, b as f64, &[b.to_string()], false)?;
    }
    drop(chart);
    fig.finish()
}

/// One budget: a categorical axis, a point per row at its mean with ±SE whiskers.
fn plot_one_budget(
    table: &Table,
    budget: i64,
    series: &[Series],
    y: std::ops::Range<f64>,
    path: &Path,
) -> Result<(), PlotError> {
    let entries = legend_entries(table, series, Glyph::Point);
    // Tick labels are the rows' values (the axis title names the fields), one value a line when
    // they do not fit the slot, turned upright when even that does not fit.
    let names: Vec<String> = series.iter().map(|s| table.short_name(s.row)).collect();
    let data_w = (PLOT_W - Y_AREA - MARGIN - MARGIN_RIGHT) as f64;
    let slot = data_w / series.len() as f64 - 12.0;
    let per_line = (slot / char_width(TICK)).floor().max(1.0) as usize;
    let wrapped: Vec<Vec<String>> = names.iter().map(|n| wrap(n, per_line)).collect();
    let rotate = wrapped.iter().flatten().any(|l| text_width(l, TICK) as f64 > slot);
    let ticks_h = if rotate {
        names.iter().map(|n| text_width(n, TICK)).max().unwrap_or(0) as u32 + 14
    } else {
        wrapped.iter().map(Vec::len).max().unwrap_or(1) as u32 * LINE_H as u32 + 12
    };
    let x_area = ticks_h + X_AREA - 25;
    let caption = format!("Test accuracy of the EMA model at {budget} labeled images (mean ± SE over seeds)");
    let fig = Figure::new(path, &caption, &entries, x_area)?;
    let x_desc = if table.grouping.is_empty() { "runs".to_string() } else { table.grouping.join(", ") };
    let k = series.len() as f64;
    let mut chart = fig.chart(-0.5..k - 0.5, y, x_area, false, (&x_desc, "test accuracy (%)"))?;
    let err = draw_err(path);
    for (i, s) in series.iter().enumerate() {
        let (color, shape) = look(s.row);
        let (x, (_, m, se, _)) = (i as f64, s.points[0]);
        if se > 0.0 {
            let whisker = color.stroke_width(2);
            chart
                .draw_series(std::iter::once(PathElement::new(vec![(x, m - se), (x, m + se)], whisker)))
                .map_err(&err)?;
            let caps = [m - se, m + se]
                .map(|end| EmptyElement::at((x, end)) + PathElement::new(vec![(-7, 0), (7, 0)], whisker));
            chart.draw_series(caps).map_err(&err)?;
        }
        draw_marker(chart.plotting_area(), (x, m), (shape, 6, color.to_rgba()), path)?;
    }
    for (i, lines) in wrapped.iter().enumerate() {
        fig.x_tick(&chart, i as f64, lines, rotate)?;
    }
    drop(chart);
    fig.finish()
}

/// Writes `path` (SVG): class-distribution distance against diversity of each run's initial set,
/// one colour per row, group means as large triangles.
pub fn plot_distance_vs_diversity(selection: &Selection, path: &Path) -> Result<(), PlotError> {
    let mut groups: BTreeMap<usize, Vec<(f64, f64)>> = BTreeMap::new();
    for run in &selection.runs {
        let initial = run.cycles.iter().find(|c| c.cycle == 0);
        if let Some((Some(d), Some(c))) = initial.map(|c| (c.diversity, c.class_distance)) {
            groups.entry(run.row).or_default().push((d, c));
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
    let mut entries: Vec<Entry> = groups
        .iter()
        .map(|(&row, pts)| Entry::new(&selection.label(row), &n_note(std::iter::once(pts.len())), row, Glyph::Point))
        .collect();
    entries.push(Entry::new("group mean", "", 0, Glyph::Mean));
    let caption = "Initial sets: class imbalance vs diversity (one point per seed)";
    let fig = Figure::new(path, caption, &entries, X_AREA)?;
    let axes = ("diversity (mean pairwise L2 distance in the embedding)", "class-distribution distance (Eq. 6)");
    let mut chart = fig.chart(xmin..xmax, ymin.max(0.0)..ymax, X_AREA, true, axes)?;
    let err = draw_err(path);
    for (&row, pts) in &groups {
        let (color, shape) = look(row);
        for &p in pts {
            draw_marker(chart.plotting_area(), p, (shape, 4, color.mix(0.6)), path)?;
        }
    }
    for (&row, pts) in &groups {
        let color = look(row).0;
        let n = pts.len() as f64;
        let mean = (pts.iter().map(|p| p.0).sum::<f64>() / n, pts.iter().map(|p| p.1).sum::<f64>() / n);
        // A black rim (TriangleMarker always fills) keeps the mean apart from its points.
        chart.draw_series(std::iter::once(TriangleMarker::new(mean, 12, BLACK.filled()))).map_err(&err)?;
        chart.draw_series(std::iter::once(TriangleMarker::new(mean, 9, color.filled()))).map_err(&err)?;
    }
    drop(chart);
    fig.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::{cycle, selection};
    use crate::report::{build_table, Metric, TestChoice};
    use crate::store::StoredCycle;
    use std::collections::HashSet;
    use std::path::PathBuf;

    /// Where a test's figures go: `$SSAL_PLOT_PREVIEW` when set (to look at them), else a
    /// temporary directory (kept alive by the returned guard).
    fn out_dir() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let dir = std::env::var_os("SSAL_PLOT_PREVIEW").map_or_else(|| t.path().to_path_buf(), PathBuf::from);
        (t, dir)
    }

    /// Every `<text>` element's x and content.
    fn texts(svg: &str) -> Vec<(f64, String)> {
        svg.split("<text ")
            .skip(1)
            .map(|t| {
                let x = t.split("x=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().parse().unwrap();
                let body = t.split_once('>').unwrap().1.split("</text>").next().unwrap();
                (x, body.trim().replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
            })
            .collect()
    }

    /// The points of every `<polyline>` stroked in `color`.
    fn polylines(svg: &str, color: RGBColor) -> Vec<Vec<(i32, i32)>> {
        let stroke = format!("stroke=\"#{:02X}{:02X}{:02X}\"", color.0, color.1, color.2);
        svg.split("<polyline ")
            .skip(1)
            .map(|p| p.split("/>").next().unwrap())
            .filter(|p| p.contains(&stroke))
            .map(|p| {
                let pts = p.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
                pts.split_whitespace()
                    .map(|xy| {
                        let (x, y) = xy.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }

    fn svg_width(svg: &str) -> f64 {
        svg.split("width=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap()
    }

    /// The x of each `<circle>`.
    fn circles(svg: &str) -> Vec<f64> {
        svg.split("<circle ")
            .skip(1)
            .map(|c| c.split("cx=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap())
            .collect()
    }

    /// Asserts that every text containing `needle` is right of the plot panel and inside the
    /// figure; returns how many there are.
    fn legend_outside(svg: &str, needle: &str) -> usize {
        let width = svg_width(svg);
        let found: Vec<(f64, String)> = texts(svg).into_iter().filter(|(_, t)| t.contains(needle)).collect();
        for (x, t) in &found {
            assert!(*x > PLOT_W as f64, "legend text {t:?} at x = {x} is over the plot panel");
            assert!(x + text_width(t, LEGEND) as f64 <= width, "legend text {t:?} runs out of the figure ({width})");
        }
        found.len()
    }

    /// Asserts that no number is printed twice as a tick label.
    fn numbers_unique(svg: &str) {
        let numbers: Vec<String> = texts(svg).into_iter().map(|t| t.1).filter(|t| t.parse::<f64>().is_ok()).collect();
        let unique: HashSet<&String> = numbers.iter().collect();
        assert_eq!(unique.len(), numbers.len(), "repeated tick labels: {numbers:?}");
    }

    /// A selection grouped by two fields, so that its labels are long: `method=…,
    /// mixmatch.lambda_u=…` (runs are given with the method names a, b, c, …).
    fn long_labels(runs: Vec<(&str, i64, Vec<StoredCycle>)>) -> Selection {
        let mut sel = selection(runs);
        let values = [("mixmatch", "75.0"), ("mixmatch", "150.0"), ("supervised", "0.0"), ("fixmatch", "1.0")];
        sel.grouping = vec!["method".into(), "mixmatch.lambda_u".into()];
        sel.rows = (0..sel.rows.len())
            .map(|r| vec![values[r % 4].0.into(), format!("{}{}", values[r % 4].1, "0".repeat(r / 4))])
            .collect();
        sel
    }

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
        assert!(svg.contains("class-distribution distance") && svg.contains("method=mixmatch (n=3)"));
        // 6 initial sets → 6 per-seed circles plus one legend circle per group (2).
        assert_eq!(svg.matches("<circle").count(), 6 + 2);
        // Without accuracies there is nothing to draw, and it says so.
        let none = build_table(&sel, Metric::Consistency, None, TestChoice::Auto);
        assert!(matches!(plot_learning_curves(&none, &lc), Err(PlotError::Empty(_))));
    }

    #[test]
    fn one_budget_is_a_dot_plot_on_a_categorical_axis_with_se_whiskers() {
        let (_guard, dir) = out_dir();
        let runs = (0..3)
            .flat_map(|s| {
                ["a", "b", "c"]
                    .into_iter()
                    .enumerate()
                    .map(move |(i, m)| (m, s, vec![cycle(100, 0.6 + 0.05 * i as f64 + 0.01 * s as f64)]))
            })
            .collect();
        let table = build_table(&long_labels(runs), Metric::Accuracy, None, TestChoice::Auto);
        assert_eq!(table.labels[0], "method=mixmatch, mixmatch.lambda_u=75.0");
        let path = dir.join("one_budget.svg");
        plot_learning_curves(&table, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let texts = texts(&svg);
        let has = |s: &str| texts.iter().any(|(_, t)| t == s);
        // One tick per row under the axis, labelled with the row's values; the fields name the
        // axis, the budget is in the caption and is no tick.
        for r in 0..3 {
            assert!(has(&table.short_name(r)), "no tick {:?} in {texts:?}", table.short_name(r));
        }
        assert!(has("method, mixmatch.lambda_u") && !has("100"), "{texts:?}");
        assert!(texts.iter().any(|(_, t)| t.contains("at 100 labeled images")));
        numbers_unique(&svg);
        // Error bars: a vertical line and two caps in each row's colour, ±SE = 0.577 points
        // around means 10 points apart.
        for r in 0..3 {
            let lines = polylines(&svg, look(r).0);
            assert_eq!(lines.len(), 3, "row {r}: {lines:?}");
            let vertical: Vec<_> = lines.iter().filter(|l| l[0].0 == l[1].0).collect();
            let caps: Vec<_> = lines.iter().filter(|l| l[0].1 == l[1].1).collect();
            assert_eq!((vertical.len(), caps.len()), (1, 2), "row {r}: {lines:?}");
            let (top, bottom) = (vertical[0][0].1.min(vertical[0][1].1), vertical[0][0].1.max(vertical[0][1].1));
            assert!(bottom - top > 10, "row {r}: whisker of {} px", bottom - top);
            let mut ends: Vec<i32> = caps.iter().map(|c| c[0].1).collect();
            ends.sort();
            assert_eq!(ends, vec![top, bottom], "caps at the whisker's ends");
        }
        // The full labels with n, in the legend right of the data.
        assert_eq!(legend_outside(&svg, "(n=3)"), 3);
        assert!(
            has("mixmatch.lambda_u=75.0 (n=3)") || has("method=mixmatch, mixmatch.lambda_u=75.0 (n=3)"),
            "{texts:?}"
        );
    }

    #[test]
    fn learning_curves_tick_each_budget_once_with_the_legend_outside() {
        let (_guard, dir) = out_dir();
        let budgets = [100, 150, 200, 400];
        let mut runs = Vec::new();
        for (i, m) in ["a", "b", "c", "d", "e", "f"].into_iter().enumerate() {
            for s in 0..3 {
                let cycles = budgets
                    .iter()
                    .enumerate()
                    .filter(|&(c, _)| !(m == "f" && s == 2 && c == 3)) // one seed short at 400
                    .map(|(c, &b)| {
                        let acc = 0.4 + 0.1 * c as f64 + 0.015 * i as f64 + 0.01 * ((s + i as i64) % 3) as f64;
                        StoredCycle { cycle: c as i64, ..cycle(b, acc) }
                    })
                    .collect();
                runs.push((m, s, cycles));
            }
        }
        let table = build_table(&long_labels(runs), Metric::Accuracy, None, TestChoice::Auto);
        let path = dir.join("curves.svg");
        plot_learning_curves(&table, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let texts = texts(&svg);
        for b in budgets {
            let n = texts.iter().filter(|(_, t)| *t == b.to_string()).count();
            assert_eq!(n, 1, "tick {b} printed {n} times: {texts:?}");
        }
        numbers_unique(&svg);
        assert!(texts.iter().any(|(_, t)| t == "labeled images"));
        // n per row, a range where a budget lacks a seed; all legend text right of the data.
        assert_eq!(legend_outside(&svg, "(n=3)"), 5);
        assert_eq!(legend_outside(&svg, "(n=2–3)"), 1);
        assert_eq!(legend_outside(&svg, "method="), 6);
        // 24 data markers (6 rows × 4 budgets) inside the plot panel, and one legend marker per
        // row outside it.
        let (inside, outside): (Vec<f64>, Vec<f64>) = circles(&svg).into_iter().partition(|&x| x < PLOT_W as f64);
        assert_eq!((inside.len(), outside.len()), (24, 6));
    }

    #[test]
    fn crowded_figures_turn_long_ticks_upright_and_skip_overlapping_budgets() {
        let (_guard, dir) = out_dir();
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"];
        // 12 rows at one budget: the values no longer fit side by side and are turned upright.
        let runs = (0..2)
            .flat_map(|s| {
                names
                    .into_iter()
                    .enumerate()
                    .map(move |(i, m)| (m, s, vec![cycle(100, 0.5 + 0.01 * (i as f64 + s as f64))]))
            })
            .collect();
        let table = build_table(&long_labels(runs), Metric::Accuracy, None, TestChoice::Auto);
        let path = dir.join("one_budget_crowded.svg");
        plot_learning_curves(&table, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let ticks: Vec<(f64, String)> = svg
            .split("<text ")
            .filter(|t| t.contains("rotate(270"))
            .flat_map(|t| texts(&format!("<text {t}")))
            .filter(|(_, t)| t.contains(", "))
            .collect();
        assert_eq!(ticks.len(), 12, "{ticks:?}");
        for r in 0..12 {
            assert!(ticks.iter().any(|(_, t)| *t == table.short_name(r)), "no upright tick {:?}", table.short_name(r));
        }
        for pair in ticks.windows(2) {
            assert!(pair[1].0 - pair[0].0 >= LINE_H as f64, "upright ticks overlap: {ticks:?}");
        }
        // The axis title under the longest upright label.
        let y_of = |upright: bool, body: &dyn Fn(&str) -> bool| -> f64 {
            let tag = svg.split("<text ").skip(1).find(|t| {
                t.contains("rotate(270") == upright
                    && body(t.split_once('>').unwrap().1.split("</text>").next().unwrap().trim())
            });
            tag.unwrap().split("y=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap()
        };
        let title_y = y_of(false, &|t| t == "method, mixmatch.lambda_u");
        let tick_y = y_of(true, &|t| t.contains(", "));
        let longest = (0..12).map(|r| text_width(&table.short_name(r), TICK)).max().unwrap() as f64;
        assert!(title_y > tick_y + longest, "axis title over the ticks: {title_y} vs {tick_y} + {longest}");
        // 21 budgets 10 labels apart with 8 rows: a tick where it does not run into the previous
        // one, never twice the same; the 8th row reuses the first colour with squares.
        let budgets: Vec<i64> = (0..21).map(|k| 100 + 10 * k).collect();
        let runs = (0..2)
            .flat_map(|s| {
                let budgets = budgets.clone();
                names[..8].iter().enumerate().map(move |(i, m)| {
                    let cycles = budgets
                        .iter()
                        .enumerate()
                        .map(|(c, &b)| StoredCycle {
                            cycle: c as i64,
                            ..cycle(b, 0.3 + 0.02 * c as f64 + 0.01 * (i as f64 + s as f64))
                        })
                        .collect();
                    (*m, s, cycles)
                })
            })
            .collect();
        let table = build_table(&long_labels(runs), Metric::Accuracy, None, TestChoice::Auto);
        let path = dir.join("curves_crowded.svg");
        plot_learning_curves(&table, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        numbers_unique(&svg);
        let ticks: Vec<(f64, i64)> = texts(&svg)
            .into_iter()
            .filter_map(|(x, t)| t.parse::<i64>().ok().filter(|b| budgets.contains(b)).map(|b| (x, b)))
            .collect();
        assert!(ticks.len() >= 5 && ticks[0].1 == 100, "{ticks:?}");
        for pair in ticks.windows(2) {
            let gap = pair[1].0 - pair[0].0;
            assert!(gap >= text_width("300", TICK) as f64, "ticks too close: {ticks:?}");
            assert_eq!(pair[1].1 - pair[0].1, ticks[1].1 - ticks[0].1, "unevenly picked ticks: {ticks:?}");
        }
        assert_eq!(legend_outside(&svg, "(n=2)"), 8);
        assert_eq!(
            svg.matches("<rect").count() - 1,
            21 + 1,
            "squares of the 8th row (21 budgets + legend), besides the background"
        );
    }

    #[test]
    fn scatter_keeps_seeds_and_means_with_the_legend_outside() {
        let (_guard, dir) = out_dir();
        let with = |g: usize, s: i64| StoredCycle {
            class_distance: Some(0.05 + 0.02 * g as f64 + 0.01 * s as f64),
            diversity: Some(3.0 + g as f64 + 0.2 * s as f64),
            ..cycle(100, 0.5)
        };
        let runs = (0..4)
            .flat_map(|s| ["a", "b", "c"].into_iter().enumerate().map(move |(g, m)| (m, s, vec![with(g, s)])))
            .collect();
        // Three fields: labels too long for one legend line break after a comma.
        let mut sel = long_labels(runs);
        sel.grouping.push("strategy".into());
        sel.rows.iter_mut().for_each(|r| r.push("consistency_embedding".into()));
        let path = dir.join("scatter.svg");
        plot_distance_vs_diversity(&sel, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_eq!(legend_outside(&svg, "(n=4)"), 3);
        assert_eq!(legend_outside(&svg, "method=mixmatch, mixmatch.lambda_u=75.0,"), 1);
        assert_eq!(legend_outside(&svg, "strategy=consistency_embedding (n=4)"), 3);
        assert_eq!(legend_outside(&svg, "group mean"), 1);
        let (inside, outside): (Vec<f64>, Vec<f64>) = circles(&svg).into_iter().partition(|&x| x < PLOT_W as f64);
        assert_eq!((inside.len(), outside.len()), (12, 3));
        // A black and a coloured triangle per group mean (a rimmed triangle), and the legend's.
        assert_eq!(svg.matches("<polygon").count(), 2 * 3 + 1);
        numbers_unique(&svg);
    }

    #[test]
    fn palette_is_dark_enough_on_white_and_rows_stay_distinct() {
        let linear = |c: u8| {
            let c = c as f64 / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        for RGBColor(r, g, b) in PALETTE {
            let luminance = 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
            assert!(luminance < 0.6, "#{r:02X}{g:02X}{b:02X} has relative luminance {luminance:.2}");
        }
        // Colour and marker together tell 28 rows apart.
        let looks: HashSet<(u8, u8, u8, usize)> =
            (0..28).map(look).map(|(c, s)| (c.0, c.1, c.2, SHAPES.iter().position(|x| *x == s).unwrap())).collect();
        assert_eq!(looks.len(), 28);
    }

    #[test]
    fn wrap_breaks_after_commas() {
        assert_eq!(
            wrap("method=mixmatch, mixmatch.lambda_u=75.0", 20),
            vec!["method=mixmatch,", "mixmatch.lambda_u=75.0"]
        );
        assert_eq!(wrap("a=1, b=2, c=3", 9), vec!["a=1, b=2,", "c=3"]);
        assert_eq!(n_note([3, 5, 4].into_iter()), "(n=3–5)");
        assert_eq!(n_note([3, 3].into_iter()), "(n=3)");
    }
}
