//! [`HabitRepo`]: habits of one user, their check-ins and streaks. Every query here is
//! scoped by `user_id` through [`habits_of`] (or the `habit` CTE of `habit_sql`, which
//! says the same); another user's habit behaves exactly like a missing one.

use chrono::{Datelike, NaiveDate};
use diesel::dsl;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::Bool;

use super::fragment::{self, Bind};
use super::habit_sql;
use super::sql_functions::habit_is_due;
use crate::error::{Error, Result};
use crate::models::validate;
use crate::models::{Habit, HabitId, HabitPatch, NewHabit, Streak, UserId};
use crate::schema::{habit_check_ins, habits};

/// Queries on the habits of one user: habits, their check-ins (one per calendar day)
/// and streaks.
///
/// Days are calendar dates in the user's own time zone, as the caller decides them:
/// the crate never decides what "today" is for a habit.
///
/// ```no_run
/// # fn main() -> todo_store::Result<()> {
/// # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
/// # let mut conn = pool.get()?;
/// # let user_id = todo_store::UserId::from(uuid::Uuid::nil());
/// use chrono::{NaiveDate, Weekday};
/// use todo_store::{HabitRepo, NewHabit, Schedule};
///
/// let schedule = Schedule::Weekly { days: vec![Weekday::Mon, Weekday::Thu] };
/// let habit = HabitRepo::create(&mut conn, user_id, &NewHabit::new("Run", schedule))?;
/// let today = NaiveDate::from_ymd_opt(2026, 1, 8).unwrap(); // a Thursday, the user's
/// for due in HabitRepo::due_on(&mut conn, user_id, today)? {
///     println!("due today: {}", due.name);
/// }
/// HabitRepo::check_in(&mut conn, user_id, habit.id, today)?;
/// let streak = HabitRepo::streak(&mut conn, user_id, habit.id, today)?;
/// println!("{} in a row, {} at most", streak.current, streak.longest);
/// # Ok(())
/// # }
/// ```
///
/// # Habits, check-ins and days
///
/// A habit has a name (the rules of a user's name: at most 100 characters with a visible
/// one), an optional description (at most 10,000 characters), a `Schedule`, `is_active`
/// (`due_on` lists active habits only) and a `version` (`HabitPatch::expected_version`
/// for optimistic concurrency, as for tasks). A check-in is one row per habit and
/// calendar day; `check_in(day)` and `undo_check_in(day)` return `true` when they changed
/// something, `check_ins(from, to)` lists them. Days are `chrono::NaiveDate`s in the
/// user's own time zone, as the caller decides them. Days before 4714-11-24 BC
/// (PostgreSQL's first) are `Validation`.
///
/// # The stored schedule
///
/// `habits.schedule` is JSONB of a versioned shape; version 1 is exactly:
///
/// | `Schedule` | JSON |
/// |---|---|
/// | `Daily` | `{"v":1,"kind":"daily"}` |
/// | `Weekly { days }` | `{"v":1,"kind":"weekly","days":["mon","thu"]}`: 1 to 7 distinct names out of `mon tue wed thu fri sat sun`, in any order; the crate writes them deduplicated, Monday first |
/// | `EveryNDays { n, start }` | `{"v":1,"kind":"every_n_days","n":3,"start":"2026-01-05"}`: `n` a number whose value, read as a double (as serde_json and JavaScript read JSON), is a whole number from 1 to 365 (`3`, `3.0` and `3e0` are all 3; `3.5` and `"3"` are not; `v` likewise must be 1; the crate writes plain integers), `start` a date `YYYY-MM-DD` from 0001-01-01 to 9999-12-31; due on `start`, `start + n`, `start + 2n`, ... and never before `start` |
///
/// No other version, kind or key is accepted. The CHECK `habits_schedule_valid` calls the
/// migration's `habit_schedule_is_valid(jsonb)` (IMMUTABLE, never raises: false for a
/// date that does not exist, a number where a string belongs, anything else), so rows
/// other clients write obey the same shape, and `Schedule::from_json` / `to_json` read
/// and write it in Rust. Which habits are due is decided in SQL by `habit_is_due(schedule,
/// day)`, a single inlinable expression whose weekdays come from `extract(isodow ...)`,
/// never from a locale's day names; `Schedule::is_due_on` is the same rule in Rust.
///
/// # Streaks
///
/// `HabitRepo::streak(conn, user_id, habit_id, today)` gives `Streak { current, longest }`,
/// counted in scheduled days:
///
/// - only check-ins on scheduled days count; one on another day neither extends nor
///   breaks a streak, and the days between scheduled ones (Tuesday and Wednesday of a
///   Monday-and-Thursday habit) do not break it;
/// - `current` is the run of checked-in scheduled days that ends on the last scheduled
///   day up to today; today, while scheduled and not yet checked in, does not break it
///   (the run ending on the scheduled day before it counts); a missed scheduled day
///   before today makes it 0;
/// - `longest` is the longest such run up to today; check-ins after `today` are ignored;
/// - the habit's current schedule applies to its whole history, and pausing it changes
///   nothing.
///
/// It is one query in the database. The schedule is read once; each counted check-in is
/// numbered by how many scheduled days come before it (for a daily habit, the days since a
/// fixed Monday; for a weekly one, whole weeks times the scheduled days per week plus
/// those earlier in its week; for every n days, the days since `start` divided by n), so
/// that check-ins on consecutive scheduled days have consecutive numbers and a run shares
/// `number - row_number()` (gaps and islands). Per check-in the server does integer
/// arithmetic in index order, in the one branch of the query for the habit's kind; no
/// function of the JSON schedule runs per row. Its cost grows with the number of
/// check-ins, never with the span of days they cover. For a habit checked in daily for
/// five years (about 1,800 check-ins) the statement executes in about 0.7 ms on the
/// server here, against 0.5 ms for a hand-written query that only handles daily habits
/// (it was 3.1 ms with the first version, which tested every gap between check-ins
/// against the schedule); `tests/integration/habits/streaks.rs`
/// `a_five_year_daily_streak_is_counted_in_one_fast_query` prints the figures, and the
/// benchmark (docs/performance.md) has the row.
#[derive(Debug, Clone, Copy, Default)]
pub struct HabitRepo;

