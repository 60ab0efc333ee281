//! HabitRepo against real PostgreSQL: CRUD, user isolation, hostile input, the
//! schedule's CHECK, concurrent check-ins, due days and streaks against models in Rust.
//!
//! A file per subject; the helpers they share are here.

mod check_ins;
mod crud;
mod hostile_input;
mod streaks;

use chrono::{Datelike, NaiveDate, Weekday};
use diesel::RunQueryDsl;
use proptest::prelude::*;
use todo_store::{Error, Habit, HabitRepo, NewHabit, PgConnection, Schedule, User};

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

fn check_in_rows(conn: &mut PgConnection) -> i64 {
    diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT count(*) FROM habit_check_ins)",
    ))
    .get_result(conn)
    .unwrap()
}
