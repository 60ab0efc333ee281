//! What reverting migrations would destroy: the tables that hold rows and the columns
//! that hold values among those the down.sql files drop.
//!
//! Rather than reading the SQL of each down.sql (`DROP TABLE`, `ALTER TABLE ... DROP
//! COLUMN`, and what `CASCADE`, `DROP TYPE` or `DROP EXTENSION` take with them), it
//! runs the reverts in a transaction that it then rolls back, and compares the
//! catalogs before and after each: what PostgreSQL itself dropped.

use std::fmt;

use diesel::connection::Connection;
use diesel::migration::Migration as DieselMigration;
use diesel::pg::{Pg, PgConnection};
use diesel::result::Error as DieselError;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};
use diesel::RunQueryDsl;

use super::revert::{plan, revert_one, Revert};
use super::status::Migration;
use super::{after_schema_change, with_migration_lock};
use crate::error::{Detail, Error, Result};

/// A table or column with data in it that a revert would drop: a line of
/// [`data_dropped_by`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DroppedData {
    /// The migration whose down.sql drops it.
    pub migration: Migration,
    /// The table, as PostgreSQL names it (with its schema when that is not on the
    /// search path).
    pub table: String,
    /// The column, or `None` when the whole table goes.
    pub column: Option<String>,
}

impl fmt::Display for DroppedData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            None => write!(
                f,
                "{} drops table {}, which holds rows",
                self.migration, self.table
            ),
            Some(column) => write!(
                f,
                "{} drops column {}.{column}, which holds values",
                self.migration, self.table
            ),
        }
    }
}

/// The data that reverting `target` would drop: each table it drops that holds rows,
/// and each column it drops (from a table it keeps) that holds a value other than
/// null and the column's default. Nothing is changed.
///
/// It runs the down.sql files under the migration lock in a transaction that it rolls
/// back, and compares the catalogs after each with the schema before (so it sees what
/// `CASCADE` and `DROP TYPE`/`DROP EXTENSION` take along too). It is conservative: a
/// table or column that a down.sql drops and creates again counts as dropped, a
/// default that is not a constant (`now()`, `uuid_v7()`) counts every row, a column
/// whose check fails counts as holding data; generated columns hold nothing of their
/// own and never count. What it does not see: rows a down.sql deletes or rewrites,
/// and columns whose type it changes. While it runs, the tables the down.sql files
/// touch are locked as the revert itself would lock them, and a slow down.sql is as
/// slow. Rows written between this call and a later revert are not seen:
/// [`revert_unless_it_drops_data`] checks and reverts in one transaction.
///
/// ```rust,no_run
/// use todo_store::migrate::{self, Revert};
/// # fn main() -> todo_store::Result<()> {
/// # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
/// # let mut conn = pool.get()?;
/// let dropped = migrate::data_dropped_by(&mut conn, &Revert::Newest(1))?;
/// if dropped.is_empty() {
///     migrate::revert_last(&mut conn)?;
/// } else {
///     for d in &dropped {
///         eprintln!("{d}");
///     }
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// Those of [`super::revert()`] and [`super::revert_to`] for the same target (a
/// down.sql that fails fails here too); nothing is changed.
pub fn data_dropped_by(conn: &mut PgConnection, target: &Revert) -> Result<Vec<DroppedData>> {
    with_migration_lock(conn, |conn| {
        let migrations = plan(conn, target)?;
        trial(conn, &migrations)
    })
}

/// What [`revert_unless_it_drops_data`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevertOutcome {
    /// These migrations were reverted, newest first.
    Reverted(Vec<Migration>),
    /// Nothing was reverted, because it would have dropped this data.
    Refused(Vec<DroppedData>),
}

