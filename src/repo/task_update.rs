//! Tasks as rows a user owns: the columns a [`crate::TaskPatch`] may change, for the
//! versioned UPDATE of [`super::owned`] (`TaskRepo::update` and
//! `TaskRepo::set_completed`).

use diesel::pg::Pg;
use diesel::query_builder::AstPass;
use diesel::sql_types::{Bool, Text, Timestamptz, Varchar};
use diesel::QueryResult;

use super::owned::{self, OwnedTable};
use crate::models::{Task, TaskChanges, TaskId};
use crate::schema::{sql_types::TaskPriority, tasks};

impl OwnedTable for tasks::table {
    const NAME: &'static str = "tasks";
    const ENTITY: &'static str = "task";
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
