//! Deterministic, realistic demo data in bulk (feature `seed`): the logic behind
//! `cargo run --example seed`.
//!
//! User `i` of seed `s` is always the same person with the same tasks, whatever the
//! batch size: every user draws from a random generator seeded by `(s, i)`. Timestamps
//! are relative to [`SeedOptions::anchor`] (default: the start of the current UTC day),
//! so the same seed gives the same data on the same day, and tests pin the anchor.
//! About 40% of tasks carry metadata as an application would write it (a `source`,
//! often `labels`, sometimes `estimate_minutes` and `links`), drawn from a generator
//! seeded by the task's id.
//!
//! Rows go in through the crate's bulk path (one `COPY` per table and batch), one
//! transaction per batch: an interrupted run leaves whole batches only. Users whose
//! email already exists are skipped with their tasks, so running twice creates no
//! duplicates.
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use todo_store::seed::{seed, SeedOptions};
//!
//! # fn main() -> todo_store::Result<()> {
//! # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
//! let mut conn = pool.get()?;
//! let options = SeedOptions { users: 10, tasks_per_user: 20, ..SeedOptions::default() };
//! let report = seed(&mut conn, &options, |progress| {
//!     println!("{} of {} users", progress.users_done, progress.users_total);
//!     ControlFlow::Continue(())
//! })?;
//! println!("{} tasks at {:.0} rows/s", report.tasks_created, report.rows_per_second());
//! # Ok(())
//! # }
//! ```

mod extras;
mod metadata;
mod words;

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as TimeDelta, DurationRound, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use uuid::Uuid;

use crate::error::Result;
use crate::models::{NewTask, NewUser, Priority, TaskId, UserId};
use crate::pool::PgPool;
use crate::repo::bulk::{self, TaskCopyRow, UserCopyRow};
use crate::repo::user;
use crate::schema::{tasks, users};
use crate::UserRepo;

/// Rows (users plus tasks) per batch and transaction, by default.
pub const DEFAULT_ROWS_PER_BATCH: u32 = 50_000;

/// What to seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedOptions {
    /// Number of users (default 100).
    pub users: u32,
    /// Tasks per user (default 50).
    pub tasks_per_user: u32,
    /// Same seed, same data (default 42).
    pub seed: u64,
    /// Users per batch (one transaction each); 0 picks about
    /// [`DEFAULT_ROWS_PER_BATCH`] rows per batch.
    pub users_per_batch: u32,
    /// The moment timestamps are relative to: tasks were created in the 180 days
    /// before it, due dates fall around it.
    pub anchor: DateTime<Utc>,
}

/// What [`seed_all`] writes besides users and tasks (none by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeedExtras {
    /// Login sessions per user: thirty-day sessions started over the 60 days before the
    /// anchor, so about half have expired, and one in five revoked.
    pub sessions_per_user: u32,
    /// Habits per user, each with a daily, weekly or every-few-days schedule, started
    /// 10 to 14 months before the anchor, with check-ins on most scheduled days up to
    /// the day before it and now and then a slump of a few days.
    pub habits_per_user: u32,
}

impl Default for SeedOptions {
    fn default() -> Self {
        SeedOptions {
            users: 100,
            tasks_per_user: 50,
            seed: 42,
            users_per_batch: 0,
            anchor: start_of_today(),
        }
    }
}

impl SeedOptions {
    fn batch_size(&self) -> u32 {
        match self.users_per_batch {
            0 => (DEFAULT_ROWS_PER_BATCH / (self.tasks_per_user + 1)).clamp(1, 10_000),
            n => n,
        }
    }
}

/// Where a running [`seed`] is, after each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SeedProgress {
    /// Users handled so far (created or skipped).
    pub users_done: u64,
    /// Users to handle in all.
    pub users_total: u64,
    /// Users created so far.
    pub users_created: u64,
    /// Users skipped so far because their email existed.
    pub users_skipped: u64,
    /// Tasks written so far.
    pub tasks_created: u64,
    /// Sessions, habits and check-ins written so far.
    pub extras_created: u64,
}

/// What [`seed`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SeedReport {
    /// Users written.
    pub users_created: u64,
    /// Users skipped because a user with their email existed (an earlier run).
    pub users_skipped: u64,
    /// Tasks written.
    pub tasks_created: u64,
    /// Sessions written.
    pub sessions_created: u64,
    /// Habits written.
    pub habits_created: u64,
    /// Habit check-ins written.
    pub check_ins_created: u64,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// True when the callback stopped the run early (after a whole batch).
    pub interrupted: bool,
    /// The id of the first user of the run (created or existing), for showing a sample.
    pub first_user: Option<UserId>,
}

