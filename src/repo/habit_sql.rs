//! The habit statements that diesel's DSL cannot say, each of fixed SQL so that it is
//! prepared once per connection: the UPDATE (diesel does not cache its own), and the
//! check-in and streak statements (CTEs, one round trip each).

use chrono::NaiveDate;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Bool, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::fragment::{self, Bind, Statement};
use crate::models::{HabitChanges, Schedule};

/// `UPDATE habits ... WHERE id = $n AND user_id = $m [AND version = $k] RETURNING *`,
/// the same SQL for every patch (unchanged fields keep their value through COALESCE or
/// a flag), as `UpdateTask` for tasks.
pub(crate) struct UpdateHabit<'a> {
    habit_id: Uuid,
    user_id: Uuid,
    name: Option<&'a str>,
    set_description: bool,
    description: Option<&'a str>,
    schedule: Option<Schedule>,
    is_active: Option<bool>,
    expected_version: Option<i32>,
}

impl<'a> UpdateHabit<'a> {
    pub(crate) fn new(user_id: Uuid, habit_id: Uuid, changes: HabitChanges<'a>) -> Self {
        UpdateHabit {
            habit_id,
            user_id,
            name: changes.name,
            set_description: changes.description.is_some(),
            description: changes.description.flatten(),
            schedule: changes.schedule,
            is_active: changes.is_active,
            expected_version: changes.expected_version,
        }
    }
}

/// The static query id that lets diesel cache the prepared statement.
pub(crate) struct UpdateHabitQueryId;

impl QueryId for UpdateHabit<'_> {
    type QueryId = UpdateHabitQueryId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for UpdateHabit<'_> {
    type SqlType = (
        SqlUuid,
        SqlUuid,
        Text,
        Nullable<Text>,
        Jsonb,
        Bool,
        Timestamptz,
        Timestamptz,
        Int4,
    );
}

impl RunQueryDsl<PgConnection> for UpdateHabit<'_> {}

impl QueryFragment<Pg> for UpdateHabit<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("UPDATE habits SET name = COALESCE(");
        out.push_bind_param::<Nullable<Text>, _>(&self.name)?;
        out.push_sql(", name), description = CASE WHEN ");
        out.push_bind_param::<Bool, _>(&self.set_description)?;
        out.push_sql(" THEN ");
        out.push_bind_param::<Nullable<Text>, _>(&self.description)?;
        out.push_sql(" ELSE description END, schedule = COALESCE(");
        out.push_bind_param::<Nullable<Jsonb>, _>(&self.schedule)?;
        out.push_sql(", schedule), is_active = COALESCE(");
        out.push_bind_param::<Nullable<Bool>, _>(&self.is_active)?;
        // clock_timestamp(), not now(): updated_at moves even for a second update in the
        // same transaction.
        out.push_sql(
            ", is_active), version = version + 1, updated_at = clock_timestamp() WHERE id = ",
        );
        out.push_bind_param::<SqlUuid, _>(&self.habit_id)?;
        out.push_sql(" AND user_id = ");
        out.push_bind_param::<SqlUuid, _>(&self.user_id)?;
        out.push_sql(" AND (");
        out.push_bind_param::<Nullable<Int4>, _>(&self.expected_version)?;
        out.push_sql("::int4 IS NULL OR version = ");
        out.push_bind_param::<Nullable<Int4>, _>(&self.expected_version)?;
        out.push_sql(
            ") RETURNING id, user_id, name, description, schedule, is_active, created_at, \
             updated_at, version",
        );
        Ok(())
    }
}

/// The habit `habit_id` of `user_id`, as the CTE `habit` (id, schedule) that the
/// statements below start from: empty for another user's habit.
fn habit_cte<ST>(user_id: Uuid, habit_id: Uuid) -> fragment::Fragment<'static, ST> {
    fragment::sql("WITH habit AS (SELECT id, schedule FROM habits WHERE id = ")
        .bind(Bind::Uuid(habit_id))
        .sql(" AND user_id = ")
        .bind(Bind::Uuid(user_id))
        .sql(")")
}

