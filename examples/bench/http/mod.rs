//! The HTTP mode (`--http`): what a request costs the example web service
//! (examples/api.rs) over real HTTP, its async path against the same handlers calling
//! the repos directly on tokio's workers, side by side in one run.
//!
//! It builds the service (`cargo build --release --example api`), seeds one size (L, or
//! S with `--quick`) as the repo-call benchmark does, gives every user a session token
//! (`SessionRepo::create`) and picks ten of each user's tasks. Then, per round, for
//! each endpoint, it runs each variant of [`VARIANTS`] in turn (the order rotated from
//! round to round) as a fresh process with a pool of 10, and drives it with Debian's
//! wrk (64 connections, 2 threads): a warm-up that checks every response is 2xx, then
//! the timed run. It reads the service's CPU time (utime + stime of /proc/PID/stat)
//! before and after the timed run, and divides it by the requests wrk counted.
//!
//! Endpoints ([`ENDPOINTS`]): get (`GET /tasks/{id}`), list (`GET
//! /tasks?completed=false`, the first page of 50 open tasks), create (`POST /tasks`)
//! and a mix of 70 % reads and 30 % writes (`wrk::MIX`). Every request carries one
//! user's bearer token; wrk's script (`requests.lua`, written to target/bench/http/)
//! picks the user at random among all, then one of that user's task ids.
//!
//! Why a fresh process per run: every run starts from the same state (a pool just
//! opened, no blocking-pool threads or allocator state left by another endpoint), the
//! two variants of an endpoint run back to back, and the CPU time read is the run's
//! own. The tasks a run created are deleted after it and the table vacuumed, so that
//! every run sees the same table.
//!
//! The figures: req/s, p50 and p99 (wrk's, as `--latency` prints them) and server CPU
//! per request, per variant x endpoint x round; per endpoint the median of the rounds
//! and the ratio of each variant to [`BASELINE`], held to the goals of issue 22 (req/s
//! ratio at least 0.9, p99 ratio at most 1.5) and reported as PASS or MISS, never
//! asserted. A run with a response that is not 2xx, or a failed connection, is an
//! error: a fault of the harness must not pass for a figure.
//!
//! Results: a table on the terminal, a Markdown table for docs/performance.md, and
//! target/bench/http.json. The load average is recorded at the start and the end and
//! before each timed run; the layout is unpinned unless `--pin` (the service on one
//! core, PostgreSQL's backends and wrk on the others).

mod data;
mod json;
mod report;
mod service;
mod wrk;

use std::path::Path;
use std::time::Instant;

use crate::dev_database::target_dir;
use crate::pinning::Pinning;
use crate::profile::HttpProfile;
use crate::server::Server;
use crate::{facts, Args, BoxResult};

use data::HttpDb;
use service::Service;
use wrk::{Call, Figures, Wrk};

/// A variant of the service: its name and the environment that selects it.
pub struct Variant {
    pub name: &'static str,
    pub env: &'static [(&'static str, &'static str)],
}

impl Variant {
    /// `API_CALLS=async`.
    pub fn env_text(&self) -> String {
        let pairs: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join(" ")
    }
}

/// The variants measured side by side; another is one line.
pub const VARIANTS: &[Variant] = &[
    // The service as it is: every repo call through AsyncPool.
    Variant {
        name: "async",
        env: &[("API_CALLS", "async")],
    },
    // The same handlers calling the repos directly on tokio's workers.
    Variant {
        name: "direct",
        env: &[("API_CALLS", "direct")],
    },
    // The other ways to leave the workers, for the record: one trip per request
    // through tokio's blocking pool, and the call made in place after the worker hands
    // its other tasks to another thread.
    Variant {
        name: "spawn_blocking",
        env: &[("API_CALLS", "spawn_blocking")],
    },
    Variant {
        name: "block_in_place",
        env: &[("API_CALLS", "block_in_place")],
    },
];

/// The variant the others are compared with.
pub const BASELINE: &str = "direct";

