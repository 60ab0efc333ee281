//! target/bench/results.json: the results with the machine, the server and the method.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};

use crate::ops::Op;
use crate::profile::Profile;
use crate::report::{OpResult, Results, Target};
use crate::BoxResult;

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{}", (x * 100.0).round() / 100.0)
    } else {
        "null".to_owned()
    }
}

fn json_opt(x: Option<f64>) -> String {
    x.map_or("null".to_owned(), json_num)
}

pub fn write(
    path: &Path,
    results: &Results,
    profile: &Profile,
    machine: &[(String, String)],
    targets: &[Target],
    elapsed: Duration,
) -> BoxResult<()> {
    let mut j = String::new();
    let facts = |pairs: &[(String, String)]| {
        pairs
            .iter()
            .map(|(k, v)| format!("{}: {}", json_str(k), json_str(v)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(j, "{{");
    let _ = writeln!(
        j,
        "  \"generated_at\": {},",
        json_str(&Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true))
    );
    let _ = writeln!(
        j,
        "  \"mode\": {},",
        json_str(if profile.quick { "quick" } else { "full" })
    );
    let _ = writeln!(
        j,
        "  \"runtime_seconds\": {},",
        json_num(elapsed.as_secs_f64())
    );
    let _ = writeln!(j, "  \"machine\": {{{}}},", facts(machine));
    let _ = writeln!(j, "  \"server\": {{{}}},", facts(&results.server));
    let pinning: Vec<(String, String)> = results
        .pinning
        .iter()
        .map(|(size, state)| ((*size).to_owned(), state.clone()))
        .collect();
    let _ = writeln!(j, "  \"pinning\": {{{}}},", facts(&pinning));
    let _ = writeln!(
        j,
        "  \"method\": {{\"iterations\": {}, \"warmup\": {}, \"floor\": \"pgbench -n -M prepared -c 1 -r, the crate's SQL with its binds as pgbench variables; mean of the mirrored statement\", \"bulk_floor\": \"psql \\\\copy ... FROM pstdin WITH (FORMAT csv), psql's own timing\"}},",
        profile.iterations, profile.warmup
    );
    let sizes: Vec<String> = results
        .sizes
        .iter()
        .map(|s| {
            format!(
                "{}: {{\"users\": {}, \"tasks_per_user\": {}, \"tasks\": {}, \"seed_seconds\": {}, \"seed_rows_per_s\": {}}}",
                json_str(s.label),
                s.users,
                s.tasks_per_user,
                u64::from(s.users) * u64::from(s.tasks_per_user),
                json_num(s.seed_secs),
                json_num(s.seed_rows_per_s)
            )
        })
        .collect();
    let _ = writeln!(j, "  \"sizes\": {{{}}},", sizes.join(", "));
    let _ = writeln!(j, "  \"operations\": {{");
    let ops: Vec<Op> = Op::ALL
        .into_iter()
        .filter(|op| results.ops.iter().any(|r| r.op == *op))
        .collect();
    for (i, op) in ops.iter().enumerate() {
        let _ = writeln!(j, "    {}: {{", json_str(op.key()));
        let _ = writeln!(j, "      \"label\": {},", json_str(op.label()));
        let per_size: Vec<&OpResult> = results.ops.iter().filter(|r| r.op == *op).collect();
        for (k, r) in per_size.iter().enumerate() {
            let _ = write!(
                j,
                "      {}: {{\"iterations\": {}, \"mean_us\": {}, \"p50_us\": {}, \"p99_us\": {}, \"ops_per_s\": {}, \
                 \"floor_mean_us\": {}, \"floor_ops_per_s\": {}, \"ratio\": {}, \"statements_per_call\": {}, \
                 \"prepared_statement\": {}, \"rounds_crate_floor_us\": [{}], \"client_cpu_us\": {}, \"statements\": [{}], \"floor_sql\": {}, \"floor_note\": {}}}",
                json_str(r.size),
                r.iterations,
                json_num(r.mean_us),
                json_num(r.p50_us),
                json_num(r.p99_us),
                json_num(r.ops_per_s),
                json_opt(r.floor_us),
                json_opt(r.floor_us.map(|f| 1e6 / f)),
                json_opt(r.ratio()),
                r.statements.len(),
                r.prepared,
                r.rounds
                    .iter()
                    .map(|(c, f)| format!("[{}, {}]", json_num(*c), json_num(*f)))
                    .collect::<Vec<_>>()
                    .join(", "),
                json_num(r.client_cpu_us),
                r.statements.iter().map(|s| json_str(s)).collect::<Vec<_>>().join(", "),
                json_str(&r.floor_sql),
                r.floor_note.as_deref().map_or("null".to_owned(), json_str)
            );
            let _ = writeln!(j, "{}", if k + 1 < per_size.len() { "," } else { "" });
        }
        let _ = writeln!(j, "    }}{}", if i + 1 < ops.len() { "," } else { "" });
    }
    let _ = writeln!(j, "  }},");
    let bulk: Vec<String> = results
        .bulk
        .iter()
        .map(|b| {
            format!(
                "    {{\"size\": {}, \"rows\": {}, \"create_many_rows_per_s\": {}, \"copy_rows_per_s\": {}, \"ratio\": {}}}",
                json_str(b.size),
                b.rows,
                json_num(b.crate_rows_per_s),
                json_num(b.copy_rows_per_s),
                json_num(b.crate_rows_per_s / b.copy_rows_per_s)
            )
        })
        .collect();
    let _ = writeln!(j, "  \"bulk\": [\n{}\n  ],", bulk.join(",\n"));
    let conc: Vec<String> = results
        .concurrency
        .iter()
        .map(|c| {
            let one = results
                .concurrency
                .iter()
                .find(|o| o.size == c.size && o.threads == 1)
                .map_or(c.ops_per_s, |o| o.ops_per_s);
            format!(
                "    {{\"size\": {}, \"threads\": {}, \"ops_per_s\": {}, \"mean_us_per_op\": {}, \"speedup\": {}, \"cores_busy\": {}, \"cores_this_program\": {}, \"cores_stolen\": {}}}",
                json_str(c.size),
                c.threads,
                json_num(c.ops_per_s),
                json_num(c.mean_us),
                json_num(c.ops_per_s / one),
                json_num(c.busy_cores),
                json_num(c.own_cores),
                json_num(c.steal_cores)
            )
        })
        .collect();
    let _ = writeln!(j, "  \"concurrency\": [\n{}\n  ],", conc.join(",\n"));
    let t: Vec<String> = targets
        .iter()
        .map(|t| {
            format!(
                "    {{\"target\": {}, \"value\": {}, \"limit\": {}, \"pass\": {}}}",
                json_str(&t.what),
                json_num(t.value),
                json_num(t.limit),
                t.pass()
            )
        })
        .collect();
    let _ = writeln!(j, "  \"targets\": [\n{}\n  ]", t.join(",\n"));
    let _ = writeln!(j, "}}");
    std::fs::write(path, j)?;
    Ok(())
}
