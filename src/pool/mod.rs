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
pub(crate) use health::{crate_call, renew_after_schema_change, settle};
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
