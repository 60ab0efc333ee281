//! Reverting the newest applied migrations: a number of them, or down to a version.

use std::collections::HashMap;

use diesel::migration::Migration as DieselMigration;
use diesel::pg::{Pg, PgConnection};
use diesel_migrations::MigrationHarness;

use super::status::{applied_versions, embedded_migrations, Migration};
use super::{after_schema_change, with_migration_lock};
use crate::error::{Detail, Error, Result};

/// Which applied migrations to revert, newest first: what [`revert()`] and [`revert_to`]
/// take, for [`super::data_dropped_by`] to look at first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revert {
    /// The newest `n` applied migrations.
    Newest(usize),
    /// Every applied migration newer than this version, which stays applied. The
    /// version as diesel records it (`20261202000003`), as a directory's timestamp
    /// (`2026-12-02-000003`) or as a directory's name
    /// (`2026-12-02-000003_users_created_idx`).
    DownTo(String),
}

/// Reverts the newest applied migration and returns it.
///
/// Same rules as [`revert()`] with a count of one.
///
/// ```rust,no_run
/// # fn main() -> todo_store::Result<()> {
/// # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
/// # let mut conn = pool.get()?;
/// let reverted = todo_store::migrate::revert_last(&mut conn)?;
/// println!("reverted {reverted}");
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// As [`revert()`]: [`Error::Validation`] (field `count`) when no migration is applied.
pub fn revert_last(conn: &mut PgConnection) -> Result<Migration> {
    revert(conn, 1)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::validation("count", "no migration was reverted"))
}

/// Reverts the newest `count` applied migrations, newest first, and returns them in
/// that order.
///
/// They are reverted in one transaction under the migration lock ([`super`]'s module
/// docs), so they are all reverted or none is, and an operator running `up` or `down`
/// at the same time waits: the count is of the migrations applied once the lock is
/// taken. When it reverted any, no connection keeps caches of the old schema (the
/// module docs).
///
/// # Errors
/// - [`Error::Validation`] (field `count`) when `count` is zero or more than the
///   migrations applied; nothing is reverted.
/// - [`Error::Migration`] when one of them is not embedded in this binary (a newer
///   release applied it: revert it with that release), must run outside a transaction,
///   or its down.sql fails; nothing is reverted.
/// - [`Error::Connection`] when they were reverted but the connection that ran them
///   could not be replaced.
pub fn revert(conn: &mut PgConnection, count: usize) -> Result<Vec<Migration>> {
    run(conn, &Revert::Newest(count))
}

/// Reverts every applied migration newer than `version`, newest first, and returns
/// them in that order; `version` stays applied (nothing is reverted when it is the
/// newest). `version` is written as diesel records it (`20261202000003`), as a
/// directory's timestamp (`2026-12-02-000003`) or as a directory's name.
///
/// One transaction under the migration lock, as [`revert()`].
///
/// # Errors
/// - [`Error::NotFound`] (entity `migration`) when `version` is neither embedded in
///   this binary nor applied: [`super::status()`] lists the versions.
/// - [`Error::Validation`] (field `version`) when `version` is not applied (reverting
///   down to it could not leave it applied): apply it, or revert to an applied one.
/// - [`Error::Migration`] and [`Error::Connection`] as for [`revert()`].
pub fn revert_to(conn: &mut PgConnection, version: &str) -> Result<Vec<Migration>> {
    run(conn, &Revert::DownTo(version.to_owned()))
}

fn run(conn: &mut PgConnection, target: &Revert) -> Result<Vec<Migration>> {
    let reverted = with_migration_lock(conn, |conn| {
        plan(conn, target)?
            .iter()
            .map(|m| revert_one(conn, m.as_ref()))
            .collect::<Result<Vec<_>>>()
    })?;
    after_schema_change(conn, !reverted.is_empty())?;
    Ok(reverted)
}

/// Runs one migration's down.sql and strikes it from diesel's table (in a savepoint
/// of the caller's transaction).
pub(super) fn revert_one(
    conn: &mut PgConnection,
    migration: &dyn DieselMigration<Pg>,
) -> Result<Migration> {
    conn.revert_migration(migration)
        .map_err(|e| Error::Migration(Detail::from_error(e)))?;
    Ok(Migration::of(migration))
}

/// The migrations `target` reverts, newest first, checked: read under the lock.
pub(super) fn plan(
    conn: &mut PgConnection,
    target: &Revert,
) -> Result<Vec<Box<dyn DieselMigration<Pg>>>> {
    let applied = applied_versions(conn)?;
    let mut embedded: HashMap<String, Box<dyn DieselMigration<Pg>>> = embedded_migrations()
        .into_iter()
        .map(|m| (m.name().version().to_string(), m))
        .collect();
    let count = match target {
        Revert::Newest(0) => {
            return Err(Error::validation(
                "count",
                "must be at least 1: say how many of the newest applied migrations to revert",
            ))
        }
        Revert::Newest(_) if applied.is_empty() => {
            return Err(Error::validation(
                "count",
                "no migration is applied: there is nothing to revert",
            ))
        }
        Revert::Newest(n) if *n > applied.len() => {
            return Err(Error::validation(
                "count",
                format!(
                    "{n} is more than the {} applied migrations: revert at most {}",
                    applied.len(),
                    applied.len()
                ),
            ))
        }
        Revert::Newest(n) => *n,
        Revert::DownTo(version) => {
            let wanted = normalize_version(version);
            match applied.iter().position(|v| *v == wanted) {
                Some(newer) => newer,
                None if embedded.contains_key(&wanted) => {
                    return Err(Error::validation(
                        "version",
                        format!(
                            "{version} is not applied, so reverting down to it cannot leave \
                             it applied: apply it first, or name an applied version \
                             (status lists them)"
                        ),
                    ))
                }
                None => return Err(Error::not_found("migration", version)),
            }
        }
    };
    applied[..count]
        .iter()
        .map(|version| {
            let migration = embedded.remove(version).ok_or_else(|| {
                Error::Migration(Detail::new(format!(
                    "migration {version} is applied but this binary does not embed it (a \
                     newer release applied it): revert it with that release"
                )))
            })?;
            if !migration.metadata().run_in_transaction() {
                // Everything here runs in the lock's transaction.
                return Err(Error::Migration(Detail::new(format!(
                    "migration {} must run outside a transaction (run_in_transaction = \
                     false), and this crate reverts in one transaction: revert it with \
                     diesel_cli (`diesel migration revert`)",
                    migration.name()
                ))));
            }
            Ok(migration)
        })
        .collect()
}

/// A version as diesel records it: the digits of the timestamp before the name.
fn normalize_version(version: &str) -> String {
    let timestamp = version.split_once('_').map_or(version, |(t, _)| t);
    timestamp.trim().chars().filter(|c| *c != '-').collect()
}

#[cfg(test)]
mod tests {
    use super::normalize_version;

    #[test]
    fn a_version_reads_in_each_of_its_spellings() {
        for spelling in [
            "20261202000003",
            "2026-12-02-000003",
            "2026-12-02-000003_users_created_idx",
        ] {
            assert_eq!(normalize_version(spelling), "20261202000003", "{spelling}");
        }
    }
}
