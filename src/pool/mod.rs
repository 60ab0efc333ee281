//! The r2d2 connection pool: [`connect`] builds it, sets each new connection up, and
//! runs pending migrations before handing it out.
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
//!   calls never trigger it. `PoolStats::rolled_back_on_return` counts them.
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
//! - **Metrics.** `pool::connect_with_metrics(&config)` also returns a `PoolMetrics`
//!   handle: `metrics.snapshot()` gives connections, idle connections, checkouts, waits
//!   (and wait time), timeouts, connections opened and closed, connections rolled back on
//!   return.
//!
//! ## Pools you bring
//!
//! - `PgConnectionManager::new(&config)` and `pool::builder(&config)` (an `r2d2::Builder`
//!   preset with the configuration's size, timeouts and the crate's checkout check) build
//!   an r2d2 pool with your own event handler or customizer:
//!   `pool::builder(&config).max_lifetime(..).build(PgConnectionManager::new(&config))?`.
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

// This module builds pools and checks connections out. The rest has a file each:
// `manager` opens connections and sets each one up (`PgConnectionManager`,
// `setup_connection`); `health` notes, on each connection, whether its server is
// gone (`has_lost_server`); `metrics` counts what the pool does (`PoolMetrics`).
mod health;
mod manager;
mod metrics;
mod schema_epoch;

pub use health::has_lost_server;
pub(crate) use health::{crate_call, renew_after_schema_change, settle};
#[cfg(feature = "testing")]
pub(crate) use manager::establish;
pub use manager::{setup_connection, PgConnectionManager};
use metrics::{Counters, PoolEvents};
pub use metrics::{PoolMetrics, PoolStats};

use std::sync::Arc;
use std::time::Duration;

use crate::config::DbConfig;
use crate::conninfo::Conninfo;
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
/// the pending migrations (under an advisory lock, see [`crate::migrate`]).
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
    connect_with_metrics(config).map(|(pool, _)| pool)
}

/// [`connect`], and a [`PoolMetrics`] handle on the pool's counters.
///
/// ```no_run
/// # fn main() -> todo_store::Result<()> {
/// let (pool, metrics) = todo_store::pool::connect_with_metrics(&todo_store::DbConfig::from_env()?)?;
/// let stats = metrics.snapshot();
/// println!("{} connections, {} idle, {} waits", stats.connections, stats.idle_connections, stats.waits);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// As [`connect`].
pub fn connect_with_metrics(config: &DbConfig) -> Result<(PgPool, PoolMetrics)> {
    let (pool, metrics) = build_pool_with_metrics(config)?;
    let mut conn = checkout(&pool)?;
    crate::migrate::run_migrations(&mut conn)?;
    drop(conn);
    Ok((pool, metrics))
}

/// Builds the pool for `config` without running migrations.
///
/// # Errors
/// As [`connect`], without the migration errors.
pub fn build_pool(config: &DbConfig) -> Result<PgPool> {
    build_pool_with_metrics(config).map(|(pool, _)| pool)
}

/// [`build_pool`], and a [`PoolMetrics`] handle on the pool's counters.
///
/// # Errors
/// As [`build_pool`].
pub fn build_pool_with_metrics(config: &DbConfig) -> Result<(PgPool, PoolMetrics)> {
    config.validate()?;
    let counters = Arc::new(Counters::default());
    let mut manager = PgConnectionManager::new(config);
    manager.rolled_back_on_return = Arc::clone(&counters.rolled_back_on_return);
    let conninfo = manager.conninfo().cloned();
    pool_builder(config, Arc::clone(&counters))
        .build(manager)
        .map(|pool| {
            let metrics = PoolMetrics {
                pool: pool.clone(),
                counters,
            };
            (pool, metrics)
        })
        .map_err(|e| {
            let _ = crate::error::take_pool_timeout();
            Error::Connection {
                target: config.redacted_url(),
                message: connection_message(&e.to_string(), conninfo.as_ref()),
            }
        })
}

/// The builder of every pool of the crate: sizes and timeouts from `config`, the health
/// check of [`PgConnectionManager`], and the events that feed the counters and name the
/// pool in a checkout timeout.
fn pool_builder(config: &DbConfig, counters: Arc<Counters>) -> r2d2::Builder<PgConnectionManager> {
    r2d2::Pool::builder()
        .max_size(config.max_pool_size())
        .min_idle(config.min_idle_connections())
        .connection_timeout(config.connection_timeout_duration())
        .test_on_check_out(true)
        .thread_pool(connection_threads(config))
        .error_handler(Box::new(r2d2::NopErrorHandler))
        .event_handler(Box::new(PoolEvents {
            counters,
            max_size: config.max_pool_size(),
        }))
}

/// A pool that opens its connections in the background instead of waiting for them:
/// building it never fails for an unreachable server (for replicas that may be down).
///
/// # Errors
/// [`Error::Config`] for an invalid configuration.
pub fn build_pool_lazy(config: &DbConfig) -> Result<PgPool> {
    config.validate()?;
    let manager = PgConnectionManager::new(config);
    Ok(pool_builder(config, Arc::default()).build_unchecked(manager))
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

fn connection_message(r2d2_message: &str, info: Option<&Conninfo>) -> String {
    match crate::error::last_connection_error(r2d2_message, info) {
        Some(last) => format!("{last} (timed out waiting for the first connection)"),
        None => "timed out waiting for the first connection: is the server running and reachable?"
            .to_owned(),
    }
}

/// An r2d2 pool builder preset from `config`, for a pool you build yourself (adding an
/// event handler, a connection customizer, ...): its size, minimum idle connections and
/// connection timeout, and the checkout health check of [`PgConnectionManager`]. Build
/// it with `PgConnectionManager::new(&config)`:
///
/// ```no_run
/// use todo_store::pool::{builder, PgConnectionManager};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = todo_store::DbConfig::from_env()?;
/// let pool = builder(&config)
///     .max_lifetime(Some(std::time::Duration::from_secs(1800)))
///     .build(PgConnectionManager::new(&config))?;
/// todo_store::run_migrations(&mut *pool.get()?)?;
/// # Ok(())
/// # }
/// ```
pub fn builder(config: &DbConfig) -> r2d2::Builder<PgConnectionManager> {
    pool_builder(config, Arc::default())
}

/// The threads that open a pool's connections: one per connection (at least r2d2's
/// default of 3, at most 32), so that a pool fills in the time of one connection. A
/// connection costs about four round trips to open (startup, diesel's two `SET`s, the
/// crate's session settings): over a 400 ms link about 1.6 s, and with r2d2's 3 threads
/// a pool of 10 took four of those, past the default 5 s connection timeout.
fn connection_threads(config: &DbConfig) -> Arc<scheduled_thread_pool::ScheduledThreadPool> {
    let threads = config.max_pool_size().clamp(3, 32) as usize;
    Arc::new(
        scheduled_thread_pool::ScheduledThreadPool::builder()
            .num_threads(threads)
            .thread_name_pattern("todo-store-connect-{}")
            .build(),
    )
}
