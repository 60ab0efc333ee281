//! target/bench/results.svg, drawn with plotters: a horizontal bar chart of the crate's
//! mean latency per operation at each size next to its floor, under a header that says
//! where it was measured, over a footer with bulk and pool throughput.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::ops::Op;
use crate::profile::Profile;
use crate::report::{group, OpResult, Results};
use crate::BoxResult;

/// The chart's geometry, in pixels.
const LEFT: u32 = 250;
const RIGHT: u32 = 150;
const TOP: u32 = 136;
const PLOT_W: u32 = 620;
const BAR_H: f64 = 11.0;
const BAR_GAP: f64 = 2.0;
const GROUP_GAP: f64 = 16.0;
const FONT: &str = "sans-serif";

const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);
const TEXT: RGBColor = RGBColor(0x33, 0x33, 0x33);
const MUTED: RGBColor = RGBColor(0x55, 0x55, 0x55);
const GRID: RGBColor = RGBColor(0xe4, 0xe4, 0xe4);
const STRIPE: RGBColor = RGBColor(0xf7, 0xf7, 0xf7);
const OVER_TARGET: RGBColor = RGBColor(0xc0, 0x39, 0x2b);

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// The crate's colour and its floor's for a size.
fn colors(size: &str) -> (RGBColor, RGBColor) {
    match size {
        "S" => (RGBColor(0x2f, 0x6d, 0xb5), RGBColor(0xa9, 0xc6, 0xea)),
        "XL" => (RGBColor(0x3a, 0x8a, 0x4f), RGBColor(0xa8, 0xd8, 0xb3)),
        "S100" => (RGBColor(0x7a, 0x5c, 0xa8), RGBColor(0xc9, 0xb8, 0xe3)),
        _ => (RGBColor(0xd9, 0x82, 0x2b), RGBColor(0xf3, 0xcb, 0x9c)),
    }
}

/// Text of `px` pixels. (plotters' SVG backend writes a font's size divided by 1.24,
/// the ratio of a line's height to its em.)
fn font(px: f64, color: RGBColor) -> TextStyle<'static> {
    (FONT, px * 1.24).into_font().color(&color)
}

/// What is drawn, and where each op's group of bars goes.
struct Chart<'a> {
    results: &'a Results,
    ops: Vec<Op>,
    sizes: Vec<&'static str>,
    /// Height of one op's group of bars, gap included.
    group_h: f64,
    /// Largest value on the x axis, µs.
    axis_max: f64,
}

impl Chart<'_> {
    /// Pixel y of the top of op `i`'s group.
    fn group_top(&self, i: usize) -> f64 {
        f64::from(TOP) + i as f64 * self.group_h
    }

    /// Pixel y of the bottom of the grid.
    fn grid_bottom(&self) -> f64 {
        self.group_top(self.ops.len()) - GROUP_GAP + 6.0
    }

    /// Pixel x of `us` on the axis.
    fn x(&self, us: f64) -> i32 {
        (f64::from(LEFT) + us / self.axis_max * f64::from(PLOT_W)).round() as i32
    }
}

