//! Rows a user owns (tasks, habits): their versioned `UPDATE .. RETURNING` and the
//! stale-version decision, written once.
//!
//! A table plugs in with [`OwnedTable`]: its name, its row, and the assignments of the
//! columns a patch may change ([`set`], [`set_nullable`], [`set_or_merge`] for a jsonb
//! column replaced or merged in SQL); [`update`] does the rest.
//! The statement is fixed SQL with a static query id, the same text for every patch of
//! a table (a column left unchanged keeps its value through `COALESCE` or a flag), so
//! it is prepared once per connection; diesel's own UPDATE never is.
//!
//! A table with a write mark ([`OwnedTable::WRITE_MARK`]: a `last_write uuid` column)
//! makes its versioned updates exactly-once: the UPDATE stores the patch's write id in
//! it, and when a patch with an expected version finds the row moved on, a row at
//! exactly `expected + 1` carrying the patch's own id is that patch's earlier write (a
//! retry after a COMMIT whose outcome was unknown): every write of the row bumps its
//! version, so no other write came between. The update then returns that row.

use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::query_dsl::LoadQuery;
use diesel::serialize::ToSql;
use diesel::sql_types::{Bool, HasSqlType, Int4, Jsonb, Nullable, SqlType, Uuid as SqlUuid};

use crate::error::{ConflictKind, Error, Result};
use crate::models::patch::{NullableChange, Versioned};
use crate::models::UserId;

/// A table of rows a user owns: `id` and `user_id` (uuid), `version` (int4, from 1)
/// and `updated_at` (timestamptz) columns, and the columns of its own.
pub(crate) trait OwnedTable: 'static {
    /// The type of the table's `id` ([`crate::TaskId`], ...).
    type Id: Copy + std::fmt::Display + From<uuid::Uuid> + ToSql<SqlUuid, Pg>;
    /// The table's name in SQL.
    const NAME: &'static str;
    /// What a missing row is called in [`Error::NotFound`].
    const ENTITY: &'static str;
    /// Whether the table has a write mark, a `last_write uuid` column that an update
    /// sets to its patch's write id.
    const WRITE_MARK: bool;
    /// The row an update returns (its `Selectable` columns are the `RETURNING` list).
    type Row: Selectable<Pg, SelectExpression: QueryFragment<Pg> + Expression>;
    /// The validated changes of the table's own columns.
    type Changes<'a>;

    /// The assignments of every column a patch may change, each with [`set`] or
    /// [`set_nullable`], the same for every patch.
    fn push_assignments<'b>(
        changes: &'b Self::Changes<'_>,
        out: &mut AstPass<'_, 'b, Pg>,
    ) -> QueryResult<()>;
}

/// `, column = COALESCE($n, column)`: `value`, or the column unchanged for `None`.
pub(crate) fn set<'b, ST, T>(
    out: &mut AstPass<'_, 'b, Pg>,
    column: &'static str,
    value: &'b Option<T>,
) -> QueryResult<()>
where
    ST: SqlType,
    Pg: HasSqlType<ST>,
    Option<T>: ToSql<Nullable<ST>, Pg>,
{
    out.push_sql(", ");
    out.push_sql(column);
    out.push_sql(" = COALESCE(");
    out.push_bind_param::<Nullable<ST>, _>(value)?;
    out.push_sql(", ");
    out.push_sql(column);
    out.push_sql(")");
    Ok(())
}

/// `, column = CASE WHEN $n THEN $m ELSE column END`: a nullable column set (to a value
/// or NULL) or left unchanged.
pub(crate) fn set_nullable<'b, ST, T>(
    out: &mut AstPass<'_, 'b, Pg>,
    column: &'static str,
    change: &'b NullableChange<T>,
) -> QueryResult<()>
where
    ST: SqlType,
    Pg: HasSqlType<ST>,
    Option<T>: ToSql<Nullable<ST>, Pg>,
{
    out.push_sql(", ");
    out.push_sql(column);
    out.push_sql(" = CASE WHEN ");
    out.push_bind_param::<Bool, _>(&change.set)?;
    out.push_sql(" THEN ");
    out.push_bind_param::<Nullable<ST>, _>(&change.value)?;
    out.push_sql(" ELSE ");
    out.push_sql(column);
    out.push_sql(" END");
    Ok(())
}

