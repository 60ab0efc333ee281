//! Hostile input, against real PostgreSQL: property tests over every input of
//! the crate (NewUser, NewTask, UserPatch, TaskPatch, TaskQuery with every builder, and
//! cursors: arbitrary text and mutated or forged real ones) with arbitrary Unicode, NUL
//! and control characters, 1 MB strings, SQL metacharacters, zero-width and
//! right-to-left marks and extreme dates.
//!
//! The only outcomes allowed are `Ok` or `Error::NotFound`, `Conflict` or `Validation`;
//! whenever an error is returned, the database is unchanged (a digest of every row of
//! `users` and `tasks` before and after). Each property shares one TestDb across its
//! cases.
//!
//! With the `fuzzing` feature (CI's `--all-features`), the bodies and checks of the
//! cargo-fuzz targets (`fuzz/src/lib.rs`, included here) also run over a few thousand
//! generated inputs.

use std::cell::RefCell;
use std::fmt::Debug;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel::dsl::sql;
use diesel::sql_types::Text;
use diesel::RunQueryDsl;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{TestCaseError, TestRunner};
use todo_store::testing::TestDb;
use todo_store::{
    Direction, Error, NewTask, NewUser, PgConnection, Priority, Task, TaskPatch, TaskQuery,
    TaskRepo, TaskSort, User, UserPatch, UserRepo,
};
use uuid::Uuid;

use crate::support::cursor_forge::{forge_bytes, KEY};
use crate::support::fixtures;

// ---------------------------------------------------------------------------------------
// The invariant
// ---------------------------------------------------------------------------------------

/// An md5 of every row of `users` and `tasks` (all columns, in id order).
fn digest(conn: &mut PgConnection) -> String {
    diesel::select(sql::<Text>(
        "md5(coalesce((SELECT string_agg(u::text, E'\\n' ORDER BY u.id) FROM users u), '') \
         || E'\\n--\\n' || \
         coalesce((SELECT string_agg(t::text, E'\\n' ORDER BY t.id) FROM tasks t), ''))",
    ))
    .get_result(conn)
    .expect("digest of the database")
}

/// `text` for a failure message: at most 120 characters of its Debug form.
fn short(text: &str) -> String {
    let debug = format!("{text:?}");
    if debug.chars().count() <= 120 {
        return debug;
    }
    let head: String = debug.chars().take(100).collect();
    format!("{head}… ({} chars)", text.chars().count())
}

/// `result` is `Ok` or an error a caller can act on (NotFound, Conflict, Validation),
/// and an error left the database as it was (`before`).
fn check<T: Debug>(
    conn: &mut PgConnection,
    before: &str,
    op: &str,
    result: &todo_store::Result<T>,
) -> Result<(), TestCaseError> {
    match result {
        Ok(_) => Ok(()),
        Err(e @ (Error::NotFound { .. } | Error::Conflict { .. } | Error::Validation { .. })) => {
            let after = digest(conn);
            if after != before {
                return Err(TestCaseError::fail(format!(
                    "{op} failed with {e:?} but changed the database"
                )));
            }
            Ok(())
        }
        Err(e) => Err(TestCaseError::fail(format!(
            "{op}: the only errors allowed are NotFound, Conflict and Validation, got {e:?} ({e})"
        ))),
    }
}

/// Runs `property` over `cases` cases of `strategy`; panics with the minimal failure.
fn run<S: Strategy>(
    cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    };
    if let Err(e) = TestRunner::new(config).run(&strategy, property) {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------
// Hostile values
// ---------------------------------------------------------------------------------------

/// Pieces of hostile text: SQL and tsquery metacharacters, NUL and control characters,
/// zero-width, bidirectional and other format characters, combining marks, emoji, case
/// mappings that change length, white space that Rust and PostgreSQL see differently.
const PIECES: &[&str] = &[
    "'",
    "''",
    "\"",
    ";",
    "--",
    "-",
    "/*",
    "*/",
    "\\",
    "\\x00",
    "%",
    "_",
    "%00",
    "$1",
    "$$",
    "?",
    "' OR '1'='1",
    "'; DROP TABLE tasks; --",
    "\"; DELETE FROM users; --",
    "); TRUNCATE users CASCADE; --",
    "E'\\\\'",
    "U&'\\0000'",
    "::text",
    "&",
    "|",
    "!",
    "(",
    ")",
    ":*",
    "<->",
    "<2>",
    "or",
    "OR",
    "the",
    "null",
    "NULL",
    "\0",
    "\u{1}",
    "\u{8}",
    "\u{1b}[31m",
    "\u{7f}",
    "\u{85}",
    "\u{9b}",
    "\t",
    "\n",
    "\r\n",
    "\u{b}",
    "\u{c}",
    " ",
    "\u{a0}",
    "\u{2007}",
    "\u{202f}",
    "\u{3000}",
    "\u{2028}",
    "\u{2029}",
    "\u{1680}",
    "\u{200b}",
    "\u{200c}",
    "\u{200d}",
    "\u{2060}",
    "\u{feff}",
    "\u{200e}",
    "\u{200f}",
    "\u{61c}",
    "\u{202a}",
    "\u{202b}",
    "\u{202c}",
    "\u{202d}",
    "\u{202e}",
    "\u{2066}",
    "\u{2067}",
    "\u{2068}",
    "\u{2069}",
    "\u{301}",
    "e\u{301}",
    "é",
    "ß",
    "İ",
    "ǅ",
    "ﬃ",
    "Ⅻ",
    "ｆｕｌｌ",
    "עברית",
    "العربية",
    "中文",
    "😀",
    "👨\u{200d}👩\u{200d}👧",
    "🏳\u{fe0f}\u{200d}🌈",
    "\u{fffd}",
    "\u{fffe}",
    "\u{ffff}",
    "\u{e000}",
    "\u{10ffff}",
    "𝒜",
    "@",
    "a",
    "Z",
    "0",
    "alpha",
    "bravo",
    "Buy milk",
];

/// Character counts around every limit of the crate (100, 254, 255, 1000, 2048,
/// 10000), and 1 MiB.
const LENGTHS: &[usize] = &[
    0,
    1,
    2,
    99,
    100,
    101,
    253,
    254,
    255,
    256,
    999,
    1000,
    1001,
    2047,
    2048,
    2049,
    9_999,
    10_000,
    10_001,
    1 << 20,
];

fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(PIECES)
}

