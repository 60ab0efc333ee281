//! target/bench/http.json: every run, the medians, the ratios and goals, the setting
//! and the Markdown table.

use std::path::Path;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;

use crate::profile::HttpProfile;
use crate::report::json::{facts, num, Pairs};
use crate::BoxResult;

use super::data::TASK_IDS_PER_USER;
use super::report::{mix_text, Summary};
use super::{service, wrk, Measured, BASELINE, ENDPOINTS, VARIANTS};

#[derive(Serialize)]
struct Document<'a> {
    generated_at: String,
    mode: &'static str,
    runtime_seconds: Option<f64>,
    machine: Pairs<&'a str, &'a str>,
    server: Pairs<&'a str, &'a str>,
    layout: &'a str,
    method: Method<'a>,
    variants: Vec<VariantJson>,
    baseline: &'static str,
    runs: Vec<Run<'a>>,
    /// endpoint -> variant -> the medians of its rounds.
    medians: Pairs<&'static str, Pairs<&'static str, Medians>>,
    /// variant -> endpoint -> its ratios to the baseline.
    ratios: Pairs<&'static str, Pairs<&'static str, Ratio>>,
    goals: Vec<Goal<'a>>,
    markdown: &'a str,
}

#[derive(Serialize)]
struct Method<'a> {
    setting: String,
    wrk: &'a str,
    connections: u32,
    threads: u32,
    warmup_seconds: u64,
    run_seconds: u64,
    rounds: usize,
    order: &'static str,
    service: String,
    size: Size,
    users_with_a_token: usize,
    task_ids_per_user: i64,
    endpoints: Pairs<&'static str, &'static str>,
    mix: String,
    requests: &'static str,
    cpu: &'static str,
    created_tasks: &'static str,
    faults: &'static str,
}

#[derive(Serialize)]
struct Size {
    label: &'static str,
    users: u32,
    tasks_per_user: u32,
    tasks: u64,
    seed_seconds: Option<f64>,
    database_bytes: i64,
}

#[derive(Serialize)]
struct VariantJson {
    name: &'static str,
    env: Pairs<&'static str, &'static str>,
}

#[derive(Serialize)]
struct Run<'a> {
    round: usize,
    endpoint: &'static str,
    variant: &'static str,
    requests: u64,
    seconds: Option<f64>,
    req_per_s: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    server_cpu_us_per_request: Option<f64>,
    timeouts: u64,
    load_average: &'a str,
}

#[derive(Serialize)]
struct Medians {
    req_per_s: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    server_cpu_us_per_request: Option<f64>,
}

#[derive(Serialize)]
struct Ratio {
    req_per_s: Option<f64>,
    req_per_s_rounds: Vec<Option<f64>>,
    p99: Option<f64>,
    p99_rounds: Vec<Option<f64>>,
}

#[derive(Serialize)]
struct Goal<'a> {
    goal: &'a str,
    value: Option<f64>,
    limit: Option<f64>,
    pass: bool,
}