impl SeedReport {
    /// Rows (users and tasks, and the sessions, habits and check-ins) written per
    /// second.
    pub fn rows_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs == 0.0 {
            return 0.0;
        }
        let extras = self.sessions_created + self.habits_created + self.check_ins_created;
        (self.users_created + self.tasks_created + extras) as f64 / secs
    }
}

/// Writes the users and tasks of `options` in batches, calling `on_batch` after each;
/// returning [`ControlFlow::Break`] from it stops the run after that batch.
///
/// # Errors
/// Database errors; the batch in flight is rolled back, earlier batches stay.
pub fn seed(
    conn: &mut PgConnection,
    options: &SeedOptions,
    on_batch: impl FnMut(&SeedProgress) -> ControlFlow<()>,
) -> Result<SeedReport> {
    seed_all(conn, options, &SeedExtras::default(), on_batch)
}

/// [`seed`], with each new user's sessions, habits and check-ins of `extras` written in
/// the same batch.
///
/// # Errors
/// As [`seed`].
pub fn seed_all(
    conn: &mut PgConnection,
    options: &SeedOptions,
    extras: &SeedExtras,
    mut on_batch: impl FnMut(&SeedProgress) -> ControlFlow<()>,
) -> Result<SeedReport> {
    let started = Instant::now();
    let mut progress = SeedProgress {
        users_total: u64::from(options.users),
        ..SeedProgress::default()
    };
    let mut report = SeedReport::default();
    let batch = options.batch_size();
    let mut start = 0;
    while start < options.users {
        let end = options.users.min(start.saturating_add(batch));
        let people: Vec<SeedUser> = (start..end)
            .map(|i| SeedUser::generate(options, i))
            .collect();
        let done = conn.transaction(|conn| write_batch(conn, options, extras, &people))?;
        if done.starts_at_zero {
            report.first_user = done.first_user;
        }
        progress.add(&done);
        report.add_extras(&done);
        start = end;
        if on_batch(&progress).is_break() && start < options.users {
            report.interrupted = true;
            break;
        }
    }
    report.finish(&progress, started);
    Ok(report)
}

/// [`seed`] with `workers` connections of `pool` writing batches side by side (the
/// server's work per row — indexes, the search vector — then runs on several cores).
/// `on_batch` runs on the calling thread after each batch; returning
/// [`ControlFlow::Break`] lets the batches in flight finish and starts no more.
///
/// # Errors
/// The first error of any worker (its batch rolled back); batches committed before
/// it stay.
pub fn seed_with_pool(
    pool: &PgPool,
    options: &SeedOptions,
    workers: usize,
    on_batch: impl FnMut(&SeedProgress) -> ControlFlow<()>,
) -> Result<SeedReport> {
    seed_all_with_pool(pool, options, &SeedExtras::default(), workers, on_batch)
}

/// [`seed_with_pool`], with the sessions, habits and check-ins of `extras` (see
/// [`seed_all`]).
///
/// # Errors
/// As [`seed_with_pool`].
pub fn seed_all_with_pool(
    pool: &PgPool,
    options: &SeedOptions,
    extras: &SeedExtras,
    workers: usize,
    mut on_batch: impl FnMut(&SeedProgress) -> ControlFlow<()>,
) -> Result<SeedReport> {
    let started = Instant::now();
    let batch = options.batch_size();
    let next_start = AtomicU32::new(0);
    let stop = AtomicBool::new(false);
    let (done_tx, done_rx) = mpsc::channel::<Result<BatchDone>>();
    let mut progress = SeedProgress {
        users_total: u64::from(options.users),
        ..SeedProgress::default()
    };
    let mut report = SeedReport::default();
    let mut first_error = None;
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            let done_tx = done_tx.clone();
            let (next_start, stop) = (&next_start, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let start = next_start.fetch_add(batch, Ordering::SeqCst);
                    if start >= options.users {
                        break;
                    }
                    let end = options.users.min(start.saturating_add(batch));
                    let result = crate::pool::checkout(pool).and_then(|mut conn| {
                        let people: Vec<SeedUser> = (start..end)
                            .map(|i| SeedUser::generate(options, i))
                            .collect();
                        conn.transaction(|conn| write_batch(conn, options, extras, &people))
                    });
                    let failed = result.is_err();
                    let _ = done_tx.send(result);
                    if failed {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        for result in done_rx {
            match result {
                Ok(done) => {
                    if done.starts_at_zero {
                        report.first_user = done.first_user;
                    }
                    progress.add(&done);
                    report.add_extras(&done);
                    if on_batch(&progress).is_break() && progress.users_done < progress.users_total
                    {
                        report.interrupted = true;
                        stop.store(true, Ordering::SeqCst);
                    }
                }
                Err(e) => {
                    stop.store(true, Ordering::SeqCst);
                    first_error.get_or_insert(e);
                }
            }
        }
    });
    if let Some(e) = first_error {
        return Err(e);
    }
    report.finish(&progress, started);
    Ok(report)
}

