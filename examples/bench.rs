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
//! the crate's own PostgreSQL under target/todo-store-pg (as the seed example does). It
//! creates its own databases there (`todo_store_bench_s`, `todo_store_bench_l`; with
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

use std::error::Error;
use std::fmt::Write as _;
use std::io::Write as _;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Parser;
use diesel::connection::{InstrumentationEvent, SimpleConnection};
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Uuid as SqlUuid};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use uuid::Uuid;

use todo_store::dev_database::{target_dir, DevServer};
use todo_store::local_postgres::LocalPostgres;
use todo_store::seed::{seed_with_pool, SeedOptions};
use todo_store::{
    connect, DbConfig, NewTask, NewUser, PgPool, Priority, TaskPatch, TaskQuery, TaskRepo, UserRepo,
};

type BoxResult<T> = Result<T, Box<dyn Error>>;

/// The comment on every database this program creates; it drops no other.
const MARK: &str = "created by todo-store examples/bench.rs; dropped when it ends";
/// Title of the tasks `TaskRepo::create` makes (and the floor's INSERT).
const TITLE_NEW: &str = "Benchmark: write the quarterly report";
/// Title `TaskRepo::update` sets (and the floor's UPDATE).
const TITLE_RENAMED: &str = "Benchmark: review the quarterly report";
/// Connections in the benchmark's pool: the 8 threads of the concurrency test, plus one.
const POOL_SIZE: u32 = 9;
/// The page size of the list operations.
const PAGE: i64 = 50;
/// A UUIDv7 made in SQL (millisecond time prefix, random rest): the floor's new ids land
/// at the right edge of the primary key, as the crate's `Uuid::now_v7()` ids do.
const SQL_UUID_V7: &str = "(lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), \
     12, '0') || '7' || substr(md5(random()::text), 1, 3) || '8' || \
     substr(md5(random()::text), 1, 15))::uuid";

/// Benchmark todo-store's repo calls against pgbench and COPY on the same server.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// Small sizes and few iterations (for CI): well under two minutes.
    #[arg(long)]
    quick: bool,
    /// Only these sizes (S, L).
    #[arg(long, value_delimiter = ',', value_name = "S,L")]
    sizes: Vec<String>,
    /// Timed iterations per operation (default 4000; 300 with --quick).
    #[arg(long)]
    iterations: Option<usize>,
    /// Skip parts: ops, bulk, concurrency.
    #[arg(long, value_delimiter = ',', value_name = "PART")]
    skip: Vec<String>,
    /// Keep the benchmark databases (to look at plans afterwards).
    #[arg(long)]
    keep_databases: bool,
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

/// One table size.
#[derive(Debug, Clone)]
struct SizeSpec {
    label: &'static str,
    users: u32,
    tasks_per_user: u32,
}

/// How much of everything to do.
#[derive(Debug, Clone)]
struct Profile {
    quick: bool,
    sizes: Vec<SizeSpec>,
    iterations: usize,
    warmup: usize,
    sample_users: usize,
    sample_tasks: usize,
    bulk_rows: usize,
    bulk_chunk: usize,
    threads: Vec<usize>,
    rounds: usize,
    conc_rounds: usize,
    conc_warmup: Duration,
    conc_duration: Duration,
    skip: Vec<String>,
}

impl Profile {
    fn new(args: &Args) -> BoxResult<Self> {
        let (sizes, iterations, warmup, bulk_rows, bulk_chunk, conc_warmup, conc_duration) =
            if args.quick {
                (
                    vec![
                        SizeSpec {
                            label: "S",
                            users: 100,
                            tasks_per_user: 100,
                        },
                        SizeSpec {
                            label: "L",
                            users: 1_000,
                            tasks_per_user: 100,
                        },
                    ],
                    300,
                    50,
                    10_000,
                    2_000,
                    Duration::from_millis(250),
                    Duration::from_millis(1_000),
                )
            } else {
                (
                    vec![
                        SizeSpec {
                            label: "S",
                            users: 1_000,
                            tasks_per_user: 100,
                        },
                        SizeSpec {
                            label: "L",
                            users: 10_000,
                            tasks_per_user: 100,
                        },
                    ],
                    4_000,
                    500,
                    100_000,
                    10_000,
                    Duration::from_secs(1),
                    Duration::from_secs(5),
                )
            };
        let wanted: Vec<String> = args.sizes.iter().map(|s| s.trim().to_uppercase()).collect();
        for w in &wanted {
            if !sizes.iter().any(|s| s.label == w) {
                return Err(format!("unknown size {w:?}: S or L").into());
            }
        }
        let sizes = sizes
            .into_iter()
            .filter(|s| wanted.is_empty() || wanted.iter().any(|w| w == s.label))
            .collect();
        for part in &args.skip {
            if !["ops", "bulk", "concurrency"].contains(&part.as_str()) {
                return Err(format!("unknown part {part:?}: ops, bulk or concurrency").into());
            }
        }
        let iterations = args.iterations.unwrap_or(iterations).max(2);
        Ok(Profile {
            quick: args.quick,
            sizes,
            iterations,
            warmup,
            sample_users: if args.quick { 100 } else { 1_000 },
            sample_tasks: if args.quick { 1_000 } else { 5_000 },
            bulk_rows,
            bulk_chunk,
            threads: vec![1, 2, 4, 8],
            rounds: if args.quick { 2 } else { 6 },
            conc_rounds: if args.quick { 1 } else { 2 },
            conc_warmup,
            conc_duration,
            skip: args.skip.clone(),
        })
    }

    fn runs(&self, part: &str) -> bool {
        !self.skip.iter().any(|p| p == part)
    }

    /// Tasks one side (crate or floor) of the delete benchmark uses up.
    fn delete_budget(&self) -> usize {
        self.warmup + self.iterations + 8
    }
}

// ---------------------------------------------------------------------------------------
// The server, its tools, and the benchmark's own databases
// ---------------------------------------------------------------------------------------

/// Where the benchmark runs: DATABASE_URL's server or the crate's local PostgreSQL.
enum Server {
    Url {
        admin_url: String,
        bin_dir: PathBuf,
    },
    Local {
        pg: LocalPostgres,
        keep_running: bool,
    },
}

impl Server {
    fn open(args: &Args) -> BoxResult<Server> {
        let dev = DevServer::open(None, |root| {
            eprintln!(
                "bench: no DATABASE_URL set: using the local PostgreSQL in {}",
                root.display()
            );
        })?;
        Ok(match dev {
            DevServer::Url(url) => {
                eprintln!(
                    "bench: DATABASE_URL is set: using {}",
                    todo_store::config::redact_url(&url)
                );
                Server::Url {
                    admin_url: url,
                    bin_dir: client_bin_dir()?,
                }
            }
            DevServer::Local(pg) => Server::Local {
                pg,
                keep_running: args.keep_running,
            },
        })
    }

    /// The database the benchmark connects to in order to create and drop its own.
    fn admin_url(&self) -> String {
        match self {
            Server::Url { admin_url, .. } => admin_url.clone(),
            Server::Local { pg, .. } => pg.url("postgres"),
        }
    }

    fn db_url(&self, db: &str) -> String {
        match self {
            Server::Url { admin_url, .. } => with_database(admin_url, db),
            Server::Local { pg, .. } => pg.url(db),
        }
    }

