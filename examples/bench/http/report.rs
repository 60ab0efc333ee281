//! The HTTP run's figures summed up: the median of the rounds per endpoint and
//! variant, each variant's ratios to the baseline with the goals, the terminal table
//! and the Markdown table for docs/performance.md.

use std::fmt::Write as _;

use crate::profile::HttpProfile;
use crate::report::{group, Target};

use super::{service, wrk, Measured, RunResult, BASELINE, ENDPOINTS, VARIANTS};

/// The goals of issue 22 for a variant against the baseline: at least this share of
/// its requests per second...
pub const REQ_PER_S_GOAL: f64 = 0.9;
/// ...and a p99 at most this many times its.
pub const P99_GOAL: f64 = 1.5;

/// The median of the rounds of one variant on one endpoint.
#[derive(Debug, Clone)]
pub struct Medians {
    pub endpoint: &'static str,
    pub variant: &'static str,
    pub req_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub cpu_us_per_request: f64,
}

/// A variant against the baseline on one endpoint: the ratio of their medians, and
/// the ratio within each round (the runs of a round are adjacent in time).
#[derive(Debug, Clone)]
pub struct Ratio {
    pub variant: &'static str,
    pub endpoint: &'static str,
    pub req_per_s: f64,
    pub p99: f64,
    pub req_per_s_rounds: Vec<f64>,
    pub p99_rounds: Vec<f64>,
}

pub struct Summary {
    /// In the order of [`ENDPOINTS`], then of [`VARIANTS`].
    pub medians: Vec<Medians>,
    /// Each variant but the baseline, on each endpoint.
    pub ratios: Vec<Ratio>,
    pub goals: Vec<Target>,
    /// The setting in a sentence, then the table.
    pub markdown: String,
}

impl Summary {
    pub fn new(m: &Measured, profile: &HttpProfile, machine: &[(String, String)]) -> Summary {
        let mut medians = Vec::new();
        for endpoint in &ENDPOINTS {
            for variant in VARIANTS {
                let runs: Vec<&RunResult> = (m.runs.iter())
                    .filter(|r| r.endpoint == endpoint.name && r.variant == variant.name)
                    .collect();
                if runs.is_empty() {
                    continue;
                }
                let of = |f: fn(&RunResult) -> f64| median(runs.iter().map(|r| f(r)).collect());
                medians.push(Medians {
                    endpoint: endpoint.name,
                    variant: variant.name,
                    req_per_s: of(|r| r.figures.req_per_s()),
                    p50_ms: of(|r| r.figures.p50_ms),
                    p99_ms: of(|r| r.figures.p99_ms),
                    cpu_us_per_request: of(|r| r.cpu_us_per_request),
                });
            }
        }
        let ratios = ratios(m, &medians);
        let goals = goals(&ratios);
        let markdown = markdown(m, &medians, &ratios, profile, machine);
        Summary {
            medians,
            ratios,
            goals,
            markdown,
        }
    }

    pub fn medians_of(&self, endpoint: &str, variant: &str) -> Option<&Medians> {
        (self.medians.iter()).find(|x| x.endpoint == endpoint && x.variant == variant)
    }

    fn ratio_of(&self, endpoint: &str, variant: &str) -> Option<&Ratio> {
        (self.ratios.iter()).find(|x| x.endpoint == endpoint && x.variant == variant)
    }
}

fn ratios(m: &Measured, medians: &[Medians]) -> Vec<Ratio> {
    let find = |e: &str, v: &str| medians.iter().find(|x| x.endpoint == e && x.variant == v);
    let run = |round: usize, e: &str, v: &str| {
        (m.runs.iter()).find(|r| r.round == round && r.endpoint == e && r.variant == v)
    };
    let rounds = m.runs.iter().map(|r| r.round).max().unwrap_or(0);
    let mut out = Vec::new();
    for variant in VARIANTS.iter().filter(|v| v.name != BASELINE) {
        for endpoint in &ENDPOINTS {
            let (Some(this), Some(base)) = (
                find(endpoint.name, variant.name),
                find(endpoint.name, BASELINE),
            ) else {
                continue;
            };
            let pairs: Vec<(&RunResult, &RunResult)> = (1..=rounds)
                .filter_map(|k| {
                    Some((
                        run(k, endpoint.name, variant.name)?,
                        run(k, endpoint.name, BASELINE)?,
                    ))
                })
                .collect();
            out.push(Ratio {
                variant: variant.name,
                endpoint: endpoint.name,
                req_per_s: this.req_per_s / base.req_per_s,
                p99: this.p99_ms / base.p99_ms,
                req_per_s_rounds: (pairs.iter())
                    .map(|(a, b)| a.figures.req_per_s() / b.figures.req_per_s())
                    .collect(),
                p99_rounds: (pairs.iter())
                    .map(|(a, b)| a.figures.p99_ms / b.figures.p99_ms)
                    .collect(),
            });
        }
    }
    out
}