/// Text of any kind: pieces of hostile text, arbitrary Unicode, control characters, and
/// long repetitions up to 1 MiB characters.
fn hostile_text() -> BoxedStrategy<String> {
    prop_oneof![
        6 => prop::collection::vec(piece(), 0..24).prop_map(|p| p.concat()),
        2 => any::<String>(),
        2 => prop::collection::vec(any::<char>(), 0..48).prop_map(|c| c.into_iter().collect()),
        1 => prop::collection::vec(prop::char::range('\0', '\u{a0}'), 0..32)
            .prop_map(|c| c.into_iter().collect()),
        2 => (piece(), prop::sample::select(LENGTHS))
            .prop_map(|(p, n)| p.chars().cycle().take(n).collect()),
        1 => (prop::collection::vec(piece(), 0..4), prop::sample::select(LENGTHS), piece())
            .prop_map(|(head, n, fill)| {
                let mut s = head.concat();
                s.extend(fill.chars().cycle().take(n));
                s
            }),
    ]
    .boxed()
}

/// Pieces without white space, control characters or `@`: emails built of them pass the
/// crate's checks and reach the database.
fn email_piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(
        PIECES
            .iter()
            .copied()
            .filter(|p| {
                !p.is_empty()
                    && !p
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control() || c == '@')
            })
            .collect::<Vec<_>>(),
    )
}

/// Short text of hostile pieces that passes the crate's checks (no white space, control
/// characters or NUL; at most 30 characters): SQL metacharacters, zero-width and
/// bidirectional marks, emoji and the like reach the database.
fn valid_text() -> BoxedStrategy<String> {
    prop::collection::vec(email_piece(), 1..6)
        .prop_map(|p| p.concat().chars().take(30).collect())
        .boxed()
}

/// Text of any kind, or (one time in `1 + weight`) text that passes the checks.
fn text(weight: u32) -> BoxedStrategy<String> {
    prop_oneof![weight => hostile_text(), 1 => valid_text()].boxed()
}

/// The email of the user every property creates first, for conflicts.
const TAKEN: &str = "taken@example.com";

fn email() -> BoxedStrategy<String> {
    let part = || prop::collection::vec(email_piece(), 1..6).prop_map(|p| p.concat());
    prop_oneof![
        5 => (part(), part()).prop_map(|(l, d)| format!("{l}@{d}")),
        1 => prop::sample::select(vec![
            TAKEN.to_owned(),
            " TAKEN@Example.COM ".to_owned(),
            "Taken@example.com\u{200b}".to_owned(),
            format!("{}@x.io", "a".repeat(249)),
            format!("{}@x.io", "a".repeat(250)),
            format!("{}@x.io", "é".repeat(249)),
        ]),
        2 => hostile_text(),
    ]
    .boxed()
}

fn ymd(year: i32, month: u32, day: u32) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(year, month, day)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a valid date")
        .and_utc()
}

/// The earliest instant PostgreSQL's timestamptz holds: 4714-11-24 00:00 UTC BC.
fn pg_min() -> DateTime<Utc> {
    ymd(-4713, 11, 24)
}

fn leap_second() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(2016, 12, 31)
        .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
        .expect("a leap second")
        .and_utc()
}

/// Dates at the edges of what PostgreSQL's timestamptz holds: its minimum, year 0, the
/// far future up to chrono's maximum, a leap second, nanoseconds that PostgreSQL cannot
/// hold, and anything in between. Dates before PostgreSQL's minimum have a test of
/// their own ([`dates_beyond_postgres`]).
fn extreme_date() -> BoxedStrategy<DateTime<Utc>> {
    let (min, max) = (pg_min().timestamp(), DateTime::<Utc>::MAX_UTC.timestamp());
    prop_oneof![
        3 => prop::sample::select(vec![
            DateTime::<Utc>::MAX_UTC,
            ymd(0, 1, 1),
            ymd(1, 1, 1) - Duration::microseconds(1),
            pg_min(),
            pg_min() + Duration::nanoseconds(1),
            DateTime::UNIX_EPOCH,
            DateTime::UNIX_EPOCH - Duration::nanoseconds(1),
            ymd(2000, 1, 1),
            ymd(9999, 12, 31),
            ymd(10_000, 1, 1),
            ymd(200_000, 1, 1),
            ymd(262_142, 12, 31),
            leap_second(),
            Utc::now(),
        ]),
        2 => (min..=max, 0..1_000_000_000u32)
            .prop_map(|(s, ns)| DateTime::from_timestamp(s, ns).expect("in chrono's range")),
        1 => (-10_000_000_000i64..10_000_000_000, 0..1_000_000_000u32)
            .prop_map(|(s, ns)| DateTime::from_timestamp(s, ns).expect("in chrono's range")),
    ]
    .boxed()
}

/// Dates chrono holds and PostgreSQL's timestamptz does not: before 4714-11-24 BC.
fn dates_beyond_postgres() -> Vec<DateTime<Utc>> {
    vec![
        DateTime::<Utc>::MIN_UTC,
        ymd(-100_000, 1, 1),
        ymd(-4713, 1, 1),
        pg_min() - Duration::seconds(1),
        pg_min() - Duration::microseconds(1),
    ]
}

fn priority() -> impl Strategy<Value = Priority> {
    prop::sample::select(Priority::ALL.to_vec())
}

fn sort() -> impl Strategy<Value = TaskSort> {
    prop::sample::select(TaskSort::ALL.to_vec())
}

fn direction() -> impl Strategy<Value = Direction> {
    prop::sample::select(vec![Direction::Asc, Direction::Desc])
}

// ---------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------

/// Two users with tasks of every kind; `other` exists to be invisible to `user`.
struct Fixture {
    user: User,
    other: User,
    tasks: Vec<Task>,
    other_tasks: Vec<Task>,
}

