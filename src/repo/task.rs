//! [`TaskRepo`]: tasks of one user. Every query here is scoped by `user_id` through
//! [`tasks_of`]; another user's task behaves exactly like a missing one.

use chrono_tz::Tz;
use diesel::dsl;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::bulk::{self, TaskCopyRow};
use super::fragment::{self, Bind, Fragment};
use super::list::ListPlan;
use super::query::{Page, TaskQuery};
use super::sql_functions::clock_timestamp;
use super::task_update::SetCompleted;
use crate::error::{Error, Result};
use crate::models::{NewTask, Priority, Task, TaskId, TaskPatch, TaskStats, UserId};
use crate::schema::tasks;

/// Queries on the tasks of one user.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskRepo;

/// The tasks of `user_id`: the one scope every task query starts from.
#[dsl::auto_type]
fn tasks_of(user_id: UserId) -> _ {
    tasks::table.filter(tasks::user_id.eq(user_id))
}

/// The task `task_id` of `user_id`.
#[dsl::auto_type]
fn task_of(user_id: UserId, task_id: TaskId) -> _ {
    let scope: tasks_of = tasks_of(user_id);
    scope.filter(tasks::id.eq(task_id))
}

impl TaskRepo {
    /// Creates the task `new.id` for `user_id` and returns it, in one round trip.
    ///
    /// Exactly once: called again with the same `new` (same id, user and content: a
    /// retry whose first attempt may have committed), it returns the task the first
    /// call created, unchanged, instead of a second task or an error (one more round
    /// trip, to read it). So [`crate::retry::retry_transaction`] may run it again even
    /// when a `COMMIT`'s outcome is unknown.
    ///
    /// # Errors
    /// [`Error::Validation`] for a bad title or description (nothing written);
    /// [`Error::NotFound`] when the user does not exist; [`Error::Conflict`] with
    /// [`crate::ConflictKind::IdInUse`] when a task with this id exists with other
    /// content (changed since it was created, say) or belongs to another user.
    pub fn create(conn: &mut PgConnection, user_id: UserId, new: &NewTask) -> Result<Task> {
        super::call("task.create", Some(user_id), conn, |conn| {
            let row = new.to_row(new.id, user_id)?;
            crate::retry::exactly_once([crate::retry::RowKey::row("tasks", row.id)], || {
                let created = diesel::insert_into(tasks::table)
                    .values(&row)
                    .on_conflict(tasks::id)
                    .do_nothing()
                    .returning(Task::as_returning())
                    .get_result(conn)
                    .optional()
                    .map_err(|e| super::missing_as_not_found(e, "user", user_id))?;
                match created {
                    Some(task) => Ok(task),
                    // The id is taken: by this very task, created before?
                    None => task_of(user_id, row.id)
                        .select(Task::as_select())
                        .get_result(conn)
                        .optional()?
                        .filter(|task| row.is_stored_as(task))
                        .ok_or(Error::id_in_use("task")),
                }
            })
        })
    }

    /// The task `task_id` of `user_id`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it does not exist or belongs to another user.
    pub fn get(conn: &mut PgConnection, user_id: UserId, task_id: TaskId) -> Result<Task> {
        super::call("task.get", Some(user_id), conn, |conn| {
            task_of(user_id, task_id)
                .select(Task::as_select())
                .get_result(conn)
                .optional()?
                .ok_or_else(|| Error::not_found("task", task_id))
        })
    }

    /// Applies `patch` and returns the updated task, in one round trip; `version` grows
    /// by one and `updated_at` moves.
    ///
    /// Exactly once with `patch.expected_version`: applied again (a retry whose first
    /// attempt may have committed), the same patch (same [`TaskPatch::write_id`])
    /// returns the task its first application wrote, unchanged, instead of a
    /// [`crate::ConflictKind::StaleVersion`] (one more round trip, the read that follows
    /// a failed update anyway). It recognises its write by the task's write mark: the
    /// task at exactly `expected_version + 1` carrying the patch's write id, so no other
    /// write came between; after another writer's update the repeat is a stale version,
    /// as it should be. So [`crate::retry::retry_transaction`] may run it again even
    /// when a `COMMIT`'s outcome is unknown.
    ///
    /// Without an expected version the update is last-writer-wins and not exactly-once:
    /// once another write followed its own, it cannot tell whether it was applied, so a
    /// retry after an unknown `COMMIT` reports the unknown outcome.
    ///
    /// # Errors
    /// [`Error::Validation`] for bad values; [`Error::NotFound`] when the task does not
    /// exist or belongs to another user; [`Error::Conflict`] with
    /// [`crate::ConflictKind::StaleVersion`] when `patch.expected_version` is not the
    /// task's version (and the task is not this very patch's write). Nothing changes
    /// on error.
    pub fn update(
        conn: &mut PgConnection,
        user_id: UserId,
        task_id: TaskId,
        patch: &TaskPatch,
    ) -> Result<Task> {
        super::call("task.update", Some(user_id), conn, |conn| {
            super::owned::update::<tasks::table>(conn, user_id, task_id, patch.to_changes()?)
        })
    }

