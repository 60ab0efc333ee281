//! The operator's migration command: where a database stands, apply, revert.
//!
//! ```sh
//! cargo run --example migrate -- status          # each migration: applied (when) or pending
//! cargo run --example migrate -- up              # apply every pending migration
//! cargo run --example migrate -- down            # revert the newest applied migration
//! cargo run --example migrate -- down 3          # revert the newest three
//! cargo run --example migrate -- down --to 2026-12-02-000003   # revert what is newer
//! cargo run --example migrate -- down 3 --yes    # even when it drops data
//! ```
//!
//! Against DATABASE_URL (the environment or `.env`), or `--database-url`. Every command
//! runs under the crate's migration lock, in one transaction: two operators at once
//! take turns, and a failure changes nothing. Migrations run with no statement timeout.
//!
//! `down` first tries the reverts in a transaction it rolls back and compares the
//! schema before and after (`todo_store::migrate::revert_unless_it_drops_data`, under
//! the same lock as the revert): when a table it drops holds rows, or a column it drops
//! holds values other than null and its default, it reverts nothing, says which, and
//! exits with status 2, unless `--yes`.
//!
//! Exit status: 0 done, 1 failed (nothing changed), 2 `down` refused.

use std::error::Error;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use todo_store::migrate::{self, Revert, RevertOutcome};
use todo_store::{DbConfig, PoolOptions};

/// Show, apply or revert the todo-store migrations of a database.
#[derive(Debug, Parser)]
#[command(name = "migrate")]
struct Args {
    /// The database (default: DATABASE_URL, from the environment or .env).
    #[arg(long, value_name = "URL", global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List each migration: applied (and when) or pending.
    Status,
    /// Apply every pending migration.
    Up,
    /// Revert the newest applied migrations: one, N, or those newer than --to.
    Down {
        /// How many of the newest applied migrations to revert.
        #[arg(value_name = "N")]
        count: Option<usize>,
        /// Revert every migration newer than this version, which stays applied.
        #[arg(long, value_name = "VERSION", conflicts_with = "count")]
        to: Option<String>,
        /// Revert even when that drops tables or columns holding data (it is lost).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            let mut message = format!("migrate: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, Box<dyn Error>> {
    let config = match &args.database_url {
        Some(url) => DbConfig::new(url),
        None => DbConfig::from_env()?,
    }
    .pool_size(1)
    .min_idle(Some(1))
    // A migration may rewrite a large table, and waiting for another operator's
    // lock is the point: no statement timeout.
    .statement_timeout(None);
    println!("database {}", config.redacted_url());
    let pool = PoolOptions::new(&config).run_migrations(false).connect()?;
    let mut conn = pool.get()?;
    match &args.command {
        Command::Status => status(&mut conn),
        Command::Up => up(&mut conn),
        Command::Down { count, to, yes } => {
            let target = match to {
                Some(version) => Revert::DownTo(version.clone()),
                None => Revert::Newest(count.unwrap_or(1)),
            };
            down(&mut conn, &target, *yes)
        }
    }
}

fn status(conn: &mut todo_store::PgConnection) -> Result<ExitCode, Box<dyn Error>> {
    let lines = migrate::status(conn)?;
    for line in &lines {
        let at = line
            .applied_at
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let state = if line.is_applied() {
            "applied"
        } else {
            "pending"
        };
        let unknown = if line.known {
            ""
        } else {
            "  (not in this program: a newer release applied it)"
        };
        println!("{state}  {at:19}  {}{unknown}", line.migration);
    }
    let applied = lines.iter().filter(|l| l.is_applied()).count();
    println!("{applied} applied, {} pending", lines.len() - applied);
    Ok(ExitCode::SUCCESS)
}

fn up(conn: &mut todo_store::PgConnection) -> Result<ExitCode, Box<dyn Error>> {
    let applied = todo_store::run_migrations(conn)?;
    if applied.is_empty() {
        println!("nothing to apply: every migration is applied");
    }
    let names = migrate::embedded();
    for version in &applied {
        let name = names
            .iter()
            .find(|m| m.version == *version)
            .map_or(version.as_str(), |m| m.name.as_str());
        println!("applied {name}");
    }
    Ok(ExitCode::SUCCESS)
}

fn down(
    conn: &mut todo_store::PgConnection,
    target: &Revert,
    yes: bool,
) -> Result<ExitCode, Box<dyn Error>> {
    let reverted = match (target, yes) {
        (Revert::DownTo(version), true) => migrate::revert_to(conn, version)?,
        (Revert::Newest(count), true) => migrate::revert(conn, *count)?,
        (_, false) => match migrate::revert_unless_it_drops_data(conn, target)? {
            RevertOutcome::Reverted(reverted) => reverted,
            RevertOutcome::Refused(dropped) => {
                eprintln!("refusing to revert: it would drop data");
                for d in &dropped {
                    eprintln!("  {d}");
                }
                eprintln!("nothing was reverted; back up that data, then run again with --yes");
                return Ok(ExitCode::from(2));
            }
            other => return Err(format!("unexpected outcome: {other:?}").into()),
        },
        (other, true) => return Err(format!("no such revert: {other:?}").into()),
    };
    if reverted.is_empty() {
        println!("nothing to revert: that is the newest applied migration");
    }
    for migration in &reverted {
        println!("reverted {migration}");
    }
    Ok(ExitCode::SUCCESS)
}