fn goals(ratios: &[Ratio]) -> Vec<Target> {
    let mut out = Vec::new();
    for r in ratios {
        out.push(Target {
            what: format!(
                "{}/{BASELINE} req/s [{}] at least {REQ_PER_S_GOAL}x",
                r.variant, r.endpoint
            ),
            value: r.req_per_s,
            limit: REQ_PER_S_GOAL,
            at_most: false,
        });
        out.push(Target {
            what: format!(
                "{}/{BASELINE} p99 [{}] at most {P99_GOAL}x",
                r.variant, r.endpoint
            ),
            value: r.p99,
            limit: P99_GOAL,
            at_most: true,
        });
    }
    out
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// "0.66 (0.64-0.69)": a ratio and the range of its rounds (alone with one round).
fn with_range(ratio: f64, rounds: &[f64]) -> String {
    if rounds.len() < 2 {
        return format!("{ratio:.2}");
    }
    let lo = rounds.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = rounds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{ratio:.2} ({lo:.2}-{hi:.2})")
}

fn fact<'a>(machine: &'a [(String, String)], key: &str) -> &'a str {
    (machine.iter())
        .find(|(k, _)| k == key)
        .map_or("unknown", |(_, v)| v.as_str())
}

fn label(endpoint: &str) -> &'static str {
    ENDPOINTS
        .iter()
        .find(|e| e.name == endpoint)
        .map_or("?", |e| e.label)
}

/// The mix's shares in words: "35 % get, 35 % list, ...".
pub fn mix_text() -> String {
    let shares: Vec<String> = (wrk::MIX.iter())
        .map(|(kind, share)| {
            let what = match *kind {
                "complete" => "PATCH /tasks/{id} {\"completed\":true}",
                other => label(other),
            };
            format!("{share} % {what}")
        })
        .collect();
    shares.join(", ")
}

/// The setting of the run in one sentence (the Markdown's caption).
pub fn setting(m: &Measured, profile: &HttpProfile, machine: &[(String, String)]) -> String {
    let s = &m.size;
    let rounds = if profile.rounds == 1 {
        "1 round".to_owned()
    } else {
        format!("{} rounds with the variants' order rotated", profile.rounds)
    };
    let medians = if profile.rounds == 1 {
        ""
    } else {
        " Medians of the rounds; in brackets the lowest and highest ratio of a round."
    };
    format!(
        "examples/api.rs over HTTP: {}, {} connections, {} threads, {} s runs after a {} s \
         warm-up, {rounds}, a fresh service process per run; {}: {} users x {} tasks, a \
         bearer session token on every request; pool of {}; {}; load average {} at the \
         start, {} at the end.{medians}",
        m.wrk_version.split(" [").next().unwrap_or("wrk"),
        wrk::CONNECTIONS,
        wrk::THREADS,
        profile.duration.as_secs(),
        profile.warmup.as_secs(),
        s.label,
        group(u64::from(s.users)),
        group(u64::from(s.tasks_per_user)),
        service::POOL_SIZE,
        m.layout,
        fact(machine, "load average at start"),
        fact(machine, "load average at end"),
    )
}

