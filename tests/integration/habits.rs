//! HabitRepo against real PostgreSQL: CRUD, user isolation, hostile input, the
//! schedule's CHECK, concurrent check-ins, due days and streaks against models in Rust.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveDate, Weekday};
use diesel::sql_types::{Date, Text, Uuid as SqlUuid};
use diesel::RunQueryDsl;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use todo_store::testing::{plans, TestDb};
use todo_store::{
    ConflictKind, Error, Habit, HabitPatch, HabitRepo, NewHabit, PgConnection, Schedule, Streak,
    User,
};
use uuid::Uuid;

use crate::support::backend::assert_prepared_once;
use crate::support::fixtures;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// 2026-01-05, a Monday.
fn monday() -> NaiveDate {
    date(2026, 1, 5)
}

fn mon_thu() -> Schedule {
    Schedule::Weekly {
        days: vec![Weekday::Mon, Weekday::Thu],
    }
}

fn habit(conn: &mut PgConnection, user: &User, schedule: Schedule) -> Habit {
    HabitRepo::create(conn, user.id, &NewHabit::new("Run", schedule)).expect("create habit")
}

fn check_in_all(conn: &mut PgConnection, user: &User, habit: &Habit, days: &[NaiveDate]) {
    for &day in days {
        HabitRepo::check_in(conn, user.id, habit.id, day).expect("check in");
    }
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: todo_store::Result<T>) {
    match result {
        Err(Error::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(field: &str, result: todo_store::Result<T>) {
    match result {
        Err(Error::Validation { field: f, .. }) if f == field => {}
        other => panic!("expected Validation on {field}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// CRUD

#[test]
fn create_returns_the_stored_habit_with_defaults() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let new = NewHabit::new(
        "  Run  ",
        Schedule::Weekly {
            days: vec![Weekday::Thu, Weekday::Mon, Weekday::Thu],
        },
    )
    .description("5 km");
    let habit = HabitRepo::create(&mut conn, user.id, &new).unwrap();
    assert_eq!(habit.name, "Run");
    assert_eq!(habit.description.as_deref(), Some("5 km"));
    assert_eq!(habit.schedule, mon_thu(), "days deduplicated, Monday first");
    assert!(habit.is_active);
    assert_eq!(habit.version, 1);
    assert_eq!(habit.user_id, user.id);
    assert_eq!(habit.id.get_version_num(), 7);
    assert_eq!(HabitRepo::get(&mut conn, user.id, habit.id).unwrap(), habit);
    let stored: String = diesel::select(diesel::dsl::sql::<Text>(&format!(
        "(SELECT schedule::text FROM habits WHERE id = '{}')",
        habit.id
    )))
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(
        stored,
        r#"{"v": 1, "days": ["mon", "thu"], "kind": "weekly"}"#
    );
}

#[test]
fn a_habit_of_a_missing_user_is_not_found() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let missing = Uuid::now_v7();
    match HabitRepo::create(&mut conn, missing, &NewHabit::new("Run", Schedule::Daily)) {
        Err(Error::NotFound {
            entity: "user",
            key,
        }) => assert_eq!(key, missing.to_string()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn update_changes_what_the_patch_says_and_checks_the_version() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let created = HabitRepo::create(
        &mut conn,
        user.id,
        &NewHabit::new("Read", Schedule::Daily).description("20 pages"),
    )
    .unwrap();
    let every_third = Schedule::EveryNDays {
        n: 3,
        start: monday(),
    };
    let patch = HabitPatch {
        name: Some(" Read more ".into()),
        schedule: Some(every_third.clone()),
        expected_version: Some(1),
        ..Default::default()
    };
    let updated = HabitRepo::update(&mut conn, user.id, created.id, &patch).unwrap();
    assert_eq!(updated.name, "Read more");
    assert_eq!(updated.schedule, every_third);
    assert_eq!(
        updated.description.as_deref(),
        Some("20 pages"),
        "unchanged"
    );
    assert!(updated.is_active);
    assert_eq!(updated.version, 2);
    assert!(updated.updated_at > created.updated_at);
    assert_eq!(updated.created_at, created.created_at);

    let pause = HabitPatch {
        is_active: Some(false),
        description: Some(None),
        ..Default::default()
    };
    let paused = HabitRepo::update(&mut conn, user.id, created.id, &pause).unwrap();
    assert!(!paused.is_active);
    assert_eq!(paused.description, None);
    assert_eq!(paused.version, 3);

    let stale = HabitPatch {
        name: Some("Stale".into()),
        expected_version: Some(1),
        ..Default::default()
    };
    match HabitRepo::update(&mut conn, user.id, created.id, &stale) {
        Err(Error::Conflict {
            kind: ConflictKind::StaleVersion { expected, actual },
        }) => assert_eq!((expected, actual), (1, 3)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        HabitRepo::get(&mut conn, user.id, created.id).unwrap(),
        paused
    );
    assert_not_found(HabitRepo::update(
        &mut conn,
        user.id,
        Uuid::now_v7(),
        &stale,
    ));
}

#[test]
fn list_is_oldest_first_and_delete_removes_the_habit_and_its_check_ins() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let habits: Vec<Habit> = (0..3)
        .map(|_| habit(&mut conn, &user, Schedule::Daily))
        .collect();
    assert_eq!(HabitRepo::list(&mut conn, user.id).unwrap(), habits);
    check_in_all(&mut conn, &user, &habits[1], &[monday()]);
    HabitRepo::delete(&mut conn, user.id, habits[1].id).unwrap();
    assert_not_found(HabitRepo::get(&mut conn, user.id, habits[1].id));
    assert_not_found(HabitRepo::delete(&mut conn, user.id, habits[1].id));
    assert_eq!(
        HabitRepo::list(&mut conn, user.id).unwrap(),
        [habits[0].clone(), habits[2].clone()]
    );
    assert_eq!(
        check_in_rows(&mut conn),
        0,
        "the check-in went with its habit"
    );
    // Deleting the user cascades to habits and check-ins.
    check_in_all(&mut conn, &user, &habits[0], &[monday()]);
    todo_store::UserRepo::delete(&mut conn, user.id).unwrap();
    assert!(HabitRepo::list(&mut conn, user.id).unwrap().is_empty());
    assert_eq!(check_in_rows(&mut conn), 0);
}

fn check_in_rows(conn: &mut PgConnection) -> i64 {
    diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT count(*) FROM habit_check_ins)",
    ))
    .get_result(conn)
    .unwrap()
}

// ---------------------------------------------------------------------------------------
// Isolation

#[test]
fn another_users_habit_is_not_found_by_any_call_and_nothing_changes() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let owner = fixtures::user(&mut conn);
    let other = fixtures::user(&mut conn);
    let habit = habit(&mut conn, &owner, Schedule::Daily);
    check_in_all(&mut conn, &owner, &habit, &[monday()]);
    let tuesday = monday().succ_opt().unwrap();
    let id = habit.id;
    let patch = HabitPatch {
        name: Some("Stolen".into()),
        ..Default::default()
    };
    let c = &mut conn;
    assert_not_found(HabitRepo::get(c, other.id, id));
    assert_not_found(HabitRepo::update(c, other.id, id, &patch));
    let versioned = HabitPatch {
        expected_version: Some(1),
        ..patch.clone()
    };
    assert_not_found(HabitRepo::update(c, other.id, id, &versioned));
    assert_not_found(HabitRepo::delete(c, other.id, id));
    assert_not_found(HabitRepo::check_in(c, other.id, id, tuesday));
    assert_not_found(HabitRepo::undo_check_in(c, other.id, id, monday()));
    assert_not_found(HabitRepo::check_ins(c, other.id, id, monday(), tuesday));
    assert_not_found(HabitRepo::streak(c, other.id, id, tuesday));
    assert!(HabitRepo::list(c, other.id).unwrap().is_empty());
    assert!(HabitRepo::due_on(c, other.id, monday()).unwrap().is_empty());
    // A missing habit is the same.
    let missing = Uuid::now_v7();
    assert_not_found(HabitRepo::check_in(c, owner.id, missing, monday()));
    assert_not_found(HabitRepo::streak(c, owner.id, missing, monday()));
    assert_not_found(HabitRepo::check_ins(
        c,
        owner.id,
        missing,
        monday(),
        tuesday,
    ));
    assert_not_found(HabitRepo::undo_check_in(c, owner.id, missing, monday()));

    assert_eq!(HabitRepo::get(c, owner.id, id).unwrap(), habit);
    assert_eq!(
        HabitRepo::check_ins(c, owner.id, id, monday(), tuesday).unwrap(),
        [monday()]
    );
    assert_eq!(HabitRepo::list(c, owner.id).unwrap(), [habit]);
}

// ---------------------------------------------------------------------------------------
// Hostile input

#[test]
fn bad_names_descriptions_schedules_and_days_are_invalid_and_write_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    for name in [
        "",
        "   ",
        "\u{200B}\u{FEFF}",
        "\u{3164}",
        "a\0b",
        &"x".repeat(101),
    ] {
        let new = NewHabit::new(name, Schedule::Daily);
        assert_invalid("name", HabitRepo::create(&mut conn, user.id, &new));
    }
    assert!(HabitRepo::create(
        &mut conn,
        user.id,
        &NewHabit::new("é".repeat(100), Schedule::Daily)
    )
    .is_ok());
    let long = NewHabit::new("Run", Schedule::Daily).description("x".repeat(10_001));
    assert_invalid("description", HabitRepo::create(&mut conn, user.id, &long));
    let start = monday();
    for schedule in [
        Schedule::Weekly { days: vec![] },
        Schedule::EveryNDays { n: 0, start },
        Schedule::EveryNDays { n: 366, start },
        Schedule::EveryNDays { n: u32::MAX, start },
        Schedule::EveryNDays {
            n: 3,
            start: date(0, 1, 1),
        },
        Schedule::EveryNDays {
            n: 3,
            start: NaiveDate::MIN,
        },
        Schedule::EveryNDays {
            n: 3,
            start: NaiveDate::MAX,
        },
    ] {
        let new = NewHabit::new("Run", schedule.clone());
        assert_invalid("schedule", HabitRepo::create(&mut conn, user.id, &new));
    }
    assert_eq!(HabitRepo::list(&mut conn, user.id).unwrap().len(), 1);

    let habit = habit(&mut conn, &user, Schedule::Daily);
    let bad_patches = [
        HabitPatch {
            name: Some("\u{2060}".into()),
            ..Default::default()
        },
        HabitPatch {
            schedule: Some(Schedule::Weekly { days: vec![] }),
            ..Default::default()
        },
        HabitPatch {
            expected_version: Some(0),
            ..Default::default()
        },
    ];
    for patch in &bad_patches {
        let err = HabitRepo::update(&mut conn, user.id, habit.id, patch).unwrap_err();
        assert!(err.is_validation(), "{patch:?}: {err}");
    }
    assert_eq!(HabitRepo::get(&mut conn, user.id, habit.id).unwrap(), habit);

    // PostgreSQL's dates start on 4714-11-24 BC.
    let first = date(-4713, 11, 24);
    let before = first.pred_opt().unwrap();
    let c = &mut conn;
    assert_invalid("day", HabitRepo::check_in(c, user.id, habit.id, before));
    assert_invalid(
        "day",
        HabitRepo::check_in(c, user.id, habit.id, NaiveDate::MIN),
    );
    assert_invalid(
        "day",
        HabitRepo::undo_check_in(c, user.id, habit.id, before),
    );
    assert_invalid("day", HabitRepo::due_on(c, user.id, before));
    assert_invalid("today", HabitRepo::streak(c, user.id, habit.id, before));
    assert_invalid(
        "from",
        HabitRepo::check_ins(c, user.id, habit.id, before, first),
    );
    assert_invalid(
        "from",
        HabitRepo::check_ins(c, user.id, habit.id, monday(), first),
    );
    // The extremes that PostgreSQL holds work.
    for day in [first, NaiveDate::MAX] {
        assert!(HabitRepo::check_in(c, user.id, habit.id, day).unwrap());
        assert_eq!(
            HabitRepo::check_ins(c, user.id, habit.id, day, day).unwrap(),
            [day]
        );
        assert_eq!(HabitRepo::due_on(c, user.id, day).unwrap().len(), 2);
    }
    let streak = HabitRepo::streak(c, user.id, habit.id, NaiveDate::MAX).unwrap();
    assert_eq!(
        streak,
        Streak {
            current: 1,
            longest: 1
        }
    );
}

/// `schedule` (JSON text) inserted by plain SQL, as another client would.
fn insert_raw(conn: &mut PgConnection, user: &User, schedule: &str) -> diesel::QueryResult<Uuid> {
    let id = Uuid::now_v7();
    diesel::sql_query(
        "INSERT INTO habits (id, user_id, name, schedule) VALUES ($1, $2, 'Raw', $3::jsonb)",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<SqlUuid, _>(user.id)
    .bind::<Text, _>(schedule)
    .execute(conn)
    .map(|_| id)
}

#[test]
fn the_check_rejects_schedules_of_any_other_shape_written_by_plain_sql() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    for bad in [
        // Not an object.
        "null",
        "[]",
        r#"[{"v":1,"kind":"daily"}]"#,
        r#""daily""#,
        "1",
        "true",
        "{}",
        // The version.
        r#"{"kind":"daily"}"#,
        r#"{"v":2,"kind":"daily"}"#,
        r#"{"v":0,"kind":"daily"}"#,
        r#"{"v":"1","kind":"daily"}"#,
        r#"{"v":1.5,"kind":"daily"}"#,
        r#"{"v":1e400,"kind":"daily"}"#,
        r#"{"v":null,"kind":"daily"}"#,
        // The kind.
        r#"{"v":1}"#,
        r#"{"v":1,"kind":"monthly"}"#,
        r#"{"v":1,"kind":"Daily"}"#,
        r#"{"v":1,"kind":1}"#,
        r#"{"v":1,"kind":["daily"]}"#,
        r#"{"v":1,"kind":"daily","days":["mon"]}"#,
        // Weekly days.
        r#"{"v":1,"kind":"weekly"}"#,
        r#"{"v":1,"kind":"weekly","days":[]}"#,
        r#"{"v":1,"kind":"weekly","days":"mon"}"#,
        r#"{"v":1,"kind":"weekly","days":{"mon":true}}"#,
        r#"{"v":1,"kind":"weekly","days":["Mon"]}"#,
        r#"{"v":1,"kind":"weekly","days":["monday"]}"#,
        r#"{"v":1,"kind":"weekly","days":["lun"]}"#,
        r#"{"v":1,"kind":"weekly","days":["mon","mon"]}"#,
        r#"{"v":1,"kind":"weekly","days":[1]}"#,
        r#"{"v":1,"kind":"weekly","days":[null]}"#,
        r#"{"v":1,"kind":"weekly","days":["mon"],"n":1}"#,
        // Every n days.
        r#"{"v":1,"kind":"every_n_days","n":3}"#,
        r#"{"v":1,"kind":"every_n_days","start":"2026-01-05"}"#,
        r#"{"v":1,"kind":"every_n_days","n":"3","start":"2026-01-05"}"#,
        r#"{"v":1,"kind":"every_n_days","n":3.00000000000001,"start":"2026-01-05"}"#,
        r#"{"v":1,"kind":"every_n_days","n":3.5,"start":"2026-01-05"}"#,
        r#"{"v":1,"kind":"every_n_days","n":0,"start":"2026-01-05"}"#,
        r#"{"v":1,"kind":"every_n_days","n":-3,"start":"2026-01-05"}"#,
        r#"{"v":1,"kind":"every_n_days","n":366,"start":"2026-01-05"}"#,
        r#"{"v":1,"kind":"every_n_days","n":4294967295,"start":"2026-01-05"}"#,
        r#"{"v":1,"kind":"every_n_days","n":1e400,"start":"2026-01-05"}"#,
        r#"{"v":1,"kind":"every_n_days","n":null,"start":"2026-01-05"}"#,
        r#"{"v":1,"kind":"every_n_days","n":3,"start":20260105}"#,
        r#"{"v":1,"kind":"every_n_days","n":3,"start":"2026-02-29"}"#,
        r#"{"v":1,"kind":"every_n_days","n":3,"start":"1900-02-29"}"#,
        r#"{"v":1,"kind":"every_n_days","n":3,"start":"2026-13-01"}"#,
        r#"{"v":1,"kind":"every_n_days","n":3,"start":"2026-00-10"}"#,
        r#"{"v":1,"kind":"every_n_days","n":3,"start":"2026-04-31"}"#,
        r#"{"v":1,"kind":"every_n_days","n":3,"start":"0000-01-01"}"#,
        r#"{"v":1,"kind":"every_n_days","n":3,"start":"2026-1-5"}"#,
        r#"{"v":1,"kind":"every_n_days","n":3,"start":"05/01/2026"}"#,
        r#"{"v":1,"kind":"every_n_days","n":3,"start":"2026-01-05T00:00:00"}"#,
        r#"{"v":1,"kind":"every_n_days","n":3,"start":"+2026-01-05"}"#,
        r#"{"v":1,"kind":"every_n_days","n":3,"start":"2026-01-05\n"}"#,
        r#"{"v":1,"kind":"every_n_days","n":3,"start":"infinity"}"#,
        r#"{"v":1,"kind":"every_n_days","n":3,"start":"epoch"}"#,
        r#"{"v":1,"kind":"every_n_days","n":3,"start":"today"}"#,
        r#"{"v":1,"kind":"every_n_days","n":3,"start":""}"#,
        r#"{"v":1,"kind":"every_n_days","n":3,"start":"2026-01-05","days":["mon"]}"#,
    ] {
        let err = insert_raw(&mut conn, &user, bad).expect_err(bad);
        match Error::from(err) {
            Error::Validation { field, .. } if field == "schedule" => {}
            other => panic!("{bad}: expected the schedule CHECK, got {other:?}"),
        }
        // The crate reads the JSON shape exactly as the CHECK does (serde_json cannot
        // even hold 1e400).
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(bad) {
            assert!(Schedule::from_json(&value).is_err(), "{bad}");
        }
    }
    assert!(HabitRepo::list(&mut conn, user.id).unwrap().is_empty());
}

#[test]
fn valid_schedules_written_by_plain_sql_read_back_as_the_right_schedule() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    for (json, expected) in [
        (r#"{"kind":"daily","v":1}"#, Schedule::Daily),
        (
            r#"{"v":1,"kind":"weekly","days":["sun","thu","mon"]}"#,
            Schedule::Weekly {
                days: vec![Weekday::Mon, Weekday::Thu, Weekday::Sun],
            },
        ),
        (
            r#"{"v":1,"kind":"every_n_days","n":365,"start":"2024-02-29"}"#,
            Schedule::EveryNDays {
                n: 365,
                start: date(2024, 2, 29),
            },
        ),
        // PostgreSQL stores 7e0 as the number 7, and keeps 7.0 (the same number).
        (
            r#"{"start":"0001-01-01","n":7e0,"kind":"every_n_days","v":1}"#,
            Schedule::EveryNDays {
                n: 7,
                start: date(1, 1, 1),
            },
        ),
        (
            r#"{"start":"0001-01-01","n":7.0,"kind":"every_n_days","v":1.0}"#,
            Schedule::EveryNDays {
                n: 7,
                start: date(1, 1, 1),
            },
        ),
    ] {
        let id = insert_raw(&mut conn, &user, json).expect(json);
        let habit = HabitRepo::get(&mut conn, user.id, id).unwrap();
        assert_eq!(habit.schedule, expected, "{json}");
    }
}

// ---------------------------------------------------------------------------------------
// Check-ins

#[test]
fn check_ins_are_idempotent_undoable_and_listed_in_their_range() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let habit = habit(&mut conn, &user, mon_thu());
    let c = &mut conn;
    let days: Vec<NaiveDate> = (0..10).map(|i| monday() + chrono::Days::new(i)).collect();
    for &day in days.iter().rev() {
        assert!(HabitRepo::check_in(c, user.id, habit.id, day).unwrap());
        assert!(!HabitRepo::check_in(c, user.id, habit.id, day).unwrap());
    }
    assert_eq!(
        HabitRepo::check_ins(c, user.id, habit.id, days[0], days[9]).unwrap(),
        days
    );
    assert_eq!(
        HabitRepo::check_ins(c, user.id, habit.id, days[2], days[4]).unwrap(),
        &days[2..=4]
    );
    assert_eq!(
        HabitRepo::check_ins(c, user.id, habit.id, days[3], days[3]).unwrap(),
        [days[3]]
    );
    let later = date(2027, 1, 1);
    assert!(HabitRepo::check_ins(c, user.id, habit.id, later, later)
        .unwrap()
        .is_empty());
    assert!(HabitRepo::undo_check_in(c, user.id, habit.id, days[3]).unwrap());
    assert!(!HabitRepo::undo_check_in(c, user.id, habit.id, days[3]).unwrap());
    assert_eq!(
        HabitRepo::check_ins(c, user.id, habit.id, days[2], days[4]).unwrap(),
        [days[2], days[4]]
    );
    // Check-ins do not change the habit.
    assert_eq!(HabitRepo::get(c, user.id, habit.id).unwrap(), habit);
}

