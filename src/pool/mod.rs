//! The r2d2 connection pool: [`connect`] builds it, sets each new connection up, and
//! runs pending migrations before handing it out; [`PoolOptions`] builds any other
//! (with [`PoolMetrics`], lazily, with r2d2 settings or a connection customizer of
//! one's own); [`checkout`] takes a connection out with an error that names the pool.
//!
//! ```no_run
//! # fn main() -> todo_store::Result<()> {
//! use todo_store::{DbConfig, PoolOptions};
//!
//! let config = DbConfig::from_env()?;
//! let pool = todo_store::connect(&config)?; // the same as:
//! let pool = PoolOptions::new(&config).connect()?;
//! // No migrations (a role that may not change the schema), and the pool's counters.
//! let (pool, metrics) = PoolOptions::new(&config).run_migrations(false).connect_with_metrics()?;
//! # Ok(())
//! # }
//! ```
//!
//! A pool that is not the crate's (deadpool-diesel, an r2d2 pool on diesel's own
//! manager) gets the crate's per-connection setup from [`setup_connection`].
//!
//! ## Checkouts cost no round trip, and broken connections are thrown away
//!
//! r2d2's usual health check sends `SELECT 1` on every checkout: one more round trip,
//! which doubles the cost of a read. [`PgConnectionManager`] skips the check for a
//! connection that was returned to the pool less than [`RECENTLY_USED`] ago (as
//! HikariCP does) and pings only the ones idle for longer. A connection that failed
//! with a lost-connection error (the server restarted, the network dropped) is marked
//! broken when the error happens and discarded when it is returned, so after a restart
//! each pooled connection fails at most once and the pool heals by itself.
//!
//! ## A connection to a node that is no longer the primary is retired
//!
//! After a failover the old primary's connections are of no use to a pool for writes.
//! Most fail by themselves: the server ends them as it shuts down or restarts
//! (`terminating connection due to administrator command`, SQLSTATE 57P01; 57P02 after
//! a crash; 57P03 `the database system is starting up / shutting down / in recovery
//! mode` for new sessions), and such a connection is discarded when it comes back, as a
//! lost one is. A connection whose server stayed up but no longer takes writes (a
//! standby the URL listed first, a primary fenced with `default_transaction_read_only`)
//! fails each write with `Error::ReadOnly` (SQLSTATE 25006): when it comes back, the
//! pool asks its server (one round trip, only after such an error) whether it is in
//! recovery or read-only by default, as libpq's `target_session_attrs=read-write`
//! decides, and retires it if so; a write refused only because the transaction itself
//! was read-only (`SET TRANSACTION READ ONLY`) keeps its connection. Either way
//! `PoolStats::retired_not_primary` counts it, and the connection that replaces it finds
//! the primary through `target_session_attrs` (see *Several hosts* in
//! [`crate::config`]). The pools of [`crate::replica::ReplicaRouter`]'s replicas expect
//! read-only servers and retire nothing for a refused write. A primary cannot turn into
//! a standby under a live session (PostgreSQL demotes only by restarting), so nothing is
//! asked at checkout.
//!
//! ## What `connect` sets up
//!
//! `connect(&config)` builds the r2d2 pool, sets `statement_timeout` and
//! `application_name` on each new connection (and the libpq network parameters of the
//! [`crate::config`] docs), checks connections before use as above, and runs pending
//! migrations under an advisory lock (several processes starting at once on an empty
//! database all succeed; each migration is applied once; see [`crate::migrate`]).
//!
//! - **A pool fills in the time of one connection.** Opening a connection costs about
//!   four round trips (startup, diesel's session `SET`s, the crate's); r2d2 opens them on
//!   3 threads, so over a 400 ms link a pool of 8 or 10 took longer than the 5 s
//!   connection timeout and `connect` failed. Each pool of the crate opens its
//!   connections on one thread per connection (up to 32): 2.8 s for 8 over that link,
//!   migrations check included.
//! - **Timeouts name their cause.** `pool.get()?` into `todo_store::Result` (or
//!   `pool::checkout(&pool)`) fails with `Error::PoolTimeout`, naming the pool size and the
//!   timeout: the crate's pools note both on the thread whose checkout timed out, and the
//!   conversion takes them there. A statement cancelled by `statement_timeout` is
//!   `Error::StatementTimeout`.
//! - **A lost connection is reported as one.** Whether a call failed because the
//!   connection is gone is decided from the connection's state, not from the error that
//!   happened to surface: diesel's own type lookup (the first bind of a `task_priority` on
//!   a connection) hides the lost connection behind a failed lookup, and the crate's
//!   pooled connections note every failing statement, lookups included; any other
//!   connection is asked once with an empty statement, which libpq refuses at once when it
//!   has marked the connection bad. `pool::has_lost_server(conn)` is the same check for
//!   callers' own statements.
//! - **No connection goes back inside a transaction.** diesel tracks the transactions it
//!   opens (`conn.transaction(..)`), and a connection returned inside one is discarded. A
//!   transaction opened with plain SQL (`sql_query("BEGIN")`, `batch_execute("START
//!   TRANSACTION")`) diesel does not see, and it keeps libpq's own transaction status to
//!   itself; so the crate's connections note every statement of the caller's own, outside
//!   the crate's calls and diesel's transaction statements, whose SQL says `begin` or
//!   `start`, and such a connection is rolled back (`ROLLBACK`, one round trip; a no-op
//!   if nothing was open) when it comes back, or discarded if that fails. The crate's own
//!   calls never trigger it; only the SQL text is looked at, never bind values.
//!   `PoolStats::rolled_back_on_return` counts them. This needs the crate's notes on
//!   the connection: a connection whose instrumentation the caller replaced, or one of
//!   a pool that is not the crate's, is not rolled back.
//! - **A migration leaves no stale connection behind.** diesel keeps on each connection
//!   the OIDs of the types it looked up and its prepared statements; a migration that
//!   drops and creates `task_priority` again (reverting and re-applying) gives it a new
//!   OID. When `run_migrations` or `revert_all_migrations` changed anything, the pooled
//!   connection that ran it is replaced with a fresh one (outside a caller's transaction),
//!   and the crate's other pooled connections to that database that ran a statement are
//!   retired when next returned or checked out. A connection you opened yourself that
//!   migrated, and every pool of another process, must be opened again after a migration
//!   that recreated a type (see [`crate::migrate`]); migrations that only add need
//!   nothing.
//! - **Metrics.** `PoolOptions::new(&config).connect_with_metrics()` also returns a `PoolMetrics`
//!   handle: `metrics.snapshot()` gives connections, idle connections, checkouts, waits
//!   (and wait time), timeouts, connections opened and closed, connections rolled back on
//!   return.
//!
//! ## Pools you bring
//!
//! - `PoolOptions::new(&config)` builds every other pool of the crate's kind: without
//!   migrations (`.run_migrations(false)`), opening its connections in the background
//!   (`.lazy(true)`), with r2d2 settings of your own (`.r2d2(|b| b.max_lifetime(..))`)
//!   or your own connection customizer after the crate's setup (`.customizer(..)`).
//! - `pool::setup_connection(conn, &config)` applies the crate's per-connection setup
//!   (`statement_timeout`, `application_name`, the statement cache behind PgBouncer, the
//!   instrumentation) to a connection of any pool: diesel's `CustomizeConnection`,
//!   deadpool-diesel's `post_create` (see `todo_store::AsyncPool` for what deadpool-diesel
//!   loses).
//! - **Diesel's one instrumentation slot.** The crate's instrumentation (lost-connection
//!   notes, the `todo_store::sql` debug events) takes the slot and passes every event on
//!   to diesel's default instrumentation (`diesel::connection::set_default_instrumentation`)
//!   when the application set one, so an application-wide instrumentation keeps working.
//!   An instrumentation set on a pooled connection itself replaces the crate's: the SQL
//!   events stop, and lost connections are then found by asking the connection after an
//!   error (one round trip) instead of from the notes.
//! - `retry::retry_transaction` takes any r2d2 pool of `PgConnection`s (the crate's, or
//!   `diesel::r2d2::Pool<ConnectionManager<PgConnection>>`), a pooled connection of one, or
//!   a plain `&mut PgConnection`.
//! - `pool::has_lost_server(conn)` tells from the connection's state whether its server is
//!   gone, for code that runs its own statements.