    /// A client program (pgbench, psql) set up for database `db`, and the connection
    /// argument to give it last: the same server and connection path as the crate.
    fn tool(&self, program: &str, db: &str) -> (Command, String) {
        match self {
            Server::Url { bin_dir, .. } => {
                let mut cmd = Command::new(bin_dir.join(program));
                let (target, password) = split_password(&self.db_url(db));
                if let Some(password) = password {
                    cmd.env("PGPASSWORD", password);
                }
                (cmd, target)
            }
            // PGHOST, PGPORT and PGUSER point at the cluster's socket.
            Server::Local { pg, .. } => (pg.command(program), db.to_owned()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Server::Url { admin_url, .. } => {
                format!("DATABASE_URL {}", todo_store::config::redact_url(admin_url))
            }
            Server::Local { pg, .. } => format!(
                "local PostgreSQL in {} (unix socket {})",
                pg.data_dir().display(),
                pg.socket_dir().display()
            ),
        }
    }

    fn finish(self) {
        if let Server::Local { pg, keep_running } = self {
            if keep_running {
                eprintln!(
                    "bench: PostgreSQL keeps running: {}",
                    pg.psql_command("postgres")
                );
                pg.keep_running();
            } else if pg.was_already_running() {
                eprintln!("bench: the local PostgreSQL was already running: left running");
            } else {
                drop(pg);
            }
        }
    }
}

/// pgbench and psql for a DATABASE_URL server: next to the server binaries, else on PATH.
fn client_bin_dir() -> BoxResult<PathBuf> {
    let mut candidates: Vec<PathBuf> = todo_store::local_postgres::find_bin_dir()
        .into_iter()
        .collect();
    candidates.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    candidates
        .into_iter()
        .find(|dir| dir.join("pgbench").is_file() && dir.join("psql").is_file())
        .ok_or_else(|| {
            "pgbench and psql not found (they measure the floor): install PostgreSQL's \
             client programs"
                .into()
        })
}

/// `url` pointed at database `db`: the path of a URL, or `dbname=` of a key=value string.
fn with_database(url: &str, db: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.scheme().starts_with("postgres") => {
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .filter(|(k, _)| k != "dbname")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            parsed.set_path(&format!("/{db}"));
            if pairs.is_empty() {
                parsed.set_query(None);
            } else {
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        // libpq: the last of repeated keywords wins.
        _ => format!("{url} dbname={db}"),
    }
}

/// The URL without its password, and the password (for PGPASSWORD: not on a command line).
fn split_password(url: &str) -> (String, Option<String>) {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.scheme().starts_with("postgres") => match parsed.password() {
            Some(p) => {
                let password = percent_decode(p);
                let _ = parsed.set_password(None);
                (parsed.to_string(), Some(password))
            }
            None => (url.to_owned(), None),
        },
        _ => (url.to_owned(), None),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A database this program created; dropped (with `WITH (FORCE)`) when this drops.
struct BenchDb {
    admin_url: String,
    name: String,
    keep: bool,
}

impl BenchDb {
    /// Creates `name`. A leftover of an earlier run (it carries [`MARK`]) is dropped
    /// first; any other database of that name is left alone and is an error.
    fn create(server: &Server, name: &str, args: &Args) -> BoxResult<BenchDb> {
        #[derive(QueryableByName)]
        struct Existing {
            #[diesel(sql_type = Nullable<Text>)]
            comment: Option<String>,
            #[diesel(sql_type = BigInt)]
            sessions: i64,
        }
        let admin_url = server.admin_url();
        let mut admin = PgConnection::establish(&admin_url)?;
        let existing: Option<Existing> = sql_query(
            "SELECT shobj_description(d.oid, 'pg_database') AS comment, \
             (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname) AS sessions \
             FROM pg_database d WHERE d.datname = $1",
        )
        .bind::<Text, _>(name)
        .get_result(&mut admin)
        .optional()?;
        if let Some(existing) = existing {
            if existing.comment.as_deref() != Some(MARK) {
                return Err(format!(
                    "a database named {name} exists and was not created by this benchmark: \
                     not touching it (drop or rename it, or use another server)"
                )
                .into());
            }
            if existing.sessions > 0 {
                return Err(format!(
                    "{name} (left by an earlier run) has {} open sessions: is another \
                     benchmark running on this server?",
                    existing.sessions
                )
                .into());
            }
            admin.batch_execute(&format!("DROP DATABASE {name}"))?;
        }
        admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
        admin.batch_execute(&format!("COMMENT ON DATABASE {name} IS {}", lit(MARK)))?;
        let mut settings = args.db_setting.clone();
        if args.log_statements {
            settings.push("log_statement=all".to_owned());
        }
        for setting in &settings {
            let (key, value) = setting
                .split_once('=')
                .filter(|(k, _)| {
                    !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                })
                .ok_or_else(|| format!("--db-setting {setting:?}: expected NAME=VALUE"))?;
            admin.batch_execute(&format!(
                "ALTER DATABASE {name} SET {key} = {}",
                lit(value.trim())
            ))?;
        }
        Ok(BenchDb {
            admin_url,
            name: name.to_owned(),
            keep: args.keep_databases,
        })
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("bench: kept database {} (--keep-databases)", self.name);
            return;
        }
        let dropped = PgConnection::establish(&self.admin_url)
            .map_err(|e| e.to_string())
            .and_then(|mut admin| {
                admin
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        self.name
                    ))
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = dropped {
            eprintln!("bench: could not drop {}: {e}", self.name);
        }
    }
}

/// A SQL string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

// ---------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------

/// The measured repo calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    RoundTrip,
    UserCreate,
    UserGet,
    UserFindByEmail,
    TaskCreate,
    TaskGet,
    TaskUpdate,
    TaskSetCompleted,
    TaskDelete,
    ListFirst,
    ListNext,
    ListSearch,
    CountMatching,
    Stats,
    CheckoutGet,
}

impl Op {
    /// In the order of the table.
    const ALL: [Op; 15] = [
        Op::RoundTrip,
        Op::UserCreate,
        Op::UserGet,
        Op::UserFindByEmail,
        Op::TaskCreate,
        Op::TaskGet,
        Op::TaskUpdate,
        Op::TaskSetCompleted,
        Op::TaskDelete,
        Op::ListFirst,
        Op::ListNext,
        Op::ListSearch,
        Op::CountMatching,
        Op::Stats,
        Op::CheckoutGet,
    ];

    /// In the order they run: reads first, so writes' dead rows don't touch them.
    const RUN_ORDER: [Op; 15] = [
        Op::RoundTrip,
        Op::UserGet,
        Op::UserFindByEmail,
        Op::TaskGet,
        Op::CheckoutGet,
        Op::ListFirst,
        Op::ListNext,
        Op::ListSearch,
        Op::CountMatching,
        Op::Stats,
        Op::UserCreate,
        Op::TaskCreate,
        Op::TaskUpdate,
        Op::TaskSetCompleted,
        Op::TaskDelete,
    ];

    fn key(self) -> &'static str {
        match self {
            Op::RoundTrip => "round_trip",
            Op::UserCreate => "user_create",
            Op::UserGet => "user_get",
            Op::UserFindByEmail => "user_find_by_email",
            Op::TaskCreate => "task_create",
            Op::TaskGet => "task_get",
            Op::TaskUpdate => "task_update",
            Op::TaskSetCompleted => "task_set_completed",
            Op::TaskDelete => "task_delete",
            Op::ListFirst => "list_first_page",
            Op::ListNext => "list_next_page",
            Op::ListSearch => "list_search",
            Op::CountMatching => "count_matching",
            Op::Stats => "stats",
            Op::CheckoutGet => "checkout_get",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Op::RoundTrip => "(calibration) SELECT $1 via diesel",
            Op::UserCreate => "UserRepo::create",
            Op::UserGet => "UserRepo::get",
            Op::UserFindByEmail => "UserRepo::find_by_email",
            Op::TaskCreate => "TaskRepo::create",
            Op::TaskGet => "TaskRepo::get",
            Op::TaskUpdate => "TaskRepo::update (title, version)",
            Op::TaskSetCompleted => "TaskRepo::set_completed",
            Op::TaskDelete => "TaskRepo::delete",
            Op::ListFirst => "TaskRepo::list (first page)",
            Op::ListNext => "TaskRepo::list (next page)",
            Op::ListSearch => "TaskRepo::list (search)",
            Op::CountMatching => "TaskRepo::count_matching",
            Op::Stats => "TaskRepo::stats",
            Op::CheckoutGet => "pool.get() + TaskRepo::get",
        }
    }

    /// S -> L growth of at most 1.3x is a target (index-bound, not table-bound).
    fn growth_target(self) -> bool {
        matches!(
            self,
            Op::UserGet
                | Op::TaskGet
                | Op::ListFirst
                | Op::ListNext
                | Op::ListSearch
                | Op::CountMatching
                | Op::Stats
        )
    }

    /// Whose pgbench floor this op is compared with.
    fn floor_of(self) -> Op {
        match self {
            Op::CheckoutGet => Op::TaskGet,
            op => op,
        }
    }

    /// The pgbench lines before the mirrored statement: pick the sample row at random
    /// (`random` is uniform, like the crate side's picks) and fetch its values.
    fn floor_prefix(self) -> String {
        let users = "\\set r random(1, :nu)\n\
                     SELECT id AS uid, email AS uemail, cat, cid, term FROM bench_users WHERE k = :r \\gset\n";
        let tasks = "\\set r random(1, :nt)\n\
                     SELECT user_id AS uid, task_id AS tid FROM bench_pick WHERE k = :r \\gset\n";
        match self {
            Op::RoundTrip => String::new(),
            Op::UserCreate => format!(
                "SELECT {SQL_UUID_V7} AS nid, 'bench-' || md5(random()::text) || '@example.com' \
                 AS nemail, 'Bench User' AS nname \\gset\n"
            ),
            Op::TaskCreate => format!(
                "\\set r random(1, :nu)\n\
                 SELECT id AS uid, {SQL_UUID_V7} AS nid, {} AS ntitle, 'medium' AS prio \
                 FROM bench_users WHERE k = :r \\gset\n",
                lit(TITLE_NEW)
            ),
            Op::TaskUpdate => format!(
                "\\set r random(1, :nt)\n\
                 SELECT p.user_id AS uid, p.task_id AS tid, t.version AS ver, {} AS ntitle \
                 FROM bench_pick p JOIN tasks t ON t.id = p.task_id WHERE p.k = :r \\gset\n",
                lit(TITLE_RENAMED)
            ),
            Op::TaskSetCompleted => format!("\\set c random(0, 1)\n{tasks}"),
            Op::TaskDelete => "\\set k :k + 1\n\
                 SELECT user_id AS uid, task_id AS tid FROM bench_pick WHERE k = :k \\gset\n"
                .to_owned(),
            Op::TaskGet | Op::CheckoutGet => tasks.to_owned(),
            Op::UserGet
            | Op::UserFindByEmail
            | Op::ListFirst
            | Op::ListNext
            | Op::ListSearch
            | Op::CountMatching
            | Op::Stats => users.to_owned(),
        }
    }
}

/// A sampled user: its id and email, the cursor after its first page of open tasks, and a
/// word of one of its titles to search for.
#[derive(Debug, Clone)]
struct SampleUser {
    id: Uuid,
    email: String,
    cursor: String,
    cursor_at: DateTime<Utc>,
    cursor_id: Uuid,
    term: String,
}

/// What the operations pick from, the same rows the floor's helper tables hold.
struct Ctx {
    users: Vec<SampleUser>,
    /// (user_id, task_id) of bench_pick's rows 1..=sample_tasks.
    tasks: Vec<(Uuid, Uuid)>,
    /// The version of each sample task, as the crate last saw it.
    versions: Vec<i32>,
    /// Tasks the crate deletes (bench_pick rows after the sample).
    deletable: Vec<(Uuid, Uuid)>,
    next_delete: usize,
    /// bench_pick's k before the floor's first deletable task.
    floor_delete_base: usize,
}

/// Bind values of a call, as diesel's debug output prints them, and the pgbench
/// variable (or constant) that stands for each in the floor.
type BindVars = Vec<(String, String)>;

fn dbg<T: std::fmt::Debug>(value: T) -> String {
    format!("{value:?}")
}

