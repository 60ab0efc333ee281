//! Fills a database with realistic demo users and tasks.
//!
//! ```sh
//! cargo run --example seed                          # local PostgreSQL under target/, 100 x 50
//! cargo run --release --example seed -- --users 1000 --tasks-per-user 1000
//! cargo run --example seed -- --database-url postgres://user:pw@host/db --reset
//! ```
//!
//! With DATABASE_URL (environment or .env) or `--database-url`, it seeds that database.
//! With neither, it starts a PostgreSQL cluster of its own from the system's binaries,
//! keeping its data under target/todo-store-pg between runs.

use std::error::Error;
use std::io::{BufRead, IsTerminal, Write};
use std::ops::ControlFlow;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dev_database::DevServer;
use diesel::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use todo_store::local_postgres::LocalPostgres;
use todo_store::seed::{self, SeedOptions, SeedProgress, SeedReport};
use todo_store::{
    connect, DbConfig, HabitRepo, Schedule, SessionRepo, TaskQuery, TaskRepo, UserRepo,
};

#[path = "support/dev_database.rs"]
mod dev_database;

/// Fill a todo-store database with realistic, deterministic demo data.
#[derive(Debug, Parser)]
#[command(name = "seed")]
struct Args {
    /// Number of users.
    #[arg(long, default_value_t = 100)]
    users: u32,
    /// Tasks per user.
    #[arg(long, default_value_t = 50)]
    tasks_per_user: u32,
    /// Login sessions per user (some expired, some revoked).
    #[arg(long, default_value_t = 3)]
    sessions_per_user: u32,
    /// Habits per user, with about a year of check-ins.
    #[arg(long, default_value_t = 2)]
    habits_per_user: u32,
    /// Same seed, same data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Delete every user and task first (asks for confirmation on a terminal).
    #[arg(long)]
    reset: bool,
    /// Don't ask before --reset.
    #[arg(long, short = 'y')]
    yes: bool,
    /// The database to seed (default: DATABASE_URL, else a local PostgreSQL under target/).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Leave the local PostgreSQL running when done.
    #[arg(long)]
    keep_running: bool,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// Connections writing batches side by side: the server's work per row (indexes, the
/// search vector) then uses every core of a small machine.
const WORKERS: usize = 2;

/// The local database's name in the cluster the seed program starts.
const LOCAL_DATABASE: &str = "todo_dev";

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let server = DevServer::open(args.database_url.as_deref(), |root| {
        say(
            args,
            &format!(
                "No DATABASE_URL set: using a local PostgreSQL in {}",
                root.display()
            ),
        );
    })?;
    let url = server.database_url(LOCAL_DATABASE)?;
    if let Some(pg) = server.local() {
        say(
            args,
            &format!("  psql:  {}", pg.psql_command(LOCAL_DATABASE)),
        );
        say(args, &format!("  URL:   {url}"));
    }
    let config = DbConfig::new(&url)
        .pool_size(WORKERS as u32 + 1)
        .min_idle(Some(1));
    if server.local().is_none() {
        say(args, &format!("Seeding {}", config.redacted_url()));
    }
    let pool = connect(&config)?;
    let mut conn = pool.get()?;