/// Writes the chart to `path`.
pub fn write(
    path: &Path,
    results: &Results,
    machine: &[(String, String)],
    profile: &Profile,
) -> BoxResult<()> {
    let ops: Vec<Op> = Op::ALL
        .into_iter()
        .filter(|op| results.ops.iter().any(|r| r.op == *op))
        .collect();
    let sizes: Vec<&'static str> = results.sizes.iter().map(|s| s.label).collect();
    let max = results
        .ops
        .iter()
        .flat_map(|r| [Some(r.mean_us), r.floor_us()])
        .flatten()
        .fold(1.0f64, f64::max);
    let step = nice_step(max / 6.0);
    let chart = Chart {
        results,
        group_h: (sizes.len() * 2) as f64 * (BAR_H + BAR_GAP) + GROUP_GAP,
        axis_max: (max / step).ceil() * step,
        ops,
        sizes,
    };
    let footer_lines = results.bulk.len() + chart.sizes.len() + results.sizes.len();
    let width = LEFT + PLOT_W + RIGHT;
    let height = chart.grid_bottom() + 84.0 + footer_lines as f64 * 16.0;
    let root = SVGBackend::new(path, (width, height.round() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    draw_header(&root, results, machine, profile)?;
    draw_legend(&root, &chart.sizes)?;
    draw_grid(&root, &chart, step)?;
    for i in 0..chart.ops.len() {
        draw_op(&root, &chart, i)?;
    }
    draw_footer(&root, &chart)?;
    root.present()?;
    Ok(())
}

/// Title, machine and server, method, and how to read the chart.
fn draw_header(
    root: &Area<'_>,
    results: &Results,
    machine: &[(String, String)],
    profile: &Profile,
) -> BoxResult<()> {
    let fact = |pairs: &[(String, String)], key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map_or(String::new(), |(_, v)| v.clone())
    };
    let server = |key: &str| fact(&results.server, key);
    let pinned = !results.pinning.is_empty()
        && results
            .pinning
            .iter()
            .all(|(_, state)| !state.starts_with("off"));
    let sizes: Vec<String> = (results.sizes.iter())
        .map(|z| {
            let tasks = u64::from(z.users) * u64::from(z.tasks_per_user);
            format!("{} = {} tasks", z.label, group(tasks))
        })
        .collect();
    let lines = [
        format!(
            "{} · {} cores · {} over {} (fsync {}, synchronous_commit {})",
            fact(machine, "cpu"),
            fact(machine, "cores"),
            server("version"),
            server("connection"),
            server("fsync"),
            server("synchronous_commit"),
        ),
        format!(
            "{} iterations per op in {} rounds alternating with the floor{} · {}",
            group(profile.iterations as u64),
            profile.rounds,
            if profile.quick { " (quick mode)" } else { "" },
            if pinned {
                "client and server pinned to different cores"
            } else {
                "client and server not pinned"
            },
        ),
        format!(
            "Shorter is better. Floors: the crate's own SQL and a hand-written reference. \
             Label: mean µs and crate/floor ratio (red: over 1.2x). Sizes: {}.",
            sizes.join(", ")
        ),
    ];
    let title = "todo-store: mean latency per repo call vs. the faster of its two pgbench floors";
    let bold = (FONT, 18.0 * 1.24, FontStyle::Bold).into_font().color(&INK);
    root.draw(&Text::new(title, (20, 14), bold))?;
    for (i, line) in lines.iter().enumerate() {
        let y = 40 + 18 * i as i32;
        root.draw(&Text::new(line.as_str(), (20, y), font(12.0, MUTED)))?;
    }
    Ok(())
}

/// A swatch and a name per bar colour.
fn draw_legend(root: &Area<'_>, sizes: &[&str]) -> BoxResult<()> {
    let mut x = 20.0;
    for size in sizes {
        let (dark, light) = colors(size);
        for (color, text) in [
            (dark, format!("crate, {size}")),
            (light, format!("faster floor, {size}")),
        ] {
            let x0 = x as i32;
            root.draw(&Rectangle::new([(x0, 100), (x0 + 14, 111)], color.filled()))?;
            let label = Text::new(text.clone(), (x0 + 19, 100), font(12.0, TEXT));
            root.draw(&label)?;
            x += 28.0 + text.len() as f64 * 6.6;
        }
    }
    Ok(())
}

/// Vertical grid lines with their values, every `step` µs, and the axis name.
fn draw_grid(root: &Area<'_>, chart: &Chart<'_>, step: f64) -> BoxResult<()> {
    let bottom = chart.grid_bottom().round() as i32;
    let top = TOP as i32 - 8;
    let labels = font(12.0, MUTED).pos(Pos::new(HPos::Center, VPos::Top));
    let mut v = 0.0;
    while v <= chart.axis_max + 1e-9 {
        let x = chart.x(v);
        root.draw(&PathElement::new([(x, top), (x, bottom)], GRID))?;
        let value = group(v.round() as u64);
        root.draw(&Text::new(value, (x, bottom + 5), labels.clone()))?;
        v += step;
    }
    let axis = Text::new(
        "mean latency, µs",
        (chart.x(chart.axis_max / 2.0), bottom + 22),
        labels,
    );
    root.draw(&axis)?;
    Ok(())
}

/// Op `i`: its stripe (every other op), its name, and per size the crate's bar and the
/// floor's, each with its value.
fn draw_op(root: &Area<'_>, chart: &Chart<'_>, i: usize) -> BoxResult<()> {
    let op = chart.ops[i];
    let top = chart.group_top(i);
    let inner_h = chart.group_h - GROUP_GAP;
    if i % 2 == 1 {
        let width = (LEFT + PLOT_W + RIGHT) as i32;
        let corners = [
            (10, (top - 6.0) as i32),
            (width - 10, (top + inner_h + 2.0) as i32),
        ];
        root.draw(&Rectangle::new(corners, STRIPE.filled()))?;
    }
    let name_at = (LEFT as i32 - 10, (top + inner_h / 2.0) as i32);
    let name_font = font(12.0, INK).pos(Pos::new(HPos::Right, VPos::Center));
    root.draw(&Text::new(op.label(), name_at, name_font))?;
    let mut y = top;
    for size in &chart.sizes {
        let Some(r) = chart
            .results
            .ops
            .iter()
            .find(|r| r.op == op && r.size == *size)
        else {
            y += 2.0 * (BAR_H + BAR_GAP);
            continue;
        };
        let (dark, light) = colors(size);
        let label = match r.ratio() {
            Some(ratio) => format!("{:.0} µs · {ratio:.2}x", r.mean_us),
            None => format!("{:.0} µs", r.mean_us),
        };
        draw_bar(root, chart, y, r.mean_us, dark, &label, label_color(r))?;
        y += BAR_H + BAR_GAP;
        if let Some(f) = r.floor_us() {
            draw_bar(root, chart, y, f, light, &format!("{f:.0} µs"), MUTED)?;
        }
        y += BAR_H + BAR_GAP;
    }
    Ok(())
}

/// Red over the 1.2x target (the calibration has none).
fn label_color(r: &OpResult) -> RGBColor {
    match r.ratio() {
        Some(ratio) if ratio > 1.2 && r.op != Op::RoundTrip => OVER_TARGET,
        _ => TEXT,
    }
}

/// One bar from the axis to `us`, its top at pixel `y`, `label` after its end.
fn draw_bar(
    root: &Area<'_>,
    chart: &Chart<'_>,
    y: f64,
    us: f64,
    color: RGBColor,
    label: &str,
    ink: RGBColor,
) -> BoxResult<()> {
    let (y0, y1) = (y.round() as i32, (y + BAR_H).round() as i32);
    let end = chart.x(us);
    root.draw(&Rectangle::new(
        [(LEFT as i32, y0), (end, y1)],
        color.filled(),
    ))?;
    let style = font(10.5, ink).pos(Pos::new(HPos::Left, VPos::Center));
    root.draw(&Text::new(label, (end + 5, (y0 + y1) / 2), style))?;
    Ok(())
}

/// A line per bulk load and per size's pool throughput.
fn draw_footer(root: &Area<'_>, chart: &Chart<'_>) -> BoxResult<()> {
    let results = chart.results;
    let mut lines = Vec::new();
    for s in &results.sizes {
        let mut line = format!(
            "Seed [{}]: {:.0} s, {:.0} rows/s; database {:.2} GiB",
            s.label,
            s.seed_secs,
            s.seed_rows_per_s,
            s.db_bytes as f64 / (1u64 << 30) as f64
        );
        if let Some(l) = &s.load {
            line.push_str(&format!(
                "; \\copy of the same rows {:.0} rows/s; \\copy then indexes {:.0} rows/s",
                l.rows_per_s(l.copy_secs),
                l.rows_per_s(l.copy_bare_secs + l.index_secs)
            ));
        }
        lines.push(line + ".");
    }
    for b in &results.bulk {
        lines.push(format!(
            "Bulk [{}]: create_many {:.0} rows/s vs \\copy {:.0} rows/s ({:.2}x) for {} rows.",
            b.size,
            b.crate_rows_per_s,
            b.copy_rows_per_s,
            b.crate_rows_per_s / b.copy_rows_per_s,
            group(b.rows as u64)
        ));
    }
    for size in &chart.sizes {
        let levels: Vec<String> = (results.concurrency.iter())
            .filter(|c| c.size == *size)
            .map(|c| format!("{} thr {:.0}", c.threads, c.ops_per_s))
            .collect();
        if !levels.is_empty() {
            lines.push(format!(
                "Pool, 70/30 read/write mix [{size}], ops/s: {}.",
                levels.join(" · ")
            ));
        }
    }
    let mut y = chart.grid_bottom() + 48.0;
    for line in lines {
        root.draw(&Text::new(line, (20, y as i32), font(12.0, TEXT)))?;
        y += 16.0;
    }
    Ok(())
}

/// A round step (1, 2, 2.5 or 5 times a power of ten) at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.max(1e-9).log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if raw <= m * magnitude {
            return m * magnitude;
        }
    }
    10.0 * magnitude
}