/// The habits of `user_id`: the one scope every habit query starts from.
#[dsl::auto_type]
fn habits_of(user_id: UserId) -> _ {
    habits::table.filter(habits::user_id.eq(user_id))
}

/// The habit `habit_id` of `user_id`.
#[dsl::auto_type]
fn habit_of(user_id: UserId, habit_id: HabitId) -> _ {
    let scope: habits_of = habits_of(user_id);
    scope.filter(habits::id.eq(habit_id))
}

/// What a check-in (`checked_in`) or its undoing writes, as the retry ledger names it:
/// the habit, the day, and which of the two.
fn check_in_key(habit_id: HabitId, day: NaiveDate, checked_in: bool) -> crate::retry::RowKey {
    let what = i64::from(day.num_days_from_ce()) * 2 + i64::from(checked_in);
    crate::retry::RowKey::doing("habit_check_ins", habit_id, what)
}

/// `found` or a [`Error::NotFound`] for the habit.
fn found<T>(found: bool, habit_id: HabitId, value: T) -> Result<T> {
    if found {
        Ok(value)
    } else {
        Err(Error::not_found("habit", habit_id))
    }
}

impl HabitRepo {
    /// Creates the active habit `new.id` for `user_id` and returns it, in one round
    /// trip.
    ///
    /// Exactly once: called again with the same `new` (same id, user and content), it
    /// returns the habit the first call created (one more round trip, to read it).
    ///
    /// # Errors
    /// [`Error::Validation`] for a bad name, description or schedule (nothing written);
    /// [`Error::NotFound`] when the user does not exist; [`Error::Conflict`] with
    /// [`crate::ConflictKind::IdInUse`] when a habit with this id exists with other
    /// content or belongs to another user.
    pub fn create(conn: &mut PgConnection, user_id: UserId, new: &NewHabit) -> Result<Habit> {
        super::call("habit.create", Some(user_id), conn, |conn| {
            let row = new.to_row(new.id, user_id)?;
            crate::retry::exactly_once([crate::retry::RowKey::row("habits", row.id)], || {
                let created = diesel::insert_into(habits::table)
                    .values(&row)
                    .on_conflict(habits::id)
                    .do_nothing()
                    .returning(Habit::as_returning())
                    .get_result(conn)
                    .optional()
                    .map_err(|e| super::missing_as_not_found(e, "user", user_id))?;
                match created {
                    Some(habit) => Ok(habit),
                    // The id is taken: by this very habit, created before?
                    None => habit_of(user_id, row.id)
                        .select(Habit::as_select())
                        .get_result(conn)
                        .optional()?
                        .filter(|habit| row.is_stored_as(habit))
                        .ok_or(Error::id_in_use("habit")),
                }
            })
        })
    }