    /// Marks the task done (`true`) or open (`false`) and returns it, in one round trip
    /// when its state changes: then `version` grows by one and `updated_at` moves. A
    /// task already in that state is returned as it is, unchanged (its version does
    /// not grow), after a second round trip that reads it and locks its row until the
    /// end of the transaction (`FOR NO KEY UPDATE`, the lock an update of the task
    /// takes), so that the state returned is the task's.
    ///
    /// Exactly once: the call puts the task in a state, so calling it again (a retry
    /// whose first attempt may have committed) returns the task without writing twice.
    /// So [`crate::retry::retry_transaction`] may run it again even when a `COMMIT`'s
    /// outcome is unknown.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it does not exist or belongs to another user.
    pub fn set_completed(
        conn: &mut PgConnection,
        user_id: UserId,
        task_id: TaskId,
        completed: bool,
    ) -> Result<Task> {
        super::call("task.set_completed", Some(user_id), conn, |conn| {
            // The state set is part of what is written: a replay that sets the other state
            // wrote something else.
            let key = crate::retry::RowKey::doing("tasks", task_id, i64::from(completed));
            crate::retry::exactly_once([key], || loop {
                let changed = SetCompleted {
                    id: task_id,
                    user_id,
                    completed,
                    returning: <Task as Selectable<diesel::pg::Pg>>::construct_selection(),
                }
                .get_result::<Task>(conn)
                .optional()?;
                if let Some(task) = changed {
                    return Ok(task);
                }
                // Not changed: already in that state, or missing. Read under a row lock:
                // under READ COMMITTED another writer may have changed the state back
                // since the UPDATE looked; the lock keeps what is read until the end of
                // the transaction, and a state changed back is written again (the
                // UPDATE then matches: the row is locked).
                let task = task_of(user_id, task_id)
                    .select(Task::as_select())
                    .for_no_key_update()
                    .get_result::<Task>(conn)
                    .optional()?
                    .ok_or_else(|| Error::not_found("task", task_id))?;
                if task.completed == completed {
                    return Ok(task);
                }
            })
        })
    }

    /// Deletes the task.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it does not exist or belongs to another user.
    pub fn delete(conn: &mut PgConnection, user_id: UserId, task_id: TaskId) -> Result<()> {
        super::call(
            "task.delete",
            Some(user_id),
            conn,
            |conn| match diesel::delete(task_of(user_id, task_id)).execute(conn)? {
                0 => Err(Error::not_found("task", task_id)),
                _ => Ok(()),
            },
        )
    }

    /// The number of tasks of `user_id` (0 for an unknown user).
    ///
    /// # Errors
    /// Only database errors.
    pub fn count(conn: &mut PgConnection, user_id: UserId) -> Result<i64> {
        super::call("task.count", Some(user_id), conn, |conn| {
            Ok(tasks_of(user_id).count().get_result(conn)?)
        })
    }

