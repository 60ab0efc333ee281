//! target/bench/results.svg: per operation, the crate's mean latency at each size next
//! to its floor.

use std::fmt::Write as _;
use std::path::Path;

use crate::ops::Op;
use crate::profile::Profile;
use crate::report::{group, Results};
use crate::BoxResult;

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart: per operation, the crate's mean latency at each size next to
/// its floor.
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
    let colors = |size: &str| {
        if size == "S" {
            ("#2f6db5", "#a9c6ea")
        } else {
            ("#d9822b", "#f3cb9c")
        }
    };
    let bars_per_op = sizes.len() * 2;
    let (bar_h, bar_gap, group_gap) = (11.0, 2.0, 16.0);
    let group_h = bars_per_op as f64 * (bar_h + bar_gap) + group_gap;
    let (left, right, top) = (250.0, 150.0, 136.0);
    let plot_w = 620.0;
    let width = left + plot_w + right;
    let footer_lines = results.bulk.len() + sizes.len();
    let height = top + group_h * ops.len() as f64 + 90.0 + footer_lines as f64 * 16.0;
    let max = results
        .ops
        .iter()
        .flat_map(|r| [Some(r.mean_us), r.floor_us])
        .flatten()
        .fold(1.0f64, f64::max);
    let step = nice_step(max / 6.0);
    let axis_max = (max / step).ceil() * step;
    let x = |v: f64| left + v / axis_max * plot_w;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        s,
        r##"<text x="20" y="30" font-size="18" font-weight="600" fill="#222">todo-store: mean latency per repo call vs. its pgbench floor</text>"##
    );
    let cpu = machine
        .iter()
        .find(|(k, _)| k == "cpu")
        .map_or("", |(_, v)| v.as_str());
    let cores = machine
        .iter()
        .find(|(k, _)| k == "cores")
        .map_or("", |(_, v)| v.as_str());
    let server = |k: &str| {
        results
            .server
            .iter()
            .find(|(key, _)| key == k)
            .map_or("", |(_, v)| v.as_str())
    };
    let _ = writeln!(
        s,
        r##"<text x="20" y="50" fill="#555">{} · {cores} cores · {} over {} (fsync {}, synchronous_commit {})</text>"##,
        xml(cpu),
        xml(server("version")),
        xml(server("connection")),
        xml(server("fsync")),
        xml(server("synchronous_commit")),
    );
    let pinned = results
        .pinning
        .iter()
        .all(|(_, state)| !state.starts_with("off"));
    let _ = writeln!(
        s,
        r##"<text x="20" y="68" fill="#555">{} iterations per op in {} rounds alternating with the floor{} · {}</text>"##,
        group(profile.iterations as u64),
        profile.rounds,
        if profile.quick { " (quick mode)" } else { "" },
        if pinned && !results.pinning.is_empty() {
            "client and server pinned to different cores"
        } else {
            "client and server not pinned"
        },
    );
    let size_text: Vec<String> = results
        .sizes
        .iter()
        .map(|z| {
            format!(
                "{} = {} tasks",
                z.label,
                group(u64::from(z.users) * u64::from(z.tasks_per_user))
            )
        })
        .collect();
    let _ = writeln!(
        s,
        r##"<text x="20" y="86" fill="#555">Shorter is better. Label: mean µs and crate/floor ratio (red: over the 1.2x target). Sizes: {}.</text>"##,
        xml(&size_text.join(", "))
    );
    // Legend.
    let mut lx = 20.0;
    for size in &sizes {
        let (dark, light) = colors(size);
        for (color, text) in [
            (dark, format!("crate, {size}")),
            (light, format!("floor (pgbench), {size}")),
        ] {
            let _ = writeln!(
                s,
                r#"<rect x="{lx}" y="100" width="14" height="11" fill="{color}"/>"#
            );
            let _ = writeln!(
                s,
                r##"<text x="{}" y="110" fill="#333">{}</text>"##,
                lx + 19.0,
                xml(&text)
            );
            lx += 28.0 + text.len() as f64 * 6.6;
        }
    }
    // Grid.
    let grid_bottom = top + group_h * ops.len() as f64 - group_gap + 6.0;
    let mut v = 0.0;
    while v <= axis_max + 1e-9 {
        let gx = x(v);
        let _ = writeln!(
            s,
            r##"<line x1="{gx:.1}" y1="{}" x2="{gx:.1}" y2="{grid_bottom:.1}" stroke="#e4e4e4"/>"##,
            top - 8.0
        );
        let _ = writeln!(
            s,
            r##"<text x="{gx:.1}" y="{:.1}" fill="#666" text-anchor="middle">{}</text>"##,
            grid_bottom + 16.0,
            group(v.round() as u64)
        );
        v += step;
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" fill="#666" text-anchor="middle">mean latency, µs</text>"##,
        left + plot_w / 2.0,
        grid_bottom + 34.0
    );
    for (i, op) in ops.iter().enumerate() {
        let gy = top + i as f64 * group_h;
        if i % 2 == 1 {
            let _ = writeln!(
                s,
                r##"<rect x="10" y="{:.1}" width="{:.1}" height="{:.1}" fill="#f7f7f7"/>"##,
                gy - 6.0,
                width - 20.0,
                group_h - group_gap + 8.0
            );
        }
        let mid = gy + (group_h - group_gap) / 2.0 + 4.0;
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{mid:.1}" fill="#222" text-anchor="end">{}</text>"##,
            left - 10.0,
            xml(op.label())
        );
        let mut by = gy;
        for size in &sizes {
            let (dark, light) = colors(size);
            let Some(r) = results.ops.iter().find(|r| r.op == *op && r.size == *size) else {
                by += 2.0 * (bar_h + bar_gap);
                continue;
            };
            let label = match r.ratio() {
                Some(ratio) => format!("{:.0} µs · {ratio:.2}x", r.mean_us),
                None => format!("{:.0} µs", r.mean_us),
            };
            let _ = writeln!(
                s,
                r#"<rect x="{left}" y="{by:.1}" width="{:.1}" height="{bar_h}" fill="{dark}"><title>{} [{size}] crate: {:.1} µs</title></rect>"#,
                x(r.mean_us) - left,
                xml(op.label()),
                r.mean_us
            );
            // Over the 1.2x target: the label in red.
            let ink = match r.ratio() {
                Some(ratio) if ratio > 1.2 && r.op != Op::RoundTrip => "#c0392b",
                _ => "#333",
            };
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" fill="{ink}" font-size="10.5">{}</text>"##,
                x(r.mean_us) + 5.0,
                by + bar_h - 1.5,
                xml(&label)
            );
            by += bar_h + bar_gap;
            if let Some(f) = r.floor_us {
                let _ = writeln!(
                    s,
                    r#"<rect x="{left}" y="{by:.1}" width="{:.1}" height="{bar_h}" fill="{light}"><title>{} [{size}] floor: {f:.1} µs</title></rect>"#,
                    x(f) - left,
                    xml(op.label())
                );
                let _ = writeln!(
                    s,
                    r##"<text x="{:.1}" y="{:.1}" fill="#777" font-size="10.5">{f:.0} µs</text>"##,
                    x(f) + 5.0,
                    by + bar_h - 1.5
                );
            }
            by += bar_h + bar_gap;
        }
    }
    let mut fy = grid_bottom + 58.0;
    for b in &results.bulk {
        let _ = writeln!(
            s,
            r##"<text x="20" y="{fy:.1}" fill="#333">Bulk [{}]: create_many {:.0} rows/s vs \copy {:.0} rows/s ({:.2}x) for {} rows.</text>"##,
            b.size,
            b.crate_rows_per_s,
            b.copy_rows_per_s,
            b.crate_rows_per_s / b.copy_rows_per_s,
            group(b.rows as u64)
        );
        fy += 16.0;
    }
    for size in &sizes {
        let levels: Vec<String> = results
            .concurrency
            .iter()
            .filter(|c| c.size == *size)
            .map(|c| format!("{} thr {:.0}", c.threads, c.ops_per_s))
            .collect();
        if !levels.is_empty() {
            let _ = writeln!(
                s,
                r##"<text x="20" y="{fy:.1}" fill="#333">Pool, 70/30 read/write mix [{size}], ops/s: {}.</text>"##,
                xml(&levels.join(" · "))
            );
            fy += 16.0;
        }
    }
    let _ = writeln!(s, "</svg>");
    std::fs::write(path, s)?;
    Ok(())
}

fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.max(1e-9).log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if raw <= m * magnitude {
            return m * magnitude;
        }
    }
    10.0 * magnitude
}
