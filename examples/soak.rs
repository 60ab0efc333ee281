//! Sustained load, measured: many threads over a small pool for minutes, on the L data
//! set, reporting each minute's throughput, latency, pool waits and the process's memory.
//!
//! ```sh
//! cargo run --release --example soak -- --minutes 5          # 64 threads, pool of 10
//! cargo run --release --example soak -- --minutes 1 --users 100 --threads 16
//! ```
//!
//! With DATABASE_URL (environment or .env) it uses that server: it creates a database
//! `todo_store_soak` there (dropped at the end unless `--keep-database`); the role needs
//! `CREATEDB`. Without it, it starts a throwaway local PostgreSQL with `fsync` and
//! `synchronous_commit` on (as a real server runs). It seeds 1,000 users x 1,000 tasks
//! through the crate's bulk path (`todo_store::seed::seed_with_pool`), runs
//! `VACUUM (ANALYZE)`, then lets `--threads` threads run a 70 % read / 30 % write mix
//! through one pool of `--pool-size` connections, a checkout per operation, for
//! `--minutes`. Latency is what a caller sees: the checkout (waiting for a free
//! connection included) plus the call.
//!
//! Each minute: operations and operations per second, p50, p99 and max latency, errors,
//! the pool's waits (checkouts that waited 1 ms or more), their longest wait and its
//! timeouts, and the resident memory (VmRSS of /proc/self/status). Printed as a table,
//! and written to target/soak/results.md and target/soak/results.json.

use std::error::Error;
use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use diesel::prelude::*;
use diesel::sql_types::Uuid as SqlUuid;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use todo_store::local_postgres::LocalPostgres;
use todo_store::pool::{PoolOptions, PoolStats};
use todo_store::seed::{seed_with_pool, SeedOptions};
use todo_store::{
    DbConfig, NewTask, PgPool, TaskId, TaskPatch, TaskQuery, TaskRepo, UserId, UserRepo,
};

type BoxResult<T> = Result<T, Box<dyn Error>>;

/// Run a sustained mixed workload and report it minute by minute.
#[derive(Debug, Parser)]
#[command(name = "soak")]
struct Args {
    /// How long the load runs, in minutes.
    #[arg(long, default_value_t = 5)]
    minutes: u32,
    /// Threads issuing operations.
    #[arg(long, default_value_t = 64)]
    threads: usize,
    /// Connections in the pool.
    #[arg(long, default_value_t = 10)]
    pool_size: u32,
    /// Users to seed (the L data set: 1,000).
    #[arg(long, default_value_t = 1000)]
    users: u32,
    /// Tasks per user (the L data set: 1,000).
    #[arg(long, default_value_t = 1000)]
    tasks_per_user: u32,
    /// Leave the database `todo_store_soak` on a DATABASE_URL server.
    #[arg(long)]
    keep_database: bool,
}

