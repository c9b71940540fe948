//! The drawing shared by the charts: a figure's frame (title, legend,
//! caption), grouped bar panels and line panels, all on plotters' SVG
//! backend (text stays text: no font files are read).

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{draw_err, ChartError};

/// The drawing area of a figure or of one of its panels.
pub type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// The opacity of every data bar. Legend swatches are opaque, so a reader of
/// the SVG (the tests) can tell a bar from a swatch of the same colour.
pub const BAR_OPACITY: f64 = 0.85;
/// Radius of a data point's marker (an SVG `<circle>`); nothing else in a
/// chart is drawn as a circle.
pub const POINT_RADIUS: i32 = 5;

const FONT: &str = "sans-serif";
const GREY: RGBColor = RGBColor(90, 90, 90);
const GRID: RGBColor = RGBColor(225, 225, 225);

fn text(size: f64, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle { font: (FONT, size).into_font(), color: color.to_backend_color(), pos: Pos::new(h, v) }
}

/// Lays out a figure: the title on top, the legend under it, the caption
/// lines at the bottom; returns the area left for the panels.
pub fn frame<'a>(
    root: &Area<'a>,
    title: &str,
    legend: &[(String, RGBColor)],
    caption: &[String],
) -> Result<Area<'a>, ChartError> {
    root.fill(&WHITE).map_err(draw_err)?;
    let (w, h) = root.dim_in_pixel();
    let bold = TextStyle::from((FONT, 24).into_font().style(FontStyle::Bold)).color(&BLACK);
    root.draw(&Text::new(title.to_string(), (w as i32 / 2, 12), bold.pos(Pos::new(HPos::Center, VPos::Top))))
        .map_err(draw_err)?;
    // Legend: one swatch and name per series, centred as a row.
    let item_w: Vec<i32> = legend.iter().map(|(name, _)| 34 + 9 * name.chars().count() as i32).collect();
    let mut x = (w as i32 - item_w.iter().sum::<i32>()) / 2;
    for ((name, color), iw) in legend.iter().zip(&item_w) {
        root.draw(&Rectangle::new([(x, 50), (x + 18, 66)], color.filled())).map_err(draw_err)?;
        root.draw(&Text::new(name.clone(), (x + 24, 58), text(16.0, BLACK, HPos::Left, VPos::Center)))
            .map_err(draw_err)?;
        x += iw;
    }
    let cap_h = 12 + 20 * caption.len() as u32;
    for (i, line) in caption.iter().enumerate() {
        let y = (h - cap_h) as i32 + 6 + 20 * i as i32;
        root.draw(&Text::new(line.clone(), (16, y), text(14.0, GREY, HPos::Left, VPos::Top))).map_err(draw_err)?;
    }
    let top = if legend.is_empty() { 50 } else { 76 };
    Ok(root.clone().margin(top, cap_h, 0, 0))
}