/// One call of `op`: picks its inputs, times the repo call (only), and with `record`
/// returns the bind variables for the floor.
fn call(
    op: Op,
    ctx: &mut Ctx,
    conn: &mut PgConnection,
    pool: &PgPool,
    rng: &mut Pcg64,
    record: bool,
) -> BoxResult<(Duration, BindVars)> {
    let mut vars: BindVars = Vec::new();
    let mut var = |debug: String, token: &str| {
        if record {
            vars.push((debug, token.to_owned()));
        }
    };
    let user = ctx.users[rng.random_range(0..ctx.users.len())].clone();
    let task_index = rng.random_range(0..ctx.tasks.len());
    let (task_user, task_id) = ctx.tasks[task_index];
    let elapsed = match op {
        Op::RoundTrip => {
            let started = Instant::now();
            diesel::select(1i32.into_sql::<Integer>()).get_result::<i32>(conn)?;
            let elapsed = started.elapsed();
            var(dbg(1i32), ":one");
            elapsed
        }
        Op::UserCreate => {
            let email = format!("bench-{}@example.com", Uuid::new_v4().simple());
            let new = NewUser::new(email.as_str(), "Bench User");
            let started = Instant::now();
            let created = UserRepo::create(conn, &new)?;
            let elapsed = started.elapsed();
            var(dbg(created.id), ":nid");
            var(dbg(&email), ":nemail");
            var(dbg("Bench User"), ":nname");
            elapsed
        }
        Op::UserGet => {
            let started = Instant::now();
            UserRepo::get(conn, user.id)?;
            let elapsed = started.elapsed();
            var(dbg(user.id), ":uid");
            elapsed
        }
        Op::UserFindByEmail => {
            let started = Instant::now();
            let found = UserRepo::find_by_email(conn, &user.email)?;
            let elapsed = started.elapsed();
            if found.is_none() {
                return Err(format!("find_by_email({}) found nobody", user.email).into());
            }
            var(dbg(user.email.as_str()), ":uemail");
            elapsed
        }
        Op::TaskCreate => {
            let new = NewTask::new(TITLE_NEW);
            let started = Instant::now();
            let created = TaskRepo::create(conn, user.id, &new)?;
            let elapsed = started.elapsed();
            var(dbg(created.id), ":nid");
            var(dbg(user.id), ":uid");
            var(dbg(TITLE_NEW), ":ntitle");
            var(dbg(Priority::Medium), ":prio");
            elapsed
        }
        Op::TaskGet => {
            let started = Instant::now();
            TaskRepo::get(conn, task_user, task_id)?;
            let elapsed = started.elapsed();
            var(dbg(task_user), ":uid");
            var(dbg(task_id), ":tid");
            elapsed
        }
        Op::TaskUpdate => {
            let expected = ctx.versions[task_index];
            let patch = TaskPatch {
                title: Some(TITLE_RENAMED.to_owned()),
                expected_version: Some(expected),
                ..TaskPatch::default()
            };
            let started = Instant::now();
            let updated = TaskRepo::update(conn, task_user, task_id, &patch)?;
            let elapsed = started.elapsed();
            ctx.versions[task_index] = updated.version;
            var(dbg(task_user), ":uid");
            var(dbg(task_id), ":tid");
            var(dbg(Some(TITLE_RENAMED)), ":ntitle");
            var(dbg(Some(expected)), ":ver");
            elapsed
        }
        Op::TaskSetCompleted => {
            let completed = rng.random_bool(0.5);
            let started = Instant::now();
            TaskRepo::set_completed(conn, task_user, task_id, completed)?;
            let elapsed = started.elapsed();
            var(dbg(task_user), ":uid");
            var(dbg(task_id), ":tid");
            var(dbg(Some(completed)), ":c");
            elapsed
        }
        Op::TaskDelete => {
            let (owner, id) = *ctx
                .deletable
                .get(ctx.next_delete)
                .ok_or("out of tasks to delete")?;
            ctx.next_delete += 1;
            let started = Instant::now();
            TaskRepo::delete(conn, owner, id)?;
            let elapsed = started.elapsed();
            var(dbg(owner), ":uid");
            var(dbg(id), ":tid");
            elapsed
        }
        Op::ListFirst | Op::ListNext | Op::ListSearch | Op::CountMatching => {
            let query = match op {
                Op::ListFirst | Op::CountMatching => TaskQuery::new().completed(false).limit(PAGE),
                Op::ListNext => TaskQuery::new()
                    .completed(false)
                    .limit(PAGE)
                    .after(&user.cursor),
                _ => TaskQuery::new().search(&user.term).limit(PAGE),
            };
            let started = Instant::now();
            let rows = if op == Op::CountMatching {
                TaskRepo::count_matching(conn, user.id, &query)? as usize
            } else {
                TaskRepo::list(conn, user.id, &query)?.items.len()
            };
            let elapsed = started.elapsed();
            if rows == 0 {
                return Err(format!("{} returned nothing for user {}", op.label(), user.id).into());
            }
            var(dbg(user.id), ":uid");
            var(dbg(user.cursor_at), ":cat");
            var(dbg(user.cursor_id), ":cid");
            var(dbg(user.term.as_str()), ":term");
            elapsed
        }
        Op::Stats => {
            let started = Instant::now();
            TaskRepo::stats(conn, user.id)?;
            let elapsed = started.elapsed();
            var(dbg(user.id), ":uid");
            elapsed
        }
        Op::CheckoutGet => {
            let started = Instant::now();
            let mut pooled = pool.get()?;
            TaskRepo::get(&mut pooled, task_user, task_id)?;
            drop(pooled);
            let elapsed = started.elapsed();
            var(dbg(task_user), ":uid");
            var(dbg(task_id), ":tid");
            elapsed
        }
    };
    // Constants the crate binds.
    var(dbg(false), ":f");
    var(dbg(true), ":t");
    var(dbg(PAGE + 1), ":lim");
    Ok((elapsed, vars))
}

// ---------------------------------------------------------------------------------------
// What the crate sends: diesel's instrumentation
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Event {
    /// A statement: its SQL and its binds as diesel's debug output prints them.
    Query { sql: String, binds: String },
    /// A statement entered the connection's prepared statement cache.
    Cached,
}

type Recorder = Arc<Mutex<Vec<Event>>>;

fn record_events(conn: &mut PgConnection) -> Recorder {
    let recorder: Recorder = Arc::default();
    let sink = Arc::clone(&recorder);
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        let recorded = match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                let text = query.to_string();
                let (sql, binds) = match text.rsplit_once(" -- binds: ") {
                    Some((sql, binds)) => (sql.to_owned(), binds.to_owned()),
                    None => (text, "[]".to_owned()),
                };
                Event::Query { sql, binds }
            }
            InstrumentationEvent::CacheQuery { .. } => Event::Cached,
            _ => return,
        };
        sink.lock().expect("recorder").push(recorded);
    });
    recorder
}

fn take_events(recorder: &Recorder) -> Vec<Event> {
    std::mem::take(&mut *recorder.lock().expect("recorder"))
}

/// What one call of an op sent, from a second call on a connection of its own (the first
/// one may also look up type OIDs).
#[derive(Debug, Clone)]
struct Capture {
    /// Every statement of the call, `SELECT 1` of the pool's check included.
    statements: Vec<(String, String)>,
    /// Whether diesel put the op's statement into its prepared-statement cache.
    prepared: bool,
    /// The pgbench script, or why there is none.
    floor_script: Result<String, String>,
    floor_sql: String,
}

/// Runs `op` twice on a fresh connection of its own and records what the second call
/// sent; the first call tells whether diesel cached the statement (and may also look up
/// type OIDs). The connection is a plain one, outside the pool: the recorder takes the
/// connection's instrumentation slot, which the pool's connections use for their own
/// bookkeeping (see `capture_checkout`).
fn capture(
    op: Op,
    ctx: &mut Ctx,
    config: &DbConfig,
    pool: &PgPool,
    rng: &mut Pcg64,
) -> BoxResult<Capture> {
    if op == Op::CheckoutGet {
        return capture_checkout(ctx, pool, rng);
    }
    let mut conn = PgConnection::establish(config.url())?;
    let recorder = record_events(&mut conn);
    call(op, ctx, &mut conn, pool, rng, false)?;
    let first = take_events(&recorder);
    let (_, vars) = call(op, ctx, &mut conn, pool, rng, true)?;
    let second = take_events(&recorder);
    finish_capture(op, &first, &second, &vars)
}

/// checkout + get on the benchmark's pool, twice in a row: the statements of the second,
/// as the pool's connections report them (tracing target `todo_store::sql`, listened to
/// on this thread only while capturing).
fn capture_checkout(ctx: &Ctx, pool: &PgPool, rng: &mut Pcg64) -> BoxResult<Capture> {
    use tracing_subscriber::layer::SubscriberExt;

    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let subscriber = tracing_subscriber::registry().with(SqlEvents(Arc::clone(&seen)));
    let (task_user, task_id) = ctx.tasks[rng.random_range(0..ctx.tasks.len())];
    tracing::subscriber::with_default(subscriber, || -> BoxResult<()> {
        for _ in 0..2 {
            seen.lock().expect("sql events").clear();
            let mut pooled = pool.get()?;
            TaskRepo::get(&mut pooled, task_user, task_id)?;
            drop(pooled);
        }
        Ok(())
    })?;
    let statements: Vec<(String, String)> = seen
        .lock()
        .expect("sql events")
        .iter()
        .map(|sql| (sql.clone(), String::new()))
        .collect();
    Ok(Capture {
        statements,
        prepared: true,
        floor_script: Err("compared with the floor of TaskRepo::get".to_owned()),
        floor_sql: String::new(),
    })
}

/// Collects the SQL of the `todo_store::sql` events.
struct SqlEvents(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SqlEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Sql(Option<String>);
        impl tracing::field::Visit for Sql {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "sql" {
                    self.0 = Some(value.to_owned());
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "sql" {
                    self.0 = Some(format!("{value:?}"));
                }
            }
        }
        if event.metadata().target() != "todo_store::sql" {
            return;
        }
        let mut sql = Sql(None);
        event.record(&mut sql);
        if let Some(sql) = sql.0 {
            self.0.lock().expect("sql events").push(sql);
        }
    }
}

