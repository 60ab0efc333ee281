//! The habit statements that diesel's DSL cannot say, each of fixed SQL so that it is
//! prepared once per connection: the columns of the versioned UPDATE of
//! [`super::owned`] (diesel does not cache its own UPDATE), and the check-in and streak
//! statements (CTEs, one round trip each).

use chrono::NaiveDate;
use diesel::pg::Pg;
use diesel::query_builder::AstPass;
use diesel::sql_types::{BigInt, Bool, Jsonb, Text};
use diesel::QueryResult;

use super::fragment::{self, Bind, FileStatement, SqlFile, Statement};
use super::owned::{self, OwnedTable};
use crate::models::{Habit, HabitChanges, HabitId, UserId};
use crate::schema::habits;

impl OwnedTable for habits::table {
    const NAME: &'static str = "habits";
    const ENTITY: &'static str = "habit";
    const WRITE_MARK: bool = false;
    type Id = HabitId;
    type Row = Habit;
    type Changes<'a> = HabitChanges<'a>;

    fn push_assignments<'b>(
        changes: &'b HabitChanges<'_>,
        out: &mut AstPass<'_, 'b, Pg>,
    ) -> QueryResult<()> {
        owned::set::<Text, _>(out, "name", &changes.name)?;
        owned::set_nullable::<Text, _>(out, "description", &changes.description)?;
        owned::set::<Jsonb, _>(out, "schedule", &changes.schedule)?;
        owned::set::<Bool, _>(out, "is_active", &changes.is_active)
    }
}

/// The habit `habit_id` of `user_id`, as the CTE `habit` (id, schedule) that the
/// statements below start from: empty for another user's habit.
fn habit_cte<ST>(user_id: UserId, habit_id: HabitId) -> Statement<'static, ST> {
    fragment::statement("WITH habit AS (SELECT id, schedule FROM habits WHERE id = ")
        .bind(Bind::Uuid(habit_id.into()))
        .sql(" AND user_id = ")
        .bind(Bind::Uuid(user_id.into()))
        .sql(")")
}

/// `(habit found, check-in inserted)`: the insert is `ON CONFLICT DO NOTHING`, so
/// concurrent check-ins of one day insert one row and the others report `false`.
pub(crate) fn check_in(
    user_id: UserId,
    habit_id: HabitId,
    day: NaiveDate,
) -> Statement<'static, (Bool, Bool)> {
    habit_cte(user_id, habit_id)
        .sql(", inserted AS (INSERT INTO habit_check_ins (habit_id, day) SELECT id, ")
        .bind(Bind::Date(day))
        .sql(
            " FROM habit ON CONFLICT DO NOTHING RETURNING 1) \
                 SELECT EXISTS (SELECT FROM habit), EXISTS (SELECT FROM inserted)",
        )
}

/// `(habit found, check-in deleted)`.
pub(crate) fn undo_check_in(
    user_id: UserId,
    habit_id: HabitId,
    day: NaiveDate,
) -> Statement<'static, (Bool, Bool)> {
    habit_cte(user_id, habit_id)
        .sql(
            ", deleted AS (DELETE FROM habit_check_ins \
                 WHERE habit_id = (SELECT id FROM habit) AND day = ",
        )
        .bind(Bind::Date(day))
        .sql(
            " RETURNING 1) \
                 SELECT EXISTS (SELECT FROM habit), EXISTS (SELECT FROM deleted)",
        )
}

/// `(habit found, current streak, longest streak)` of `habit_id` on `today`, in one
/// query, counted in scheduled days (the days `habit_is_due` is true on).
///
/// Every scheduled day gets a number: how many scheduled days come before it, counted
/// from a fixed Monday (2000-01-03) for daily and weekly schedules and from `start`
/// for every-n-days ones. Two check-ins on scheduled days are consecutive exactly when
/// their numbers are, so a run of them shares `number - row_number()` (gaps and
/// islands), and the current run is the one whose last number is at most one behind
/// the number `today` would have (a scheduled day missed since breaks it; today
/// itself, not checked in yet, does not).
///
/// The schedule is read once (CTE `s`), and the check-ins are numbered by one of three
/// branches, the one for the habit's kind (the others are cut by a one-time filter):
/// per check-in the server does integer arithmetic only, in index order, no function
/// of the JSON schedule per row. The work grows with the number of check-ins, never
/// with the span of days they cover. `n` is read as `habit_is_due` reads it, its value
/// rounded: the CHECK lets it be written `3.0` or `3.0000000000000000001`.
pub(crate) fn streak(
    user_id: UserId,
    habit_id: HabitId,
    today: NaiveDate,
) -> FileStatement<'static, StreakSql> {
    FileStatement::new(vec![
        Bind::Uuid(habit_id.into()),
        Bind::Uuid(user_id.into()),
        Bind::Date(today),
    ])
}

/// `habit_streak.sql`: the statement of [`streak`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreakSql;

impl SqlFile for StreakSql {
    const TEXT: &'static str = include_str!("habit_streak.sql");
    type SqlType = (Bool, BigInt, BigInt);
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn the_streak_file_has_its_three_parameters_in_order() {
        let pieces = fragment::split_at_parameters(StreakSql::TEXT).unwrap();
        assert_eq!(pieces.len(), 4, "habit id, user id, today");
        let sql = diesel::debug_query::<Pg, _>(&streak(
            Uuid::nil().into(),
            Uuid::max().into(),
            NaiveDate::from_ymd_opt(2026, 1, 8).unwrap(),
        ))
        .to_string();
        assert!(
            sql.contains("WHERE id = $1 AND user_id = $2") && sql.contains("$3::date AS today"),
            "{sql}"
        );
        assert!(
            sql.ends_with(
                "binds: [ffffffff-ffff-ffff-ffff-ffffffffffff, \
                 00000000-0000-0000-0000-000000000000, 2026-01-08]"
            ),
            "{sql}"
        );
    }
}