/// `, column = COALESCE(merge(column, $m), $r, column)`: a jsonb column merged with the
/// SQL function `merge` (a STRICT one: a NULL patch gives NULL), replaced by `replace`,
/// or left unchanged when both are `None`.
pub(crate) fn set_or_merge<'b, T>(
    out: &mut AstPass<'_, 'b, Pg>,
    column: &'static str,
    merge_function: &'static str,
    replace: &'b Option<T>,
    merge: &'b Option<T>,
) -> QueryResult<()>
where
    Option<T>: ToSql<Nullable<Jsonb>, Pg>,
{
    out.push_sql(", ");
    out.push_sql(column);
    out.push_sql(" = COALESCE(");
    out.push_sql(merge_function);
    out.push_sql("(");
    out.push_sql(column);
    out.push_sql(", ");
    out.push_bind_param::<Nullable<Jsonb>, _>(merge)?;
    out.push_sql("), ");
    out.push_bind_param::<Nullable<Jsonb>, _>(replace)?;
    out.push_sql(", ");
    out.push_sql(column);
    out.push_sql(")");
    Ok(())
}

/// Applies `patch` to the row `id` of `user_id` of table `T` and returns the row, in
/// one round trip (two when it was not updated and a version was expected: then a
/// second statement reads the row, to tell a stale version from a missing row, and, for
/// a table with a write mark, the patch's own earlier write from another's).
///
/// With an expected version and a write id, on a table with a write mark, the update is
/// exactly-once ([`crate::retry::exactly_once`], naming the row `(T::NAME, write id)`):
/// applied again, the same patch returns the row its earlier application wrote.
/// Without an expected version it stays blind: last-writer-wins cannot tell its own
/// write once another followed it.
///
/// # Errors
/// [`Error::NotFound`] of `T::ENTITY` when the row does not exist or belongs to another
/// user; [`Error::Conflict`] with [`ConflictKind::StaleVersion`] when the row's version
/// is not `patch.expected_version`; database errors.
pub(crate) fn update<'a, T>(
    conn: &mut PgConnection,
    user_id: UserId,
    id: T::Id,
    patch: Versioned<T::Changes<'a>>,
) -> Result<T::Row>
where
    T: OwnedTable,
    VersionedUpdate<'a, T>: LoadQuery<'a, PgConnection, T::Row>,
    CurrentRow<T>: LoadQuery<'static, PgConnection, (i32, Option<uuid::Uuid>, T::Row)>,
{
    match (patch.expected_version, patch.write_id) {
        (Some(_), Some(write_id)) if T::WRITE_MARK => {
            crate::retry::exactly_once([crate::retry::RowKey::row(T::NAME, write_id)], || {
                apply::<T>(conn, user_id, id, patch)
            })
        }
        _ => apply::<T>(conn, user_id, id, patch),
    }
}

/// [`update`], without the ledger.
fn apply<'a, T>(
    conn: &mut PgConnection,
    user_id: UserId,
    id: T::Id,
    patch: Versioned<T::Changes<'a>>,
) -> Result<T::Row>
where
    T: OwnedTable,
    VersionedUpdate<'a, T>: LoadQuery<'a, PgConnection, T::Row>,
    CurrentRow<T>: LoadQuery<'static, PgConnection, (i32, Option<uuid::Uuid>, T::Row)>,
{
    let expected_version = patch.expected_version;
    let write_id = patch.write_id;
    let updated = VersionedUpdate::<T> {
        id,
        user_id,
        expected_version,
        write_id,
        changes: patch.columns,
        returning: T::Row::construct_selection(),
    }
    .get_result::<T::Row>(conn)
    .optional()?;
    match (updated, expected_version) {
        (Some(row), _) => Ok(row),
        (None, None) => Err(Error::not_found(T::ENTITY, id)),
        // The row was not updated: tell a stale version from a missing row, and this
        // patch's own earlier write from another's.
        (None, Some(expected)) => {
            let current = CurrentRow::<T> {
                id,
                user_id,
                returning: T::Row::construct_selection(),
            }
            .get_result::<(i32, Option<uuid::Uuid>, T::Row)>(conn)
            .optional()?;
            match current {
                Some((actual, mark, row))
                    if T::WRITE_MARK
                        && write_id.is_some()
                        && mark == write_id
                        && Some(actual) == expected.checked_add(1) =>
                {
                    Ok(row)
                }
                Some((actual, _, _)) => Err(Error::Conflict {
                    kind: ConflictKind::StaleVersion { expected, actual },
                }),
                None => Err(Error::not_found(T::ENTITY, id)),
            }
        }
    }
}