/// What a run requests.
pub struct Endpoint {
    /// wrk's script argument, and the key in http.json.
    pub name: &'static str,
    /// For the tables.
    pub label: &'static str,
    /// Its requests create tasks (deleted after the run).
    pub creates: bool,
}

pub const ENDPOINTS: [Endpoint; 4] = [
    Endpoint {
        name: "get",
        label: "GET /tasks/{id}",
        creates: false,
    },
    Endpoint {
        name: "list",
        label: "GET /tasks?completed=false (50 open tasks)",
        creates: false,
    },
    Endpoint {
        name: "create",
        label: "POST /tasks",
        creates: true,
    },
    Endpoint {
        name: "mix",
        label: "mix: 70 % reads, 30 % writes",
        creates: true,
    },
];

/// One timed run: a variant, an endpoint, a round.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// From 1.
    pub round: usize,
    pub endpoint: &'static str,
    pub variant: &'static str,
    pub figures: Figures,
    pub cpu_us_per_request: f64,
    /// The 1-minute load average before the timed run.
    pub load_average: String,
}

/// Everything an HTTP run measured, and its setting.
pub struct Measured {
    pub runs: Vec<RunResult>,
    pub layout: String,
    pub server: Vec<(String, String)>,
    pub size: crate::report::SizeInfo,
    pub users: usize,
    pub wrk_version: String,
}

/// The HTTP mode, start to end.
pub fn run(args: &Args) -> BoxResult<()> {
    let started = Instant::now();
    let profile = HttpProfile::new(args)?;
    let mut machine = facts::machine_facts();
    machine.push(("load average at start".to_owned(), facts::load_average()));
    let wrk = Wrk::find_or_install()?;
    let dir = target_dir().join("bench").join("http");
    std::fs::create_dir_all(&dir)?;
    let api = service::build()?;
    let server = Server::open(args)?;
    let outcome = measure_size(&server, &profile, args, &wrk, &api, &dir);
    server.finish();
    let measured = outcome?;
    machine.push(("load average at end".to_owned(), facts::load_average()));
    let elapsed = started.elapsed();
    let summary = report::Summary::new(&measured, &profile, &machine);
    report::print(&measured, &summary, &profile, &machine);
    let path = target_dir().join("bench").join("http.json");
    json::write(&path, &measured, &summary, &profile, &machine, elapsed)?;
    println!();
    println!(
        "wrote {} ({:.0} s in all; wrk's output and the service's stderr are in {})",
        path.display(),
        elapsed.as_secs_f64(),
        dir.display()
    );
    Ok(())
}

/// The size's database, seeded, then every round; the database is dropped at the end.
fn measure_size(
    server: &Server,
    profile: &HttpProfile,
    args: &Args,
    wrk: &Wrk,
    api: &Path,
    dir: &Path,
) -> BoxResult<Measured> {
    let mut db = data::prepare(server, profile, args)?;
    let server_facts = facts::server_facts(&mut db.setup, server)?;
    let (runs, layout) = measure(&mut db, profile, args, wrk, api, dir)?;
    Ok(Measured {
        runs,
        layout,
        server: server_facts,
        size: db.info.clone(),
        users: db.users.len(),
        wrk_version: wrk.version.clone(),
    })
}

