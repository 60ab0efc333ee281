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
    user_id: Uuid,
    habit_id: Uuid,
    today: NaiveDate,
) -> Statement<'static, (Bool, BigInt, BigInt)> {
    /// `((day - monday) % 7 + 7) % 7`: the weekday of `day`, 0 for Monday, before 2000
    /// too.
    macro_rules! weekday {
        ($day:literal) => {
            concat!("((", $day, " - DATE '2000-01-03') % 7 + 7) % 7")
        };
    }
    /// The check-ins up to today of a habit of `$kind`, each with its `number` (of
    /// scheduled days before it) and its run (`island`); empty for another kind.
    macro_rules! numbered {
        ($kind:literal, number: $number:expr, from: $from:expr, where: $where:expr) => {
            concat!(
                "SELECT number, number - row_number() OVER (ORDER BY day) AS island FROM (\
                 SELECT c.day, ",
                $number,
                " AS number FROM habit_check_ins c",
                $from,
                " WHERE c.habit_id = (SELECT id FROM s) AND c.day <= (SELECT today FROM s) \
                 AND (SELECT kind FROM s) = '",
                $kind,
                "'",
                $where,
                ") ",
                $kind
            )
        };
    }
    fragment::statement_of(
        habit_cte(user_id, habit_id)
            .sql(", s AS (SELECT id, ")
            .bind(Bind::Date(today))
            .sql(concat!(
                "::date AS today, schedule ->> 'kind' AS kind, \
                 ARRAY[0::bigint] || ARRAY(SELECT count(*) FILTER (WHERE schedule -> 'days' ? w.name) \
                 OVER (ORDER BY w.i) FROM unnest(ARRAY['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']) \
                 WITH ORDINALITY AS w(name, i)) AS before, \
                 make_date(substr(schedule ->> 'start', 1, 4)::int, substr(schedule ->> 'start', 6, 2)::int, \
                 substr(schedule ->> 'start', 9, 2)::int) AS start, \
                 round((schedule ->> 'n')::numeric)::int AS every FROM habit), \
                 lengths AS (SELECT count(*) AS length, max(number) AS last FROM (\
                 ",
                numbered!(
                    "daily",
                    number: "(c.day - DATE '2000-01-03')::bigint",
                    from: "",
                    where: ""
                ),
                " UNION ALL ",
                numbered!(
                    "weekly",
                    number: "(c.day - DATE '2000-01-03' - w.weekday) / 7 * (SELECT before[8] FROM s) \
                             + (SELECT before FROM s)[w.weekday + 1]",
                    from: concat!(", LATERAL (SELECT ", weekday!("c.day"), " AS weekday) w"),
                    where: " AND (SELECT before FROM s)[w.weekday + 2] > (SELECT before FROM s)[w.weekday + 1]"
                ),
                " UNION ALL ",
                numbered!(
                    "every_n_days",
                    number: "((c.day - (SELECT start FROM s)) / (SELECT every FROM s))::bigint",
                    from: "",
                    where: " AND c.day >= (SELECT start FROM s) \
                            AND (c.day - (SELECT start FROM s)) % (SELECT every FROM s) = 0"
                ),
                "\
                 ) numbered GROUP BY island) \
                 SELECT EXISTS (SELECT FROM habit), \
                 coalesce(max(length) FILTER (WHERE (SELECT CASE kind \
                 WHEN 'daily' THEN today - DATE '2000-01-03' \
                 WHEN 'weekly' THEN (today - DATE '2000-01-03' - ",
                weekday!("today"),
                ") / 7 * before[8] + before[",
                weekday!("today"),
                " + 1] \
                 ELSE CASE WHEN today <= start THEN 0 ELSE (today - start + every - 1) / every END \
                 END FROM s) - last <= 1), 0), \
                 coalesce(max(length), 0) FROM lengths",
            )),
    )
}