/// Writes the results to `path`.
pub fn write(
    path: &Path,
    m: &Measured,
    summary: &Summary,
    profile: &HttpProfile,
    machine: &[(String, String)],
    elapsed: Duration,
) -> BoxResult<()> {
    let document = Document {
        generated_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        mode: if profile.quick { "quick" } else { "full" },
        runtime_seconds: num(elapsed.as_secs_f64()),
        machine: facts(machine),
        server: facts(&m.server),
        layout: &m.layout,
        method: method(m, profile, machine),
        variants: (VARIANTS.iter())
            .map(|v| VariantJson {
                name: v.name,
                env: Pairs(v.env.to_vec()),
            })
            .collect(),
        baseline: BASELINE,
        runs: (m.runs.iter())
            .map(|r| Run {
                round: r.round,
                endpoint: r.endpoint,
                variant: r.variant,
                requests: r.figures.requests,
                seconds: num(r.figures.seconds),
                req_per_s: num(r.figures.req_per_s()),
                p50_ms: num(r.figures.p50_ms),
                p99_ms: num(r.figures.p99_ms),
                server_cpu_us_per_request: num(r.cpu_us_per_request),
                timeouts: r.figures.timeouts,
                load_average: &r.load_average,
            })
            .collect(),
        medians: Pairs(
            (ENDPOINTS.iter())
                .map(|e| {
                    let of_endpoint = (VARIANTS.iter())
                        .filter_map(|v| summary.medians_of(e.name, v.name))
                        .map(|x| {
                            let medians = Medians {
                                req_per_s: num(x.req_per_s),
                                p50_ms: num(x.p50_ms),
                                p99_ms: num(x.p99_ms),
                                server_cpu_us_per_request: num(x.cpu_us_per_request),
                            };
                            (x.variant, medians)
                        })
                        .collect();
                    (e.name, Pairs(of_endpoint))
                })
                .collect(),
        ),
        ratios: Pairs(
            (VARIANTS.iter())
                .filter(|v| v.name != BASELINE)
                .map(|v| {
                    let of_variant = (summary.ratios.iter())
                        .filter(|r| r.variant == v.name)
                        .map(|r| {
                            let ratio = Ratio {
                                req_per_s: num(r.req_per_s),
                                req_per_s_rounds: r
                                    .req_per_s_rounds
                                    .iter()
                                    .map(|x| num(*x))
                                    .collect(),
                                p99: num(r.p99),
                                p99_rounds: r.p99_rounds.iter().map(|x| num(*x)).collect(),
                            };
                            (r.endpoint, ratio)
                        })
                        .collect();
                    (v.name, Pairs(of_variant))
                })
                .collect(),
        ),
        goals: (summary.goals.iter())
            .map(|g| Goal {
                goal: &g.what,
                value: num(g.value),
                limit: num(g.limit),
                pass: g.pass(),
            })
            .collect(),
        markdown: &summary.markdown,
    };
    let mut json = serde_json::to_string_pretty(&document)?;
    json.push('\n');
    std::fs::write(path, json)?;
    Ok(())
}

fn method<'a>(m: &'a Measured, profile: &HttpProfile, machine: &[(String, String)]) -> Method<'a> {
    let s = &m.size;
    Method {
        setting: super::report::setting(m, profile, machine),
        wrk: &m.wrk_version,
        connections: wrk::CONNECTIONS,
        threads: wrk::THREADS,
        warmup_seconds: profile.warmup.as_secs(),
        run_seconds: profile.duration.as_secs(),
        rounds: profile.rounds,
        order: "per round, each endpoint in turn, and for it each variant, the variants' \
                order rotated by one each round",
        service: format!(
            "examples/api.rs built with --release, a fresh process per run, \
             DATABASE_POOL_SIZE={}, API_ADDR=127.0.0.1:0",
            service::POOL_SIZE
        ),
        size: Size {
            label: s.label,
            users: s.users,
            tasks_per_user: s.tasks_per_user,
            tasks: u64::from(s.users) * u64::from(s.tasks_per_user),
            seed_seconds: num(s.seed_secs),
            database_bytes: s.db_bytes,
        },
        users_with_a_token: m.users,
        task_ids_per_user: TASK_IDS_PER_USER,
        endpoints: Pairs(ENDPOINTS.iter().map(|e| (e.name, e.label)).collect()),
        mix: mix_text(),
        requests: "each request picks a user at random (all alike), with its bearer token \
                   (SessionRepo::create), and one of that user's task ids at random; one \
                   generator per wrk thread, seeded by its number",
        cpu: "the service's utime + stime (/proc/PID/stat, all threads) over the timed run, \
              divided by the requests wrk counted",
        created_tasks: "deleted after each run that creates tasks, then VACUUM (ANALYZE) tasks",
        faults: "the warm-up counts every response that is not 2xx, the timed run every \
                 status of 400 or more and every socket error: any of them fails the run",
    }
}