fn fixture(conn: &mut PgConnection) -> Fixture {
    UserRepo::create(conn, &NewUser::new(TAKEN, "Taken")).expect("the taken user");
    let user = fixtures::user(conn);
    let other = fixtures::user(conn);
    let dates = [
        None,
        Some(ymd(0, 1, 1)),
        Some(pg_min()),
        Some(DateTime::UNIX_EPOCH),
        Some(ymd(200_000, 1, 1)),
        Some(DateTime::<Utc>::MAX_UTC),
        Some(Utc::now() - Duration::days(1)),
    ];
    let titles = [
        "alpha one",
        "alpha two",
        "bravo alpha",
        "Zoë's \"list\"",
        "'; DROP TABLE tasks; --",
        "\u{202e}alpha reversed",
        "\u{200b}x\u{200b}",
        "😀 alpha",
    ];
    let mut news: Vec<NewTask> = titles
        .iter()
        .enumerate()
        .map(|(i, title)| {
            let mut new = NewTask::new(*title)
                .priority(Priority::ALL[i % 3])
                .completed(i % 2 == 0)
                .description(format!("alpha {i}: a description; DROP TABLE users"));
            new.due_date = dates[i % dates.len()];
            new
        })
        .collect();
    news.push(NewTask::new("é".repeat(255)));
    let tasks = TaskRepo::create_many(conn, user.id, &news).expect("the user's tasks");
    let other_tasks =
        TaskRepo::create_many(conn, other.id, &news[..3]).expect("the other user's tasks");
    Fixture {
        user,
        other,
        tasks,
        other_tasks,
    }
}

// ---------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct GenUser {
    email: String,
    name: String,
    verified: bool,
    image: Option<String>,
}

impl GenUser {
    fn new_user(&self) -> NewUser {
        NewUser {
            email: self.email.clone(),
            name: self.name.clone(),
            email_verified: self.verified,
            image: self.image.clone(),
        }
    }
}

fn gen_user() -> impl Strategy<Value = GenUser> {
    (email(), text(1), any::<bool>(), prop::option::of(text(1))).prop_map(
        |(email, name, verified, image)| GenUser {
            email,
            name,
            verified,
            image,
        },
    )
}

#[test]
fn hostile_new_users_are_stored_exactly_or_rejected_without_a_trace() {
    let db = TestDb::new();
    let conn = RefCell::new(db.conn());
    fixture(&mut conn.borrow_mut());
    let strategy = (
        gen_user(),
        (gen_user(), gen_user(), prop::bool::weighted(0.25)),
        hostile_text(),
        prop_oneof![3 => 1..=1000i64, 1 => any::<i64>()],
        prop_oneof![3 => 0..4i64, 1 => any::<i64>()],
    );
    run(
        128,
        strategy,
        |(a, (b, c, duplicate), lookup, limit, offset)| {
            let mut guard = conn.borrow_mut();
            let conn: &mut PgConnection = &mut guard;

            let before = digest(conn);
            let created = UserRepo::create(conn, &a.new_user());
            check(conn, &before, "UserRepo::create", &created)?;
            if let Ok(user) = &created {
                prop_assert_eq!(&user.email, a.email.trim());
                prop_assert_eq!(&user.name, a.name.trim());
                prop_assert_eq!(&user.image, &a.image);
                prop_assert_eq!(&UserRepo::get(conn, user.id).unwrap(), user);
                let found = UserRepo::find_by_email(conn, &a.email).unwrap();
                prop_assert_eq!(found.as_ref().map(|u| u.id), Some(user.id));
            }

            // A batch: all or nothing (with `a` again, a conflict with it or with its row).
            let mut news = vec![b.new_user(), c.new_user()];
            if duplicate {
                news.push(a.new_user());
            }
            let before = digest(conn);
            let count = UserRepo::count(conn).unwrap();
            let batch = UserRepo::create_many(conn, &news);
            check(conn, &before, "UserRepo::create_many", &batch)?;
            if let Ok(users) = &batch {
                prop_assert_eq!(users.len(), news.len());
                prop_assert_eq!(UserRepo::count(conn).unwrap(), count + news.len() as i64);
                for user in users {
                    prop_assert_eq!(&UserRepo::get(conn, user.id).unwrap(), user);
                }
            }

            // Lookups and listing with anything.
            let before = digest(conn);
            let found = UserRepo::find_by_email(conn, &lookup);
            prop_assert!(
                found.is_ok(),
                "find_by_email({}): {:?}",
                short(&lookup),
                found
            );
            let listed = UserRepo::list(conn, limit, offset);
            check(conn, &before, "UserRepo::list", &listed)?;
            prop_assert_eq!(digest(conn), before, "a read changed the database");
            Ok(())
        },
    );
}

#[derive(Debug, Clone)]
struct GenUserPatch {
    email: Option<String>,
    name: Option<String>,
    verified: Option<bool>,
    image: Option<Option<String>>,
    /// 0 and 1: the user; 2: a random id; 3: the nil id.
    target: u8,
    delete: bool,
}

fn gen_user_patch() -> impl Strategy<Value = GenUserPatch> {
    (
        prop::option::of(email()),
        prop::option::of(text(1)),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::option::of(text(1))),
        0..4u8,
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(email, name, verified, image, target, delete)| GenUserPatch {
                email,
                name,
                verified,
                image,
                target,
                delete,
            },
        )
}