fn finish_capture(
    op: Op,
    first: &[Event],
    second: &[Event],
    vars: &BindVars,
) -> BoxResult<Capture> {
    let statements: Vec<(String, String)> = second
        .iter()
        .filter_map(|e| match e {
            Event::Query { sql, binds } => Some((sql.clone(), binds.clone())),
            Event::Cached => None,
        })
        .collect();
    let prepared = first.iter().any(|e| matches!(e, Event::Cached));
    let (main_sql, main_binds) = statements
        .iter()
        .find(|(sql, _)| !is_overhead(sql))
        .ok_or_else(|| format!("{}: no statement captured", op.label()))?;
    let floor_sql = mirror(main_sql, &split_debug_list(main_binds), vars);
    let floor_script = floor_sql.clone().map(|sql| {
        let mut script = String::new();
        let constants = [
            ("f", "false".to_owned()),
            ("t", "true".to_owned()),
            ("lim", (PAGE + 1).to_string()),
            ("one", "1".to_owned()),
        ];
        for (name, value) in constants {
            if contains_token(&sql, &format!(":{name}")) {
                let _ = writeln!(script, "\\set {name} {value}");
            }
        }
        script.push_str(&op.floor_of().floor_prefix());
        script.push_str(&sql);
        script.push('\n');
        script
    });
    Ok(Capture {
        floor_sql: floor_sql.clone().unwrap_or_default(),
        statements,
        prepared,
        floor_script,
    })
}

/// Statements that are not the operation itself: the pool's check, transactions.
fn is_overhead(sql: &str) -> bool {
    let s = sql.trim().to_ascii_uppercase();
    s == "SELECT 1"
        || s.starts_with("BEGIN")
        || s.starts_with("COMMIT")
        || s.starts_with("ROLLBACK")
}