/// Deletes every user and everything that belongs to users (tasks, sessions, habits
/// and their check-ins, Better Auth's sessions and accounts); returns how many users
/// and tasks there were.
///
/// # Errors
/// Database errors.
pub fn reset(conn: &mut PgConnection) -> Result<(i64, i64)> {
    let users: i64 = users::table.count().get_result(conn)?;
    let tasks: i64 = tasks::table.count().get_result(conn)?;
    // CASCADE: every table with a foreign key to users (or to those) goes too.
    conn.batch_execute("TRUNCATE users CASCADE")?;
    Ok((users, tasks))
}

/// What one batch wrote.
struct BatchDone {
    users: u64,
    users_created: u64,
    tasks_created: u64,
    sessions_created: u64,
    habits_created: u64,
    check_ins_created: u64,
    starts_at_zero: bool,
    first_user: Option<UserId>,
}

impl SeedProgress {
    fn add(&mut self, done: &BatchDone) {
        self.users_done += done.users;
        self.users_created += done.users_created;
        self.users_skipped += done.users - done.users_created;
        self.tasks_created += done.tasks_created;
        self.extras_created += done.sessions_created + done.habits_created + done.check_ins_created;
    }
}

impl SeedReport {
    fn add_extras(&mut self, done: &BatchDone) {
        self.sessions_created += done.sessions_created;
        self.habits_created += done.habits_created;
        self.check_ins_created += done.check_ins_created;
    }

    fn finish(&mut self, progress: &SeedProgress, started: Instant) {
        self.users_created = progress.users_created;
        self.users_skipped = progress.users_skipped;
        self.tasks_created = progress.tasks_created;
        self.elapsed = started.elapsed();
    }
}