#[test]
fn hostile_user_patches_apply_exactly_or_change_nothing() {
    let db = TestDb::new();
    let conn = RefCell::new(db.conn());
    let fx = fixture(&mut conn.borrow_mut());
    let user = fx.user.id;
    run(128, gen_user_patch(), |g| {
        let mut guard = conn.borrow_mut();
        let conn: &mut PgConnection = &mut guard;
        let target = match g.target {
            0 | 1 => user,
            2 => Uuid::now_v7(),
            _ => Uuid::nil(),
        };
        let patch = UserPatch {
            email: g.email.clone(),
            name: g.name.clone(),
            email_verified: g.verified,
            image: g.image.clone(),
        };
        let before = digest(conn);
        let old = UserRepo::get(conn, target).ok();
        let updated = UserRepo::update(conn, target, &patch);
        check(conn, &before, "UserRepo::update", &updated)?;
        if let (Ok(new), Some(old)) = (&updated, &old) {
            let email = g.email.as_deref().map_or(old.email.as_str(), str::trim);
            prop_assert_eq!(&new.email, email);
            let name = g.name.as_deref().map_or(old.name.as_str(), str::trim);
            prop_assert_eq!(&new.name, name);
            prop_assert_eq!(&new.image, g.image.as_ref().unwrap_or(&old.image));
            prop_assert_eq!(&UserRepo::get(conn, target).unwrap(), new);
        }
        prop_assert!(old.is_some() || updated.is_err(), "updated a missing user");
        if g.delete && target != user {
            let before = digest(conn);
            let deleted = UserRepo::delete(conn, target);
            prop_assert!(
                matches!(deleted, Err(Error::NotFound { .. })),
                "{deleted:?}"
            );
            check(conn, &before, "UserRepo::delete", &deleted)?;
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct GenTask {
    title: String,
    description: Option<String>,
    priority: Priority,
    due: Option<DateTime<Utc>>,
    completed: bool,
}

impl GenTask {
    fn new_task(&self) -> NewTask {
        NewTask {
            title: self.title.clone(),
            description: self.description.clone(),
            priority: self.priority,
            due_date: self.due,
            completed: self.completed,
        }
    }
}

fn gen_task() -> impl Strategy<Value = GenTask> {
    (
        text(2),
        prop::option::of(hostile_text()),
        priority(),
        prop::option::of(extreme_date()),
        any::<bool>(),
    )
        .prop_map(|(title, description, priority, due, completed)| GenTask {
            title,
            description,
            priority,
            due,
            completed,
        })
}

/// Whose task a call names: the user's own, the other user's, or none at all.
#[derive(Debug, Clone, Copy)]
enum Owner {
    User,
    Other,
    Nobody,
}

fn owner() -> impl Strategy<Value = Owner> {
    prop_oneof![6 => Just(Owner::User), 1 => Just(Owner::Other), 1 => Just(Owner::Nobody)]
}

#[test]
fn hostile_new_tasks_are_stored_exactly_or_rejected_without_a_trace() {
    let db = TestDb::new();
    let conn = RefCell::new(db.conn());
    let fx = fixture(&mut conn.borrow_mut());
    let strategy = (gen_task(), prop::collection::vec(gen_task(), 0..4), owner());
    run(160, strategy, |(g, batch, owner)| {
        let mut guard = conn.borrow_mut();
        let conn: &mut PgConnection = &mut guard;
        let user = match owner {
            Owner::User => fx.user.id,
            Owner::Other => fx.other.id,
            Owner::Nobody => Uuid::now_v7(),
        };
        let before = digest(conn);
        let created = TaskRepo::create(conn, user, &g.new_task());
        check(conn, &before, "TaskRepo::create", &created)?;
        if let Ok(task) = &created {
            prop_assert_eq!(task.user_id, user);
            prop_assert_eq!(&task.title, g.title.trim());
            prop_assert_eq!(&task.description, &g.description);
            prop_assert_eq!(task.priority, g.priority);
            prop_assert_eq!(task.completed, g.completed);
            prop_assert_eq!(task.version, 1);
            prop_assert_eq!(task.due_date.is_some(), g.due.is_some());
            prop_assert_eq!(&TaskRepo::get(conn, user, task.id).unwrap(), task);
        }
        let news: Vec<NewTask> = batch.iter().map(GenTask::new_task).collect();
        let before = digest(conn);
        let count = TaskRepo::count(conn, user).unwrap();
        let created = TaskRepo::create_many(conn, user, &news);
        check(conn, &before, "TaskRepo::create_many", &created)?;
        if let Ok(tasks) = &created {
            prop_assert_eq!(tasks.len(), news.len());
            prop_assert_eq!(
                TaskRepo::count(conn, user).unwrap(),
                count + news.len() as i64
            );
            for task in tasks {
                // The due date as returned has a test of its own
                // (create_many_returns_the_due_dates_it_stored).
                let mut stored = TaskRepo::get(conn, user, task.id).unwrap();
                prop_assert_eq!(stored.due_date.is_some(), task.due_date.is_some());
                stored.due_date = task.due_date;
                prop_assert_eq!(&stored, task);
            }
        }
        Ok(())
    });
}

/// Which `expected_version` a patch carries.
#[derive(Debug, Clone, Copy)]
enum Version {
    Unchecked,
    Current,
    Stale,
    Any(i32),
}

#[derive(Debug, Clone)]
struct GenTaskPatch {
    title: Option<String>,
    description: Option<Option<String>>,
    completed: Option<bool>,
    priority: Option<Priority>,
    due: Option<Option<DateTime<Utc>>>,
    version: Version,
    owner: Owner,
    index: Index,
    /// 0: update; 1: set_completed; 2: delete (when the user cannot see the task).
    op: u8,
}

fn gen_task_patch() -> impl Strategy<Value = GenTaskPatch> {
    let version = prop_oneof![
        Just(Version::Unchecked),
        Just(Version::Current),
        Just(Version::Stale),
        any::<i32>().prop_map(Version::Any),
        prop::sample::select(vec![i32::MIN, -1, 0, 1, i32::MAX]).prop_map(Version::Any),
    ];
    (
        (
            prop::option::of(text(1)),
            prop::option::of(prop::option::of(text(1))),
            prop::option::of(any::<bool>()),
            prop::option::of(priority()),
            prop::option::of(prop::option::of(extreme_date())),
        ),
        version,
        owner(),
        any::<Index>(),
        prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
    )
        .prop_map(
            |((title, description, completed, priority, due), version, owner, index, op)| {
                GenTaskPatch {
                    title,
                    description,
                    completed,
                    priority,
                    due,
                    version,
                    owner,
                    index,
                    op,
                }
            },
        )
}

#[test]
fn hostile_task_patches_apply_exactly_or_change_nothing() {
    let db = TestDb::new();
    let conn = RefCell::new(db.conn());
    let fx = fixture(&mut conn.borrow_mut());
    let user = fx.user.id;
    run(192, gen_task_patch(), |g| {
        let mut guard = conn.borrow_mut();
        let conn: &mut PgConnection = &mut guard;
        // Every call is as `user`: the other user's tasks must behave as missing ones.
        let target = match g.owner {
            Owner::User => g.index.get(&fx.tasks).id,
            Owner::Other => g.index.get(&fx.other_tasks).id,
            Owner::Nobody => Uuid::now_v7(),
        };
        let old = TaskRepo::get(conn, user, target).ok();
        let current = old.as_ref().map_or(1, |t| t.version);
        let patch = TaskPatch {
            title: g.title.clone(),
            description: g.description.clone(),
            completed: g.completed,
            priority: g.priority,
            due_date: g.due,
            expected_version: match g.version {
                Version::Unchecked => None,
                Version::Current => Some(current),
                Version::Stale => Some(if current > 1 {
                    current - 1
                } else {
                    current + 1
                }),
                Version::Any(v) => Some(v),
            },
        };
        let before = digest(conn);
        if g.op == 2 {
            // Only tasks the user cannot see: deleting their own would empty the fixture.
            if old.is_none() {
                let deleted = TaskRepo::delete(conn, user, target);
                check(conn, &before, "TaskRepo::delete", &deleted)?;
                prop_assert!(
                    matches!(deleted, Err(Error::NotFound { .. })),
                    "{deleted:?}"
                );
            }
            return Ok(());
        }
        let (op, result) = match g.op {
            0 => (
                "TaskRepo::update",
                TaskRepo::update(conn, user, target, &patch),
            ),
            _ => (
                "TaskRepo::set_completed",
                TaskRepo::set_completed(conn, user, target, g.completed.unwrap_or(true)),
            ),
        };
        check(conn, &before, op, &result)?;
        match (&result, &old) {
            (Ok(new), Some(old)) => {
                prop_assert_eq!(new.id, old.id);
                prop_assert_eq!(new.user_id, user);
                prop_assert_eq!(new.version, old.version + 1);
                if g.op == 0 {
                    let title = g.title.as_deref().map_or(old.title.as_str(), str::trim);
                    prop_assert_eq!(&new.title, title);
                    prop_assert_eq!(
                        &new.description,
                        g.description.as_ref().unwrap_or(&old.description)
                    );
                    prop_assert_eq!(new.priority, g.priority.unwrap_or(old.priority));
                }
                prop_assert_eq!(&TaskRepo::get(conn, user, target).unwrap(), new);
            }
            (Ok(_), None) => prop_assert!(false, "changed a task {:?} cannot see", g.owner),
            (Err(_), None) => prop_assert!(
                matches!(
                    result,
                    Err(Error::NotFound { .. }) | Err(Error::Validation { .. })
                ),
                "{result:?}"
            ),
            (Err(_), Some(_)) => {}
        }
        Ok(())
    });
    // The other user's tasks are untouched.
    let mut conn = db.conn();
    for task in &fx.other_tasks {
        assert_eq!(
            &TaskRepo::get(&mut conn, fx.other.id, task.id).unwrap(),
            task
        );
    }
}

/// Every date input, with a date PostgreSQL cannot hold: `Ok` or an error a caller can
/// act on (a query may well answer `Ok`: no task is due before 4714 BC), and nothing
/// changed by an error.
#[test]
fn dates_postgresql_cannot_hold_are_rejected_cleanly() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let (user, task) = (fx.user.id, fx.tasks[0].id);
    // Every call is tried; the failures are reported together.
    let mut failures: Vec<String> = Vec::new();
    let mut record = |outcome: Result<(), TestCaseError>| {
        if let Err(e) = outcome {
            failures.push(e.to_string());
        }
    };
    for date in dates_beyond_postgres() {
        let before = digest(&mut conn);
        let new = NewTask::new("x").due_date(date);
        let r = TaskRepo::create(&mut conn, user, &new);
        record(check(&mut conn, &before, &format!("create due {date}"), &r));
        let r = TaskRepo::create_many(&mut conn, user, &[new]);
        record(check(
            &mut conn,
            &before,
            &format!("create_many due {date}"),
            &r,
        ));
        let patch = TaskPatch {
            due_date: Some(Some(date)),
            ..TaskPatch::default()
        };
        let r = TaskRepo::update(&mut conn, user, task, &patch);
        record(check(&mut conn, &before, &format!("update due {date}"), &r));
        for (name, query) in [
            ("due_before", TaskQuery::new().due_before(date)),
            ("due_after", TaskQuery::new().due_after(date)),
            ("created_before", TaskQuery::new().created_before(date)),
            ("created_after", TaskQuery::new().created_after(date)),
        ] {
            let r = TaskRepo::list(&mut conn, user, &query);
            record(check(
                &mut conn,
                &before,
                &format!("list {name}({date})"),
                &r,
            ));
            let r = TaskRepo::count_matching(&mut conn, user, &query);
            record(check(
                &mut conn,
                &before,
                &format!("count_matching {name}({date})"),
                &r,
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} calls failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `create_many` returns the tasks as stored, like `create`: due dates with
/// nanoseconds (PostgreSQL keeps microseconds) or on a leap second included.
#[test]
fn create_many_returns_the_due_dates_it_stored() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn).id;
    for date in [
        DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("a date"),
        DateTime::UNIX_EPOCH + Duration::nanoseconds(1),
        ymd(1999, 12, 31) - Duration::nanoseconds(500),
        leap_second(),
    ] {
        let new = NewTask::new("x").due_date(date);
        let created = TaskRepo::create(&mut conn, user, &new).unwrap();
        assert_eq!(TaskRepo::get(&mut conn, user, created.id).unwrap(), created);
        let batch = TaskRepo::create_many(&mut conn, user, &[new]).unwrap();
        let stored = TaskRepo::get(&mut conn, user, batch[0].id).unwrap();
        assert_eq!(
            batch[0].due_date, stored.due_date,
            "create_many returned another due date than it stored for {date:?} \
             (create returned {:?})",
            created.due_date
        );
    }
}

// ---------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------

/// A page size given as any integer type `TaskQuery::limit` takes.
#[derive(Debug, Clone, Copy)]
enum Limit {
    Default,
    I64(i64),
    U64(u64),
    I128(i128),
    I32(i32),
}

#[derive(Debug, Clone)]
struct GenQuery {
    completed: Option<bool>,
    priorities: Vec<Priority>,
    due_before: Option<DateTime<Utc>>,
    due_after: Option<DateTime<Utc>>,
    overdue: bool,
    created_before: Option<DateTime<Utc>>,
    created_after: Option<DateTime<Utc>>,
    search: Option<String>,
    sort: Option<(TaskSort, Direction)>,
    limit: Limit,
    after: Option<String>,
}

impl GenQuery {
    /// The query, made with every builder this case asks for.
    fn build(&self) -> TaskQuery {
        let mut q = TaskQuery::new();
        if let Some(c) = self.completed {
            q = q.completed(c);
        }
        for p in &self.priorities {
            q = q.priority(*p);
        }
        if let Some(at) = self.due_before {
            q = q.due_before(at);
        }
        if let Some(at) = self.due_after {
            q = q.due_after(at);
        }
        if self.overdue {
            q = q.overdue();
        }
        if let Some(at) = self.created_before {
            q = q.created_before(at);
        }
        if let Some(at) = self.created_after {
            q = q.created_after(at);
        }
        if let Some(s) = &self.search {
            q = q.search(s);
        }
        if let Some((sort, dir)) = self.sort {
            q = q.sort(sort, dir);
        }
        q = match self.limit {
            Limit::Default => q,
            Limit::I64(n) => q.limit(n),
            Limit::U64(n) => q.limit(n),
            Limit::I128(n) => q.limit(n),
            Limit::I32(n) => q.limit(n),
        };
        if let Some(c) = &self.after {
            q = q.after(c);
        }
        q
    }
}

fn limit() -> impl Strategy<Value = Limit> {
    prop_oneof![
        2 => Just(Limit::Default),
        3 => (1..=4i64).prop_map(Limit::I64),
        1 => prop::sample::select(vec![i64::MIN, -1, 0, 1, 500, 501, i64::MAX]).prop_map(Limit::I64),
        1 => any::<u64>().prop_map(Limit::U64),
        1 => any::<i128>().prop_map(Limit::I128),
        1 => any::<i32>().prop_map(Limit::I32),
    ]
}

fn gen_query() -> impl Strategy<Value = GenQuery> {
    (
        (
            prop::option::of(any::<bool>()),
            prop::collection::vec(priority(), 0..4),
            prop::option::of(extreme_date()),
            prop::option::of(extreme_date()),
            prop::bool::weighted(0.2),
            prop::option::of(extreme_date()),
            prop::option::of(extreme_date()),
        ),
        prop::option::of(prop_oneof![2 => hostile_text(), 1 => Just("alpha".to_owned())]),
        prop::option::of((sort(), direction())),
        limit(),
        prop::option::weighted(0.3, hostile_text()),
    )
        .prop_map(
            |(
                (
                    completed,
                    priorities,
                    due_before,
                    due_after,
                    overdue,
                    created_before,
                    created_after,
                ),
                search,
                sort,
                limit,
                after,
            )| GenQuery {
                completed,
                priorities,
                due_before,
                due_after,
                overdue,
                created_before,
                created_after,
                search,
                sort,
                limit,
                after,
            },
        )
}

/// Lists `query` and up to two following pages, then counts it: every call is `Ok` or
/// `Validation`, every row is `user`'s, and the database does not change.
fn list_pages(
    conn: &mut PgConnection,
    user: Uuid,
    query: &TaskQuery,
    what: &str,
) -> Result<(), TestCaseError> {
    let before = digest(conn);
    let mut query = query.clone();
    for _ in 0..3 {
        let page = TaskRepo::list(conn, user, &query);
        check(conn, &before, what, &page)?;
        match page {
            Ok(page) => {
                for task in &page.items {
                    prop_assert_eq!(task.user_id, user, "{} listed another user's task", what);
                }
                match page.next_cursor {
                    Some(cursor) => query = query.after(&cursor),
                    None => break,
                }
            }
            Err(e) => {
                prop_assert!(e.is_validation(), "{}: {:?}", what, e);
                break;
            }
        }
    }
    let count = TaskRepo::count_matching(conn, user, &query);
    check(conn, &before, "TaskRepo::count_matching", &count)?;
    prop_assert!(
        count
            .as_ref()
            .map_or_else(Error::is_validation, |n| *n >= 0),
        "{count:?}"
    );
    prop_assert_eq!(digest(conn), before, "{} changed the database", what);
    Ok(())
}

#[test]
fn hostile_task_queries_are_ok_or_invalid_and_read_only() {
    let db = TestDb::new();
    let conn = RefCell::new(db.conn());
    let fx = fixture(&mut conn.borrow_mut());
    run(192, gen_query(), |g| {
        let mut guard = conn.borrow_mut();
        let conn: &mut PgConnection = &mut guard;
        list_pages(conn, fx.user.id, &g.build(), "TaskRepo::list")?;
        let stats = TaskRepo::stats(conn, fx.user.id);
        prop_assert!(stats.is_ok(), "{stats:?}");
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------
// Cursors
// ---------------------------------------------------------------------------------------

/// How to damage a real cursor: edits of its text, and edits of its payload behind a
/// valid checksum (a forgery: only the format checks stand in the way).
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, char),
    Delete(Index),
    Insert(Index, String),
    Truncate(Index),
    Append(String),
    Wrap(String, String),
    ForgeByte(Index, u8),
    ForgeTruncate(Index),
    ForgeExtend(Vec<u8>),
    /// The key and id replaced by these bytes.
    ForgeKey(Vec<u8>),
    /// 8 bytes at the key (or just after its tag byte) replaced by this number.
    ForgeI64(bool, i64),
    /// 4 bytes at the key replaced by these bits (a rank or a title length).
    ForgeU32(u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let micros = prop_oneof![
        any::<i64>(),
        prop::sample::select(vec![
            i64::MIN,
            i64::MAX,
            -1,
            0,
            -210_866_803_200_000_000,
            -210_866_803_200_000_001,
            DateTime::<Utc>::MIN_UTC.timestamp_micros(),
            DateTime::<Utc>::MAX_UTC.timestamp_micros(),
            DateTime::<Utc>::MAX_UTC.timestamp_micros() + 1,
        ]),
    ];
    let bits = prop_oneof![
        any::<u32>(),
        prop::sample::select(vec![
            f32::NAN.to_bits(),
            f32::INFINITY.to_bits(),
            f32::NEG_INFINITY.to_bits(),
            (-0.0f32).to_bits(),
            f32::MIN_POSITIVE.to_bits(),
            1,
            f32::MAX.to_bits(),
            u32::MAX,
            256,
            2048,
        ]),
    ];
    let b64 =
        prop::char::ranges(vec!['A'..='Z', 'a'..='z', '0'..='9', '-'..='-', '_'..='_'].into());
    prop_oneof![
        2 => (any::<Index>(), prop_oneof![b64, any::<char>()]).prop_map(|(i, c)| Mutation::Replace(i, c)),
        1 => any::<Index>().prop_map(Mutation::Delete),
        1 => (any::<Index>(), hostile_text()).prop_map(|(i, s)| Mutation::Insert(i, s)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => hostile_text().prop_map(Mutation::Append),
        1 => (prop::sample::select(vec![" ", "\t", "\n", "\0", "\u{a0}", "=", "==", "\u{200b}"]),
              prop::sample::select(vec!["", " ", "\n", "\0", "=", "\u{feff}"]))
            .prop_map(|(a, b)| Mutation::Wrap(a.to_owned(), b.to_owned())),
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::ForgeByte(i, b)),
        1 => any::<Index>().prop_map(Mutation::ForgeTruncate),
        1 => prop::collection::vec(any::<u8>(), 1..40).prop_map(Mutation::ForgeExtend),
        2 => prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64),
                hostile_text().prop_map(|s| {
                    // A title key: length, the text (NUL and all), an id.
                    let mut b = (s.len() as u32).to_be_bytes().to_vec();
                    b.extend_from_slice(s.as_bytes());
                    b.extend_from_slice(Uuid::now_v7().as_bytes());
                    b
                }),
            ].prop_map(Mutation::ForgeKey),
        3 => (any::<bool>(), micros).prop_map(|(tagged, n)| Mutation::ForgeI64(tagged, n)),
        2 => bits.prop_map(Mutation::ForgeU32),
    ]
}

impl Mutation {
    fn apply(&self, cursor: &str) -> String {
        let mut chars: Vec<char> = cursor.chars().collect();
        let n = chars.len();
        match self {
            Mutation::Replace(i, c) if n > 0 => chars[i.index(n)] = *c,
            Mutation::Delete(i) if n > 0 => {
                chars.remove(i.index(n));
            }
            Mutation::Insert(i, s) => {
                let at = i.index(n + 1);
                chars.splice(at..at, s.chars());
            }
            Mutation::Truncate(i) if n > 0 => chars.truncate(i.index(n)),
            Mutation::Append(s) => chars.extend(s.chars()),
            Mutation::Wrap(a, b) => return format!("{a}{cursor}{b}"),
            Mutation::Replace(..) | Mutation::Delete(..) | Mutation::Truncate(..) => {}
            // Forgeries start from a payload: not possible once the text is no cursor.
            _ => {
                return match URL_SAFE_NO_PAD.decode(cursor) {
                    Ok(bytes) if bytes.len() >= 8 => forge_bytes(&bytes, |p| self.edit_payload(p)),
                    _ => cursor.to_owned(),
                }
            }
        }
        chars.into_iter().collect()
    }

    fn edit_payload(&self, payload: &mut Vec<u8>) {
        let n = payload.len();
        match self {
            Mutation::ForgeByte(i, b) if n > 0 => payload[i.index(n)] = *b,
            Mutation::ForgeTruncate(i) if n > 0 => payload.truncate(i.index(n)),
            Mutation::ForgeExtend(bytes) => payload.extend_from_slice(bytes),
            Mutation::ForgeKey(bytes) => {
                payload.truncate(KEY);
                payload.extend_from_slice(bytes);
            }
            Mutation::ForgeI64(tagged, value) => {
                let at = (KEY + usize::from(*tagged)).min(n);
                let mut rest = payload.split_off(at);
                rest.drain(..8.min(rest.len()));
                payload.extend_from_slice(&value.to_be_bytes());
                payload.extend_from_slice(&rest);
            }
            Mutation::ForgeU32(bits) => {
                let mut rest = payload.split_off(KEY.min(n));
                rest.drain(..4.min(rest.len()));
                payload.extend_from_slice(&bits.to_be_bytes());
                payload.extend_from_slice(&rest);
            }
            _ => {}
        }
    }
}

/// The first page's cursor of `query` (limit 1) for `user`.
fn first_cursor(conn: &mut PgConnection, user: Uuid, query: &TaskQuery) -> String {
    TaskRepo::list(conn, user, &query.clone().limit(1))
        .expect("the first page")
        .next_cursor
        .unwrap_or_else(|| panic!("{query:?} has a second page"))
}

#[test]
fn arbitrary_and_mutated_cursors_are_ok_or_invalid_never_a_database_error() {
    let db = TestDb::new();
    let conn = RefCell::new(db.conn());
    let fx = fixture(&mut conn.borrow_mut());
    // A real cursor of every sort in both directions, some with filters and a search.
    let mut queries = Vec::new();
    for sort in TaskSort::ALL {
        for dir in [Direction::Asc, Direction::Desc] {
            queries.push(TaskQuery::new().search("alpha").sort(sort, dir));
            if sort != TaskSort::Relevance {
                queries.push(TaskQuery::new().sort(sort, dir));
            }
        }
    }
    queries.push(
        TaskQuery::new()
            .due_after(pg_min())
            .priority(Priority::Low)
            .priority(Priority::High)
            .sort(TaskSort::DueDate, Direction::Asc),
    );
    let cursors: Vec<(TaskQuery, String)> = {
        let mut conn = conn.borrow_mut();
        queries
            .into_iter()
            .map(|q| {
                let c = first_cursor(&mut conn, fx.user.id, &q);
                (q, c)
            })
            .collect()
    };
    let strategy = (
        any::<Index>(),
        prop_oneof![
            3 => prop::collection::vec(mutation(), 1..4).prop_map(Some),
            1 => Just(None),
        ],
        hostile_text(),
        1..=3i64,
    );
    run(384, strategy, |(index, mutations, garbage, limit)| {
        let mut guard = conn.borrow_mut();
        let conn: &mut PgConnection = &mut guard;
        let (query, real) = index.get(&cursors);
        let cursor = match &mutations {
            Some(mutations) => mutations.iter().fold(real.clone(), |c, m| m.apply(&c)),
            None => garbage,
        };
        let q = query.clone().limit(limit).after(&cursor);
        list_pages(
            conn,
            fx.user.id,
            &q,
            "TaskRepo::list after a damaged cursor",
        )?;
        // The same cursor as another user, with the filters of another query.
        let as_other = TaskRepo::list(conn, fx.other.id, &q);
        prop_assert!(
            matches!(&as_other, Err(e) if e.is_validation()),
            "another user's cursor: {}",
            match &as_other {
                Ok(page) => format!("Ok with {} rows", page.items.len()),
                Err(e) => format!("{e:?}"),
            }
        );
        Ok(())
    });
    // The real cursors still work.
    let mut conn = conn.borrow_mut();
    for (query, cursor) in &cursors {
        TaskRepo::list(&mut conn, fx.user.id, &query.clone().after(cursor))
            .unwrap_or_else(|e| panic!("{query:?}: {e:?}"));
    }
}

// ---------------------------------------------------------------------------------------
// The cargo-fuzz targets' bodies (fuzz/), without nightly
// ---------------------------------------------------------------------------------------

#[cfg(feature = "fuzzing")]
#[path = "../../fuzz/src/lib.rs"]
mod fuzz_checks;

#[cfg(feature = "fuzzing")]
mod fuzz_smoke {
    use super::fuzz_checks::{
        cursor_target, decode_cursor, normalize_search, seal_cursor, search_target, title_key,
    };
    use super::*;

    fn id() -> [u8; 16] {
        *Uuid::now_v7().as_bytes()
    }

    /// Well-formed keys of every sort, sealed: all accepted, and only for their own sort
    /// (`decode_cursor` panics otherwise). Fails when the cursor format changes under
    /// `seal_cursor`, which would leave the fuzzer stuck at the checksum.
    #[test]
    fn sealed_well_formed_cursors_are_accepted() {
        let micros = 1_700_000_000_123_456i64.to_be_bytes();
        let title = "Zoë's \"list\"";
        let keys: Vec<(u8, Vec<u8>)> = vec![
            (0, micros.to_vec()),
            (1, micros.to_vec()),
            (2, vec![0]),
            (2, [&[1u8][..], &micros].concat()),
            (3, vec![2]),
            (4, title_key(title)),
            (5, 0.25f32.to_bits().to_be_bytes().to_vec()),
        ];
        for (sort, key) in keys {
            for direction in [0, 1] {
                let body = [&key[..], &id()].concat();
                let text = seal_cursor(sort, direction, &body);
                assert!(decode_cursor(&text), "sort {sort} direction {direction}");
                assert!(decode_cursor(&format!(" {text}\n")), "trimmed");
                // Not accepted for any other header.
                assert!(!decode_cursor(&seal_cursor(sort, 2, &body)));
                assert!(!decode_cursor(&seal_cursor(6, direction, &body)));
                // One byte more or less is malformed.
                assert!(!decode_cursor(&seal_cursor(sort, direction, &body[1..])));
                assert!(!decode_cursor(&seal_cursor(
                    sort,
                    direction,
                    &[&body[..], &[0]].concat()
                )));
            }
        }
    }

    #[test]
    fn the_cursor_fuzz_target_holds_over_generated_inputs() {
        let keyed = (0..8u8, prop::collection::vec(any::<u8>(), 0..48)).prop_map(|(head, body)| {
            let mut data = vec![head];
            data.extend(body);
            data
        });
        let strategy = prop_oneof![
            2 => prop::collection::vec(any::<u8>(), 0..96),
            1 => hostile_text().prop_map(String::into_bytes),
            1 => "[A-Za-z0-9_-]{0,80}".prop_map(String::into_bytes),
            2 => keyed,
            // Headers of the query decode_cursor uses, with well-formed-ish keys.
            2 => (0..6u8, 0..2u8, prop::collection::vec(any::<u8>(), 0..8), any::<i64>())
                .prop_map(|(sort, direction, tag, n)| {
                    let body = [&tag[..], &n.to_be_bytes(), &id()].concat();
                    seal_cursor(sort, direction, &body).into_bytes()
                }),
        ];
        run(3000, strategy, |data| {
            cursor_target(&data);
            Ok(())
        });
    }

    #[test]
    fn the_search_fuzz_target_holds_over_generated_inputs() {
        let dashes = prop::sample::select(vec![
            "-", "--", "- ", " -", "-\t", "-\u{a0}", "-(", "-!", "-<", "\"", "\" ", " ", "a",
            "alpha", "a-b", "-a", "\0", "😀", "\u{3000}", "or", "|", "&", "é", "\u{200b}",
        ]);
        let strategy = prop_oneof![
            3 => prop::collection::vec(dashes, 0..64).prop_map(|p| p.concat().into_bytes()),
            2 => hostile_text().prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..128),
            1 => (prop::sample::select(vec!["-", "- ", "a", "\"", "é"]), 995..1005usize)
                .prop_map(|(p, n)| p.chars().cycle().take(n).collect::<String>().into_bytes()),
        ];
        run(3000, strategy, |data| {
            search_target(&data);
            Ok(())
        });
    }

    /// The hook's checks can fail: a search hook that let two negations through, or
    /// lost a word, would panic. Spot checks of its verdicts on known inputs.
    #[test]
    fn the_search_hook_reports_what_list_sends() {
        assert_eq!(normalize_search("").unwrap(), None);
        assert_eq!(normalize_search(" \0 ").unwrap(), None);
        assert_eq!(normalize_search("--x").unwrap().as_deref(), Some(" x"));
        assert_eq!(normalize_search("---x").unwrap().as_deref(), Some("-x"));
        assert_eq!(normalize_search("a--b").unwrap().as_deref(), Some("a--b"));
        assert_eq!(
            normalize_search("\"- -\"").unwrap().as_deref(),
            Some("\"- -\"")
        );
        assert!(normalize_search(&"a".repeat(1001))
            .unwrap_err()
            .is_validation());
    }
}
