//! Embedded migrations, run in one transaction under a PostgreSQL advisory lock, so
//! that several processes starting at once on an empty database all succeed and apply
//! each migration once, directly or through a transaction-mode pooler. (The lock's
//! key is `0x746f_646f_7374_6f72`, the bytes of "todostor": in `pg_locks`, a
//! transaction-level advisory lock with `classid = 1953457263` and `objid = 1937010546`.)
//!
//! # Connections after a migration
//!
//! diesel keeps, on each connection, the OIDs of the types it looked up (the
//! `task_priority` enum) and its prepared statements. A migration that drops and
//! creates a type again (reverting and re-applying the migrations, say) gives it a new
//! OID, and a connection that cached the old one fails with "cache lookup failed for
//! type". So after [`run_migrations`] or [`revert_all_migrations`] changed anything:
//! - the connection that ran them, when it is a connection of the crate's pool
//!   ([`crate::connect`], [`crate::testing::TestDb`], [`crate::AsyncPool`]) outside a
//!   transaction of the caller's, is replaced with a new one, opened and set up as the
//!   pool opens its connections (the pool's [`crate::PoolOptions::customizer`]
//!   included), so the caller goes on using it; what the caller set on the old one for
//!   the session (`SET`, temporary tables, session advisory locks, `LISTEN`) is gone
//!   with it;
//! - every other connection of the crate's pools in this process to the same database
//!   (host, port and name) that has run a statement is retired when it next comes
//!   back to its pool or is checked out (a connection that ran nothing has cached
//!   nothing and is kept).
//!
//! Both need the crate's notes on the connection: a pool that is not the crate's (its
//! connections set up with [`crate::pool::setup_connection`]), or a connection whose
//! instrumentation the caller replaced, is neither renewed nor retired, and a migration
//! run on it does not retire the crate's pools either.
//!
//! What the crate cannot renew, drop: a connection you opened yourself
//! (`PgConnection::establish`, another pool's) that ran a migration changing a type, or
//! that had run statements when a migration on another connection changed one (a
//! migration run on such a connection does not retire the crate's pools either); and
//! after another *process* changed a type, this process's pools (build them again, or
//! restart). Applying migrations that only add (the usual deploy) leaves every
//! connection usable.
//!
//! Through a transaction-mode pooler (PgBouncer, Neon's pooled endpoint), and running
//! the migrations over a direct URL instead: the [`crate::config`] docs, *Behind a
//! connection pooler*.
//!
//! # For operators: status, and going back
//!
//! [`status()`] lists each migration this binary embeds, applied (and when) or pending,
//! and any the database applied that it does not know. [`revert_last`], [`revert()`] (a
//! number of the newest) and [`revert_to`] (down to a version, which stays applied)
//! undo applied migrations, newest first; [`data_dropped_by`] says which tables with
//! rows and which columns with values a revert would drop, and
//! [`revert_unless_it_drops_data`] reverts only when it drops none. The command
//! `cargo run --example migrate -- status | up | down [N]` is built on them.
//!
//! Each of them but [`status()`] (a plain read), as [`run_migrations`] and
//! [`revert_all_migrations`], runs in one transaction that first takes the migration
//! lock: two operators (or an operator and a starting service) never interleave, the
//! second waits and then sees what the first did, and a failure leaves nothing half
//! done. After a revert that changed anything, the connection rules above apply as
//! after [`run_migrations`].
//!
//! One transaction is possible because no migration opts out of one: none has a
//! `metadata.toml` with `run_in_transaction = false`, which a few statements need
//! (`CREATE INDEX CONCURRENTLY`, `DROP INDEX CONCURRENTLY`, `VACUUM`, `CREATE
//! DATABASE`), and a test keeps it so. Should one ever opt out, the functions here
//! refuse to revert it and say to use diesel_cli, and applying it fails with
//! PostgreSQL's "cannot run inside a transaction block"; such a migration needs a
//! session-level lock instead, held on one connection (so not through a
//! transaction-mode pooler).

mod dropped_data;
mod revert;
mod status;

pub use dropped_data::{data_dropped_by, revert_unless_it_drops_data, DroppedData, RevertOutcome};
pub use revert::{revert, revert_last, revert_to, Revert};
pub use status::{embedded, status, Migration, MigrationStatus};

use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::pg::PgConnection;
use diesel::sql_types::BigInt;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::error::{Detail, Error, Result};

/// The migrations of `migrations/`, compiled into the crate.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The advisory lock key that serialises migration runs on a database
/// (the bytes of "todostor" as a big-endian i64).
pub(crate) const MIGRATION_LOCK_KEY: i64 = 0x746f_646f_7374_6f72;