    /// The habit `habit_id` of `user_id`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it does not exist or belongs to another user.
    pub fn get(conn: &mut PgConnection, user_id: UserId, habit_id: HabitId) -> Result<Habit> {
        super::call("habit.get", Some(user_id), conn, |conn| {
            habit_of(user_id, habit_id)
                .select(Habit::as_select())
                .get_result(conn)
                .optional()?
                .ok_or_else(|| Error::not_found("habit", habit_id))
        })
    }

    /// Applies `patch` and returns the updated habit, in one round trip; `version` grows
    /// by one and `updated_at` moves. Check-ins are kept when the schedule changes.
    ///
    /// # Errors
    /// [`Error::Validation`] for bad values; [`Error::NotFound`] when the habit does not
    /// exist or belongs to another user; [`Error::Conflict`] with
    /// [`crate::ConflictKind::StaleVersion`] when `patch.expected_version` is not the
    /// habit's version. Nothing changes on error.
    pub fn update(
        conn: &mut PgConnection,
        user_id: UserId,
        habit_id: HabitId,
        patch: &HabitPatch,
    ) -> Result<Habit> {
        super::call("habit.update", Some(user_id), conn, |conn| {
            super::owned::update::<habits::table>(conn, user_id, habit_id, patch.to_changes()?)
        })
    }

    /// Deletes the habit and its check-ins.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it does not exist or belongs to another user.
    pub fn delete(conn: &mut PgConnection, user_id: UserId, habit_id: HabitId) -> Result<()> {
        super::call(
            "habit.delete",
            Some(user_id),
            conn,
            |conn| match diesel::delete(habit_of(user_id, habit_id)).execute(conn)? {
                0 => Err(Error::not_found("habit", habit_id)),
                _ => Ok(()),
            },
        )
    }

    /// Every habit of `user_id`, active or not, oldest first (ties by id), through the
    /// index `habits_user_created_idx`. Empty for an unknown user.
    ///
    /// # Errors
    /// Only database errors.
    pub fn list(conn: &mut PgConnection, user_id: UserId) -> Result<Vec<Habit>> {
        super::call("habit.list", Some(user_id), conn, |conn| {
            Ok(habits_of(user_id)
                .order((habits::created_at.asc(), habits::id.asc()))
                .select(Habit::as_select())
                .load(conn)?)
        })
    }

    /// The habits of `user_id` whose name or description match `terms`, best match
    /// first (`ts_rank_cd`, as [`crate::TaskSort::Relevance`] ranks tasks; equal ranks
    /// oldest first, ties by id), active or not. The search is the one of tasks
    /// ([`crate::TaskQuery::search`]): web-search syntax (words, all of which must
    /// match, stemmed in English; `"quoted phrases"`, `or`, `-word` to exclude), any
    /// text is safe, stop words alone (`the`) match nothing. Read through the index
    /// `habits_user_search_idx` (`user_id`, `search_vector`); the text becomes a
    /// `tsquery` once per execution. [`crate::SearchRepo::search`] searches tasks and
    /// habits together.
    ///
    /// ```no_run
    /// # fn main() -> todo_store::Result<()> {
    /// # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
    /// # let mut conn = pool.get()?;
    /// # let user_id = todo_store::UserId::from(uuid::Uuid::nil());
    /// use todo_store::HabitRepo;
    ///
    /// for habit in HabitRepo::search(&mut conn, user_id, "run or swim -pool")? {
    ///     println!("{}", habit.name);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Validation`] of `search` for blank text or text longer than
    /// [`crate::TaskQuery::MAX_SEARCH_CHARS`] characters.
    pub fn search(conn: &mut PgConnection, user_id: UserId, terms: &str) -> Result<Vec<Habit>> {
        super::call("habit.search", Some(user_id), conn, |conn| {
            let terms = super::search::required_terms(terms)?;
            Ok(search_query(user_id, &terms).load(conn)?)
        })
    }