// This module checks connections out. The rest has a file each: `options` builds
// pools (`PoolOptions`); `manager` opens connections and sets each one up (`PgConnectionManager`,
// `setup_connection`); `health` notes, on each connection, whether its server is
// gone (`has_lost_server`); `metrics` counts what the pool does (`PoolMetrics`).
mod health;
mod manager;
mod metrics;
mod options;
mod schema_epoch;

pub use health::has_lost_server;
pub(crate) use health::{
    crate_call, end_watch, renew_after_schema_change, reported_every_statement,
    retire_if_not_primary, settle, watch_attempt, AttemptWatch,
};
#[cfg(feature = "testing")]
pub(crate) use manager::establish;
pub use manager::{setup_connection, PgConnectionManager};
pub use metrics::{PoolMetrics, PoolStats};
pub use options::PoolOptions;

use std::time::Duration;

use crate::config::DbConfig;
use crate::error::{Error, Result};

/// The pool of PostgreSQL connections. `pool.get()` gives a [`PooledConn`], which derefs
/// to `PgConnection`.
pub type PgPool = r2d2::Pool<PgConnectionManager>;

/// A connection checked out of a [`PgPool`]; returned to the pool when dropped.
pub type PooledConn = r2d2::PooledConnection<PgConnectionManager>;