    /// One page of the tasks of `user_id` that `query` selects, in its order, in one
    /// round trip. Continue with `query.after(cursor)` while
    /// [`Page::next_cursor`] is `Some`.
    ///
    /// ```no_run
    /// # fn main() -> todo_store::Result<()> {
    /// # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
    /// # let mut conn = pool.get()?;
    /// # let user_id = todo_store::UserId::from(uuid::Uuid::nil());
    /// use todo_store::{TaskQuery, TaskRepo};
    ///
    /// let query = TaskQuery::new().completed(false).limit(50);
    /// let mut page = TaskRepo::list(&mut conn, user_id, &query)?;
    /// while let Some(cursor) = page.next_cursor.take() {
    ///     page = TaskRepo::list(&mut conn, user_id, &query.clone().after(&cursor))?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Validation`] for a limit outside 1..=500, a search longer than 1000
    /// characters, a relevance sort without a search, or a cursor that is damaged or was
    /// made for another query.
    pub fn list(conn: &mut PgConnection, user_id: UserId, query: &TaskQuery) -> Result<Page<Task>> {
        super::call("task.list", Some(user_id), conn, |conn| {
            let plan = ListPlan::new(user_id, query)?;
            let mut rows: Vec<(Task, f32)> = plan.page_query().load(conn)?;
            let next_cursor = if rows.len() as i64 > plan.limit {
                rows.truncate(plan.limit as usize);
                rows.last()
                    .map(|(task, rank)| plan.cursor_after(task, *rank))
            } else {
                None
            };
            Ok(Page::new(
                rows.into_iter().map(|(task, _)| task).collect(),
                next_cursor,
            ))
        })
    }

    /// The number of tasks of `user_id` that `query`'s filters select (its sort, limit
    /// and cursor are ignored).
    ///
    /// # Errors
    /// [`Error::Validation`] as for [`TaskRepo::list`], cursor excepted.
    pub fn count_matching(
        conn: &mut PgConnection,
        user_id: UserId,
        query: &TaskQuery,
    ) -> Result<i64> {
        super::call("task.count_matching", Some(user_id), conn, |conn| {
            let unpaged = query.unpaged();
            let plan = ListPlan::new(user_id, &unpaged)?;
            Ok(plan.count_query().get_result(conn)?)
        })
    }

    /// Totals over the tasks of `user_id`, in one query: all, done, open, overdue, due
    /// today and by priority, by the server's clock at this statement
    /// (`statement_timestamp()`: not the start of a caller's transaction, not this
    /// machine's clock). "Today" is the current calendar day in UTC, whatever the
    /// session's `TimeZone` setting (a caller's `SET LOCAL TIME ZONE` changes nothing);
    /// [`TaskRepo::stats_in_time_zone`] counts the day of a user's own time zone.
    ///
    /// # Errors
    /// Only database errors.
    pub fn stats(conn: &mut PgConnection, user_id: UserId) -> Result<TaskStats> {
        super::call("task.stats", Some(user_id), conn, |conn| {
            stats_in(conn, user_id, Tz::UTC)
        })
    }

    /// [`TaskRepo::stats`] with "due today" counted over the current calendar day in
    /// `time_zone`, an IANA time zone name such as `"Europe/Paris"`,
    /// `"America/New_York"` or `"UTC"` (spelled exactly, as in the tz database): the day
    /// a user means by "today". The day runs from local midnight to the next local
    /// midnight, 23 or 25 hours long on a daylight-saving change. The other figures do
    /// not depend on the zone. The same single, prepared query as `stats`.
    ///
    /// ```no_run
    /// # fn main() -> todo_store::Result<()> {
    /// # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
    /// # let mut conn = pool.get()?;
    /// # let user_id = todo_store::UserId::from(uuid::Uuid::nil());
    /// let stats = todo_store::TaskRepo::stats_in_time_zone(&mut conn, user_id, "Asia/Tokyo")?;
    /// println!("{} due today in Tokyo", stats.due_today);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Validation`] on `time_zone`, before any query, for anything that is not
    /// an IANA zone name: an empty or unknown name, a POSIX rule such as
    /// `EST5EDT,M3.2.0,M11.1.0` or `UTC+3`, an abbreviation such as `EST` or `CET`, or a
    /// legacy name without an area such as `Japan` (`UTC` excepted). A name this crate
    /// knows but the server's time zone database lacks is a [`Error::Validation`] too,
    /// from the server (inside the caller's transaction that one aborts it, as every
    /// failed statement does).
    pub fn stats_in_time_zone(
        conn: &mut PgConnection,
        user_id: UserId,
        time_zone: &str,
    ) -> Result<TaskStats> {
        super::call("task.stats_in_time_zone", Some(user_id), conn, |conn| {
            let zone = iana_time_zone(time_zone)?;
            stats_in(conn, user_id, zone)
        })
    }