#[test]
fn concurrent_check_ins_of_one_day_make_exactly_one() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let habit = habit(&mut conn, &user, Schedule::Daily);
    drop(conn);
    for round in 0..5u64 {
        let day = monday() + chrono::Days::new(round);
        let barrier = std::sync::Barrier::new(8);
        let made: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let mut conn = db.conn();
                        barrier.wait();
                        HabitRepo::check_in(&mut conn, user.id, habit.id, day).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(made.iter().filter(|&&m| m).count(), 1, "{made:?}");
    }
    let mut conn = db.conn();
    assert_eq!(check_in_rows(&mut conn), 5);
}

// ---------------------------------------------------------------------------------------
// Due days and streaks, against models in Rust

/// The model of a schedule: written here from the rules, not with the crate's code.
fn model_is_due(schedule: &Schedule, day: NaiveDate) -> bool {
    match schedule {
        Schedule::Daily => true,
        Schedule::Weekly { days } => days.iter().any(|d| *d == day.weekday()),
        Schedule::EveryNDays { n, start } => {
            day >= *start && (day.num_days_from_ce() - start.num_days_from_ce()) % *n as i32 == 0
        }
    }
}

/// The model of a streak: walk the scheduled days from the first counted check-in.
fn model_streak(schedule: &Schedule, done: &BTreeSet<NaiveDate>, today: NaiveDate) -> Streak {
    let Some(first) = done
        .iter()
        .copied()
        .find(|d| *d <= today && model_is_due(schedule, *d))
    else {
        return Streak::default();
    };
    let (mut run, mut longest) = (0, 0);
    for day in first.iter_days().take_while(|d| *d <= today) {
        if !model_is_due(schedule, day) {
            continue;
        }
        if done.contains(&day) {
            run += 1;
            longest = longest.max(run);
        } else if day < today {
            run = 0;
        }
    }
    Streak {
        current: run,
        longest,
    }
}