/// The database the soak creates on a configured server.
const DATABASE: &str = "todo_store_soak";
/// Tasks sampled for the workload to read and write.
const SAMPLE: i64 = 20_000;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> BoxResult<()> {
    let server = Server::start()?;
    let url = server.soak_url()?;
    let config = DbConfig::new(&url)
        .pool_size(args.pool_size)
        .connection_timeout(Duration::from_secs(5));
    println!("soak: {}", config.redacted_url());
    let (pool, metrics) = PoolOptions::new(&config).connect_with_metrics()?;
    seed(&pool, args)?;
    let sample = Sample::load(&pool)?;
    let rss_start = rss_kib();
    println!(
        "load: {} threads over a pool of {} for {} min, 70 % reads / 30 % writes; RSS {} KiB",
        args.threads, args.pool_size, args.minutes, rss_start
    );

    let started = Instant::now();
    let minutes = args.minutes.max(1) as usize;
    // Fixed-size histograms: the measurement allocates nothing while the load runs, so
    // the memory figures are the pool's and the crate's.
    let histograms: Vec<Histogram> = (0..minutes).map(|_| Histogram::new()).collect();
    let errors: Vec<AtomicU64> = (0..minutes).map(|_| AtomicU64::new(0)).collect();
    let stop = AtomicBool::new(false);
    let mut rows = Vec::new();
    std::thread::scope(|s| {
        for t in 0..args.threads {
            let (pool, sample, histograms, errors, stop) =
                (&pool, &sample, &histograms, &errors, &stop);
            s.spawn(move || {
                let mut rng = Pcg64::seed_from_u64(t as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    let begun = Instant::now();
                    let minute = (begun - started).as_secs() as usize / 60;
                    if minute >= histograms.len() {
                        break;
                    }
                    let ok = operation(pool, sample, &mut rng).is_ok();
                    histograms[minute].record(begun.elapsed());
                    if !ok {
                        errors[minute].fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        // Each minute: the pool's counters and the memory, as the minute ends.
        let mut before = metrics.snapshot();
        for m in 0..minutes {
            let end = started + Duration::from_secs(60 * (m as u64 + 1));
            std::thread::sleep(end.saturating_duration_since(Instant::now()));
            let after = metrics.snapshot();
            let rss = rss_kib();
            println!(
                "minute {}: {} checkouts, {} waits, {} timeouts, RSS {rss} KiB",
                m + 1,
                after.checkouts - before.checkouts,
                after.waits - before.waits,
                after.timeouts - before.timeouts
            );
            rows.push((before, after, rss));
            before = after;
        }
        stop.store(true, Ordering::Relaxed);
    });

    let report = Report::new(args, rss_start, &histograms, &errors, &rows);
    println!("\n{}", report.markdown);
    let dir = target_dir().join("soak");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("results.md"), &report.markdown)?;
    std::fs::write(dir.join("results.json"), &report.json)?;
    println!("written: {}", dir.join("results.{md,json}").display());
    drop(pool);
    server.finish(args.keep_database)
}

/// One operation of the mix, through its own checkout.
fn operation(pool: &PgPool, sample: &Sample, rng: &mut Pcg64) -> todo_store::Result<()> {
    let (user_id, task_id) = sample.tasks[rng.random_range(0..sample.tasks.len())];
    let mut conn = pool.get()?;
    match rng.random_range(0..100) {
        // 70 % reads.
        0..=29 => {
            TaskRepo::get(&mut conn, user_id, task_id)?;
        }
        30..=49 => {
            let query = TaskQuery::new().completed(false).limit(20);
            TaskRepo::list(&mut conn, user_id, &query)?;
        }
        50..=59 => {
            TaskRepo::stats(&mut conn, user_id)?;
        }
        60..=69 => {
            UserRepo::get(&mut conn, user_id)?;
        }
        // 30 % writes.
        70..=79 => {
            TaskRepo::set_completed(&mut conn, user_id, task_id, rng.random_bool(0.5))?;
        }
        80..=89 => {
            let patch = TaskPatch {
                title: Some(format!("Soak {}", rng.random_range(0..1_000_000))),
                ..TaskPatch::default()
            };
            TaskRepo::update(&mut conn, user_id, task_id, &patch)?;
        }
        _ => {
            TaskRepo::create(&mut conn, user_id, &NewTask::new("Soak: a new task"))?;
        }
    }
    Ok(())
}

/// Seeds the data set (skipped when it is there) and analyzes it.
fn seed(pool: &PgPool, args: &Args) -> BoxResult<()> {
    let options = SeedOptions {
        users: args.users,
        tasks_per_user: args.tasks_per_user,
        ..SeedOptions::default()
    };
    let report = seed_with_pool(pool, &options, 2, |_| ControlFlow::Continue(()))?;
    println!(
        "seeded: {} users and {} tasks in {:.1} s ({} users existed)",
        report.users_created,
        report.tasks_created,
        report.elapsed.as_secs_f64(),
        report.users_skipped
    );
    let mut conn = pool.get()?;
    diesel::sql_query("VACUUM (ANALYZE)").execute(&mut conn)?;
    Ok(())
}

/// Tasks (with their users) the workload picks from.
struct Sample {
    tasks: Vec<(UserId, TaskId)>,
}

#[derive(QueryableByName)]
struct SampleRow {
    #[diesel(sql_type = SqlUuid)]
    user_id: UserId,
    #[diesel(sql_type = SqlUuid)]
    id: TaskId,
}

impl Sample {
    fn load(pool: &PgPool) -> BoxResult<Self> {
        let mut conn = pool.get()?;
        let rows: Vec<SampleRow> = diesel::sql_query(format!(
            "SELECT user_id, id FROM tasks ORDER BY md5(id::text) LIMIT {SAMPLE}"
        ))
        .load(&mut conn)?;
        if rows.is_empty() {
            return Err("no tasks to work on: the seed wrote nothing".into());
        }
        Ok(Sample {
            tasks: rows.into_iter().map(|r| (r.user_id, r.id)).collect(),
        })
    }
}

/// The server: DATABASE_URL's, or a throwaway local one.
enum Server {
    Configured { admin_url: String },
    Local(LocalPostgres),
}

impl Server {
    fn start() -> BoxResult<Self> {
        match dotenvy::var("DATABASE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
        {
            Some(admin_url) => {
                let mut admin = PgConnection::establish(&admin_url)?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {DATABASE}"))
                    .execute(&mut admin)?;
                diesel::sql_query(format!("CREATE DATABASE {DATABASE}")).execute(&mut admin)?;
                Ok(Server::Configured { admin_url })
            }
            None => {
                println!("No DATABASE_URL: starting a local PostgreSQL (fsync on)");
                let pg = LocalPostgres::builder().durable(true).start()?;
                let mut admin = PgConnection::establish(&pg.url("postgres"))?;
                diesel::sql_query(format!("CREATE DATABASE {DATABASE}")).execute(&mut admin)?;
                Ok(Server::Local(pg))
            }
        }
    }

    fn soak_url(&self) -> BoxResult<String> {
        match self {
            Server::Local(pg) => Ok(pg.url(DATABASE)),
            Server::Configured { admin_url } => {
                if admin_url.starts_with("postgres://") || admin_url.starts_with("postgresql://") {
                    let mut url = url::Url::parse(admin_url)?;
                    url.set_path(DATABASE);
                    Ok(url.to_string())
                } else {
                    Ok(format!("{admin_url} dbname={DATABASE}"))
                }
            }
        }
    }

    fn finish(self, keep: bool) -> BoxResult<()> {
        if let Server::Configured { admin_url } = self {
            if !keep {
                let mut admin = PgConnection::establish(&admin_url)?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {DATABASE}"))
                    .execute(&mut admin)?;
            }
        }
        Ok(())
    }
}

/// The results, as markdown and JSON.
struct Report {
    markdown: String,
    json: String,
}

impl Report {
    fn new(
        args: &Args,
        rss_start: u64,
        histograms: &[Histogram],
        errors: &[AtomicU64],
        pool_rows: &[(PoolStats, PoolStats, u64)],
    ) -> Self {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "{} threads, pool of {}, {} users x {} tasks; RSS at the start of the load: {} KiB\n",
            args.threads, args.pool_size, args.users, args.tasks_per_user, rss_start
        );
        md.push_str(
            "| minute | operations | ops/s | p50 ms | p99 ms | max ms | errors | pool waits | longest wait so far ms | pool timeouts | RSS KiB |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let mut json_rows = Vec::new();
        for (m, ((histogram, errors), (before, after, rss))) in
            histograms.iter().zip(errors).zip(pool_rows).enumerate()
        {
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let (p50, p99, max) = (
                ms(histogram.quantile(0.50)),
                ms(histogram.quantile(0.99)),
                ms(histogram.max()),
            );
            let ops = histogram.count();
            let errors = errors.load(Ordering::Relaxed);
            let waits = after.waits - before.waits;
            let timeouts = after.timeouts - before.timeouts;
            // r2d2's longest wait is kept since the pool was built.
            let longest = format!("{:.1}", after.max_wait.as_secs_f64() * 1000.0);
            let _ = writeln!(
                md,
                "| {} | {ops} | {:.0} | {p50:.2} | {p99:.2} | {max:.1} | {errors} | {waits} | {longest} | {timeouts} | {rss} |",
                m + 1,
                ops as f64 / 60.0,
            );
            json_rows.push(format!(
                "{{\"minute\":{},\"operations\":{ops},\"ops_per_s\":{:.1},\"p50_ms\":{p50:.3},\
                 \"p99_ms\":{p99:.3},\"max_ms\":{max:.3},\"errors\":{errors},\"pool_waits\":{waits},\
                 \"pool_timeouts\":{timeouts},\"rss_kib\":{rss}}}",
                m + 1,
                ops as f64 / 60.0
            ));
        }
        let json = format!(
            "{{\"threads\":{},\"pool_size\":{},\"users\":{},\"tasks_per_user\":{},\
             \"rss_start_kib\":{rss_start},\"minutes\":[{}]}}\n",
            args.threads,
            args.pool_size,
            args.users,
            args.tasks_per_user,
            json_rows.join(",")
        );
        Report { markdown: md, json }
    }
}

/// Latencies in log-linear buckets: exact below 128 µs, within 1/128 (0.8 %) above;
/// fixed size, lock-free.
struct Histogram {
    buckets: Vec<AtomicU64>,
    max_us: AtomicU64,
}

impl Histogram {
    /// Mantissa bits per power of two.
    const BITS: u32 = 7;

    fn new() -> Self {
        Histogram {
            buckets: (0..(64 << Self::BITS)).map(|_| AtomicU64::new(0)).collect(),
            max_us: AtomicU64::new(0),
        }
    }

    fn index(us: u64) -> usize {
        let linear = 1u64 << Self::BITS;
        if us < linear {
            return us as usize;
        }
        let exponent = 63 - us.leading_zeros();
        let mantissa = (us >> (exponent - Self::BITS)) & (linear - 1);
        (((exponent - Self::BITS + 1) as u64) << Self::BITS | mantissa) as usize
    }

    /// The smallest value of bucket `index`.
    fn value(index: usize) -> u64 {
        let linear = 1usize << Self::BITS;
        if index < linear {
            return index as u64;
        }
        let exponent = (index >> Self::BITS) as u32 + Self::BITS - 1;
        let mantissa = (index & (linear - 1)) as u64;
        (1u64 << exponent) | (mantissa << (exponent - Self::BITS))
    }

    fn record(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX >> 1);
        self.buckets[Self::index(us)].fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    fn max(&self) -> Duration {
        Duration::from_micros(self.max_us.load(Ordering::Relaxed))
    }

    /// The latency below which a fraction `q` of the operations fell.
    fn quantile(&self, q: f64) -> Duration {
        let total = self.count();
        let rank = ((total as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= rank {
                return Duration::from_micros(Self::value(i));
            }
        }
        self.max()
    }
}

/// The resident memory of this process in KiB (VmRSS), 0 where /proc is missing.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let rest = line.strip_prefix("VmRSS:")?;
                rest.trim().trim_end_matches("kB").trim().parse().ok()
            })
        })
        .unwrap_or(0)
}

/// target/ of this checkout: CARGO_TARGET_DIR, else next to Cargo.toml.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}
