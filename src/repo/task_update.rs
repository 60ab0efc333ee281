//! The task UPDATE as a statement of fixed SQL.
//!
//! Diesel marks its own UPDATE statements unsafe to cache, so they are parsed and
//! planned on every call. This statement always sends the same SQL (unchanged fields
//! keep their value through COALESCE or a flag), has a static query id, and is
//! therefore prepared once per connection. `TaskRepo::update` and
//! `TaskRepo::set_completed` both use it.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Bool, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid, Varchar};
use uuid::Uuid;

use crate::models::{Priority, TaskChanges};
use crate::schema::sql_types::TaskPriority;

/// `UPDATE tasks ... WHERE id = $1 AND user_id = $2 [AND version = $n] RETURNING *`.
pub(crate) struct UpdateTask<'a> {
    task_id: Uuid,
    user_id: Uuid,
    title: Option<&'a str>,
    set_description: bool,
    description: Option<&'a str>,
    completed: Option<bool>,
    priority: Option<Priority>,
    set_due_date: bool,
    due_date: Option<DateTime<Utc>>,
    expected_version: Option<i32>,
}

impl<'a> UpdateTask<'a> {
    pub(crate) fn new(user_id: Uuid, task_id: Uuid, changes: &TaskChanges<'a>) -> Self {
        UpdateTask {
            task_id,
            user_id,
            title: changes.title,
            set_description: changes.description.is_some(),
            description: changes.description.flatten(),
            completed: changes.completed,
            priority: changes.priority,
            set_due_date: changes.due_date.is_some(),
            due_date: changes.due_date.flatten(),
            expected_version: changes.expected_version,
        }
    }
}

/// The static query id that lets diesel cache the prepared statement.
pub(crate) struct UpdateTaskQueryId;

impl QueryId for UpdateTask<'_> {
    type QueryId = UpdateTaskQueryId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for UpdateTask<'_> {
    type SqlType = (
        SqlUuid,
        SqlUuid,
        Varchar,
        Nullable<Text>,
        Bool,
        TaskPriority,
        Nullable<Timestamptz>,
        Timestamptz,
        Timestamptz,
        Int4,
    );
}

impl RunQueryDsl<PgConnection> for UpdateTask<'_> {}

impl QueryFragment<Pg> for UpdateTask<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("UPDATE tasks SET title = COALESCE(");
        out.push_bind_param::<Nullable<Varchar>, _>(&self.title)?;
        out.push_sql(", title), description = CASE WHEN ");
        out.push_bind_param::<Bool, _>(&self.set_description)?;
        out.push_sql(" THEN ");
        out.push_bind_param::<Nullable<Text>, _>(&self.description)?;
        out.push_sql(" ELSE description END, completed = COALESCE(");
        out.push_bind_param::<Nullable<Bool>, _>(&self.completed)?;
        out.push_sql(", completed), priority = COALESCE(");
        out.push_bind_param::<Nullable<TaskPriority>, _>(&self.priority)?;
        out.push_sql(", priority), due_date = CASE WHEN ");
        out.push_bind_param::<Bool, _>(&self.set_due_date)?;
        out.push_sql(" THEN ");
        out.push_bind_param::<Nullable<Timestamptz>, _>(&self.due_date)?;
        // clock_timestamp(), not now(): updated_at moves even for a second update in the
        // same transaction.
        out.push_sql(
            " ELSE due_date END, version = version + 1, updated_at = clock_timestamp() \
             WHERE id = ",
        );
        out.push_bind_param::<SqlUuid, _>(&self.task_id)?;
        out.push_sql(" AND user_id = ");
        out.push_bind_param::<SqlUuid, _>(&self.user_id)?;
        out.push_sql(" AND (");
        out.push_bind_param::<Nullable<Int4>, _>(&self.expected_version)?;
        out.push_sql("::int4 IS NULL OR version = ");
        out.push_bind_param::<Nullable<Int4>, _>(&self.expected_version)?;
        out.push_sql(
            ") RETURNING id, user_id, title, description, completed, priority, due_date, \
             created_at, updated_at, version",
        );
        Ok(())
    }
}