    /// Creates all of `new` for `user_id` and returns them in the same order.
    ///
    /// Everything is validated first: one bad item fails the whole call with an
    /// [`Error::Validation`] naming it (`tasks[3].title`) and nothing is written. The
    /// rows then go in with one `COPY FROM` in one transaction (a savepoint inside a
    /// caller's transaction): all of them or none.
    ///
    /// Exactly once, as [`TaskRepo::create`]: the same batch again (the same ids,
    /// user and content) returns the tasks the first call created (one more round
    /// trip, to read them).
    ///
    /// # Errors
    /// [`Error::Validation`]; [`Error::NotFound`] when the user does not exist;
    /// [`Error::Conflict`] with [`crate::ConflictKind::IdInUse`] when an id is taken
    /// by another task (or twice in `new`) and the batch is not a repeat.
    pub fn create_many(
        conn: &mut PgConnection,
        user_id: UserId,
        new: &[NewTask],
    ) -> Result<Vec<Task>> {
        super::call("task.create_many", Some(user_id), conn, |conn| {
            let rows = new
                .iter()
                .enumerate()
                .map(|(i, task)| {
                    task.to_row(task.id, user_id)
                        .map_err(|e| e.in_batch("tasks", i))
                })
                .collect::<Result<Vec<_>>>()?;
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            let keys = rows
                .iter()
                .map(|row| crate::retry::RowKey::row("tasks", row.id));
            crate::retry::exactly_once(keys, || {
                let copied = conn.transaction(|conn| {
                    // Timestamps as a single INSERT's defaults would make them.
                    let now = bulk::transaction_now(conn)?;
                    let copy_rows: Vec<_> = rows
                        .iter()
                        .map(|row| TaskCopyRow::new(row.clone(), now, now))
                        .collect();
                    bulk::copy_tasks(conn, &copy_rows)
                        .map_err(|e| super::missing_as_not_found(e, "user", user_id))?;
                    Ok(copy_rows.iter().map(TaskCopyRow::to_task).collect())
                });
                match copied {
                    Err(e) if bulk::is_duplicate_id(&e) => {
                        let ids: Vec<TaskId> = rows.iter().map(|row| row.id).collect();
                        let stored: Vec<Task> = tasks_of(user_id)
                            .filter(tasks::id.eq_any(&ids))
                            .select(Task::as_select())
                            .load(conn)?;
                        bulk::stored_as(&rows, stored, |row, task: &Task| {
                            (row.id == task.id).then(|| row.is_stored_as(task))
                        })
                        .ok_or(Error::id_in_use("task"))
                    }
                    other => other,
                }
            })
        })
    }

    /// Marks the listed tasks of `user_id` done or open and returns how many there were.
    /// Ids of other users' tasks, or of no task, are skipped and not counted.
    ///
    /// # Errors
    /// Only database errors.
    pub fn set_completed_many(
        conn: &mut PgConnection,
        user_id: UserId,
        task_ids: &[TaskId],
        completed: bool,
    ) -> Result<usize> {
        super::call("task.set_completed_many", Some(user_id), conn, |conn| {
            if task_ids.is_empty() {
                return Ok(0);
            }
            Ok(
                diesel::update(tasks_of(user_id).filter(tasks::id.eq_any(task_ids)))
                    .set((
                        tasks::completed.eq(completed),
                        tasks::version.eq(tasks::version + 1),
                        tasks::updated_at.eq(clock_timestamp()),
                    ))
                    .execute(conn)?,
            )
        })
    }

    /// Deletes the listed tasks of `user_id` and returns how many there were. Ids of
    /// other users' tasks, or of no task, are skipped and not counted.
    ///
    /// # Errors
    /// Only database errors.
    pub fn delete_many(
        conn: &mut PgConnection,
        user_id: UserId,
        task_ids: &[TaskId],
    ) -> Result<usize> {
        super::call("task.delete_many", Some(user_id), conn, |conn| {
            if task_ids.is_empty() {
                return Ok(0);
            }
            Ok(
                diesel::delete(tasks_of(user_id).filter(tasks::id.eq_any(task_ids)))
                    .execute(conn)?,
            )
        })
    }
}

