//! Tasks as rows a user owns: the columns a [`crate::TaskPatch`] may change, for the
//! versioned UPDATE of [`super::owned`] (`TaskRepo::update`), and the UPDATE of
//! `TaskRepo::set_completed`.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Bool, Text, Timestamptz, Uuid as SqlUuid, Varchar};

use super::owned::{self, OwnedTable};
use crate::models::{Task, TaskChanges, TaskId, UserId};
use crate::schema::{sql_types::TaskPriority, tasks};

impl OwnedTable for tasks::table {
    const NAME: &'static str = "tasks";
    const ENTITY: &'static str = "task";
    const WRITE_MARK: bool = true;
    type Id = TaskId;
    type Row = Task;
    type Changes<'a> = TaskChanges<'a>;

    fn push_assignments<'b>(
        changes: &'b TaskChanges<'_>,
        out: &mut AstPass<'_, 'b, Pg>,
    ) -> QueryResult<()> {
        owned::set::<Varchar, _>(out, "title", &changes.title)?;
        owned::set_nullable::<Text, _>(out, "description", &changes.description)?;
        owned::set::<Bool, _>(out, "completed", &changes.completed)?;
        owned::set::<TaskPriority, _>(out, "priority", &changes.priority)?;
        owned::set_nullable::<Timestamptz, _>(out, "due_date", &changes.due_date)?;
        owned::set_or_merge(
            out,
            "metadata",
            "jsonb_merge_patch",
            &changes.metadata.replace,
            &changes.metadata.merge,
        )
    }
}

/// `UPDATE tasks SET completed = $1, version = version + 1, updated_at =
/// clock_timestamp() WHERE id = $2 AND user_id = $3 AND completed IS DISTINCT FROM $4
/// RETURNING <task>`: the task put in state `completed`, only when it is not in it.
/// Fixed SQL with a static query id: prepared once per connection.
pub(crate) struct SetCompleted {
    pub id: TaskId,
    pub user_id: UserId,
    pub completed: bool,
    pub returning: <Task as Selectable<Pg>>::SelectExpression,
}

impl QueryId for SetCompleted {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for SetCompleted {
    type SqlType = <<Task as Selectable<Pg>>::SelectExpression as Expression>::SqlType;
}

impl RunQueryDsl<PgConnection> for SetCompleted {}

impl QueryFragment<Pg> for SetCompleted {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("UPDATE tasks SET completed = ");
        out.push_bind_param::<Bool, _>(&self.completed)?;
        // clock_timestamp(), as the versioned update: updated_at moves even for a
        // second write in the same transaction.
        out.push_sql(", version = version + 1, updated_at = clock_timestamp() WHERE id = ");
        out.push_bind_param::<SqlUuid, _>(&self.id)?;
        out.push_sql(" AND user_id = ");
        out.push_bind_param::<SqlUuid, _>(&self.user_id)?;
        out.push_sql(" AND completed IS DISTINCT FROM ");
        out.push_bind_param::<Bool, _>(&self.completed)?;
        out.push_sql(" RETURNING ");
        self.returning.walk_ast(out.reborrow())
    }
}