#[test]
fn due_on_agrees_with_the_model_for_every_kind_of_schedule() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let schedules = [
        Schedule::Daily,
        mon_thu(),
        Schedule::Weekly {
            days: vec![Weekday::Sun],
        },
        Schedule::Weekly {
            days: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Sat,
                Weekday::Sun,
            ],
        },
        Schedule::EveryNDays {
            n: 1,
            start: monday(),
        },
        Schedule::EveryNDays {
            n: 3,
            start: monday(),
        },
        Schedule::EveryNDays {
            n: 7,
            start: date(2026, 1, 20),
        },
        Schedule::EveryNDays {
            n: 365,
            start: date(2025, 12, 31),
        },
    ];
    let habits: Vec<Habit> = schedules
        .iter()
        .map(|s| habit(&mut conn, &user, s.clone()))
        .collect();
    let paused = habit(&mut conn, &user, Schedule::Daily);
    let pause = HabitPatch {
        is_active: Some(false),
        ..Default::default()
    };
    HabitRepo::update(&mut conn, user.id, paused.id, &pause).unwrap();
    // Across a leap day, a year end and more than a year.
    let start = date(2023, 12, 20);
    for day in start.iter_days().take(800) {
        let due: Vec<Uuid> = HabitRepo::due_on(&mut conn, user.id, day)
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect();
        let expected: Vec<Uuid> = habits
            .iter()
            .filter(|h| model_is_due(&h.schedule, day))
            .map(|h| h.id)
            .collect();
        assert_eq!(due, expected, "{day} ({})", day.weekday());
        for h in &habits {
            assert_eq!(h.schedule.is_due_on(day), model_is_due(&h.schedule, day));
        }
    }
}

