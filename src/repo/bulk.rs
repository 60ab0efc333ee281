//! The bulk path: rows go in with one binary `COPY FROM` per call, the fastest way
//! PostgreSQL takes rows. `TaskRepo::create_many`, `UserRepo::create_many` and the
//! seed program all write through here.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Timestamptz;

use super::fragment::{self, NoTable};
use crate::error::{ConflictKind, Error, Result};
use crate::models::{JsonObject, Priority, Task, TaskId, TaskRow, User, UserId, UserRow};
use crate::schema::{tasks, users};

/// A validated task with explicit timestamps, as COPY writes it. (COPY takes flat
/// rows only: diesel cannot copy an embedded `TaskRow`.)
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = tasks, treat_none_as_default_value = false)]
pub(crate) struct TaskCopyRow<'a> {
    pub id: TaskId,
    pub user_id: UserId,
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub completed: bool,
    pub priority: Priority,
    pub due_date: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub metadata: JsonObject<'a>,
}

impl<'a> TaskCopyRow<'a> {
    pub(crate) fn new(
        row: TaskRow<'a>,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Self {
        TaskCopyRow {
            id: row.id,
            user_id: row.user_id,
            title: row.title,
            description: row.description,
            completed: row.completed,
            priority: row.priority,
            due_date: row.due_date,
            created_at,
            updated_at,
            metadata: row.metadata,
        }
    }

    /// The task this row is once written.
    pub(crate) fn to_task(&self) -> Task {
        Task {
            id: self.id,
            user_id: self.user_id,
            title: self.title.to_owned(),
            description: self.description.map(str::to_owned),
            completed: self.completed,
            priority: self.priority,
            due_date: self.due_date,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: 1,
            metadata: self.metadata.0.clone(),
        }
    }
}

/// A validated user with explicit timestamps, as COPY writes it.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users, treat_none_as_default_value = false)]
pub(crate) struct UserCopyRow<'a> {
    pub id: UserId,
    pub email: String,
    pub name: &'a str,
    pub email_verified: bool,
    pub image: Option<&'a str>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl<'a> UserCopyRow<'a> {
    pub(crate) fn new(
        row: UserRow<'a>,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Self {
        UserCopyRow {
            id: row.id,
            email: row.email,
            name: row.name,
            email_verified: row.email_verified,
            image: row.image,
            created_at,
            updated_at,
        }
    }

    /// The user this row is once written.
    pub(crate) fn to_user(&self) -> User {
        User {
            id: self.id,
            email: self.email.clone(),
            name: self.name.to_owned(),
            email_verified: self.email_verified,
            image: self.image.map(str::to_owned),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// Writes `rows` with one COPY; returns how many were written.
pub(crate) fn copy_tasks(conn: &mut PgConnection, rows: &[TaskCopyRow<'_>]) -> QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    diesel::copy_from(tasks::table)
        .from_insertable(rows)
        .execute(conn)
}

/// Writes `rows` with one COPY; returns how many were written.
pub(crate) fn copy_users(conn: &mut PgConnection, rows: &[UserCopyRow<'_>]) -> QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    diesel::copy_from(users::table)
        .from_insertable(rows)
        .execute(conn)
}

/// The server's `now()`: the start of the current transaction, which is what the
/// columns' defaults would have been.
pub(crate) fn transaction_now(conn: &mut PgConnection) -> Result<DateTime<Utc>> {
    Ok(diesel::select(fragment::sql::<NoTable, Timestamptz>("now()")).get_result(conn)?)
}

/// Whether `err` is a duplicate primary key: a row of the batch has the id of a stored
/// row (perhaps the same batch, written before).
pub(crate) fn is_duplicate_id(err: &Error) -> bool {
    matches!(
        err,
        Error::Conflict { kind: ConflictKind::Duplicate { constraint } }
            if constraint.ends_with("_pkey")
    )
}

/// The rows of a batch written before, in the batch's order: `Some` when `stored` holds
/// each of `rows` exactly as it was written (`is_stored_as` says `None` for another row,
/// `Some(same)` for the one of the same id).
pub(crate) fn stored_as<R, S>(
    rows: &[R],
    mut stored: Vec<S>,
    is_stored_as: impl Fn(&R, &S) -> Option<bool>,
) -> Option<Vec<S>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let at = stored.iter().position(|s| is_stored_as(row, s).is_some())?;
        let found = stored.swap_remove(at);
        if !is_stored_as(row, &found)? {
            return None;
        }
        out.push(found);
    }
    Some(out)
}