/// A connection returned to the pool less than this long ago is handed out again
/// without a health check.
pub const RECENTLY_USED: Duration = Duration::from_millis(500);

/// Builds the pool for `config`, waits until its first connections are open, and runs
/// the pending migrations (under an advisory lock, see [`crate::migrate`]): the common
/// case of [`PoolOptions`], which builds every other pool (`PoolOptions::new(config)
/// .connect()`).
///
/// Each new connection gets `statement_timeout` and `application_name` from the
/// configuration; a checkout pings (`SELECT 1`) only a connection that sat idle for
/// [`RECENTLY_USED`] or longer (see the [module docs](self)).
///
/// # Errors
/// [`Error::Config`] for an invalid configuration, [`Error::Connection`] when the server
/// cannot be reached within the connection timeout (the message names the host, never
/// the password), [`Error::Migration`] when a migration fails.
pub fn connect(config: &DbConfig) -> Result<PgPool> {
    PoolOptions::new(config).connect()
}

/// Checks a connection out of `pool` (the crate's [`PgPool`], or any r2d2 pool of
/// `PgConnection`s), with an [`Error::PoolTimeout`] that names the pool's size and
/// timeout when none becomes free in time.
///
/// # Errors
/// [`Error::PoolTimeout`].
pub fn checkout<M>(pool: &r2d2::Pool<M>) -> Result<r2d2::PooledConnection<M>>
where
    M: r2d2::ManageConnection<Connection = diesel::PgConnection>,
{
    pool.get().map_err(|e| {
        let _ = crate::error::take_pool_timeout();
        Error::PoolTimeout {
            max_size: pool.max_size(),
            timeout: pool.connection_timeout(),
            last_error: crate::error::last_connection_error(&e.to_string(), None),
        }
    })
}

/// [`checkout`] for a call that already waited `waited` elsewhere (in
/// [`crate::AsyncPool`]'s queue): it waits at most what is left of the pool's connection
/// timeout, and fails at once when nothing is left. The [`Error::PoolTimeout`] names the
/// pool's own timeout, the caller's whole wait.
#[cfg(feature = "tokio")]
pub(crate) fn checkout_within(pool: &PgPool, waited: std::time::Duration) -> Result<PooledConn> {
    let timeout = pool.connection_timeout();
    let Some(left) = timeout.checked_sub(waited).filter(|left| !left.is_zero()) else {
        return Err(Error::PoolTimeout {
            max_size: pool.max_size(),
            timeout,
            last_error: None,
        });
    };
    pool.get_timeout(left).map_err(|e| {
        let _ = crate::error::take_pool_timeout();
        Error::PoolTimeout {
            max_size: pool.max_size(),
            timeout,
            last_error: crate::error::last_connection_error(&e.to_string(), None),
        }
    })
}