/// A number for an axis tick: at most three significant digits, with k and
/// M for thousands and millions.
pub fn tick(v: f64) -> String {
    let (x, suffix) = match v.abs() {
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let s = if x.abs() >= 100.0 || x == x.trunc() {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    };
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    format!("{s}{suffix}")
}

/// One bar: its height, the range over runs drawn as a whisker, its label.
pub struct Bar {
    /// The series' colour.
    pub color: RGBColor,
    /// The bar's height (the median over runs).
    pub value: f64,
    /// (min, max) over runs, drawn as a whisker when they differ.
    pub range: Option<(f64, f64)>,
    /// The figure written above the bar.
    pub label: String,
}

/// Bars side by side under one label on the x axis.
pub struct Group {
    /// The label under the group.
    pub label: String,
    /// The bars, left to right.
    pub bars: Vec<Bar>,
}

/// A panel of grouped bars.
pub struct BarPanel {
    /// The panel's title.
    pub title: String,
    /// The y axis' description, with its unit.
    pub y_desc: String,
    /// The groups, left to right.
    pub groups: Vec<Group>,
    /// A logarithmic y axis (bars then start at the axis' bottom).
    pub log_y: bool,
}

fn panel_title(area: &Area, title: &str) -> Result<(), ChartError> {
    let (w, _) = area.dim_in_pixel();
    let style = TextStyle::from((FONT, 18).into_font().style(FontStyle::Bold)).color(&BLACK);
    area.draw(&Text::new(title.to_string(), (w as i32 / 2, 4), style.pos(Pos::new(HPos::Center, VPos::Top))))
        .map_err(draw_err)
}

fn nothing(area: &Area, msg: &str) -> Result<(), ChartError> {
    let (w, h) = area.dim_in_pixel();
    area.draw(&Text::new(msg.to_string(), (w as i32 / 2, h as i32 / 2), text(16.0, GREY, HPos::Center, VPos::Center)))
        .map_err(draw_err)
}

/// Draws a bar panel into `area`; a panel without bars says so.
pub fn bars(area: &Area, p: &BarPanel) -> Result<(), ChartError> {
    panel_title(area, &p.title)?;
    let all: Vec<&Bar> = p.groups.iter().flat_map(|g| &g.bars).collect();
    if all.is_empty() {
        return nothing(area, "not measured in this run");
    }
    let top = all.iter().map(|b| b.range.map_or(b.value, |r| r.1.max(b.value))).fold(0.0, f64::max);
    let mut builder = ChartBuilder::on(area);
    builder.margin(10).margin_top(34).x_label_area_size(if p.groups.len() > 4 { 52 } else { 34 }).y_label_area_size(64);
    // At least three groups' width, so that a lone bar is not a slab.
    let x = 0.0..p.groups.len().max(3) as f64;
    if p.log_y {
        let low = all.iter().map(|b| b.range.map_or(b.value, |r| r.0.min(b.value))).fold(f64::INFINITY, f64::min);
        if low <= 0.0 {
            return Err(ChartError::Draw(format!("{}: a log axis cannot show {low}", p.title)));
        }
        let lo = 10f64.powf(low.log10().floor());
        let hi = 10f64.powf((top * 2.0).log10().ceil());
        let chart = builder.build_cartesian_2d(x, (lo..hi).log_scale()).map_err(draw_err)?;
        bars_on(area, chart, p, lo)
    } else {
        let hi = if top > 0.0 { top * 1.2 } else { 1.0 };
        let chart = builder.build_cartesian_2d(x, 0.0..hi).map_err(draw_err)?;
        bars_on(area, chart, p, 0.0)
    }
}

fn bars_on<Y>(
    area: &Area,
    mut chart: ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, Y>>,
    p: &BarPanel,
    base: f64,
) -> Result<(), ChartError>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(p.y_desc.as_str())
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .axis_desc_style((FONT, 15))
        .label_style((FONT, 14))
        .draw()
        .map_err(draw_err)?;
    let (bx, by) = area.get_base_pixel();
    let shift = (p.groups.len().max(3) - p.groups.len()) as f64 / 2.0;
    for (k, g) in p.groups.iter().enumerate() {
        let i = k as f64 + shift;
        let n = g.bars.len().max(1) as f64;
        let slot = 0.8 / n;
        for (j, b) in g.bars.iter().enumerate() {
            let x0 = i + 0.1 + j as f64 * slot + slot * 0.06;
            let x1 = x0 + slot * 0.88;
            let mid = (x0 + x1) / 2.0;
            let bar = Rectangle::new([(x0, base), (x1, b.value)], b.color.mix(BAR_OPACITY).filled());
            chart.draw_series(std::iter::once(bar)).map_err(draw_err)?;
            let mut label_at = b.value;
            if let Some((lo, hi)) = b.range.filter(|r| r.0 < r.1) {
                let w = slot * 0.2;
                let whisker = [
                    vec![(mid, lo), (mid, hi)],
                    vec![(mid - w, lo), (mid + w, lo)],
                    vec![(mid - w, hi), (mid + w, hi)],
                ];
                chart
                    .draw_series(whisker.into_iter().map(|pts| PathElement::new(pts, BLACK.stroke_width(1))))
                    .map_err(draw_err)?;
                label_at = label_at.max(hi);
            }
            let label = EmptyElement::at((mid, label_at))
                + Text::new(b.label.clone(), (0, -4), text(14.0, BLACK, HPos::Center, VPos::Bottom));
            chart.draw_series(std::iter::once(label)).map_err(draw_err)?;
        }
        // More than four labels: every other one a line lower, so that long
        // names do not run into each other.
        let (px, py) = chart.backend_coord(&(i + 0.5, base));
        let dy = if p.groups.len() > 4 && k % 2 == 1 { 26 } else { 8 };
        area.draw(&Text::new(g.label.clone(), (px - bx, py - by + dy), text(15.0, BLACK, HPos::Center, VPos::Top)))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// One point of a line: a filled marker, or a hollow one for a point the
/// caption qualifies (not sustained, not converged).
pub struct Point {
    /// Where it is.
    pub x: f64,
    /// Where it is.
    pub y: f64,
    /// Filled (the normal case) or hollow.
    pub filled: bool,
    /// Written beside the marker.
    pub label: Option<String>,
}

/// A line of points, drawn in one colour.
pub struct Series {
    /// The series' colour.
    pub color: RGBColor,
    /// Labels under their points instead of above (for lines that run close
    /// to another).
    pub labels_below: bool,
    /// The points, in x order.
    pub points: Vec<Point>,
}

/// A panel of lines.
pub struct LinePanel {
    /// The panel's title.
    pub title: String,
    /// The x axis' description, with its unit.
    pub x_desc: String,
    /// The y axis' description, with its unit.
    pub y_desc: String,
    /// The lines.
    pub series: Vec<Series>,
    /// A logarithmic x axis.
    pub log_x: bool,
    /// A logarithmic y axis.
    pub log_y: bool,
}

fn span(values: impl Iterator<Item = f64> + Clone, log: bool, what: &str) -> Result<(f64, f64), ChartError> {
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(f64::NEG_INFINITY, f64::max);
    if log {
        if lo <= 0.0 {
            return Err(ChartError::Draw(format!("{what}: a log axis cannot show {lo}")));
        }
        Ok((10f64.powf(lo.log10().floor()), 10f64.powf((hi * 1.5).log10().ceil())))
    } else {
        let pad = if hi > lo { (hi - lo) * 0.08 } else { hi.abs().max(1.0) * 0.1 };
        Ok((lo - pad, hi + pad))
    }
}

/// Draws a line panel into `area`; a panel without points says so.
pub fn lines(area: &Area, p: &LinePanel) -> Result<(), ChartError> {
    panel_title(area, &p.title)?;
    let pts = || p.series.iter().flat_map(|s| &s.points);
    if pts().next().is_none() {
        return nothing(area, "not measured in this run");
    }
    let (x0, x1) = span(pts().map(|q| q.x), p.log_x, &p.x_desc)?;
    let (y0, y1) = span(pts().map(|q| q.y), p.log_y, &p.y_desc)?;
    let mut b = ChartBuilder::on(area);
    b.margin(10).margin_top(34).margin_right(24).x_label_area_size(50).y_label_area_size(70);
    match (p.log_x, p.log_y) {
        (false, false) => lines_on(b.build_cartesian_2d(x0..x1, y0..y1).map_err(draw_err)?, p),
        (false, true) => lines_on(b.build_cartesian_2d(x0..x1, (y0..y1).log_scale()).map_err(draw_err)?, p),
        (true, false) => lines_on(b.build_cartesian_2d((x0..x1).log_scale(), y0..y1).map_err(draw_err)?, p),
        (true, true) => {
            lines_on(b.build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale()).map_err(draw_err)?, p)
        }
    }
}

fn lines_on<X, Y>(
    mut chart: ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, Y>>,
    p: &LinePanel,
) -> Result<(), ChartError>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(p.x_desc.as_str())
        .y_desc(p.y_desc.as_str())
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .axis_desc_style((FONT, 15))
        .label_style((FONT, 14))
        .draw()
        .map_err(draw_err)?;
    for s in &p.series {
        let line = s.points.iter().map(|q| (q.x, q.y));
        chart.draw_series(LineSeries::new(line, s.color.stroke_width(2))).map_err(draw_err)?;
        for q in &s.points {
            // Filled, or a ring (the line shows through it): one circle each.
            let style = if q.filled { s.color.filled() } else { s.color.stroke_width(2) };
            chart.draw_series(std::iter::once(Circle::new((q.x, q.y), POINT_RADIUS, style))).map_err(draw_err)?;
            if let Some(l) = &q.label {
                let (dy, v) = if s.labels_below { (6, VPos::Top) } else { (-6, VPos::Bottom) };
                let t =
                    EmptyElement::at((q.x, q.y)) + Text::new(l.clone(), (8, dy), text(13.0, s.color, HPos::Left, v));
                chart.draw_series(std::iter::once(t)).map_err(draw_err)?;
            }
        }
    }
    Ok(())
}