/// Every round: how the processes were placed, and every run.
fn measure(
    db: &mut HttpDb,
    profile: &HttpProfile,
    args: &Args,
    wrk: &Wrk,
    api: &Path,
    dir: &Path,
) -> BoxResult<(Vec<RunResult>, String)> {
    let script = wrk::write_script(dir, &db.users)?;
    let (service_log, wrk_log) = (dir.join("service.log"), dir.join("wrk.log"));
    for log in [&service_log, &wrk_log] {
        std::fs::write(log, "")?;
    }
    let mut pinning = if args.pin {
        Some(Pinning::plan().map_err(|why| format!("--pin: {why}"))?)
    } else {
        None
    };
    let layout = pinning.as_ref().map_or_else(
        || "unpinned (the scheduler places the service, PostgreSQL and wrk)".to_owned(),
        Pinning::describe_service,
    );
    eprintln!(
        "   {} round(s); each run: a fresh service, a {} s warm-up, {} s timed; {layout}",
        profile.rounds,
        profile.warmup.as_secs(),
        profile.duration.as_secs()
    );
    let ctx = RunCtx {
        profile,
        wrk,
        api,
        script: &script,
        service_log: &service_log,
        wrk_log: &wrk_log,
    };
    let mut runs = Vec::new();
    let outcome = (|| {
        for round in 0..profile.rounds {
            for endpoint in &ENDPOINTS {
                for k in 0..VARIANTS.len() {
                    let variant = &VARIANTS[(k + round) % VARIANTS.len()];
                    let run =
                        measure_run(&ctx, db, round + 1, endpoint, variant, pinning.as_mut())?;
                    print_run(&run);
                    runs.push(run);
                    if endpoint.creates {
                        db.undo_creates()?;
                    }
                }
            }
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })();
    if let Some(p) = pinning.as_mut() {
        p.release();
    }
    outcome?;
    Ok((runs, layout))
}

/// What every run shares.
struct RunCtx<'a> {
    profile: &'a HttpProfile,
    wrk: &'a Wrk,
    api: &'a Path,
    script: &'a Path,
    service_log: &'a Path,
    wrk_log: &'a Path,
}

/// One run: a fresh service, wrk's checked warm-up, the timed run and the CPU it cost.
fn measure_run(
    ctx: &RunCtx<'_>,
    db: &mut HttpDb,
    round: usize,
    endpoint: &Endpoint,
    variant: &Variant,
    mut pinning: Option<&mut Pinning>,
) -> BoxResult<RunResult> {
    let service = Service::start(
        ctx.api,
        &db.url,
        variant,
        ctx.service_log,
        pinning.as_deref(),
    )?;
    let url = service.url();
    let title = |what: &str| format!("round {round}, {}, {}: {what}", endpoint.name, variant.name);
    let call = |check: bool| Call {
        script: ctx.script,
        url: &url,
        endpoint: endpoint.name,
        check,
        duration: if check {
            ctx.profile.warmup
        } else {
            ctx.profile.duration
        },
        title: title(if check {
            "warm-up, every status checked"
        } else {
            "timed"
        }),
    };
    let warmup = ctx.wrk.run(&call(true), ctx.wrk_log, pinning.as_deref())?;
    if let Some(fault) = warmup.fault() {
        return Err(service.failure(&format!("{}: {fault}", title("warm-up"))));
    }
    if let Some(p) = pinning.as_deref_mut() {
        // The pool's connections are open by now.
        p.pin_backends_of(&mut db.setup, &db.name)?;
    }
    let load_average = facts::load_average();
    let cpu_before = service.cpu_seconds()?;
    let timed = ctx.wrk.run(&call(false), ctx.wrk_log, pinning.as_deref())?;
    let cpu_after = service.cpu_seconds()?;
    if let Some(fault) = timed.fault() {
        return Err(service.failure(&format!("{}: {fault}", title("timed run"))));
    }
    drop(service);
    if let Some(p) = pinning {
        p.forget_backends();
    }
    Ok(RunResult {
        round,
        endpoint: endpoint.name,
        variant: variant.name,
        cpu_us_per_request: (cpu_after - cpu_before) * 1e6 / timed.requests as f64,
        figures: timed,
        load_average,
    })
}

fn print_run(run: &RunResult) {
    let f = &run.figures;
    eprintln!(
        "   round {} {:<6} {:<7} {:>8.0} req/s  p50 {:>6.1} ms  p99 {:>6.1} ms  {:>5.0} µs CPU/request{}",
        run.round,
        run.endpoint,
        run.variant,
        f.req_per_s(),
        f.p50_ms,
        f.p99_ms,
        run.cpu_us_per_request,
        if f.timeouts > 0 {
            format!("  ({} timeouts)", f.timeouts)
        } else {
            String::new()
        }
    );
}