/// Whether `sql` uses pgbench variable `token` (`:f`, not `:foo`).
fn contains_token(sql: &str, token: &str) -> bool {
    sql.match_indices(token).any(|(i, _)| {
        !sql[i + token.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && !sql[..i].ends_with(':')
    })
}

/// Splits diesel's debug list of binds (`[a, Some("x, y"), None]`) at its top-level commas.
fn split_debug_list(list: &str) -> Vec<String> {
    let inner = list.trim().trim_start_matches('[').trim_end_matches(']');
    let mut items = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0i32, false, false);
    let mut current = String::new();
    for c in inner.chars() {
        if in_string {
            current.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(current.trim().to_owned());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        items.push(current.trim().to_owned());
    }
    items
}

/// The crate's SQL with each `$n` replaced by the pgbench variable of its bind value
/// (`NULL` for a bound NULL: pgbench cannot bind one).
fn mirror(sql: &str, binds: &[String], vars: &BindVars) -> Result<String, String> {
    let tokens = binds
        .iter()
        .map(|bind| {
            if bind == "None" {
                return Ok("NULL".to_owned());
            }
            vars.iter()
                .find(|(debug, _)| debug == bind)
                .map(|(_, token)| token.clone())
                .ok_or_else(|| format!("no pgbench variable for the bind value {bind}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let (mut i, mut quoted) = (0, false);
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            quoted = !quoted;
        } else if c == '$' && !quoted && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
            let mut j = i + 1;
            while chars.get(j).is_some_and(|d| d.is_ascii_digit()) {
                j += 1;
            }
            let n: usize = chars[i + 1..j]
                .iter()
                .collect::<String>()
                .parse()
                .unwrap_or(0);
            let token = tokens
                .get(n.wrapping_sub(1))
                .ok_or_else(|| format!("${n} has no bind value"))?;
            out.push_str(token);
            i = j;
            continue;
        }
        out.push(c);
        i += 1;
    }
    if out.contains('\n') {
        return Err("the statement spans lines".to_owned());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The floor: pgbench and psql
// ---------------------------------------------------------------------------------------

/// pgbench's result: the mirrored (last) statement's mean latency.
struct PgbenchRun {
    statement_ms: f64,
}

fn pgbench(
    server: &Server,
    db: &str,
    script: &str,
    transactions: usize,
    defines: &[(&str, usize)],
    pin: Option<(&mut Pinning, &mut PgConnection)>,
) -> BoxResult<PgbenchRun> {
    // With pinning, the first transaction waits a moment, so that pgbench's backend can
    // be found and pinned before anything is timed.
    let script = if pin.is_some() {
        format!(
            "\\if :pinwait\n\\sleep {} ms\n\\set pinwait 0\n\\endif\n{script}",
            PIN_WINDOW.as_millis() + 30
        )
    } else {
        script.to_owned()
    };
    let (mut cmd, target) = server.tool("pgbench", db);
    if pin.is_some() {
        cmd.arg("-D").arg("pinwait=1");
    }
    cmd.args([
        "-n", "-M", "prepared", "-c", "1", "-j", "1", "-r", "-f", "-",
    ])
    .arg("-t")
    .arg(transactions.to_string());
    for (name, value) in defines {
        cmd.arg("-D").arg(format!("{name}={value}"));
    }
    cmd.arg(target)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not run pgbench: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("pgbench stdin")?
        .write_all(script.as_bytes())?;
    if let Some((pinning, poll)) = pin {
        pinning.pin_pgbench_backend(poll, db, started);
    }
    let output = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("pgbench failed: {}{}", tail(&stderr, 8), tail(&stdout, 4)).into());
    }
    if let Some(line) = stdout
        .lines()
        .find(|l| l.starts_with("number of failed transactions"))
    {
        if !line.contains(": 0 ") {
            return Err(format!("pgbench: {line}\n{}", tail(&stderr, 8)).into());
        }
    }
    let latencies = stdout
        .split_once("statement latencies in milliseconds")
        .map(|(_, rest)| rest)
        .ok_or_else(|| {
            format!(
                "pgbench printed no statement latencies:\n{}",
                tail(&stdout, 10)
            )
        })?;
    let last = latencies
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .last()
        .ok_or("pgbench: no statement latency")?;
    Ok(PgbenchRun { statement_ms: last })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------
// Pinning: client and server on different cores
// ---------------------------------------------------------------------------------------

/// Where the client and the server run during the single-connection measurements.
///
/// A loopback round trip costs about 3x more when client and server run on different
/// cores than on the same one, and the scheduler moves them around at will: unpinned, a
/// pgbench run and the crate's loop can land on different placements and their ratio
/// means little. So, when the server runs on this machine and this process may set its
/// processes' CPU affinity, the benchmark (and the pgbench and psql it starts) runs on
/// one core, and every server backend it measures on the others: the realistic,
/// different-core round trip, the same for the crate and its floor. `--no-pin` turns
/// it off; it is off anyway for the concurrency test.
struct Pinning {
    client: Vec<usize>,
    server: Vec<usize>,
    original: Vec<usize>,
    backends: Vec<i32>,
}

impl Pinning {
    /// The plan: the last CPU this process may use for the client, the others for the
    /// server.
    fn plan() -> Result<Pinning, String> {
        let original = get_affinity(0).map_err(|e| format!("sched_getaffinity: {e}"))?;
        if original.len() < 2 {
            return Err(format!("this process may only use {} CPU", original.len()));
        }
        let client = vec![*original.last().expect("two CPUs")];
        let server = original[..original.len() - 1].to_vec();
        Ok(Pinning {
            client,
            server,
            original,
            backends: Vec::new(),
        })
    }

    fn describe(&self) -> String {
        format!(
            "client (this program, pgbench, psql) on CPU {}, server backends on CPU {}",
            list(&self.client),
            list(&self.server)
        )
    }

    /// Pins this thread (and so the threads and processes it starts from now on).
    fn pin_client(&self) -> std::io::Result<()> {
        set_affinity(0, &self.client)
    }

    /// Pins the backend of `conn`.
    fn pin_connection(&mut self, conn: &mut PgConnection) -> Result<(), String> {
        #[derive(QueryableByName)]
        struct Pid {
            #[diesel(sql_type = Integer)]
            pid: i32,
        }
        let pid = sql_query("SELECT pg_backend_pid() AS pid")
            .get_result::<Pid>(conn)
            .map_err(|e| e.to_string())?
            .pid;
        self.pin_backend(pid)
    }

    fn pin_backend(&mut self, pid: i32) -> Result<(), String> {
        // Only a server process of this machine: the pid could be another machine's.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "postgres" {
            return Err(format!(
                "the server's backend (pid {pid}) is not a process of this machine"
            ));
        }
        set_affinity(pid, &self.server).map_err(|e| format!("pinning backend {pid}: {e}"))?;
        self.backends.push(pid);
        Ok(())
    }

    /// Pins the backend of the pgbench just started on `db` (pgbench waits in its first
    /// transaction for this). pgbench first opens a connection of its own to look at the
    /// server and closes it, then opens the client's: every pgbench backend that shows
    /// up during the first [`PIN_WINDOW`] is pinned.
    fn pin_pgbench_backend(&mut self, poll: &mut PgConnection, db: &str, started: Instant) {
        #[derive(QueryableByName)]
        struct Pid {
            #[diesel(sql_type = Integer)]
            pid: i32,
        }
        let mut seen = self.backends.clone();
        let mut pinned = 0;
        while started.elapsed() < PIN_WINDOW {
            let found = sql_query(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 \
                 AND application_name = 'pgbench' AND pid <> pg_backend_pid() \
                 AND pid <> ALL($2)",
            )
            .bind::<Text, _>(db)
            .bind::<Array<Integer>, _>(&seen)
            .load::<Pid>(poll);
            match found {
                Ok(pids) => {
                    for Pid { pid } in pids {
                        seen.push(pid);
                        // One that is gone already was the exiting first connection.
                        if Path::new(&format!("/proc/{pid}")).exists()
                            && self.pin_backend(pid).is_ok()
                        {
                            pinned += 1;
                        }
                    }
                }
                Err(e) => {
                    eprintln!("   (pgbench's backend not found: {e})");
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if pinned == 0 {
            eprintln!("   (pgbench's backend not found in time: not pinned)");
        }
    }

    /// Back to the CPUs everything had.
    fn release(&mut self) {
        let _ = set_affinity(0, &self.original);
        for pid in self.backends.drain(..) {
            let _ = set_affinity(pid, &self.original);
        }
    }
}

/// How long after starting pgbench its backends are looked for (it sleeps a little
/// longer before its first statement).
const PIN_WINDOW: Duration = Duration::from_millis(60);

/// CPU time of the calling thread (zero where unsupported).
#[cfg(target_os = "linux")]
fn thread_cpu_time() -> Duration {
    // SAFETY: clock_gettime writes one timespec, which lives on this stack frame.
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu_time() -> Duration {
    Duration::ZERO
}

fn list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(target_os = "linux")]
fn set_affinity(pid: i32, cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET stays within it (cpus come from
    // sched_getaffinity, below CPU_SETSIZE); the kernel reads `size` bytes of it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(target_os = "linux")]
fn get_affinity(pid: i32) -> std::io::Result<Vec<usize>> {
    // SAFETY: as in set_affinity; the kernel writes at most `size` bytes.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect())
    }
}

/// Elsewhere than Linux the benchmark does not pin.
#[cfg(not(target_os = "linux"))]
fn set_affinity(_pid: i32, _cpus: &[usize]) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "pinning is implemented for Linux only",
    ))
}

#[cfg(not(target_os = "linux"))]
fn get_affinity(_pid: i32) -> std::io::Result<Vec<usize>> {
    set_affinity(0, &[]).map(|()| Vec::new())
}

// ---------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct OpResult {
    op: Op,
    size: &'static str,
    iterations: usize,
    mean_us: f64,
    p50_us: f64,
    p99_us: f64,
    ops_per_s: f64,
    floor_us: Option<f64>,
    floor_note: Option<String>,
    floor_sql: String,
    statements: Vec<String>,
    prepared: bool,
    /// Per round (adjacent in time): the crate's mean and the floor's, µs. The spread
    /// of their ratios shows the noise.
    rounds: Vec<(f64, f64)>,
    /// CPU time of the benchmark's thread per call (the crate's work, plus a little of
    /// the benchmark's own: picking the inputs).
    client_cpu_us: f64,
}

impl OpResult {
    fn ratio(&self) -> Option<f64> {
        self.floor_us.map(|f| self.mean_us / f)
    }

    fn round_ratios(&self) -> Vec<f64> {
        self.rounds.iter().map(|(c, f)| c / f).collect()
    }

    /// "0.95-1.10": the lowest and highest ratio of a round.
    fn ratio_range(&self) -> String {
        let ratios = self.round_ratios();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(0.0, f64::max);
        if ratios.is_empty() {
            "-".to_owned()
        } else {
            format!("{lo:.2}-{hi:.2}")
        }
    }
}

#[derive(Debug, Clone)]
struct BulkResult {
    size: &'static str,
    rows: usize,
    crate_rows_per_s: f64,
    copy_rows_per_s: f64,
}

#[derive(Debug, Clone)]
struct ConcResult {
    size: &'static str,
    threads: usize,
    ops_per_s: f64,
    mean_us: f64,
    /// Cores busy on the whole machine (this program, the server, anything else), cores
    /// this program used, and cores stolen by the hypervisor, on average.
    busy_cores: f64,
    own_cores: f64,
    steal_cores: f64,
}

#[derive(Debug, Clone)]
struct SizeInfo {
    label: &'static str,
    users: u32,
    tasks_per_user: u32,
    seed_secs: f64,
    seed_rows_per_s: f64,
}

#[derive(Default)]
struct Results {
    sizes: Vec<SizeInfo>,
    ops: Vec<OpResult>,
    bulk: Vec<BulkResult>,
    concurrency: Vec<ConcResult>,
    server: Vec<(String, String)>,
    /// Per size: how client and server were placed during the single-connection part.
    pinning: Vec<(&'static str, String)>,
}

struct Stats {
    mean_us: f64,
    p50_us: f64,
    p99_us: f64,
}

fn stats(samples: &mut [Duration]) -> Stats {
    samples.sort_unstable();
    let n = samples.len().max(1);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = samples.iter().map(|d| us(*d)).sum::<f64>() / n as f64;
    let at = |q: f64| us(samples[(((n as f64) * q).ceil() as usize).clamp(1, n) - 1]);
    Stats {
        mean_us: mean,
        p50_us: at(0.50),
        p99_us: at(0.99),
    }
}

// ---------------------------------------------------------------------------------------
// One size: seed, sample, measure
// ---------------------------------------------------------------------------------------

fn run_size(
    server: &Server,
    size: &SizeSpec,
    profile: &Profile,
    args: &Args,
    results: &mut Results,
) -> BoxResult<()> {
    let db_name = format!(
        "todo_store_bench_{}{}",
        if profile.quick { "quick_" } else { "" },
        size.label.to_lowercase()
    );
    let tasks_total = u64::from(size.users) * u64::from(size.tasks_per_user);
    eprintln!(
        "\n== {}: {} users x {} tasks = {} tasks, in database {db_name}",
        size.label,
        group(u64::from(size.users)),
        size.tasks_per_user,
        group(tasks_total)
    );
    let bench_db = BenchDb::create(server, &db_name, args)?;
    let url = server.db_url(&db_name);
    let config = DbConfig::new(url.as_str()).pool_size(POOL_SIZE);
    let pool = connect(&config)?;

    eprintln!("   seeding with seed_with_pool (2 workers)...");
    let options = SeedOptions {
        users: size.users,
        tasks_per_user: size.tasks_per_user,
        seed: 42,
        ..SeedOptions::default()
    };
    let report = seed_with_pool(&pool, &options, 2, |_| ControlFlow::Continue(()))?;
    eprintln!(
        "   seeded {} users and {} tasks in {:.1} s ({:.0} rows/s)",
        report.users_created,
        report.tasks_created,
        report.elapsed.as_secs_f64(),
        report.rows_per_second()
    );
    results.sizes.push(SizeInfo {
        label: size.label,
        users: size.users,
        tasks_per_user: size.tasks_per_user,
        seed_secs: report.elapsed.as_secs_f64(),
        seed_rows_per_s: report.rows_per_second(),
    });

    // A connection of our own for setup: no statement timeout.
    let mut setup = PgConnection::establish(&url)?;
    // VACUUM as well as ANALYZE: rows fresh from COPY would otherwise get their hint bits
    // and visibility map set by the first reads (and by autovacuum) mid-measurement.
    for sql in ["VACUUM (ANALYZE) users", "VACUUM (ANALYZE) tasks"] {
        setup.batch_execute(sql)?;
    }
    if results.server.is_empty() {
        results.server = server_facts(&mut setup, server)?;
    }

    let mut ctx = sample(&mut setup, profile)?;
    let _ = setup.batch_execute("CHECKPOINT");

    let mut rng = Pcg64::seed_from_u64(7);
    if profile.runs("ops") {
        let mut conn = pool.get()?;
        let mut pinning = if args.no_pin {
            Err("--no-pin".to_owned())
        } else {
            pin_everything(&pool, &mut conn, &mut setup)
        };
        let pin_state = match &pinning {
            Ok(p) => p.describe(),
            Err(why) => format!("off ({why})"),
        };
        eprintln!("   pinning: {pin_state}");
        results.pinning.push((size.label, pin_state));
        let scripts = target_dir().join("bench").join("pgbench");
        std::fs::create_dir_all(&scripts)?;
        let mut by_op = Vec::new();
        for op in Op::RUN_ORDER {
            let result = bench_op(
                OpBench {
                    op,
                    server,
                    db: &db_name,
                    pool: &pool,
                    config: &config,
                    profile,
                    scripts: &scripts,
                    size: size.label,
                },
                &mut ctx,
                &mut conn,
                &mut setup,
                &mut rng,
                &by_op,
                pinning.as_mut().ok(),
            )?;
            by_op.push(result);
        }
        if let Ok(p) = pinning.as_mut() {
            p.release();
        }
        drop(conn);
        for op in Op::ALL {
            if let Some(r) = by_op.iter().find(|r| r.op == op) {
                results.ops.push(r.clone());
            }
        }
    }

    if profile.runs("concurrency") {
        // Rounds over the thread counts, up and down, summed per count.
        let mut totals: Vec<(usize, u64, Duration, CpuUse)> = profile
            .threads
            .iter()
            .map(|&t| (t, 0, Duration::ZERO, CpuUse::default()))
            .collect();
        for round in 0..profile.conc_rounds {
            let mut order: Vec<usize> = (0..totals.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let (ops, busy, cpu) = concurrency(&pool, &ctx, totals[i].0, profile)?;
                totals[i].1 += ops;
                totals[i].2 += busy;
                totals[i].3.add(&cpu);
            }
        }
        let secs = profile.conc_duration.as_secs_f64() * profile.conc_rounds as f64;
        for (threads, ops, busy, cpu) in totals {
            let ops_per_s = ops as f64 / secs;
            let mean_us = busy.as_secs_f64() * 1e6 / ops.max(1) as f64;
            // /proc/stat counts every core: total / secs is the number of cores.
            let cores = cpu.total / secs;
            let per = |x: f64| {
                if cpu.total > 0.0 {
                    x / cpu.total * cores
                } else {
                    0.0
                }
            };
            let result = ConcResult {
                size: size.label,
                threads,
                ops_per_s,
                mean_us,
                busy_cores: per(cpu.busy),
                own_cores: cpu.own / secs,
                steal_cores: per(cpu.steal),
            };
            eprintln!(
                "   mixed 70/30 through the pool, {threads} thread(s): {ops_per_s:.0} ops/s \
                 ({mean_us:.0} µs per op; cores busy {:.2}, this program {:.2}, stolen {:.2})",
                result.busy_cores, result.own_cores, result.steal_cores
            );
            results.concurrency.push(result);
        }
    }

    if profile.runs("bulk") {
        let bulk = bulk(server, &db_name, &pool, &mut setup, profile)?;
        eprintln!(
            "   bulk {} rows: create_many {:.0} rows/s, \\copy {:.0} rows/s",
            group(bulk.rows as u64),
            bulk.crate_rows_per_s,
            bulk.copy_rows_per_s
        );
        results.bulk.push(BulkResult {
            size: size.label,
            ..bulk
        });
    }

    drop(setup);
    drop(pool);
    drop(bench_db);
    Ok(())
}

/// Pins this program to one core and the backends of every pool connection and of
/// `setup` to the others; on any failure, undoes it and says why.
fn pin_everything(
    pool: &PgPool,
    held: &mut PgConnection,
    setup: &mut PgConnection,
) -> Result<Pinning, String> {
    let mut pinning = Pinning::plan()?;
    let outcome = (|| {
        pinning.pin_connection(held)?;
        pinning.pin_connection(setup)?;
        // The pool's other connections (checkout + get takes one of them).
        let mut others = Vec::new();
        while let Some(c) = pool.try_get() {
            others.push(c);
        }
        for c in &mut others {
            pinning.pin_connection(c)?;
        }
        pinning
            .pin_client()
            .map_err(|e| format!("pinning this program: {e}"))
    })();
    match outcome {
        Ok(()) => Ok(pinning),
        Err(why) => {
            pinning.release();
            Err(why)
        }
    }
}

/// Picks the sample users and tasks, in Rust and in the helper tables the floor reads.
fn sample(setup: &mut PgConnection, profile: &Profile) -> BoxResult<Ctx> {
    #[derive(QueryableByName)]
    struct UserPick {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
        #[diesel(sql_type = Text)]
        email: String,
    }
    #[derive(QueryableByName)]
    struct TaskPick {
        #[diesel(sql_type = SqlUuid)]
        user_id: Uuid,
        #[diesel(sql_type = SqlUuid)]
        task_id: Uuid,
    }
    let picks: Vec<UserPick> =
        sql_query("SELECT id, email FROM users ORDER BY md5(id::text) LIMIT $1")
            .bind::<BigInt, _>(profile.sample_users as i64)
            .load(setup)?;
    let first_page = TaskQuery::new().completed(false).limit(PAGE);
    let mut users = Vec::new();
    for pick in picks {
        let page = TaskRepo::list(setup, pick.id, &first_page)?;
        let (Some(cursor), Some(last), Some(first)) = (
            page.next_cursor.clone(),
            page.items.last(),
            page.items.first(),
        ) else {
            continue;
        };
        let term: String = first
            .title
            .split_whitespace()
            .next()
            .unwrap_or("task")
            .chars()
            .filter(char::is_ascii_alphabetic)
            .collect::<String>()
            .to_lowercase();
        users.push(SampleUser {
            id: pick.id,
            email: pick.email,
            cursor,
            cursor_at: last.created_at,
            cursor_id: last.id,
            term,
        });
    }
    if users.is_empty() {
        return Err("no user has a second page of open tasks".into());
    }
    setup.batch_execute(
        "CREATE TABLE bench_users (k integer PRIMARY KEY, id uuid NOT NULL, email text NOT NULL, \
         cat timestamptz NOT NULL, cid uuid NOT NULL, term text NOT NULL)",
    )?;
    for (chunk_no, chunk) in users.chunks(200).enumerate() {
        let mut sql = String::from("INSERT INTO bench_users VALUES ");
        for (i, u) in chunk.iter().enumerate() {
            let _ = write!(
                sql,
                "{}({}, '{}', {}, '{}', '{}', {})",
                if i > 0 { ", " } else { "" },
                chunk_no * 200 + i + 1,
                u.id,
                lit(&u.email),
                u.cursor_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                u.cursor_id,
                lit(&u.term)
            );
        }
        setup.batch_execute(&sql)?;
    }
    let wanted = profile.sample_tasks + 2 * profile.delete_budget();
    setup.batch_execute(&format!(
        "CREATE TABLE bench_pick (k integer PRIMARY KEY, user_id uuid NOT NULL, task_id uuid NOT NULL); \
         INSERT INTO bench_pick SELECT row_number() OVER (), user_id, id \
         FROM (SELECT user_id, id FROM tasks ORDER BY md5(id::text) LIMIT {wanted}) s; \
         ANALYZE bench_users; ANALYZE bench_pick"
    ))?;
    let picks: Vec<TaskPick> =
        sql_query("SELECT user_id, task_id FROM bench_pick ORDER BY k").load(setup)?;
    if picks.len() < wanted {
        return Err(format!("only {} tasks to sample, {wanted} needed", picks.len()).into());
    }
    let all: Vec<(Uuid, Uuid)> = picks.iter().map(|p| (p.user_id, p.task_id)).collect();
    let n = profile.sample_tasks;
    let budget = profile.delete_budget();
    let mut ctx = Ctx {
        users,
        tasks: all[..n].to_vec(),
        versions: vec![1; n],
        deletable: all[n..n + budget].to_vec(),
        next_delete: 0,
        floor_delete_base: n + budget,
    };
    refresh_versions(setup, &mut ctx)?;
    Ok(ctx)
}

/// Reads the sample tasks' versions (the floor's updates move them too).
fn refresh_versions(conn: &mut PgConnection, ctx: &mut Ctx) -> BoxResult<()> {
    #[derive(QueryableByName)]
    struct IdVersion {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
        #[diesel(sql_type = Integer)]
        version: i32,
    }
    let ids: Vec<Uuid> = ctx.tasks.iter().map(|(_, id)| *id).collect();
    let rows: Vec<IdVersion> = sql_query("SELECT id, version FROM tasks WHERE id = ANY($1)")
        .bind::<Array<SqlUuid>, _>(&ids)
        .load(conn)?;
    let versions: std::collections::HashMap<Uuid, i32> =
        rows.into_iter().map(|r| (r.id, r.version)).collect();
    for (i, (_, id)) in ctx.tasks.iter().enumerate() {
        ctx.versions[i] = *versions.get(id).ok_or("a sample task vanished")?;
    }
    Ok(())
}

/// What one op's benchmark needs besides its state.
struct OpBench<'a> {
    op: Op,
    server: &'a Server,
    db: &'a str,
    pool: &'a PgPool,
    config: &'a DbConfig,
    profile: &'a Profile,
    scripts: &'a Path,
    size: &'static str,
}

/// Warm-up, half the iterations, the floor, the other half.
fn bench_op(
    b: OpBench<'_>,
    ctx: &mut Ctx,
    conn: &mut PgConnection,
    setup: &mut PgConnection,
    rng: &mut Pcg64,
    done: &[OpResult],
    mut pinning: Option<&mut Pinning>,
) -> BoxResult<OpResult> {
    let (op, size) = (b.op, b.size);
    let captured = capture(op, ctx, b.config, b.pool, rng)?;
    let n = b.profile.iterations;
    let rounds = b.profile.rounds.clamp(1, n);
    let mut samples = Vec::with_capacity(n);
    // This thread's CPU time over the timed loops: the client side's own work per call.
    let mut client_cpu = Duration::ZERO;
    let run = |count: usize,
               samples: &mut Vec<Duration>,
               ctx: &mut Ctx,
               rng: &mut Pcg64,
               conn: &mut PgConnection|
     -> BoxResult<Duration> {
        let cpu_before = thread_cpu_time();
        for _ in 0..count {
            let (elapsed, _) = call(op, ctx, conn, b.pool, rng, false)
                .map_err(|e| format!("{}: {e}", op.label()))?;
            samples.push(elapsed);
        }
        Ok(thread_cpu_time().saturating_sub(cpu_before))
    };
    let floor_script = match (op.floor_of() == op, &captured.floor_script) {
        (true, Ok(script)) => {
            let file = b.scripts.join(format!("{}_{}.sql", size, op.key()));
            std::fs::write(&file, script)?;
            Some(script.as_str())
        }
        (true, Err(why)) => {
            eprintln!("   {}: no floor: {why}", op.label());
            None
        }
        (false, _) => None,
    };
    // pgbench's `k`: the floor's deletes walk bench_pick from its own base.
    let mut floor_k = ctx.floor_delete_base;
    let defines =
        |ctx: &Ctx, k: usize| vec![("nu", ctx.users.len()), ("nt", ctx.tasks.len()), ("k", k)];

    // Warm-up on both sides, then rounds that alternate which side goes first, so drift
    // (and other load on the machine) hits the crate and its floor alike.
    if op == Op::TaskUpdate {
        refresh_versions(setup, ctx)?;
    }
    let mut warm = Vec::new();
    run(b.profile.warmup, &mut warm, ctx, rng, conn)?;
    if let Some(script) = floor_script {
        let pin = pinning.as_deref_mut().map(|p| (p, &mut *setup));
        pgbench(
            b.server,
            b.db,
            script,
            b.profile.warmup,
            &defines(ctx, floor_k),
            pin,
        )?;
        floor_k += b.profile.warmup;
    }
    let (mut floor_total_ms, mut floor_count) = (0.0, 0usize);
    // Per round: the crate's mean and the floor's, µs.
    let mut per_round: Vec<(f64, Option<f64>)> = Vec::new();
    for round in 0..rounds {
        let chunk = n / rounds + usize::from(round < n % rounds);
        let (mut crate_us, mut floor_us) = (0.0, None);
        for side in [round % 2, 1 - round % 2] {
            if side == 0 {
                if op == Op::TaskUpdate {
                    refresh_versions(setup, ctx)?;
                }
                let before = samples.len();
                client_cpu += run(chunk, &mut samples, ctx, rng, conn)?;
                crate_us = samples[before..]
                    .iter()
                    .map(|d| d.as_secs_f64() * 1e6)
                    .sum::<f64>()
                    / chunk.max(1) as f64;
            } else if let Some(script) = floor_script {
                let pin = pinning.as_deref_mut().map(|p| (p, &mut *setup));
                let measured = pgbench(b.server, b.db, script, chunk, &defines(ctx, floor_k), pin)?;
                floor_k += chunk;
                floor_total_ms += measured.statement_ms * chunk as f64;
                floor_count += chunk;
                floor_us = Some(measured.statement_ms * 1000.0);
            }
        }
        per_round.push((crate_us, floor_us));
    }
    let (floor_us, floor_note) = if op.floor_of() != op {
        match done.iter().find(|r| r.op == op.floor_of()) {
            Some(r) => (
                r.floor_us,
                Some(format!("the floor of {}", op.floor_of().label())),
            ),
            None => (None, Some("no floor measured".to_owned())),
        }
    } else if floor_count > 0 {
        (Some(floor_total_ms / floor_count as f64 * 1000.0), None)
    } else {
        (None, captured.floor_script.clone().err())
    };
    let rounds: Vec<(f64, f64)> = per_round
        .iter()
        .filter_map(|(crate_us, round_floor)| round_floor.or(floor_us).map(|f| (*crate_us, f)))
        .collect();
    let s = stats(&mut samples);
    let result = OpResult {
        client_cpu_us: client_cpu.as_secs_f64() * 1e6 / n.max(1) as f64,
        rounds,
        op,
        size,
        iterations: n,
        mean_us: s.mean_us,
        p50_us: s.p50_us,
        p99_us: s.p99_us,
        ops_per_s: 1e6 / s.mean_us,
        floor_us,
        floor_note,
        floor_sql: captured.floor_sql.clone(),
        statements: captured
            .statements
            .iter()
            .map(|(sql, _)| sql.clone())
            .collect(),
        prepared: match done.iter().find(|r| r.op == Op::TaskGet) {
            Some(get) if op == Op::CheckoutGet => get.prepared,
            _ => captured.prepared,
        },
    };
    eprintln!(
        "   {:<34} mean {:>7.1} µs  p50 {:>7.1}  p99 {:>7.1}  floor {:>7}  ratio {:>5}  ({} stmt{})",
        op.label(),
        result.mean_us,
        result.p50_us,
        result.p99_us,
        result.floor_us.map_or("-".to_owned(), |f| format!("{f:.1}")),
        result.ratio().map_or("-".to_owned(), |r| format!("{r:.2}")),
        result.statements.len(),
        if result.statements.len() == 1 { "" } else { "s" }
    );
    Ok(result)
}

// ---------------------------------------------------------------------------------------
// Concurrency and bulk
// ---------------------------------------------------------------------------------------

/// The 70 % read / 30 % write mix through the pool (a checkout per operation) at
/// `threads` threads for `conc_duration` after a warm-up: operations done, and the time
/// they took.
fn concurrency(
    pool: &PgPool,
    ctx: &Ctx,
    threads: usize,
    profile: &Profile,
) -> BoxResult<(u64, Duration, CpuUse)> {
    let started = Instant::now();
    let count_from = started + profile.conc_warmup;
    let stop_at = count_from + profile.conc_duration;
    let mut cpu = CpuUse::default();
    let outcomes: Vec<Result<(u64, Duration), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> Result<(u64, Duration), String> {
                    let mut rng = Pcg64::seed_from_u64(1000 + t as u64);
                    let (mut ops, mut busy) = (0u64, Duration::ZERO);
                    loop {
                        let begin = Instant::now();
                        if begin >= stop_at {
                            break;
                        }
                        mixed_op(pool, ctx, &mut rng).map_err(|e| e.to_string())?;
                        let end = Instant::now();
                        if begin >= count_from && end <= stop_at {
                            ops += 1;
                            busy += end - begin;
                        }
                    }
                    Ok((ops, busy))
                })
            })
            .collect();
        // The machine's and this process's CPU time over the measured window.
        std::thread::sleep(count_from.saturating_duration_since(Instant::now()));
        let before = CpuUse::now();
        std::thread::sleep(stop_at.saturating_duration_since(Instant::now()));
        cpu = CpuUse::now().minus(&before);
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("thread panicked".to_owned()))
            })
            .collect()
    });
    let (mut ops, mut busy) = (0u64, Duration::ZERO);
    for outcome in outcomes {
        let (o, b) = outcome?;
        ops += o;
        busy += b;
    }
    Ok((ops, busy, cpu))
}