/// Reverts `target` as [`super::revert()`] and [`super::revert_to`] do, unless that
/// drops a table holding rows or a column holding values ([`data_dropped_by`]): then
/// it reverts nothing and says what it would have dropped.
///
/// The check and the revert run in one transaction under the migration lock, so what
/// was checked is what is reverted, whoever else is migrating; the down.sql files run
/// twice (the trial is rolled back).
///
/// ```rust,no_run
/// use todo_store::migrate::{self, Revert, RevertOutcome};
/// # fn main() -> todo_store::Result<()> {
/// # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
/// # let mut conn = pool.get()?;
/// match migrate::revert_unless_it_drops_data(&mut conn, &Revert::Newest(1))? {
///     RevertOutcome::Reverted(reverted) => println!("reverted {}", reverted[0]),
///     RevertOutcome::Refused(dropped) => eprintln!("would drop: {}", dropped[0]),
///     _ => {}
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// Those of [`super::revert()`] and [`super::revert_to`] for the same target.
pub fn revert_unless_it_drops_data(
    conn: &mut PgConnection,
    target: &Revert,
) -> Result<RevertOutcome> {
    let outcome = with_migration_lock(conn, |conn| {
        let migrations = plan(conn, target)?;
        let dropped = trial(conn, &migrations)?;
        if !dropped.is_empty() {
            return Ok(RevertOutcome::Refused(dropped));
        }
        migrations
            .iter()
            .map(|m| revert_one(conn, m.as_ref()))
            .collect::<Result<Vec<_>>>()
            .map(RevertOutcome::Reverted)
    })?;
    if let RevertOutcome::Reverted(reverted) = &outcome {
        after_schema_change(conn, !reverted.is_empty())?;
    }
    Ok(outcome)
}

/// Reverts `migrations` in a savepoint that it rolls back, and returns what of the
/// data before them they would drop. The caller holds the migration lock.
fn trial(
    conn: &mut PgConnection,
    migrations: &[Box<dyn DieselMigration<Pg>>],
) -> Result<Vec<DroppedData>> {
    let before = columns(conn)?;
    let mut trial: Option<Vec<(Migration, Gone)>> = None;
    let result = conn.transaction::<(), Error, _>(|conn| {
        let mut previous = before.clone();
        let mut found = Vec::new();
        for migration in migrations {
            let migration = revert_one(conn, migration.as_ref())?;
            let now = columns(conn)?;
            found.extend(
                gone(&before, &previous, &now)
                    .into_iter()
                    .map(|g| (migration.clone(), g)),
            );
            previous = now;
        }
        trial = Some(found);
        // Undo the trial: back to the schema and rows of `before`.
        Err(Error::Database(DieselError::RollbackTransaction))
    });
    let found = match (trial, result) {
        (Some(found), _) => found,
        (None, Err(e)) => return Err(e),
        (None, Ok(())) => Vec::new(),
    };
    Ok(found
        .into_iter()
        .filter(|(_, gone)| holds_data(conn, gone))
        .map(|(migration, gone)| DroppedData {
            migration,
            table: gone.column.table,
            column: (!gone.whole_table).then_some(gone.column.name),
        })
        .collect())
}

/// A column of the schema.
#[derive(Debug, Clone, PartialEq, Eq, diesel::QueryableByName)]
struct Column {
    #[diesel(sql_type = BigInt)]
    table_oid: i64,
    #[diesel(sql_type = Text, column_name = table_name)]
    table: String,
    #[diesel(sql_type = Integer, column_name = column_number)]
    number: i32,
    #[diesel(sql_type = Text, column_name = column_name)]
    name: String,
    #[diesel(sql_type = Bool)]
    generated: bool,
    #[diesel(sql_type = Nullable<Text>, column_name = default_value)]
    default: Option<String>,
}

/// What a revert dropped: a whole table (named by its first column), or a column.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Gone {
    column: Column,
    whole_table: bool,
}

fn columns(conn: &mut PgConnection) -> Result<Vec<Column>> {
    diesel::sql_query(include_str!("columns.sql"))
        .load(conn)
        .map_err(|e| Error::Migration(Detail::with_source("could not read the catalogs", e)))
}

/// What of `original` was in `previous` and is not in `now`: each table that went, and
/// each column that went from a table that stayed, generated columns left out.
fn gone(original: &[Column], previous: &[Column], now: &[Column]) -> Vec<Gone> {
    let in_previous = |c: &Column| {
        previous
            .iter()
            .any(|p| p.table_oid == c.table_oid && p.number == c.number)
    };
    let table_stays = |oid: i64| now.iter().any(|n| n.table_oid == oid);
    let column_stays = |c: &Column| {
        now.iter()
            .any(|n| n.table_oid == c.table_oid && n.number == c.number)
    };
    let mut out: Vec<Gone> = Vec::new();
    for column in original.iter().filter(|c| in_previous(c)) {
        if !table_stays(column.table_oid) {
            if !out.iter().any(|o| o.column.table_oid == column.table_oid) {
                out.push(Gone {
                    column: column.clone(),
                    whole_table: true,
                });
            }
        } else if !column_stays(column) && !column.generated {
            out.push(Gone {
                column: column.clone(),
                whole_table: false,
            });
        }
    }
    out
}