/// Applies every pending migration and returns the versions applied now (empty when the
/// database was up to date). Waits for any other process migrating the same database.
///
/// When it applied any, no connection keeps caches of the old schema: see the
/// [module docs](self).
///
/// # Errors
/// [`Error::Migration`] when a migration fails; then none of the pending migrations
/// is applied (they run in one transaction). [`Error::Connection`] when the migrations
/// were applied but the connection that ran them could not be replaced.
pub fn run_migrations(conn: &mut PgConnection) -> Result<Vec<String>> {
    if all_applied(conn) {
        // The common case, and the only one a runtime role without DDL rights may
        // reach: diesel's runner would first try CREATE TABLE IF NOT EXISTS on its
        // bookkeeping table, which needs CREATE on the schema even when it exists.
        return Ok(Vec::new());
    }
    let applied = with_migration_lock(conn, |conn| {
        conn.run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(|e| Error::Migration(Detail::from_error(e)))
    })?;
    after_schema_change(conn, !applied.is_empty())?;
    Ok(applied)
}

/// Reverts every applied migration, newest first, and returns the versions reverted.
///
/// When it reverted any, no connection keeps caches of the old schema: see the
/// [module docs](self).
///
/// # Errors
/// [`Error::Migration`] when a down migration fails. [`Error::Connection`] when the
/// migrations were reverted but the connection that ran them could not be replaced.
pub fn revert_all_migrations(conn: &mut PgConnection) -> Result<Vec<String>> {
    let reverted = with_migration_lock(conn, |conn| {
        conn.revert_all_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(|e| Error::Migration(Detail::from_error(e)))
    })?;
    after_schema_change(conn, !reverted.is_empty())?;
    Ok(reverted)
}

/// After a migration run: when it `changed` the schema, retires the connections of
/// the crate's pools to this database that may cache the old one, and renews `conn`.
fn after_schema_change(conn: &mut PgConnection, changed: bool) -> Result<()> {
    if !changed {
        return Ok(());
    }
    crate::pool::renew_after_schema_change(conn)
}

/// The versions of the embedded migrations that the database has not applied yet.
///
/// # Errors
/// [`Error::Migration`] when the migrations table cannot be read.
pub fn pending_migrations(conn: &mut PgConnection) -> Result<Vec<String>> {
    if let Some(pending) = unapplied(conn) {
        return Ok(pending);
    }
    conn.pending_migrations(MIGRATIONS)
        .map(|pending| {
            pending
                .iter()
                .map(|m| m.name().version().to_string())
                .collect()
        })
        .map_err(|e| Error::Migration(Detail::from_error(e)))
}

/// Whether every embedded migration is recorded as applied, read without DDL and
/// without the lock. Anything unknown means "not known to be applied", and the caller
/// takes the slow path.
fn all_applied(conn: &mut PgConnection) -> bool {
    unapplied(conn).is_some_and(|pending| pending.is_empty())
}

/// The embedded versions the bookkeeping table does not list, read with a plain
/// SELECT (no DDL, so a runtime role with read access can ask); `None` when the table
/// cannot be read.
fn unapplied(conn: &mut PgConnection) -> Option<Vec<String>> {
    let embedded = MigrationSource::<Pg>::migrations(&MIGRATIONS).ok()?;
    // Ask first whether the table exists: a failing SELECT would abort a caller's
    // transaction.
    let exists: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
        "to_regclass('__diesel_schema_migrations') IS NOT NULL",
    ))
    .get_result(conn)
    .ok()?;
    let applied: Vec<String> = if exists {
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
            .load::<Version>(conn)
            .ok()?
            .into_iter()
            .map(|r| r.version)
            .collect()
    } else {
        Vec::new()
    };
    Some(
        embedded
            .iter()
            .map(|m| m.name().version().to_string())
            .filter(|v| !applied.contains(v))
            .collect(),
    )
}

#[derive(diesel::QueryableByName)]
struct Version {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// Runs `f` in one transaction that first takes the migration lock.
///
/// The lock is transaction-scoped (`pg_advisory_xact_lock`), so it also holds behind a
/// transaction-mode pooler such as PgBouncer, where a session-level lock could be
/// taken on one server connection and released on another. Diesel runs each migration
/// in a savepoint inside it: all pending migrations apply together or not at all.
fn with_migration_lock<T>(
    conn: &mut PgConnection,
    f: impl FnOnce(&mut PgConnection) -> Result<T>,
) -> Result<T> {
    conn.transaction(|conn| {
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
            .execute(conn)
            .map_err(|e| {
                Error::Migration(Detail::with_source("could not take the migration lock", e))
            })?;
        f(conn)
    })
}
