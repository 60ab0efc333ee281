//! Bulk: `TaskRepo::create_many` of many tasks against psql's `\copy` of the same rows
//! from CSV, each into the table as the single-row benchmark left it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::Stdio;
use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use diesel::connection::SimpleConnection;
use diesel::PgConnection;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use uuid::Uuid;

use crate::dev_database::target_dir;
use todo_store::{NewTask, NewUser, PgPool, Priority, TaskRepo, UserRepo};

use crate::pgbench::tail;
use crate::profile::Profile;
use crate::report::{group, BulkResult};
use crate::server::Server;
use crate::BoxResult;

/// create_many of `bulk_rows` tasks against psql's `\copy` of the same rows as CSV, each
/// into the table as the single-row benchmark left it (the other's rows deleted and
/// vacuumed away first); prints a line.
pub fn run(
    server: &Server,
    db: &str,
    pool: &PgPool,
    setup: &mut PgConnection,
    profile: &Profile,
    size: &'static str,
) -> BoxResult<BulkResult> {
    let tasks = bulk_tasks(profile.bulk_rows);
    let crate_secs = create_many(pool, setup, &tasks, profile.bulk_chunk)?;
    let copy_secs = copy(server, db, setup, &tasks)?;
    let result = BulkResult {
        size,
        rows: tasks.len(),
        crate_rows_per_s: tasks.len() as f64 / crate_secs,
        copy_rows_per_s: tasks.len() as f64 / copy_secs,
    };
    eprintln!(
        "   bulk {} rows: create_many {:.0} rows/s, \\copy {:.0} rows/s",
        group(result.rows as u64),
        result.crate_rows_per_s,
        result.copy_rows_per_s
    );
    Ok(result)
}

/// The crate's side: create_many in chunks for a user of its own, seconds; then the
/// rows are deleted and vacuumed away.
fn create_many(
    pool: &PgPool,
    setup: &mut PgConnection,
    tasks: &[NewTask],
    chunk: usize,
) -> BoxResult<f64> {
    let mut conn = pool.get()?;
    let owner = UserRepo::create(
        &mut conn,
        &NewUser::new("bulk-crate@bench.example.com", "Bulk Crate"),
    )?;
    let started = Instant::now();
    for chunk in tasks.chunks(chunk) {
        TaskRepo::create_many(&mut conn, owner.id, chunk)?;
    }
    let secs = started.elapsed().as_secs_f64();
    drop(conn);
    UserRepo::delete(setup, owner.id)?;
    setup.batch_execute("VACUUM tasks")?;
    let _ = setup.batch_execute("CHECKPOINT");
    Ok(secs)
}

/// The floor: psql's `\copy` of the same rows as CSV for a user of its own, seconds
/// (psql's own timing, else the wall time); then the rows are deleted and vacuumed away.
fn copy(server: &Server, db: &str, setup: &mut PgConnection, tasks: &[NewTask]) -> BoxResult<f64> {
    let owner = UserRepo::create(
        setup,
        &NewUser::new("bulk-copy@bench.example.com", "Bulk Copy"),
    )?;
    let csv = csv(owner.id, tasks);
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
    let secs = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Time: "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .next_back()
        .map_or(wall, |ms| ms / 1000.0);
    UserRepo::delete(setup, owner.id)?;
    setup.batch_execute("VACUUM tasks")?;
    Ok(secs)
}

/// `tasks` of `owner` as the CSV that `\copy` reads, with fresh UUIDv7 ids.
fn csv(owner: todo_store::UserId, tasks: &[NewTask]) -> String {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut csv = String::with_capacity(tasks.len() * 200);
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for task in tasks {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{now},{now}",
            Uuid::now_v7(),
            owner,
            quote(&task.title),
            task.description.as_deref().map(quote).unwrap_or_default(),
            task.completed,
            task.priority,
            task.due_date
                .map(|d| d.to_rfc3339_opts(SecondsFormat::Micros, true))
                .unwrap_or_default()
        );
    }
    csv
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