/// CPU time, in seconds: the whole machine's (from /proc/stat, Linux) and this
/// process's.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    busy: f64,
    iowait: f64,
    steal: f64,
    total: f64,
    own: f64,
}

impl CpuUse {
    fn now() -> CpuUse {
        let ticks = 100.0; // USER_HZ
        let fields: Vec<f64> = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned))
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .filter_map(|f| f.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let at = |i: usize| fields.get(i).copied().unwrap_or(0.0) / ticks;
        // user nice system idle iowait irq softirq steal
        let own = {
            // SAFETY: getrusage fills one rusage struct on this stack frame.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
                let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
                tv(usage.ru_utime) + tv(usage.ru_stime)
            } else {
                0.0
            }
        };
        CpuUse {
            busy: at(0) + at(1) + at(2) + at(5) + at(6),
            iowait: at(4),
            steal: at(7),
            total: (0..8).map(at).sum(),
            own,
        }
    }

    fn minus(&self, before: &CpuUse) -> CpuUse {
        CpuUse {
            busy: self.busy - before.busy,
            iowait: self.iowait - before.iowait,
            steal: self.steal - before.steal,
            total: self.total - before.total,
            own: self.own - before.own,
        }
    }

    fn add(&mut self, other: &CpuUse) {
        self.busy += other.busy;
        self.iowait += other.iowait;
        self.steal += other.steal;
        self.total += other.total;
        self.own += other.own;
    }
}

