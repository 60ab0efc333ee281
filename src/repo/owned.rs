//! Rows a user owns (tasks, habits): their versioned `UPDATE .. RETURNING` and the
//! stale-version decision, written once.
//!
//! A table plugs in with [`OwnedTable`]: its name, its row, and the assignments of the
//! columns a patch may change ([`set`], [`set_nullable`], [`set_or_merge`] for a jsonb
//! column replaced or merged in SQL); [`update`] does the rest.
//! The statement is fixed SQL with a static query id, the same text for every patch of
//! a table (a column left unchanged keeps its value through `COALESCE` or a flag), so
//! it is prepared once per connection; diesel's own UPDATE never is.

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
/// second statement tells a stale version from a missing row).
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
{
    let expected_version = patch.expected_version;
    let updated = VersionedUpdate::<T> {
        id,
        user_id,
        expected_version,
        changes: patch.columns,
        returning: T::Row::construct_selection(),
    }
    .get_result::<T::Row>(conn)
    .optional()?;
    match (updated, expected_version) {
        (Some(row), _) => Ok(row),
        (None, None) => Err(Error::not_found(T::ENTITY, id)),
        // The row was not updated: tell a stale version from a missing row.
        (None, Some(expected)) => {
            let actual = CurrentVersion::<T> {
                id,
                user_id,
                table: PhantomData,
            }
            .get_result::<i32>(conn)
            .optional()?;
            Err(match actual {
                Some(actual) => Error::Conflict {
                    kind: ConflictKind::StaleVersion { expected, actual },
                },
                None => Error::not_found(T::ENTITY, id),
            })
        }
    }
}

/// `UPDATE <T> SET version = version + 1, updated_at = clock_timestamp(), <columns>
/// WHERE id = $ AND user_id = $ AND ($::int4 IS NULL OR version = $) RETURNING <row>`.
pub(crate) struct VersionedUpdate<'a, T: OwnedTable> {
    id: T::Id,
    user_id: UserId,
    expected_version: Option<i32>,
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

/// `SELECT version FROM <T> WHERE id = $1 AND user_id = $2`.
struct CurrentVersion<T: OwnedTable> {
    id: T::Id,
    user_id: UserId,
    table: PhantomData<T>,
}

impl<T: OwnedTable> QueryId for CurrentVersion<T> {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<T: OwnedTable> Query for CurrentVersion<T> {
    type SqlType = Int4;
}

impl<T: OwnedTable> RunQueryDsl<PgConnection> for CurrentVersion<T> {}

impl<T: OwnedTable> QueryFragment<Pg> for CurrentVersion<T> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT version FROM ");
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
    }
}
