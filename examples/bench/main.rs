//! The benchmark: every repo call next to the cost of SQL for the same job, measured
//! side by side in one run, on one server, at the seeds' shapes.
//!
//! ```sh
//! cargo run --release --example bench              # S and L
//! cargo run --release --example bench -- --size xl # XL: 10M tasks (not in CI)
//! cargo run --release --example bench -- --size xl --production-server --skip load
//! cargo run --release --example bench -- --quick   # small sizes, for CI
//! cargo run --release --example bench -- --sizes S --keep-databases --skip bulk
//! cargo run --release --example bench -- --http           # over HTTP: L, 3 rounds
//! cargo run --release --example bench -- --http --quick   # S, one short round (CI)
//! cargo run --release --example bench -- --http --pin     # the service on its own core
//! cargo run --release --example bench -- --sizes L,XL --only list_first_page \
//!     --skip load,bulk,concurrency,async
//! ```
//!
//! Zero configuration: with DATABASE_URL (environment or .env) it uses that server, else
//! the crate's own PostgreSQL under target/todo-store-pg (as the seed example does: both
//! go through `examples/support/dev_database.rs`). It creates its own databases there
//! (`todo_store_bench_s`, `_l`, `_xl`; with `--quick` `todo_store_bench_quick_s`, ...),
//! marks them with a comment, never touches any other database, and drops them at the
//! end (a leftover of an interrupted run, recognised by its comment, is dropped by the
//! next run).
//!
//! Sizes (`profile`): S = 100 users x 1,000 tasks, L = 1,000 x 1,000, XL = 10,000 x
//! 1,000 (only when named), S100 = 1,000 x 100 (the old shape, only when named). For
//! each size it seeds with the crate's bulk path (`seed_with_pool`, two workers, as the
//! seed example), then measures:
//!
//! - the seed against psql's `\copy` of the same rows (exported, emptied, loaded
//!   again), with every index in place and with the task indexes built after;
//! - sessions (three per user) and habits (three per user; the sample users' daily one
//!   checked in over five years) are added, then VACUUM (ANALYZE) and the database size;
//! - each repo call with a pool checkout per call, inside the timing, as a request
//!   handler does it: mean, p50, p99, ops/s and this program's CPU time per call, on
//!   random sample users and tasks, after a warm-up. The iterations run in rounds that
//!   alternate with its two floors, so drift and other load hit all three alike;
//! - the floors: pgbench `-n -M prepared -c 1 -r` on the same server and connection
//!   path, running (1) the very SQL the crate sent (captured from diesel's
//!   instrumentation, each bind parameter mapped to a pgbench variable fetched from a
//!   sample table with `\gset`) and (2) a hand-written reference statement for the same
//!   job (`reference`). The crate is held to the faster of the two: a statement shape
//!   slower than it needs to be shows as a ratio above 1. The scripts land in
//!   target/bench/pgbench/;
//! - bulk: `TaskRepo::create_many` of 100,000 tasks against psql's `\copy` of the same
//!   rows from CSV, each into the same table state;
//! - a 70 % read / 30 % write mix through the pool at 1, 2, 4 and 8 threads;
//! - `AsyncPool`: 64 tokio tasks over a pool of 10 against 10 OS threads on the same pool.
//!
//! While measuring single calls it pins itself (and pgbench) to one core and the
//! server's backends to the others when it can (a server on this machine, and the
//! right to set its processes' CPU affinity; `--no-pin` turns it off): an unpinned
//! loopback round trip costs 25 or 100 µs depending on where the scheduler puts client
//! and server, which swamps the differences measured here. Numbers from a busy machine
//! are noisy: the load average is printed at the start and the end.
//!
//! Results: a table on the terminal, target/bench/results.json and
//! target/bench/results.svg. Targets are reported (PASS/MISS), never asserted.
//!
//! `--http` measures what a request costs the example web service (examples/api.rs)
//! over real HTTP instead: it builds the service in release mode, seeds one size (L; S
//! with `--quick`; `--sizes` names another), gives every user a session token and
//! drives the service with Debian's wrk (installed with apt-get when missing and run as
//! root; else run scripts/setup): 64 connections, 2 threads, every request with a
//! user's bearer token, on get (`GET /tasks/{id}`), list (`GET /tasks?completed=false`),
//! create (`POST /tasks`) and a mix of 70 % reads and 30 % writes. Each variant of the
//! service (`async`: through `AsyncPool`, as it is; `direct`: the repos called on
//! tokio's workers; chosen by `API_CALLS`) runs as a fresh process per run, the
//! variants alternating, the order rotated each round (3 rounds of 15 s after a 5 s
//! warm-up; `--quick`: one of 2 s after 1 s). It reports req/s, p50, p99 and the
//! service's CPU per request, each variant's ratio to `direct` against the goals
//! (req/s at least 0.9x, p99 at most 1.5x; PASS/MISS), and a Markdown table for
//! docs/performance.md, on the terminal and in target/bench/http.json; wrk's script,
//! its output and the service's stderr land in target/bench/http/. A response that is
//! not 2xx fails the run. Unpinned unless `--pin`: the service on one core,
//! PostgreSQL's backends and wrk on the others. See `http` for the method.
//!
//! The modules, by job: `profile` (how much of everything), `server` (which server, the
//! benchmark's own databases, `--production-server`), `sample` (the rows the calls pick
//! from), `ops` (the table of measured calls), `capture` (what the crate sent, mirrored
//! for pgbench), `reference` (the hand-written floors), `pgbench` (running a floor),
//! `pinning` (cores and CPU time: every `unsafe`), `measure` (load, rounds, bulk,
//! concurrency, async_pool), `facts` (the machine, the server, peak memory),
//! `report` (table, JSON, SVG) and `http` (the HTTP mode: its database, the service,
//! wrk and its Lua script, its report).