#[test]
fn streaks_count_scheduled_days_only() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let habit = habit(&mut conn, &user, mon_thu());
    let day = |offset: u64| monday() + chrono::Days::new(offset);
    let streak =
        |conn: &mut PgConnection, today| HabitRepo::streak(conn, user.id, habit.id, today).unwrap();
    assert_eq!(streak(&mut conn, day(0)), Streak::default());
    // Mon, Thu, Mon, Thu: four in a row, the days between do not break it; a check-in
    // on Saturday (unscheduled) neither counts nor breaks.
    check_in_all(
        &mut conn,
        &user,
        &habit,
        &[day(0), day(3), day(5), day(7), day(10)],
    );
    assert_eq!(
        streak(&mut conn, day(10)),
        Streak {
            current: 4,
            longest: 4
        }
    );
    assert_eq!(
        streak(&mut conn, day(12)),
        Streak {
            current: 4,
            longest: 4
        }
    );
    // Monday day(14), scheduled and not checked in yet, does not break it...
    assert_eq!(
        streak(&mut conn, day(14)),
        Streak {
            current: 4,
            longest: 4
        }
    );
    // ...but once it is over, it did.
    assert_eq!(
        streak(&mut conn, day(15)),
        Streak {
            current: 0,
            longest: 4
        }
    );
    // Seen from an earlier day, later check-ins do not count.
    assert_eq!(
        streak(&mut conn, day(3)),
        Streak {
            current: 2,
            longest: 2
        }
    );
    check_in_all(&mut conn, &user, &habit, &[day(17)]);
    assert_eq!(
        streak(&mut conn, day(17)),
        Streak {
            current: 1,
            longest: 4
        }
    );
    // Far in the future: the gap holds missed days.
    assert_eq!(
        streak(&mut conn, date(9999, 1, 1)),
        Streak {
            current: 0,
            longest: 4
        }
    );
}