/// One operation of the mix: 70 % reads (get 30, list 20, stats 10, user get 10), 30 %
/// writes (set_completed 10, update 10, create 10).
fn mixed_op(pool: &PgPool, ctx: &Ctx, rng: &mut Pcg64) -> BoxResult<()> {
    let user = &ctx.users[rng.random_range(0..ctx.users.len())];
    let (task_user, task_id) = ctx.tasks[rng.random_range(0..ctx.tasks.len())];
    let dice = rng.random_range(0..100);
    let mut conn = pool.get()?;
    match dice {
        0..=29 => {
            TaskRepo::get(&mut conn, task_user, task_id)?;
        }
        30..=49 => {
            let query = TaskQuery::new().completed(false).limit(PAGE);
            TaskRepo::list(&mut conn, user.id, &query)?;
        }
        50..=59 => {
            TaskRepo::stats(&mut conn, user.id)?;
        }
        60..=69 => {
            UserRepo::get(&mut conn, user.id)?;
        }
        70..=79 => {
            TaskRepo::set_completed(&mut conn, task_user, task_id, rng.random_bool(0.5))?;
        }
        80..=89 => {
            let patch = TaskPatch {
                title: Some(TITLE_RENAMED.to_owned()),
                ..TaskPatch::default()
            };
            TaskRepo::update(&mut conn, task_user, task_id, &patch)?;
        }
        _ => {
            TaskRepo::create(&mut conn, user.id, &NewTask::new(TITLE_NEW))?;
        }
    }
    Ok(())
}

/// Deterministic, varied tasks for the bulk load.
fn bulk_tasks(rows: usize) -> Vec<NewTask> {
    const VERBS: [&str; 8] = [
        "Review", "Write", "Call", "Plan", "Fix", "Order", "Renew", "Send",
    ];
    const OBJECTS: [&str; 8] = [
        "the quarterly report",
        "the dentist",
        "the landlord",
        "the budget spreadsheet",
        "the bike",
        "new ink cartridges",
        "the passport",
        "the invoice to the client",
    ];
    const SENTENCES: [&str; 4] = [
        "Check the numbers twice before sending it.",
        "Ask about the new rates and write them down.",
        "Bring the paperwork from last year.",
        "Remember the reference number from the email.",
    ];
    let mut rng = Pcg64::seed_from_u64(99);
    let now = Utc::now();
    (0..rows)
        .map(|i| {
            let mut task = NewTask::new(format!(
                "{} {} #{i}",
                VERBS[rng.random_range(0..VERBS.len())],
                OBJECTS[rng.random_range(0..OBJECTS.len())]
            ))
            .priority(Priority::ALL[rng.random_range(0..3)])
            .completed(rng.random_bool(0.2));
            if rng.random_bool(0.6) {
                task = task.description(SENTENCES[rng.random_range(0..SENTENCES.len())]);
            }
            if rng.random_bool(0.5) {
                task = task.due_date(now + chrono::Duration::hours(rng.random_range(1..24 * 60)));
            }
            task
        })
        .collect()
}

/// create_many of `bulk_rows` tasks against psql's `\copy` of the same rows as CSV, each
/// into the table as the single-row benchmark left it (the other's rows deleted and
/// vacuumed away first).
fn bulk(
    server: &Server,
    db: &str,
    pool: &PgPool,
    setup: &mut PgConnection,
    profile: &Profile,
) -> BoxResult<BulkResult> {
    let tasks = bulk_tasks(profile.bulk_rows);
    let mut conn = pool.get()?;
    let owner = UserRepo::create(
        &mut conn,
        &NewUser::new("bulk-crate@bench.example.com", "Bulk Crate"),
    )?;
    let started = Instant::now();
    for chunk in tasks.chunks(profile.bulk_chunk) {
        TaskRepo::create_many(&mut conn, owner.id, chunk)?;
    }
    let crate_secs = started.elapsed().as_secs_f64();
    drop(conn);
    UserRepo::delete(setup, owner.id)?;
    setup.batch_execute("VACUUM tasks")?;
    let _ = setup.batch_execute("CHECKPOINT");

    let copy_owner = UserRepo::create(
        setup,
        &NewUser::new("bulk-copy@bench.example.com", "Bulk Copy"),
    )?;
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut csv = String::with_capacity(tasks.len() * 200);
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for task in &tasks {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{now},{now}",
            Uuid::now_v7(),
            copy_owner.id,
            quote(&task.title),
            task.description.as_deref().map(quote).unwrap_or_default(),
            task.completed,
            task.priority,
            task.due_date
                .map(|d| d.to_rfc3339_opts(SecondsFormat::Micros, true))
                .unwrap_or_default()
        );
    }
    let csv_path = target_dir().join("bench").join("bulk_tasks.csv");
    std::fs::write(&csv_path, &csv)?;
    let (mut cmd, target) = server.tool("psql", db);
    cmd.args([
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "\\timing on",
        "-c",
    ])
    .arg(
        "\\copy tasks (id, user_id, title, description, completed, priority, due_date, \
             created_at, updated_at) FROM pstdin WITH (FORMAT csv)",
    )
    .arg("-d")
    .arg(target)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not run psql: {e}"))?;
    {
        let mut stdin = child.stdin.take().ok_or("psql stdin")?;
        stdin.write_all(csv.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    let wall = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "psql \\copy failed: {}",
            tail(&String::from_utf8_lossy(&output.stderr), 8)
        )
        .into());
    }
    // psql's own timing of the \copy (without starting psql and connecting), else wall time.
    let copy_secs = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Time: "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .next_back()
        .map_or(wall, |ms| ms / 1000.0);
    UserRepo::delete(setup, copy_owner.id)?;
    setup.batch_execute("VACUUM tasks")?;
    Ok(BulkResult {
        size: "",
        rows: tasks.len(),
        crate_rows_per_s: tasks.len() as f64 / crate_secs,
        copy_rows_per_s: tasks.len() as f64 / copy_secs,
    })
}