    /// The active habits of `user_id` due on `day` (a calendar date of the user's own
    /// time zone), oldest first; the schedule is applied in the database
    /// (`habit_is_due`, the same rule as [`crate::Schedule::is_due_on`]).
    ///
    /// # Errors
    /// [`Error::Validation`] for a day before 4714-11-24 BC (PostgreSQL's first).
    pub fn due_on(conn: &mut PgConnection, user_id: UserId, day: NaiveDate) -> Result<Vec<Habit>> {
        super::call("habit.due_on", Some(user_id), conn, |conn| {
            let day = validate::date("day", day)?;
            Ok(habits_of(user_id)
                .filter(habits::is_active.eq(true))
                .filter(habit_is_due(habits::schedule, day))
                .order((habits::created_at.asc(), habits::id.asc()))
                .select(Habit::as_select())
                .load(conn)?)
        })
    }

    /// Checks the habit in on `day`: `true` when this made the check-in, `false` when
    /// `day` was already checked in. Idempotent, also under concurrent calls (of several
    /// calls for one day, exactly one returns `true`). Any day may be checked in,
    /// scheduled or not, paused habit or not; [`HabitRepo::streak`] counts the
    /// scheduled ones.
    ///
    /// Exactly once under [`crate::retry::retry_transaction`]: a repeat after a lost `COMMIT`
    /// leaves the day checked in once, and returns `false` if the first attempt's
    /// check-in had committed (the day was checked in already).
    ///
    /// # Errors
    /// [`Error::Validation`] for a day before 4714-11-24 BC; [`Error::NotFound`] when the
    /// habit does not exist or belongs to another user.
    pub fn check_in(
        conn: &mut PgConnection,
        user_id: UserId,
        habit_id: HabitId,
        day: NaiveDate,
    ) -> Result<bool> {
        super::call("habit.check_in", Some(user_id), conn, |conn| {
            let day = validate::date("day", day)?;
            let (exists, inserted) =
                crate::retry::exactly_once([check_in_key(habit_id, day, true)], || {
                    habit_sql::check_in(user_id, habit_id, day)
                        .get_result::<(bool, bool)>(conn)
                        // The habit deleted between the CTE's read and the insert.
                        .map_err(|e| super::missing_as_not_found(e, "habit", habit_id))
                })?;
            found(exists, habit_id, inserted)
        })
    }

    /// Removes the check-in of `day`: `true` when there was one, `false` when not.
    ///
    /// Exactly once under [`crate::retry::retry_transaction`], like [`HabitRepo::check_in`]: a
    /// repeat returns `false` if the first attempt's removal had committed.
    ///
    /// # Errors
    /// [`Error::Validation`] for a day before 4714-11-24 BC; [`Error::NotFound`] when the
    /// habit does not exist or belongs to another user.
    pub fn undo_check_in(
        conn: &mut PgConnection,
        user_id: UserId,
        habit_id: HabitId,
        day: NaiveDate,
    ) -> Result<bool> {
        super::call("habit.undo_check_in", Some(user_id), conn, |conn| {
            let day = validate::date("day", day)?;
            let (exists, deleted) =
                crate::retry::exactly_once([check_in_key(habit_id, day, false)], || {
                    habit_sql::undo_check_in(user_id, habit_id, day)
                        .get_result::<(bool, bool)>(conn)
                })?;
            found(exists, habit_id, deleted)
        })
    }