#[test]
fn streaks_agree_with_the_model_over_random_schedules_and_check_ins() {
    let db = TestDb::new();
    let conn = RefCell::new(db.conn());
    let user = fixtures::user(&mut conn.borrow_mut());
    // Around today, and before the Monday the statement counts weekdays and days from
    // (2000-01-03), where `%` of the negative number of days since it is negative: just
    // before it, across the Unix epoch, and in year 1 (the first date a schedule's
    // start may have).
    let bases = prop_oneof![
        Just(date(2026, 1, 1)),
        Just(date(1999, 12, 20)),
        Just(date(1969, 12, 25)),
        Just(date(1, 1, 20)),
    ];
    let strategy = bases.prop_flat_map(|base| {
        let schedule = prop_oneof![
            Just(Schedule::Daily),
            prop::collection::vec(0..7u8, 1..4).prop_map(|days| Schedule::Weekly {
                days: days
                    .into_iter()
                    .map(|d| Weekday::try_from(d).unwrap())
                    .collect(),
            }),
            (1..=9u32, -15..15i64).prop_map(move |(n, offset)| Schedule::EveryNDays {
                n,
                start: base + chrono::Duration::days(offset),
            }),
        ];
        (
            Just(base),
            schedule,
            prop::collection::btree_set(0..60u64, 0..45),
            0..70u64,
        )
    });
    let config = ProptestConfig {
        cases: 250,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let started = Instant::now();
    let result = TestRunner::new(config).run(&strategy, |(base, schedule, offsets, today)| {
        let mut guard = conn.borrow_mut();
        let conn: &mut PgConnection = &mut guard;
        let habit = habit(conn, &user, schedule.clone());
        let done: BTreeSet<NaiveDate> = offsets
            .iter()
            .map(|&o| base + chrono::Days::new(o))
            .collect();
        let days: Vec<NaiveDate> = done.iter().copied().collect();
        check_in_all(conn, &user, &habit, &days);
        let today = base + chrono::Days::new(today);
        let got = HabitRepo::streak(conn, user.id, habit.id, today).unwrap();
        prop_assert_eq!(got, model_streak(&schedule, &done, today));
        Ok(())
    });
    result.unwrap();
    eprintln!("250 streak cases in {:?}", started.elapsed());
}

#[test]
fn a_five_year_daily_streak_is_counted_in_one_fast_query() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let habit = habit(&mut conn, &user, Schedule::Daily);
    let first = date(2021, 1, 1);
    let today = first + chrono::Days::new(1825);
    diesel::sql_query(
        "INSERT INTO habit_check_ins (habit_id, day) \
         SELECT $1, d::date FROM generate_series($2::date, $3::date, interval '1 day') AS d",
    )
    .bind::<SqlUuid, _>(habit.id)
    .bind::<Date, _>(first)
    .bind::<Date, _>(today)
    .execute(&mut conn)
    .unwrap();
    assert_eq!(check_in_rows(&mut conn), 1826);
    let five_years = Streak {
        current: 1826,
        longest: 1826,
    };
    assert_eq!(
        HabitRepo::streak(&mut conn, user.id, habit.id, today).unwrap(),
        five_years
    );
    // Warm, best of 20 through the prepared statement.
    let best = (0..20)
        .map(|_| {
            let started = Instant::now();
            HabitRepo::streak(&mut conn, user.id, habit.id, today).unwrap();
            started.elapsed()
        })
        .min()
        .unwrap_or(Duration::ZERO);
    let plan = plans::streak_analyzed(&mut conn, user.id, habit.id, today).unwrap();
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let execution_ms = plan[0]["Execution Time"].as_f64().unwrap();
    let planning_ms = plan[0]["Planning Time"].as_f64().unwrap();
    eprintln!(
        "streak of 1826 daily check-ins: EXPLAIN ANALYZE execution {execution_ms:.2} ms, \
         planning {planning_ms:.2} ms; the call, best of 20: {best:?}"
    );
    // A missed day in the middle splits it.
    let missed = first + chrono::Days::new(1000);
    assert!(HabitRepo::undo_check_in(&mut conn, user.id, habit.id, missed).unwrap());
    assert_eq!(
        HabitRepo::streak(&mut conn, user.id, habit.id, today).unwrap(),
        Streak {
            current: 825,
            longest: 1000
        }
    );
}

