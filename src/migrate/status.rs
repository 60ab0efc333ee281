//! The migrations this binary knows, and what the database has applied of them.

use std::fmt;

use chrono::NaiveDateTime;
use diesel::migration::{Migration as DieselMigration, MigrationSource};
use diesel::pg::{Pg, PgConnection};
use diesel::sql_types::{Bool, Text, Timestamp};
use diesel::RunQueryDsl;

use super::MIGRATIONS;
use crate::error::{Detail, Error, Result};

/// A migration: the version diesel records and the name of its directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Migration {
    /// The version as diesel records it, the digits of the directory's timestamp:
    /// `20261123000001`.
    pub version: String,
    /// The directory's name under `migrations/`: `2026-11-23-000001_create_users`. For a
    /// migration the database lists but this binary does not embed, the version.
    pub name: String,
}

impl Migration {
    pub(super) fn of(migration: &dyn DieselMigration<Pg>) -> Migration {
        Migration {
            version: migration.name().version().to_string(),
            name: migration.name().to_string(),
        }
    }
}

impl fmt::Display for Migration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Where a database stands with one migration: a line of [`status()`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationStatus {
    /// The migration.
    pub migration: Migration,
    /// When it was applied, `None` while it is pending. This is diesel's `run_on`, a
    /// `timestamp` without time zone: the local time of the session that applied it
    /// (its `TimeZone`, the server's default unless the client set one; UTC on most
    /// servers).
    pub applied_at: Option<NaiveDateTime>,
    /// Whether this binary embeds it. A migration that the database lists and this
    /// binary does not was applied by a newer release: revert it with that release.
    pub known: bool,
}

impl MigrationStatus {
    /// Whether the database has applied it.
    pub fn is_applied(&self) -> bool {
        self.applied_at.is_some()
    }
}

/// Every migration embedded in this binary, oldest first.
///
/// ```
/// let all = todo_store::migrate::embedded();
/// assert_eq!(all[0].name, "2026-11-23-000001_create_users");
/// assert_eq!(all[0].version, "20261123000001");
/// ```
pub fn embedded() -> Vec<Migration> {
    let mut all: Vec<Migration> = embedded_migrations()
        .iter()
        .map(|m| Migration::of(m.as_ref()))
        .collect();
    all.sort_by(|a, b| a.version.cmp(&b.version));
    all
}

/// The embedded migrations as diesel's runner takes them.
pub(super) fn embedded_migrations() -> Vec<Box<dyn DieselMigration<Pg>>> {
    // Embedded migrations are a static list: reading them cannot fail.
    MigrationSource::<Pg>::migrations(&MIGRATIONS).unwrap_or_default()
}

/// Each migration this binary knows, applied (and when) or pending, and any migration
/// the database has applied that this binary does not know; in order of version.
///
/// It only reads (no DDL, no lock): a role without rights to change the schema can
/// ask, and a database nothing was ever applied to lists every migration as pending.
///
/// ```rust,no_run
/// # fn main() -> todo_store::Result<()> {
/// # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
/// # let mut conn = pool.get()?;
/// for line in todo_store::migrate::status(&mut conn)? {
///     let state = if line.is_applied() { "applied" } else { "pending" };
///     println!("{state} {}", line.migration);
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`Error::Migration`] when the migrations table cannot be read.
pub fn status(conn: &mut PgConnection) -> Result<Vec<MigrationStatus>> {
    let mut applied = applied_with_times(conn)?;
    let mut lines: Vec<MigrationStatus> = embedded()
        .into_iter()
        .map(|migration| {
            let at = applied.iter().position(|(v, _)| *v == migration.version);
            MigrationStatus {
                applied_at: at.map(|i| applied.swap_remove(i).1),
                migration,
                known: true,
            }
        })
        .collect();
    lines.extend(applied.into_iter().map(|(version, at)| MigrationStatus {
        migration: Migration {
            name: version.clone(),
            version,
        },
        applied_at: Some(at),
        known: false,
    }));
    lines.sort_by(|a, b| a.migration.version.cmp(&b.migration.version));
    Ok(lines)
}

/// The versions the database has applied, newest first.
pub(super) fn applied_versions(conn: &mut PgConnection) -> Result<Vec<String>> {
    let mut applied = applied_with_times(conn)?;
    applied.sort_by(|a, b| b.0.cmp(&a.0));
    Ok(applied.into_iter().map(|(version, _)| version).collect())
}

#[derive(diesel::QueryableByName)]
struct Applied {
    #[diesel(sql_type = Text)]
    version: String,
    #[diesel(sql_type = Timestamp)]
    run_on: NaiveDateTime,
}

/// diesel's bookkeeping table, read with plain SELECTs (empty when it does not exist).
fn applied_with_times(conn: &mut PgConnection) -> Result<Vec<(String, NaiveDateTime)>> {
    let unreadable = |e: diesel::result::Error| {
        Error::Migration(Detail::with_source(
            "could not read the migrations table",
            e,
        ))
    };
    // Ask first whether the table exists: a failing SELECT would abort a caller's
    // transaction.
    let exists: bool = diesel::select(diesel::dsl::sql::<Bool>(
        "to_regclass('__diesel_schema_migrations') IS NOT NULL",
    ))
    .get_result(conn)
    .map_err(unreadable)?;
    if !exists {
        return Ok(Vec::new());
    }
    Ok(
        diesel::sql_query("SELECT version, run_on FROM __diesel_schema_migrations")
            .load::<Applied>(conn)
            .map_err(unreadable)?
            .into_iter()
            .map(|a| (a.version, a.run_on))
            .collect(),
    )
}