#[derive(diesel::QueryableByName)]
struct Holds {
    #[diesel(sql_type = Bool)]
    holds: bool,
}

/// Whether the table has a row, or the column a value other than null and its
/// default. A check that fails (in its own savepoint) counts as holding data.
fn holds_data(conn: &mut PgConnection, gone: &Gone) -> bool {
    // Names and the default come from the catalogs, quoted by PostgreSQL.
    let column = &gone.column;
    let table = &column.table;
    let sql = if gone.whole_table {
        format!("SELECT EXISTS (SELECT FROM {table}) AS holds")
    } else {
        let name = &column.name;
        let not_default = column
            .default
            .as_ref()
            .map(|d| format!(" AND {name} IS DISTINCT FROM ({d})"))
            .unwrap_or_default();
        format!(
            "SELECT EXISTS (SELECT FROM {table} WHERE {name} IS NOT NULL{not_default}) AS holds"
        )
    };
    let checked = conn.transaction::<bool, DieselError, _>(|conn| {
        diesel::sql_query(&sql)
            .get_result::<Holds>(conn)
            .map(|h| h.holds)
    });
    checked.unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(table_oid: i64, number: i32, name: &str) -> Column {
        Column {
            table_oid,
            table: format!("t{table_oid}"),
            number,
            name: name.to_owned(),
            generated: false,
            default: None,
        }
    }

    #[test]
    fn a_dropped_table_counts_once_and_a_dropped_column_of_a_kept_table_counts() {
        let original = [
            column(1, 1, "id"),
            column(1, 2, "title"),
            column(2, 1, "id"),
            column(2, 2, "note"),
        ];
        let now = [column(2, 1, "id")];
        let gone = gone(&original, &original, &now);
        assert_eq!(gone.len(), 2, "{gone:?}");
        assert!(gone[0].whole_table && gone[0].column.table == "t1");
        assert!(!gone[1].whole_table && gone[1].column.name == "note");
    }

    #[test]
    fn generated_columns_and_what_an_earlier_revert_dropped_do_not_count() {
        let mut vector = column(1, 3, "search_vector");
        vector.generated = true;
        let original = [column(1, 1, "id"), column(1, 2, "title"), vector];
        assert!(gone(&original, &original, &original[..2]).is_empty());
        // "title" went with an earlier migration: that one is charged with it.
        let previous = [column(1, 1, "id")];
        assert!(gone(&original, &previous, &previous).is_empty());
    }

    #[test]
    fn a_column_dropped_and_added_again_counts_as_dropped() {
        let original = [column(1, 1, "id"), column(1, 2, "title")];
        let now = [column(1, 1, "id"), column(1, 3, "title")];
        let gone = gone(&original, &original, &now);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].column.name, "title");
    }

    /// The checks' SQL, on a table of the test's own (no migration's down.sql drops a
    /// column that is not generated from a table it keeps).
    #[cfg(feature = "testing")]
    #[test]
    fn a_column_holds_data_when_a_value_is_neither_null_nor_its_constant_default() {
        let db = crate::testing::TestDb::new();
        let mut conn = db.conn();
        diesel::connection::SimpleConnection::batch_execute(
            &mut *conn,
            "CREATE TABLE \"Odd Name\" (id int, note text, n int NOT NULL DEFAULT 0, \
             at timestamptz DEFAULT now()); INSERT INTO \"Odd Name\" (id) VALUES (1)",
        )
        .unwrap();
        let holds = |conn: &mut PgConnection, name: &str, whole_table: bool| {
            let column = columns(conn)
                .unwrap()
                .into_iter()
                .find(|c| c.table == "\"Odd Name\"" && c.name == name)
                .unwrap();
            holds_data(
                conn,
                &Gone {
                    column,
                    whole_table,
                },
            )
        };
        assert!(holds(&mut conn, "id", true), "a row");
        assert!(!holds(&mut conn, "note", false), "null");
        assert!(!holds(&mut conn, "n", false), "the default");
        assert!(holds(&mut conn, "at", false), "now() is not a constant");
        diesel::sql_query("UPDATE \"Odd Name\" SET note = 'x', n = 1")
            .execute(&mut conn)
            .unwrap();
        assert!(holds(&mut conn, "note", false));
        assert!(holds(&mut conn, "n", false));
        diesel::sql_query("DELETE FROM \"Odd Name\"")
            .execute(&mut conn)
            .unwrap();
        assert!(!holds(&mut conn, "id", true), "no row");
    }
}