    if args.reset && confirm_reset(args, &config)? {
        let (users, tasks) = seed::reset(&mut conn)?;
        say(args, &format!("Deleted {users} users and {tasks} tasks."));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nStopping after the current batch (Ctrl-C again to quit now)...");
    })?;

    let options = SeedOptions {
        users: args.users,
        tasks_per_user: args.tasks_per_user,
        seed: args.seed,
        ..SeedOptions::default()
    };
    let mut progress = Progress::new(args);
    let extras = seed::SeedExtras {
        sessions_per_user: args.sessions_per_user,
        habits_per_user: args.habits_per_user,
    };
    let report = seed::seed_all_with_pool(&pool, &options, &extras, WORKERS, |p| {
        progress.update(p);
        if stop.load(Ordering::SeqCst) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    progress.finish();

    if !args.quiet {
        summarize(&report);
        if let Some(user_id) = report.first_user {
            show_sample(&mut conn, user_id)?;
        }
    }
    drop(conn);
    drop(pool);
    if let Some(pg) = server.into_local() {
        finish_local(args, pg);
    }
    if report.interrupted {
        return Err("interrupted: the batches written so far are complete and committed".into());
    }
    Ok(())
}

fn finish_local(args: &Args, pg: LocalPostgres) {
    if args.keep_running {
        say(
            args,
            "PostgreSQL keeps running (--keep-running). Reach it with:",
        );
        say(args, &format!("  {}", pg.psql_command(LOCAL_DATABASE)));
        say(
            args,
            &format!("  DATABASE_URL='{}'", pg.url(LOCAL_DATABASE)),
        );
        pg.keep_running();
    } else if pg.was_already_running() {
        say(args, "PostgreSQL was already running before; left running.");
    } else {
        say(
            args,
            "Stopping the local PostgreSQL (--keep-running leaves it up).",
        );
        drop(pg);
    }
}

fn confirm_reset(args: &Args, config: &DbConfig) -> Result<bool, Box<dyn Error>> {
    if args.yes || !std::io::stdin().is_terminal() {
        return Ok(true);
    }
    print!(
        "--reset deletes every user and task in {}. Type 'yes' to continue: ",
        config.redacted_url()
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() == "yes" {
        Ok(true)
    } else {
        Err("not confirmed: nothing deleted, nothing seeded".into())
    }
}

fn say(args: &Args, line: &str) {
    if !args.quiet {
        println!("{line}");
    }
}

/// A progress bar on a terminal, a line per batch otherwise, nothing with --quiet.
enum Progress {
    Quiet,
    /// The bar counts rows: (1 + tasks per user) per user handled.
    Bar(ProgressBar, u64),
    Lines(std::time::Instant),
}

impl Progress {
    fn new(args: &Args) -> Self {
        let rows_per_user = u64::from(args.tasks_per_user) + 1;
        if args.quiet {
            return Progress::Quiet;
        }
        if !std::io::stderr().is_terminal() {
            return Progress::Lines(std::time::Instant::now());
        }
        let bar = ProgressBar::new(u64::from(args.users) * rows_per_user);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows · {per_sec} · ETA {eta}",
            )
            .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress::Bar(bar, rows_per_user)
    }

    fn update(&mut self, p: &SeedProgress) {
        match self {
            Progress::Quiet => {}
            Progress::Bar(bar, rows_per_user) => bar.set_position(p.users_done * *rows_per_user),
            Progress::Lines(started) => {
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                eprintln!(
                    "seed: {}/{} users ({} skipped), {} tasks, {:.0} rows/s",
                    p.users_done,
                    p.users_total,
                    p.users_skipped,
                    p.tasks_created,
                    (p.users_created + p.tasks_created) as f64 / secs
                );
            }
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar, _) = self {
            bar.finish_and_clear();
        }
    }
}

fn summarize(report: &SeedReport) {
    println!(
        "Seeded {} users and {} tasks in {:.1} s: {:.0} rows/s.",
        report.users_created,
        report.tasks_created,
        report.elapsed.as_secs_f64(),
        report.rows_per_second()
    );
    if report.sessions_created + report.habits_created > 0 {
        println!(
            "With them: {} login sessions and {} habits with {} check-ins.",
            report.sessions_created, report.habits_created, report.check_ins_created
        );
    }
    if report.users_skipped > 0 {
        println!(
            "Skipped {} users that already existed (same seed, same emails): no duplicates. \
             Use --reset to start over or --seed for other people.",
            report.users_skipped
        );
    }
}

fn show_sample(conn: &mut PgConnection, user_id: todo_store::UserId) -> Result<(), Box<dyn Error>> {
    let user = UserRepo::get(conn, user_id)?;
    let page = TaskRepo::list(conn, user.id, &TaskQuery::new().completed(false).limit(5))?;
    let stats = TaskRepo::stats(conn, user.id)?;
    println!("\nA sample: {} <{}>", user.name, user.email);
    println!(
        "  {} tasks: {} open, {} done, {} overdue, {} due today",
        stats.total, stats.open, stats.completed, stats.overdue, stats.due_today
    );
    println!("  Newest open tasks:");
    for task in &page.items {
        let due = task
            .due_date
            .map(|d| format!(", due {}", d.format("%Y-%m-%d")))
            .unwrap_or_default();
        println!("    [{:>6}] {}{due}", task.priority.to_string(), task.title);
    }
    let sessions = SessionRepo::list(conn, user.id)?;
    println!("  {} active login sessions", sessions.len());
    let today = chrono::Utc::now().date_naive();
    for habit in HabitRepo::list(conn, user.id)? {
        let streak = HabitRepo::streak(conn, user.id, habit.id, today)?;
        println!(
            "  Habit {:?} ({}): streak {} now, {} at best",
            habit.name,
            describe(&habit.schedule),
            streak.current,
            streak.longest
        );
    }
    Ok(())
}

/// A schedule in words.
fn describe(schedule: &Schedule) -> String {
    match schedule {
        Schedule::Daily => "daily".into(),
        Schedule::Weekly { days } => {
            let days: Vec<String> = days.iter().map(|d| d.to_string()).collect();
            format!("on {}", days.join(", "))
        }
        Schedule::EveryNDays { n, .. } => format!("every {n} days"),
    }
}