/// `UPDATE <T> SET version = version + 1, updated_at = clock_timestamp(), <columns>
/// [, last_write = $] WHERE id = $ AND user_id = $ AND ($::int4 IS NULL OR version = $)
/// RETURNING <row>`.
pub(crate) struct VersionedUpdate<'a, T: OwnedTable> {
    id: T::Id,
    user_id: UserId,
    expected_version: Option<i32>,
    write_id: Option<uuid::Uuid>,
    changes: T::Changes<'a>,
    returning: <T::Row as Selectable<Pg>>::SelectExpression,
}

/// The static query id of [`VersionedUpdate`] of `T`: one prepared statement per table.
pub(crate) struct VersionedUpdateId<T>(PhantomData<T>);

impl<T: OwnedTable> QueryId for VersionedUpdate<'_, T> {
    type QueryId = VersionedUpdateId<T>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<T: OwnedTable> Query for VersionedUpdate<'_, T> {
    type SqlType = <<T::Row as Selectable<Pg>>::SelectExpression as Expression>::SqlType;
}

impl<T: OwnedTable> RunQueryDsl<PgConnection> for VersionedUpdate<'_, T> {}

impl<T: OwnedTable> QueryFragment<Pg> for VersionedUpdate<'_, T> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        out.push_sql(T::NAME);
        // clock_timestamp(), not now(): updated_at moves even for a second update in the
        // same transaction.
        out.push_sql(" SET version = version + 1, updated_at = clock_timestamp()");
        T::push_assignments(&self.changes, &mut out)?;
        if T::WRITE_MARK {
            out.push_sql(", last_write = ");
            out.push_bind_param::<Nullable<SqlUuid>, _>(&self.write_id)?;
        }
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<SqlUuid, _>(&self.id)?;
        out.push_sql(" AND user_id = ");
        out.push_bind_param::<SqlUuid, _>(&self.user_id)?;
        out.push_sql(" AND (");
        out.push_bind_param::<Nullable<Int4>, _>(&self.expected_version)?;
        out.push_sql("::int4 IS NULL OR version = ");
        out.push_bind_param::<Nullable<Int4>, _>(&self.expected_version)?;
        out.push_sql(") RETURNING ");
        self.returning.walk_ast(out.reborrow())
    }
}

/// `SELECT version, last_write, <row> FROM <T> WHERE id = $1 AND user_id = $2`
/// (`NULL::uuid` for `last_write` in a table without a write mark).
pub(crate) struct CurrentRow<T: OwnedTable> {
    id: T::Id,
    user_id: UserId,
    returning: <T::Row as Selectable<Pg>>::SelectExpression,
}

/// The static query id of [`CurrentRow`] of `T`: one prepared statement per table.
pub(crate) struct CurrentRowId<T>(PhantomData<T>);

