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
//!
//! A file per input; the invariant, the hostile values and the fixture they share are
//! here.

mod cursors;
mod queries;
mod tasks;
mod users;

#[cfg(feature = "fuzzing")]
#[path = "../../../fuzz/src/lib.rs"]
mod fuzz_checks;

#[cfg(feature = "fuzzing")]
mod fuzz_smoke;

use std::fmt::Debug;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel::dsl::sql;
use diesel::sql_types::Text;
use diesel::RunQueryDsl;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use todo_store::UserId;
use todo_store::{
    Direction, Error, NewTask, NewUser, PgConnection, Priority, Task, TaskQuery, TaskRepo,
    TaskSort, User, UserRepo,
};
use uuid::Uuid;

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

/// Lists `query` and up to two following pages, then counts it: every call is `Ok` or
/// `Validation`, every row is `user`'s, and the database does not change.
fn list_pages(
    conn: &mut PgConnection,
    user: UserId,
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
    // The same content as new tasks: a `NewTask` is one task, so each gets a new id.
    let others: Vec<NewTask> = news[..3]
        .iter()
        .map(|new| new.clone().id(uuid::Uuid::now_v7().into()))
        .collect();
    let other_tasks =
        TaskRepo::create_many(conn, other.id, &others).expect("the other user's tasks");
    Fixture {
        user,
        other,
        tasks,
        other_tasks,
    }
}
