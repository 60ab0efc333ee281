//! Due days and streaks against models in Rust; the habit statements are prepared once.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use diesel::sql_types::{Date, Uuid as SqlUuid};
use proptest::test_runner::TestRunner;
use todo_store::testing::{plans, TestDb};
use todo_store::HabitId;
use todo_store::{HabitPatch, Streak};

use crate::support::backend::assert_prepared_once;
use crate::support::fixtures;

use super::*;

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
        let due: Vec<HabitId> = HabitRepo::due_on(&mut conn, user.id, day)
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect();
        let expected: Vec<HabitId> = habits
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