#[test]
fn the_habit_statements_are_prepared_once_and_reused() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let habit = habit(&mut conn, &user, Schedule::Daily);
    let run = |conn: &mut PgConnection| {
        HabitRepo::get(conn, user.id, habit.id).unwrap();
        HabitRepo::list(conn, user.id).unwrap();
        HabitRepo::due_on(conn, user.id, monday()).unwrap();
        HabitRepo::check_in(conn, user.id, habit.id, monday()).unwrap();
        HabitRepo::check_ins(conn, user.id, habit.id, monday(), monday()).unwrap();
        HabitRepo::streak(conn, user.id, habit.id, monday()).unwrap();
        HabitRepo::undo_check_in(conn, user.id, habit.id, monday()).unwrap();
        let patch = HabitPatch {
            name: Some("Walk".into()),
            ..Default::default()
        };
        HabitRepo::update(conn, user.id, habit.id, &patch).unwrap();
    };
    assert_prepared_once(
        &mut conn,
        run,
        &[
            "habit_is_due",
            "INSERT INTO habit_check_ins",
            "DELETE FROM habit_check_ins",
            "number - row_number() OVER (ORDER BY day)",
            "UPDATE habits SET",
            "LEFT OUTER JOIN \"habit_check_ins\"",
        ],
    );
}