/// `(habit found, check-in inserted)`: the insert is `ON CONFLICT DO NOTHING`, so
/// concurrent check-ins of one day insert one row and the others report `false`.
pub(crate) fn check_in(
    user_id: Uuid,
    habit_id: Uuid,
    day: NaiveDate,
) -> Statement<'static, (Bool, Bool)> {
    fragment::statement_of(
        habit_cte(user_id, habit_id)
            .sql(", inserted AS (INSERT INTO habit_check_ins (habit_id, day) SELECT id, ")
            .bind(Bind::Date(day))
            .sql(
                " FROM habit ON CONFLICT DO NOTHING RETURNING 1) \
                 SELECT EXISTS (SELECT FROM habit), EXISTS (SELECT FROM inserted)",
            ),
    )
}

/// `(habit found, check-in deleted)`.
pub(crate) fn undo_check_in(
    user_id: Uuid,
    habit_id: Uuid,
    day: NaiveDate,
) -> Statement<'static, (Bool, Bool)> {
    fragment::statement_of(
        habit_cte(user_id, habit_id)
            .sql(
                ", deleted AS (DELETE FROM habit_check_ins \
                 WHERE habit_id = (SELECT id FROM habit) AND day = ",
            )
            .bind(Bind::Date(day))
            .sql(
                " RETURNING 1) \
                 SELECT EXISTS (SELECT FROM habit), EXISTS (SELECT FROM deleted)",
            ),
    )
}

/// `(habit found, current streak, longest streak)` of `habit_id` on `today`, in one
/// query, counted in scheduled days (`habit_is_due`):
///
/// 1. `done`: the check-ins that count, on scheduled days up to today, each with the
///    one before it;
/// 2. `runs`: whether a scheduled day was missed between the two: a `generate_series`
///    of the days between them, filtered by the schedule. At most 366 days of it: the
///    next scheduled day comes at most 365 days after a scheduled day, so a longer gap
///    holds a missed day anyway. The work grows with the number of check-ins, never
///    with the span of days they cover;
/// 3. gaps and islands: a check-in after a missed day starts a run, and the running
///    count of starts numbers the runs;
/// 4. the longest run, and the run of the last check-in if no scheduled day was
///    missed between it and today (today itself, not checked in yet, does not break
///    it).
pub(crate) fn streak(
    user_id: Uuid,
    habit_id: Uuid,
    today: NaiveDate,
) -> Statement<'static, (Bool, BigInt, BigInt)> {
    /// Whether the schedule has a day strictly between the dates `after` and `before`.
    macro_rules! missed_between {
        ($after:literal, $before:literal) => {
            concat!(
                "EXISTS (SELECT FROM habit h, generate_series(1, least(",
                $before,
                " - ",
                $after,
                " - 1, 366)) AS i WHERE habit_is_due(h.schedule, ",
                $after,
                " + i))"
            )
        };
    }
    fragment::statement_of(
        habit_cte(user_id, habit_id)
            .sql(
                ", done AS (SELECT c.day, lag(c.day) OVER (ORDER BY c.day) AS previous \
                 FROM habit h JOIN habit_check_ins c ON c.habit_id = h.id \
                 WHERE c.day <= ",
            )
            .bind(Bind::Date(today))
            .sql(concat!(
                " AND habit_is_due(h.schedule, c.day)), \
                 runs AS (SELECT day, count(*) FILTER (WHERE previous IS NULL OR ",
                missed_between!("previous", "day"),
                ") OVER (ORDER BY day) AS run FROM done), \
                 lengths AS (SELECT count(*) AS length, max(day) AS last FROM runs GROUP BY run) \
                 SELECT EXISTS (SELECT FROM habit), \
                 coalesce((SELECT length FROM lengths l \
                 WHERE last = (SELECT max(day) FROM done) AND NOT ",
                missed_between!("l.last", "t.today"),
                "), 0), coalesce((SELECT max(length) FROM lengths), 0) FROM (SELECT ",
            ))
            .bind(Bind::Date(today))
            .sql("::date AS today) AS t"),
    )
}