fn markdown(
    m: &Measured,
    medians: &[Medians],
    ratios: &[Ratio],
    profile: &HttpProfile,
    machine: &[(String, String)],
) -> String {
    let others: Vec<&str> = (VARIANTS.iter())
        .map(|v| v.name)
        .filter(|v| *v != BASELINE)
        .collect();
    let all: Vec<&str> = VARIANTS.iter().map(|v| v.name).collect();
    let mut header = vec!["endpoint".to_owned()];
    header.extend(all.iter().map(|v| format!("{v} req/s")));
    header.extend(others.iter().map(|v| format!("{v}/{BASELINE} req/s")));
    header.extend(all.iter().map(|v| format!("{v} p99 ms")));
    header.extend(others.iter().map(|v| format!("{v}/{BASELINE} p99")));
    header.extend(all.iter().map(|v| format!("{v} CPU µs/request")));
    let mut out = setting(m, profile, machine);
    out.push_str("\n\n");
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(header.len() - 1));
    let find = |e: &str, v: &str| medians.iter().find(|x| x.endpoint == e && x.variant == v);
    let ratio = |e: &str, v: &str| ratios.iter().find(|x| x.endpoint == e && x.variant == v);
    for endpoint in &ENDPOINTS {
        let mut row = vec![endpoint.label.to_owned()];
        let cell = |v: &str, f: &dyn Fn(&Medians) -> String| {
            find(endpoint.name, v).map_or("-".to_owned(), f)
        };
        let ratio_cell = |v: &str, f: &dyn Fn(&Ratio) -> String| {
            ratio(endpoint.name, v).map_or("-".to_owned(), f)
        };
        row.extend(
            all.iter()
                .map(|v| cell(v, &|x| group(x.req_per_s.round() as u64))),
        );
        row.extend(
            others
                .iter()
                .map(|v| ratio_cell(v, &|r| with_range(r.req_per_s, &r.req_per_s_rounds))),
        );
        row.extend(all.iter().map(|v| cell(v, &|x| format!("{:.1}", x.p99_ms))));
        row.extend(
            others
                .iter()
                .map(|v| ratio_cell(v, &|r| with_range(r.p99, &r.p99_rounds))),
        );
        row.extend(
            all.iter()
                .map(|v| cell(v, &|x| format!("{:.0}", x.cpu_us_per_request))),
        );
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

/// The table on the terminal, the goals, then the Markdown.
pub fn print(m: &Measured, summary: &Summary, profile: &HttpProfile, machine: &[(String, String)]) {
    println!();
    println!(
        "todo-store HTTP benchmark ({})",
        if profile.quick { "quick" } else { "full" }
    );
    for (k, v) in machine.iter().chain(m.server.iter()) {
        println!("  {k:<22} {v}");
    }
    println!("  {:<22} {}", "layout", m.layout);
    println!("  {:<22} {}", "wrk", m.wrk_version);
    println!(
        "  {:<22} {} users x {} tasks, seeded in {:.1} s, database {:.2} GiB; {} users with a token",
        format!("size {}", m.size.label),
        group(u64::from(m.size.users)),
        m.size.tasks_per_user,
        m.size.seed_secs,
        m.size.db_bytes as f64 / (1u64 << 30) as f64,
        group(m.users as u64)
    );
    println!("  {:<22} {}", "mix", mix_text());
    println!();
    println!(
        "{:<8} {:<8} {:>9} {:>8} {:>8} {:>10}   req/s of each round",
        "endpoint", "variant", "req/s", "p50 ms", "p99 ms", "CPU µs/req"
    );
    for endpoint in &ENDPOINTS {
        for variant in VARIANTS {
            let Some(x) = summary.medians_of(endpoint.name, variant.name) else {
                continue;
            };
            let rounds: Vec<String> = (m.runs.iter())
                .filter(|r| r.endpoint == endpoint.name && r.variant == variant.name)
                .map(|r| group(r.figures.req_per_s().round() as u64))
                .collect();
            println!(
                "{:<8} {:<8} {:>9} {:>8.1} {:>8.1} {:>10.0}   {}",
                endpoint.name,
                variant.name,
                group(x.req_per_s.round() as u64),
                x.p50_ms,
                x.p99_ms,
                x.cpu_us_per_request,
                rounds.join(" ")
            );
        }
    }
    println!();
    println!(
        "{:<8} {:<16} {:<22} {:<22}",
        "endpoint", "ratio", "req/s (rounds)", "p99 (rounds)"
    );
    for variant in VARIANTS.iter().filter(|v| v.name != BASELINE) {
        for endpoint in &ENDPOINTS {
            if let Some(r) = summary.ratio_of(endpoint.name, variant.name) {
                println!(
                    "{:<8} {:<16} {:<22} {:<22}",
                    endpoint.name,
                    format!("{}/{BASELINE}", variant.name),
                    with_range(r.req_per_s, &r.req_per_s_rounds),
                    with_range(r.p99, &r.p99_rounds)
                );
            }
        }
    }
    println!();
    println!("goals (reported, not asserted; figures of a busy machine are noisy):");
    for goal in &summary.goals {
        println!(
            "  {}  {} ({:.2})",
            if goal.pass() { "PASS" } else { "MISS" },
            goal.what,
            goal.value
        );
    }
    let timeouts: u64 = m.runs.iter().map(|r| r.figures.timeouts).sum();
    if timeouts > 0 {
        println!("  ({timeouts} requests timed out: see target/bench/http/wrk.log)");
    }
    println!();
    println!("for docs/performance.md:");
    println!();
    print!("{}", summary.markdown);
}