    /// The days the habit was checked in from `from` to `to`, both included, earliest
    /// first, in one round trip.
    ///
    /// # Errors
    /// [`Error::Validation`] when `from` is after `to` or a day is before 4714-11-24 BC;
    /// [`Error::NotFound`] when the habit does not exist or belongs to another user.
    pub fn check_ins(
        conn: &mut PgConnection,
        user_id: UserId,
        habit_id: HabitId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<NaiveDate>> {
        super::call("habit.check_ins", Some(user_id), conn, |conn| {
            let from = validate::date("from", from)?;
            let to = validate::date("to", to)?;
            if from > to {
                return Err(Error::validation("from", "must not be after to"));
            }
            // The habit, joined to its check-ins in the range: no row at all means no
            // such habit, one row with no day means no check-in.
            let days: Vec<Option<NaiveDate>> = habit_of(user_id, habit_id)
                .left_join(
                    habit_check_ins::table.on(habit_check_ins::habit_id
                        .eq(habits::id)
                        .and(habit_check_ins::day.between(from, to))),
                )
                .select(habit_check_ins::day.nullable())
                .order(habit_check_ins::day.asc())
                .load(conn)?;
            found(
                !days.is_empty(),
                habit_id,
                days.into_iter().flatten().collect(),
            )
        })
    }

    /// The habit's streaks on `today` (a calendar date of the user's own time zone),
    /// counted in scheduled days:
    ///
    /// - only check-ins on days the schedule has count: one on another day neither
    ///   extends nor breaks a streak, and the days between scheduled ones (Tuesday and
    ///   Wednesday of a Monday-and-Thursday habit) do not break it either;
    /// - `current` runs back from the last scheduled day up to today, or from the one
    ///   before today while today is scheduled and not checked in yet (today does not
    ///   break it); it is 0 when that day was missed;
    /// - `longest` is the longest run of checked-in scheduled days up to today;
    /// - check-ins after `today` are ignored; the current schedule is applied to the
    ///   whole history; being paused does not change the count.
    ///
    /// One query in the database: the schedule is read once, each counted check-in is
    /// numbered by how many scheduled days come before it (integer arithmetic in index
    /// order), and check-ins with consecutive numbers form a run (gaps and islands).
    /// Its cost grows with the number of check-ins, not with the number of days they
    /// span: a habit checked in daily for five years takes well under a millisecond
    /// of server time.
    ///
    /// # Errors
    /// [`Error::Validation`] for a day before 4714-11-24 BC; [`Error::NotFound`] when the
    /// habit does not exist or belongs to another user.
    pub fn streak(
        conn: &mut PgConnection,
        user_id: UserId,
        habit_id: HabitId,
        today: NaiveDate,
    ) -> Result<Streak> {
        super::call("habit.streak", Some(user_id), conn, |conn| {
            let today = validate::date("today", today)?;
            let (exists, current, longest) =
                habit_sql::streak(user_id, habit_id, today).get_result::<(bool, i64, i64)>(conn)?;
            let days = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
            found(
                exists,
                habit_id,
                Streak {
                    current: days(current),
                    longest: days(longest),
                },
            )
        })
    }
}

/// The query of [`HabitRepo::search`] for `terms` (normalised, not blank). Both
/// tsqueries are sub-SELECTs, InitPlans computed once per execution: as bare calls of
/// a parameter, the generic plan would evaluate them again for every row.
pub(crate) fn search_query(
    user_id: UserId,
    terms: &str,
) -> habits::BoxedQuery<'_, Pg, dsl::SqlTypeOf<dsl::AsSelect<Habit, Pg>>> {
    habits_of(user_id)
        .filter(
            fragment::sql::<habits::table, Bool>(
                "search_vector @@ (SELECT websearch_to_tsquery('english', ",
            )
            .bind(Bind::Text(terms))
            .sql("))"),
        )
        .order_by(
            fragment::sql::<habits::table, Bool>(
                "ts_rank_cd(search_vector, (SELECT websearch_to_tsquery('english', ",
            )
            .bind(Bind::Text(terms))
            .sql("))) DESC, created_at, id"),
        )
        .select(Habit::as_select())
        .into_boxed()
}

/// The statement [`HabitRepo::streak`] runs, for EXPLAIN in tests.
#[cfg(feature = "testing")]
pub(crate) fn streak_query(
    user_id: UserId,
    habit_id: HabitId,
    today: NaiveDate,
) -> impl diesel::query_builder::QueryFragment<diesel::pg::Pg> {
    habit_sql::streak(user_id, habit_id, today)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_in_and_its_undoing_are_told_apart_on_every_day() {
        let habit = HabitId::from(uuid::Uuid::from_u128(7));
        let day = |n: i32| NaiveDate::from_num_days_from_ce_opt(n).unwrap();
        let mut keys = std::collections::BTreeSet::new();
        for n in [-1_000_000, -1, 0, 1, 2, 738_000] {
            assert!(keys.insert(check_in_key(habit, day(n), true)));
            assert!(keys.insert(check_in_key(habit, day(n), false)));
        }
        // Two habits never share a key, whatever their days.
        let other = HabitId::from(uuid::Uuid::from_u128(6));
        assert_ne!(
            check_in_key(habit, day(1), true),
            check_in_key(other, day(0), true)
        );
    }
}
