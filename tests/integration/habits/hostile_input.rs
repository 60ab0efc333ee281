//! Hostile input, and the schedule's CHECK against schedules written by plain SQL.

use diesel::sql_types::{Text, Uuid as SqlUuid};
use todo_store::testing::TestDb;
use todo_store::HabitId;
use todo_store::{HabitPatch, Streak};
use uuid::Uuid;

use crate::support::fixtures;

use super::*;

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
fn insert_raw(
    conn: &mut PgConnection,
    user: &User,
    schedule: &str,
) -> diesel::QueryResult<HabitId> {
    let id = HabitId::from(Uuid::now_v7());
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