// ---------------------------------------------------------------------------------------
// Machine and server facts
// ---------------------------------------------------------------------------------------

fn machine_facts() -> Vec<(String, String)> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_owned()))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or("unknown".to_owned(), |kb| {
            format!("{:.1} GiB", kb / 1024.0 / 1024.0)
        });
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| {
            l.strip_prefix("PRETTY_NAME=")
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_owned());
    vec![
        ("cpu".to_owned(), cpu),
        ("cores".to_owned(), cores.to_string()),
        ("memory".to_owned(), memory),
        (
            "os".to_owned(),
            format!("{os}, kernel {}", read("/proc/sys/kernel/osrelease").trim()),
        ),
    ]
}

/// The 1-minute load average (other work on the machine makes numbers noisy).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn server_facts(conn: &mut PgConnection, server: &Server) -> BoxResult<Vec<(String, String)>> {
    #[derive(QueryableByName)]
    struct Facts {
        #[diesel(sql_type = Text)]
        version: String,
        #[diesel(sql_type = Text)]
        fsync: String,
        #[diesel(sql_type = Text)]
        synchronous_commit: String,
        #[diesel(sql_type = Text)]
        shared_buffers: String,
        #[diesel(sql_type = Text)]
        path: String,
    }
    let facts: Facts = sql_query(
        "SELECT split_part(version(), ' on ', 1) AS version, current_setting('fsync') AS fsync, \
         current_setting('synchronous_commit') AS synchronous_commit, \
         current_setting('shared_buffers') AS shared_buffers, \
         CASE WHEN inet_server_addr() IS NULL THEN 'unix socket' \
         ELSE 'TCP ' || host(inet_server_addr()) || ':' || inet_server_port() END AS path",
    )
    .get_result(conn)?;
    Ok(vec![
        ("server".to_owned(), server.describe()),
        ("version".to_owned(), facts.version),
        ("connection".to_owned(), facts.path),
        ("fsync".to_owned(), facts.fsync),
        ("synchronous_commit".to_owned(), facts.synchronous_commit),
        ("shared_buffers".to_owned(), facts.shared_buffers),
    ])
}

// ---------------------------------------------------------------------------------------
// Targets, table, JSON, SVG
// ---------------------------------------------------------------------------------------

struct Target {
    what: String,
    value: f64,
    limit: f64,
    /// true: value <= limit passes; false: value >= limit passes.
    at_most: bool,
}

impl Target {
    fn pass(&self) -> bool {
        if self.at_most {
            self.value <= self.limit
        } else {
            self.value >= self.limit
        }
    }
}

fn targets(results: &Results) -> Vec<Target> {
    let mut out = Vec::new();
    for r in results.ops.iter().filter(|r| r.op != Op::RoundTrip) {
        if let Some(ratio) = r.ratio() {
            out.push(Target {
                what: format!("{} [{}] within 1.2x of its floor", r.op.label(), r.size),
                value: ratio,
                limit: 1.2,
                at_most: true,
            });
        }
    }
    for b in &results.bulk {
        out.push(Target {
            what: format!("create_many [{}] at least 0.8x of COPY's rows/s", b.size),
            value: b.crate_rows_per_s / b.copy_rows_per_s,
            limit: 0.8,
            at_most: false,
        });
    }
    for op in Op::ALL.into_iter().filter(|op| op.growth_target()) {
        let at = |size: &str| results.ops.iter().find(|r| r.op == op && r.size == size);
        if let (Some(s), Some(l)) = (at("S"), at("L")) {
            out.push(Target {
                what: format!("{} grows at most 1.3x from S to L", op.label()),
                value: l.mean_us / s.mean_us,
                limit: 1.3,
                at_most: true,
            });
        }
    }
    for size in results.sizes.iter().map(|s| s.label) {
        let at = |t: usize| {
            results
                .concurrency
                .iter()
                .find(|c| c.size == size && c.threads == t)
                .map(|c| c.ops_per_s)
        };
        if let (Some(one), Some(two)) = (at(1), at(2)) {
            out.push(Target {
                what: format!("pool throughput [{size}] at 2 threads at least 1.6x of 1 thread"),
                value: two / one,
                limit: 1.6,
                at_most: false,
            });
        }
    }
    out
}

fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_report(
    results: &Results,
    profile: &Profile,
    machine: &[(String, String)],
    targets: &[Target],
) {
    println!();
    println!(
        "todo-store benchmark ({})",
        if profile.quick { "quick" } else { "full" }
    );
    for (k, v) in machine.iter().chain(results.server.iter()) {
        println!("  {k:<22} {v}");
    }
    for (size, state) in &results.pinning {
        println!("  {:<22} {state}", format!("pinning [{size}]"));
    }
    for s in &results.sizes {
        println!(
            "  size {:<17} {} users x {} tasks = {} tasks (seeded at {:.0} rows/s)",
            s.label,
            group(u64::from(s.users)),
            s.tasks_per_user,
            group(u64::from(s.users) * u64::from(s.tasks_per_user)),
            s.seed_rows_per_s
        );
    }
    if !results.ops.is_empty() {
        println!();
        println!(
            "{:<34} {:>4} {:>9} {:>9} {:>9} {:>8} {:>9} {:>6} {:>11} {:>7} {:>5}  prepared",
            "operation (one held connection)",
            "size",
            "mean µs",
            "p50 µs",
            "p99 µs",
            "ops/s",
            "floor µs",
            "ratio",
            "per round",
            "cpu µs",
            "stmts",
        );
        println!("{}", "-".repeat(132));
        for op in Op::ALL {
            for r in results.ops.iter().filter(|r| r.op == op) {
                println!(
                    "{:<34} {:>4} {:>9.1} {:>9.1} {:>9.1} {:>8.0} {:>9} {:>6} {:>11} {:>7.1} {:>5}  {}",
                    op.label(),
                    r.size,
                    r.mean_us,
                    r.p50_us,
                    r.p99_us,
                    r.ops_per_s,
                    r.floor_us.map_or("-".to_owned(), |f| format!("{f:.1}")),
                    r.ratio().map_or("-".to_owned(), |x| format!("{x:.2}")),
                    r.ratio_range(),
                    r.client_cpu_us,
                    r.statements.len(),
                    if r.prepared { "yes" } else { "NO" }
                );
            }
        }
        println!(
            "(floor: pgbench -M prepared -c 1 running the crate's own SQL, mean of the mirrored \
             statement; {} iterations per op after {} warm-up, in {} rounds alternating with \
             the floor; per round: the lowest and highest ratio of a round; cpu: this program's \
             CPU time per call; stmts: statements per call; prepared: whether diesel caches \
             the statement)",
            profile.iterations, profile.warmup, profile.rounds
        );
    }
    if !results.bulk.is_empty() {
        println!();
        println!(
            "{:<34} {:>4} {:>10} {:>14} {:>14} {:>6}",
            "bulk load", "size", "rows", "create_many/s", "\\copy rows/s", "ratio"
        );
        for b in &results.bulk {
            println!(
                "{:<34} {:>4} {:>10} {:>14.0} {:>14.0} {:>6.2}",
                "TaskRepo::create_many vs \\copy",
                b.size,
                group(b.rows as u64),
                b.crate_rows_per_s,
                b.copy_rows_per_s,
                b.crate_rows_per_s / b.copy_rows_per_s
            );
        }
    }
    if !results.concurrency.is_empty() {
        println!();
        println!(
            "{:<34} {:>4} {:>8} {:>10} {:>10} {:>8}",
            "mixed 70/30 through the pool", "size", "threads", "ops/s", "µs/op", "x 1 thr"
        );
        for c in &results.concurrency {
            let one = results
                .concurrency
                .iter()
                .find(|o| o.size == c.size && o.threads == 1)
                .map_or(c.ops_per_s, |o| o.ops_per_s);
            println!(
                "{:<34} {:>4} {:>8} {:>10.0} {:>10.0} {:>8.2} {:>11.2} {:>11.2} {:>7.2}",
                "",
                c.size,
                c.threads,
                c.ops_per_s,
                c.mean_us,
                c.ops_per_s / one,
                c.busy_cores,
                c.own_cores,
                c.steal_cores
            );
        }
    }
    println!();
    println!("targets (reported, not asserted):");
    for t in targets {
        println!(
            "  {}  {:<66} {:>6.2} ({} {})",
            if t.pass() { "PASS" } else { "MISS" },
            t.what,
            t.value,
            if t.at_most { "<=" } else { ">=" },
            t.limit
        );
    }
    let at = |op: Op, size: &str| {
        results
            .ops
            .iter()
            .find(|r| r.op == op && r.size == size)
            .map(|r| r.mean_us)
    };
    if let (Some(s), Some(l)) = (at(Op::RoundTrip, "S"), at(Op::RoundTrip, "L")) {
        println!(
            "  (the bare round trip, SELECT $1, changed {:.2}x from S to L: the machine's \
             drift, not the data's)",
            l / s
        );
    }
    let misses = targets.iter().filter(|t| !t.pass()).count();
    println!(
        "  {} of {} targets met",
        targets.len() - misses,
        targets.len()
    );
}

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

fn write_json(
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

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart: per operation, the crate's mean latency at each size next to
/// its floor.
fn write_svg(
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

// ---------------------------------------------------------------------------------------

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
    let mut machine = machine_facts();
    let load = load_average();
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
        .try_for_each(|size| run_size(&server, size, &profile, args, &mut results));
    server.finish();
    outcome?;
    let elapsed = started.elapsed();
    machine.push(("load average at end".to_owned(), load_average()));
    let targets = targets(&results);
    print_report(&results, &profile, &machine, &targets);
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    write_json(
        &dir.join("results.json"),
        &results,
        &profile,
        &machine,
        &targets,
        elapsed,
    )?;
    write_svg(&dir.join("results.svg"), &results, &machine, &profile)?;
    println!();
    println!(
        "wrote {} and {} ({:.0} s in all)",
        dir.join("results.json").display(),
        dir.join("results.svg").display(),
        elapsed.as_secs_f64()
    );
    Ok(())
}