/// The tasks of `user_id` counted, with "due today" in `zone`.
fn stats_in(conn: &mut PgConnection, user_id: UserId, zone: Tz) -> Result<TaskStats> {
    let (total, completed, overdue, due_today, low, medium, high) =
        stats_query(user_id, zone).get_result::<(i64, i64, i64, i64, i64, i64, i64)>(conn)?;
    Ok(TaskStats {
        total,
        completed,
        open: total - completed,
        overdue,
        due_today,
        by_priority: [
            (Priority::Low, low),
            (Priority::Medium, medium),
            (Priority::High, high),
        ]
        .into_iter()
        .collect(),
    })
}

/// The IANA time zone `name`: an `Area/Location` name of the tz database (`Etc/GMT+12`
/// included), or `UTC`.
///
/// PostgreSQL would take more for `AT TIME ZONE`: POSIX rules (`UTC+3` is three hours
/// *west* of Greenwich), and abbreviations from its `timezone_abbreviations` list, which
/// it looks up before zone names, so that `CET` there is a fixed +01:00 all year while
/// the tz database's `CET` observes summer time. Names without a `/` are those
/// abbreviations and legacy aliases (`EST`, `Japan`, `GB`); only `UTC` is unambiguous.
pub(crate) fn iana_time_zone(name: &str) -> Result<Tz> {
    let invalid = || {
        Error::validation(
            "time_zone",
            "must be an IANA time zone name such as Europe/Paris, America/New_York or UTC",
        )
    };
    let zone: Tz = name.parse().map_err(|_| invalid())?;
    if zone == Tz::UTC || name.contains('/') {
        Ok(zone)
    } else {
        Err(invalid())
    }
}

type StatsColumns = (
    Fragment<'static, tasks::table, BigInt>,
    Fragment<'static, tasks::table, BigInt>,
    Fragment<'static, tasks::table, BigInt>,
    Fragment<'static, tasks::table, BigInt>,
    Fragment<'static, tasks::table, BigInt>,
    Fragment<'static, tasks::table, BigInt>,
    Fragment<'static, tasks::table, BigInt>,
);

/// The one query behind [`TaskRepo::stats`] and [`TaskRepo::stats_in_time_zone`]. Its
/// SQL is the same for every zone (the zone is a bind parameter), so one prepared
/// statement serves them all.
pub(crate) fn stats_query(user_id: UserId, zone: Tz) -> dsl::Select<tasks_of, StatsColumns> {
    tasks_of(user_id).select(stats_columns(zone))
}

/// `count(*) FILTER (WHERE ...)` for each figure of [`TaskStats`].
fn stats_columns(zone: Tz) -> StatsColumns {
    // The bounds of the current day in `zone`, computed without the session's time zone:
    // `statement_timestamp() AT TIME ZONE z` is the wall-clock time in z (a timestamp
    // without time zone), truncated to its midnight, and `AT TIME ZONE z` turns a
    // wall-clock time in z back into an instant. Adding the day to the wall-clock time,
    // not to the instant, keeps the next midnight right across a daylight-saving
    // change. (`date_trunc('day', statement_timestamp())` on the instant would truncate
    // in the session's time zone.) The clock is the statement's, as for every time
    // check of the crate, not the start of a caller's transaction.
    let zone = Bind::Text(zone.name());
    const MIDNIGHT_IN: &str = "(date_trunc('day', statement_timestamp() AT TIME ZONE ";
    (
        fragment::sql("count(*)"),
        fragment::sql("count(*) FILTER (WHERE completed)"),
        fragment::sql("count(*) FILTER (WHERE NOT completed AND due_date < statement_timestamp())"),
        fragment::sql("count(*) FILTER (WHERE NOT completed AND due_date >= ")
            .sql(MIDNIGHT_IN)
            .bind(zone.clone())
            .sql(") AT TIME ZONE ")
            .bind(zone.clone())
            .sql(") AND due_date < ")
            .sql(MIDNIGHT_IN)
            .bind(zone.clone())
            .sql(") + interval '1 day') AT TIME ZONE ")
            .bind(zone)
            .sql(")"),
        fragment::sql("count(*) FILTER (WHERE priority = 'low')"),
        fragment::sql("count(*) FILTER (WHERE priority = 'medium')"),
        fragment::sql("count(*) FILTER (WHERE priority = 'high')"),
    )
}