impl<T: OwnedTable> QueryId for CurrentRow<T> {
    type QueryId = CurrentRowId<T>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<T: OwnedTable> Query for CurrentRow<T> {
    type SqlType = (
        Int4,
        Nullable<SqlUuid>,
        <<T::Row as Selectable<Pg>>::SelectExpression as Expression>::SqlType,
    );
}

impl<T: OwnedTable> RunQueryDsl<PgConnection> for CurrentRow<T> {}

impl<T: OwnedTable> QueryFragment<Pg> for CurrentRow<T> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT version, ");
        out.push_sql(if T::WRITE_MARK {
            "last_write"
        } else {
            "NULL::uuid"
        });
        out.push_sql(", ");
        self.returning.walk_ast(out.reborrow())?;
        out.push_sql(" FROM ");
        out.push_sql(T::NAME);
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<SqlUuid, _>(&self.id)?;
        out.push_sql(" AND user_id = ");
        out.push_bind_param::<SqlUuid, _>(&self.user_id)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{HabitPatch, Schedule, TaskPatch};
    use crate::schema::{habits, tasks};

    fn sql<'a, T: OwnedTable>(patch: Versioned<T::Changes<'a>>) -> String
    where
        VersionedUpdate<'a, T>: QueryFragment<Pg>,
    {
        let statement = VersionedUpdate::<T> {
            id: uuid::Uuid::nil().into(),
            user_id: uuid::Uuid::nil().into(),
            expected_version: patch.expected_version,
            write_id: patch.write_id,
            changes: patch.columns,
            returning: T::Row::construct_selection(),
        };
        let text = diesel::debug_query::<Pg, _>(&statement).to_string();
        text.split(" -- binds:").next().unwrap().to_owned()
    }

    /// One text for every patch of a table: the statement is prepared once.
    #[test]
    fn every_patch_of_a_table_sends_the_same_sql() {
        let empty = TaskPatch::default();
        let full = TaskPatch {
            title: Some("t".into()),
            description: Some(None),
            completed: Some(true),
            due_date: Some(None),
            metadata: Some(crate::models::MetadataChange::Merge(Default::default())),
            expected_version: Some(3),
            ..TaskPatch::default()
        };
        let task_sql = sql::<tasks::table>(empty.to_changes().unwrap());
        assert_eq!(task_sql, sql::<tasks::table>(full.to_changes().unwrap()));
        assert!(
            task_sql.starts_with(
                "UPDATE tasks SET version = version + 1, updated_at = clock_timestamp(), \
                 title = COALESCE($1, title), description = CASE WHEN $2 THEN $3 ELSE description END"
            ),
            "{task_sql}"
        );

        let empty = HabitPatch::default();
        let full = HabitPatch {
            schedule: Some(Schedule::Daily),
            is_active: Some(false),
            ..HabitPatch::default()
        };
        let habit_sql = sql::<habits::table>(empty.to_changes().unwrap());
        assert_eq!(habit_sql, sql::<habits::table>(full.to_changes().unwrap()));
        assert!(habit_sql.starts_with("UPDATE habits SET "), "{habit_sql}");
        // Only tasks keep a write mark.
        assert!(task_sql.contains(", last_write = $"), "{task_sql}");
        assert!(!habit_sql.contains("last_write"), "{habit_sql}");
    }

    /// The read after a failed versioned update: the version, the mark and the row, in
    /// one statement.
    #[test]
    fn the_read_after_a_stale_version_reads_the_mark_and_the_row() {
        fn sql<T: OwnedTable>() -> String
        where
            CurrentRow<T>: QueryFragment<Pg>,
        {
            let statement = CurrentRow::<T> {
                id: uuid::Uuid::nil().into(),
                user_id: uuid::Uuid::nil().into(),
                returning: T::Row::construct_selection(),
            };
            diesel::debug_query::<Pg, _>(&statement).to_string()
        }
        let task_sql = sql::<tasks::table>();
        assert!(
            task_sql.starts_with("SELECT version, last_write, \"tasks\".\"id\""),
            "{task_sql}"
        );
        assert!(task_sql.contains(" FROM tasks WHERE id = $1 AND user_id = $2"));
        let habit_sql = sql::<habits::table>();
        assert!(
            habit_sql.starts_with("SELECT version, NULL::uuid, "),
            "{habit_sql}"
        );
    }
}