mod capture;
#[path = "../support/dev_database.rs"]
mod dev_database;
mod facts;
mod http;
mod measure;
mod ops;
mod pgbench;
mod pinning;
mod profile;
mod reference;
mod report;
mod sample;
mod server;

use std::error::Error;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use profile::Profile;
use report::Results;
use server::Server;

type BoxResult<T> = Result<T, Box<dyn Error>>;

/// Benchmark todo-store's repo calls against pgbench and COPY on the same server.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// Small sizes and few iterations (for CI): well under two minutes.
    #[arg(long)]
    quick: bool,
    /// Only these sizes: S, L (the default), XL (10M tasks), S100 (100 tasks per user).
    #[arg(long, alias = "size", value_delimiter = ',', value_name = "S,L,XL")]
    sizes: Vec<String>,
    /// Timed iterations per operation (default 4000; 300 with --quick).
    #[arg(long)]
    iterations: Option<usize>,
    /// Skip parts: ops, bulk, concurrency, load (the seed against \copy), async.
    #[arg(long, value_delimiter = ',', value_name = "PART")]
    skip: Vec<String>,
    /// Only these single calls, by their keys in results.json (`list_first_page`,
    /// `task_get`, ...); one compared with another's floor brings that one along.
    #[arg(long, value_delimiter = ',', value_name = "OP")]
    only: Vec<String>,
    /// Keep the benchmark databases (to look at plans afterwards).
    #[arg(long)]
    keep_databases: bool,
    /// Run on the local PostgreSQL configured as production would be (shared_buffers a
    /// quarter of memory, effective_cache_size three quarters, ...: ALTER SYSTEM and a
    /// restart, reset at the end).
    #[arg(long)]
    production_server: bool,
    /// Leave the local PostgreSQL running when done.
    #[arg(long)]
    keep_running: bool,
    /// Don't pin the client and the server's backends to different cores.
    #[arg(long)]
    no_pin: bool,
    /// Diagnostics: log every statement on the benchmark databases in the server's log
    /// (`ALTER DATABASE ... SET log_statement = 'all'`; needs a superuser).
    #[arg(long)]
    log_statements: bool,
    /// Diagnostics: a setting for the benchmark databases, e.g.
    /// `--db-setting synchronous_commit=off` (`ALTER DATABASE ... SET`); repeatable.
    #[arg(long, value_name = "NAME=VALUE")]
    db_setting: Vec<String>,
    /// The HTTP benchmark instead: examples/api.rs under wrk, its async path against
    /// direct calls (size L; S with --quick; --sizes names another).
    #[arg(long)]
    http: bool,
    /// With --http: the service on one core, PostgreSQL's backends and wrk on the others
    /// (unpinned by default).
    #[arg(long)]
    pin: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> BoxResult<()> {
    if args.http {
        if !args.skip.is_empty()
            || !args.only.is_empty()
            || args.iterations.is_some()
            || args.no_pin
        {
            return Err(
                "--skip, --only, --iterations and --no-pin are the repo-call benchmark's: \
                        --http runs every endpoint, for a time, unpinned unless --pin"
                    .into(),
            );
        }
        return http::run(args);
    }
    if args.pin {
        return Err("--pin is for --http (the repo-call benchmark pins unless --no-pin)".into());
    }
    let started = Instant::now();
    let profile = Profile::new(args)?;
    let mut machine = facts::machine_facts();
    let load = facts::load_average();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if load.parse::<f64>().unwrap_or(0.0) > 0.5 {
        eprintln!(
            "bench: this machine is busy (load average {load} on {cores} cores): expect noisy \
             numbers; compare the ratios of one run, and the per-round spread"
        );
    }
    machine.push(("load average at start".to_owned(), load));
    if !args.db_setting.is_empty() {
        machine.push(("database settings".to_owned(), args.db_setting.join(", ")));
    }
    let server = Server::open(args)?;
    let mut results = Results::default();
    let outcome = profile
        .sizes
        .iter()
        .try_for_each(|size| measure::run_size(&server, size, &profile, args, &mut results));
    server.finish();
    outcome?;
    let elapsed = started.elapsed();
    machine.push(("load average at end".to_owned(), facts::load_average()));
    machine.push((
        "peak memory of this program".to_owned(),
        facts::peak_memory(),
    ));
    let targets = report::targets(&results);
    report::table::print(&results, &profile, &machine, &targets);
    let dir = dev_database::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let (json, svg) = (dir.join("results.json"), dir.join("results.svg"));
    report::json::write(&json, &results, &profile, &machine, &targets, elapsed)?;
    report::svg::write(&svg, &results, &machine, &profile)?;
    println!();
    println!(
        "wrote {} and {} ({:.0} s in all)",
        json.display(),
        svg.display(),
        elapsed.as_secs_f64()
    );
    Ok(())
}
