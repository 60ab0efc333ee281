//! The benchmark of issue 5: every repo call next to the cost of its raw SQL, measured
//! side by side in one run, on one server, at two table sizes.
//!
//! ```sh
//! cargo run --release --example bench              # S and L: several minutes
//! cargo run --release --example bench -- --quick   # small sizes, for CI (< 1 minute)
//! cargo run --release --example bench -- --sizes S --keep-databases --skip bulk
//! ```
//!
//! Zero configuration: with DATABASE_URL (environment or .env) it uses that server, else
//! the crate's own PostgreSQL under target/todo-store-pg (as the seed example does: both
//! go through `todo_store::dev_database`). It creates its own databases there (`todo_store_bench_s`, `todo_store_bench_l`; with
//! `--quick` `todo_store_bench_quick_s`, `_quick_l`), marks them with a comment, never
//! touches any other database, and drops them at the end (a leftover of an interrupted
//! run, recognised by its comment, is dropped by the next run).
//!
//! For each size it seeds users x 100 tasks with the crate's bulk path
//! (`seed_with_pool`), runs VACUUM (ANALYZE), then measures:
//!
//! - each repo call on one pooled connection held for the whole loop, after a warm-up:
//!   mean, p50, p99 and ops/s on random sample users and tasks. The iterations run in
//!   rounds that alternate with the floor's (crate then floor, floor then crate, ...),
//!   so drift and other load hit both alike; the spread of the per-round ratios shows
//!   how much to trust a ratio;
//! - the floor: pgbench `-n -M prepared -c 1` on the same server and connection path,
//!   running the very SQL the crate sent (captured from diesel's instrumentation, with
//!   each bind parameter mapped to a pgbench variable that a helper statement fetches
//!   from a sample table with `\gset`, and a bound NULL written as `NULL`: pgbench
//!   cannot bind one); `pgbench -r` times the mirrored statement alone. The scripts land
//!   in target/bench/pgbench/;
//! - bulk: `TaskRepo::create_many` of 100,000 tasks against psql's `\copy` of the same
//!   rows from CSV, each into the same table state;
//! - a 70 % read / 30 % write mix through the pool (a checkout per operation) at 1, 2,
//!   4 and 8 threads.
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
//! The modules, by job: `profile` (how much of everything), `server` (which server, the
//! benchmark's own databases), `sample` (the rows the calls pick from), `ops` (the
//! table of measured calls), `capture` (what the crate sent, mirrored for pgbench),
//! `pgbench` (the floor), `pinning` (cores and CPU time: every `unsafe`), `measure`
//! (rounds, bulk, concurrency), `facts` (the machine and the server) and `report`
//! (table, JSON, SVG).

mod capture;
mod facts;
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
    let dir = todo_store::dev_database::target_dir().join("bench");
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