/// One batch, in the caller's transaction: skip users whose email exists, COPY the
/// others and their tasks.
fn write_batch(
    conn: &mut PgConnection,
    options: &SeedOptions,
    extras: &SeedExtras,
    people: &[SeedUser],
) -> Result<BatchDone> {
    // Taken as UserRepo::create would find them taken (the same address in another
    // spelling included), through the unique index.
    let emails: Vec<String> = people.iter().map(|p| p.user.email.clone()).collect();
    let existing: HashSet<String> = user::taken_emails(conn, &emails)?.into_iter().collect();
    let first = match people.first() {
        Some(p) if existing.contains(&p.user.email) => {
            UserRepo::find_by_email(conn, &p.user.email)?.map(|u| u.id)
        }
        Some(p) => Some(p.id),
        None => None,
    };
    let fresh: Vec<&SeedUser> = people
        .iter()
        .filter(|p| !existing.contains(&p.user.email))
        .collect();
    let user_rows = fresh
        .iter()
        .map(|p| {
            Ok(UserCopyRow::new(
                p.user.to_row(p.id)?,
                p.created_at,
                p.created_at,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    bulk::copy_users(conn, &user_rows)?;

    let mut task_rows = Vec::with_capacity(fresh.len() * options.tasks_per_user as usize);
    for person in &fresh {
        for task in &person.tasks {
            task_rows.push(TaskCopyRow::new(
                task.new.to_row(task.id, person.id)?,
                task.created_at,
                task.updated_at,
            ));
        }
    }
    bulk::copy_tasks(conn, &task_rows)?;
    let rows: Vec<extras::Extras> = fresh
        .iter()
        .map(|p| extras::Extras::generate(options, extras, p.index, p.id))
        .collect();
    let (sessions_created, habits_created, check_ins_created) = extras::write(conn, &rows)?;
    Ok(BatchDone {
        users: people.len() as u64,
        users_created: fresh.len() as u64,
        tasks_created: task_rows.len() as u64,
        sessions_created,
        habits_created,
        check_ins_created,
        starts_at_zero: people.first().is_some_and(|p| p.index == 0),
        first_user: first,
    })
}

/// A generated user with their tasks.
struct SeedUser {
    index: u32,
    id: UserId,
    user: NewUser,
    created_at: DateTime<Utc>,
    tasks: Vec<SeedTask>,
}

struct SeedTask {
    id: TaskId,
    new: NewTask,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl SeedUser {
    fn generate(options: &SeedOptions, index: u32) -> SeedUser {
        let mut rng = Pcg64::seed_from_u64(
            options.seed ^ u64::from(index).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let (first, last, initial) = distinct_name(options.seed, index);
        let domain = words::DOMAINS[rng.random_range(0..words::DOMAINS.len())];
        let email = format!(
            "{}.{}{}@{domain}",
            first.to_lowercase(),
            last.to_lowercase(),
            index + 1
        );
        let created_at =
            options.anchor - TimeDelta::minutes(rng.random_range(60 * 24 * 190..60 * 24 * 365));
        let user = NewUser {
            id: Uuid::nil().into(), // set below, from the same generator as before
            email,
            name: format!("{first} {initial}. {last}"),
            email_verified: rng.random_bool(0.8),
            image: rng
                .random_bool(0.3)
                .then(|| format!("https://avatars.example.com/{}.png", index + 1)),
        };
        let tasks = (0..options.tasks_per_user)
            .map(|_| SeedTask::generate(&mut rng, options.anchor))
            .collect();
        let id = v7_at(created_at, &mut rng);
        SeedUser {
            index,
            id,
            user: NewUser { id, ..user },
            created_at,
            tasks,
        }
    }
}

impl SeedTask {
    fn generate(rng: &mut Pcg64, anchor: DateTime<Utc>) -> SeedTask {
        let pick = |rng: &mut Pcg64, list: &[&'static str]| list[rng.random_range(0..list.len())];
        let mut title = format!("{} {}", pick(rng, words::VERBS), pick(rng, words::OBJECTS));
        if rng.random_bool(0.35) {
            title.push(' ');
            title.push_str(pick(rng, words::CONTEXTS));
        }
        let description = match rng.random_range(0..10) {
            0..=3 => None,
            4..=7 => Some(pick(rng, words::SENTENCES).to_owned()),
            _ => Some(format!(
                "{} {}",
                pick(rng, words::SENTENCES),
                pick(rng, words::SENTENCES)
            )),
        };
        let priority = match rng.random_range(0..4) {
            0 => Priority::Low,
            3 => Priority::High,
            _ => Priority::Medium,
        };
        let created_at = anchor - TimeDelta::minutes(rng.random_range(10..60 * 24 * 180));
        let due_date = match rng.random_range(0..10) {
            0..=3 => None,
            4..=6 => Some(anchor - TimeDelta::hours(rng.random_range(1..24 * 60))),
            _ => Some(anchor + TimeDelta::hours(rng.random_range(1..24 * 90))),
        };
        let completed = rng.random_bool(0.3);
        let age = (anchor - created_at).num_minutes().max(1);
        let updated_at = created_at + TimeDelta::minutes(rng.random_range(0..age));
        let id = v7_at(created_at, rng);
        SeedTask {
            id,
            new: NewTask {
                id,
                title,
                description,
                priority,
                due_date,
                completed,
                metadata: metadata::generate(id),
            },
            created_at,
            updated_at,
        }
    }
}

/// A UUIDv7 for `at` with random bits from `rng`: deterministic for a seed.
fn v7_at<Id: From<Uuid>>(at: DateTime<Utc>, rng: &mut Pcg64) -> Id {
    let random: [u8; 10] = rng.random();
    uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis() as u64, &random)
        .into_uuid()
        .into()
}

/// A name no other index below 64 * 64 * 26 gets for the same seed.
fn distinct_name(seed: u64, index: u32) -> (&'static str, &'static str, char) {
    let (f, l) = (
        words::FIRST_NAMES.len() as u64,
        words::LAST_NAMES.len() as u64,
    );
    let n = (u64::from(index) + seed % (f * l * 26)) % (f * l * 26);
    let first = words::FIRST_NAMES[(n % f) as usize];
    let last = words::LAST_NAMES[((n / f) % l) as usize];
    let initial = (b'A' + ((n / (f * l)) % 26) as u8) as char;
    (first, last, initial)
}

fn start_of_today() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(TimeDelta::days(1))
        .unwrap_or_else(|_| Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_people_different_seed_different_people() {
        let options = SeedOptions::default();
        let a = SeedUser::generate(&options, 7);
        let b = SeedUser::generate(&options, 7);
        assert_eq!(
            (a.id, &a.user, a.tasks.len()),
            (b.id, &b.user, b.tasks.len())
        );
        assert_eq!(a.tasks[3].new, b.tasks[3].new);
        let other = SeedUser::generate(
            &SeedOptions {
                seed: 7,
                ..options.clone()
            },
            7,
        );
        assert_ne!(a.user.email, other.user.email);
    }

    #[test]
    fn names_are_distinct_and_everything_validates() {
        let options = SeedOptions {
            tasks_per_user: 5,
            ..SeedOptions::default()
        };
        let mut names = HashSet::new();
        for i in 0..5000 {
            let person = SeedUser::generate(&options, i);
            person.user.validate().unwrap();
            assert!(
                names.insert(person.user.name.clone()),
                "{} repeats",
                person.user.name
            );
            for task in &person.tasks {
                task.new.validate().unwrap();
                assert!(task.updated_at >= task.created_at);
            }
        }
    }
}
