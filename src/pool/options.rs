//! [`PoolOptions`]: the one builder of the crate's pools, for what [`super::connect`]
//! does not do (metrics, a lazy start, r2d2 settings of one's own, a connection
//! customizer).

use std::sync::Arc;

use diesel::PgConnection;

use super::manager::{PgConnectionManager, Serves};
use super::metrics::{Counters, PoolEvents, PoolMetrics};
use super::{checkout, PgPool};
use crate::config::DbConfig;
use crate::conninfo::Conninfo;
use crate::error::{Error, Result};

/// A change to the preset r2d2 builder ([`PoolOptions::r2d2`]).
type AdjustBuilder = Box<
    dyn FnOnce(r2d2::Builder<PgConnectionManager>) -> r2d2::Builder<PgConnectionManager> + Send,
>;

/// A customizer of the user's, run on each new connection after the crate's setup.
pub(super) type Customizer = Arc<dyn r2d2::CustomizeConnection<PgConnection, diesel::r2d2::Error>>;

/// Gives r2d2 the release half of the caller's customizer; the manager runs its
/// acquire half (see [`PgConnectionManager`]'s `customizer`).
#[derive(Debug)]
struct OnRelease(Customizer);

impl r2d2::CustomizeConnection<PgConnection, diesel::r2d2::Error> for OnRelease {
    fn on_release(&self, conn: PgConnection) {
        self.0.on_release(conn);
    }
}

/// How to build a pool, in the style of sqlx's `PoolOptions`: start from a
/// [`DbConfig`], set what differs from the defaults, then [`PoolOptions::connect`] (or
/// [`PoolOptions::connect_with_metrics`] for the pool's counters as well).
///
/// The defaults are [`super::connect`]'s: wait until the pool's first connections are
/// open and run the pending migrations. Sizes and timeouts come from the `DbConfig`
/// (`pool_size`, `min_idle`, `connection_timeout`); each new connection gets the crate's
/// setup (statement timeout, `application_name`, the PgBouncer settings), and a
/// checkout pings only a connection idle for [`super::RECENTLY_USED`] or longer.
///
/// ```no_run
/// use std::time::Duration;
/// use todo_store::{DbConfig, PoolOptions};
///
/// # fn main() -> todo_store::Result<()> {
/// let config = DbConfig::from_env()?;
/// let (pool, metrics) = PoolOptions::new(&config)
///     .r2d2(|builder| builder.max_lifetime(Some(Duration::from_secs(1800))))
///     .connect_with_metrics()?;
/// let stats = metrics.snapshot();
/// println!("{} connections, {} idle, {} waits", stats.connections, stats.idle_connections, stats.waits);
///
/// // A pool for a server that may be down: returns at once, never fails for an
/// // unreachable server, and runs no migrations.
/// let replica = PoolOptions::new(&config.with_url("postgres://app@replica/todo"))
///     .lazy(true)
///     .connect()?;
/// # Ok(())
/// # }
/// ```
pub struct PoolOptions {
    config: DbConfig,
    lazy: bool,
    /// `None`: the default, which is to run them unless the pool is lazy.
    run_migrations: Option<bool>,
    r2d2: Vec<AdjustBuilder>,
    customizer: Option<Customizer>,
    serves: Serves,
}

impl std::fmt::Debug for PoolOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolOptions")
            .field("config", &self.config)
            .field("lazy", &self.lazy)
            .field("run_migrations", &self.get_run_migrations())
            .field("r2d2", &format_args!("{} adjustments", self.r2d2.len()))
            .field("customizer", &self.customizer)
            .finish()
    }
}

impl PoolOptions {
    /// The options of [`super::connect`] for `config`: wait for the first connections,
    /// run the pending migrations, r2d2 as the crate presets it, no customizer.
    pub fn new(config: &DbConfig) -> Self {
        PoolOptions {
            config: config.clone(),
            lazy: false,
            run_migrations: None,
            r2d2: Vec::new(),
            customizer: None,
            serves: Serves::Writes,
        }
    }

    /// A pool of read replicas ([`crate::replica::ReplicaRouter`]'s): a URL of several
    /// hosts without `target_session_attrs` gets `prefer-standby` instead of
    /// `read-write`, and a connection refused a write as read-only is not retired.
    pub(crate) fn for_reads(mut self) -> Self {
        self.serves = Serves::Reads;
        self
    }

    /// Sets whether the pool opens its connections in the background instead of waiting
    /// for them (default `false`). A lazy pool is returned at once and never fails for
    /// an unreachable server (for a replica that may be down): its checkouts fail with
    /// [`Error::PoolTimeout`] until the server answers. It opens no connection before
    /// it returns, so it runs no migrations unless told to, and cannot be told to (see
    /// [`PoolOptions::run_migrations`]).
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Whether the pool opens its connections in the background ([`PoolOptions::lazy`]).
    pub fn get_lazy(&self) -> bool {
        self.lazy
    }

    /// Sets whether [`PoolOptions::connect`] runs the pending migrations (under an
    /// advisory lock, see [`crate::migrate`]) before it returns the pool. The default
    /// is to run them, except for a [lazy](PoolOptions::lazy) pool; `false` for a pool
    /// whose role may not change the schema, or when migrations run elsewhere (a
    /// deploy step).
    pub fn run_migrations(mut self, run: bool) -> Self {
        self.run_migrations = Some(run);
        self
    }

    /// Whether [`PoolOptions::connect`] runs the pending migrations
    /// ([`PoolOptions::run_migrations`], or its default).
    pub fn get_run_migrations(&self) -> bool {
        self.run_migrations.unwrap_or(!self.lazy)
    }

    /// Adjusts the r2d2 builder the crate presets, for what [`DbConfig`] has no setting
    /// for: `max_lifetime`, `idle_timeout`, `reaper_rate`, ...; called again, the
    /// adjustments apply in order. Set sizes and timeouts on the `DbConfig`
    /// instead: the connection threads, libpq's `connect_timeout` and the checkout
    /// timeout all follow it. The preset sets the health check (`test_on_check_out`),
    /// the thread pool that opens connections, and the event handler that feeds
    /// [`PoolMetrics`] and names the pool in an [`Error::PoolTimeout`]; replace those
    /// and they are gone. A connection customizer set here takes r2d2's one slot and runs
    /// only on connections r2d2 opens: prefer [`PoolOptions::customizer`], which runs on
    /// every connection of the pool, the one renewed after a migration included.
    pub fn r2d2<F>(mut self, adjust: F) -> Self
    where
        F: FnOnce(r2d2::Builder<PgConnectionManager>) -> r2d2::Builder<PgConnectionManager>
            + Send
            + 'static,
    {
        self.r2d2.push(Box::new(adjust));
        self
    }

    /// Sets a customizer of the caller's, run on each new connection after the crate's
    /// own setup (statement timeout, `application_name`, ...), which it must leave in
    /// place: it should not replace the connection's instrumentation, which notes lost
    /// connections for the pool (see [`super::has_lost_server`]). It also runs on the
    /// connection that replaces one after a migration (see [`crate::migrate`]), which a
    /// customizer set through [`PoolOptions::r2d2`] would not.
    ///
    /// ```no_run
    /// use diesel::connection::SimpleConnection;
    /// use diesel::r2d2::CustomizeConnection;
    /// use todo_store::{DbConfig, PgConnection, PoolOptions};
    ///
    /// #[derive(Debug)]
    /// struct SearchPath;
    ///
    /// impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for SearchPath {
    ///     fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
    ///         conn.batch_execute("SET search_path = app, public")
    ///             .map_err(diesel::r2d2::Error::QueryError)
    ///     }
    /// }
    ///
    /// # fn main() -> todo_store::Result<()> {
    /// let pool = PoolOptions::new(&DbConfig::from_env()?).customizer(SearchPath).connect()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn customizer<C>(mut self, customizer: C) -> Self
    where
        C: r2d2::CustomizeConnection<PgConnection, diesel::r2d2::Error>,
    {
        self.customizer = Some(Arc::new(customizer));
        self
    }

    /// Builds the pool: waits until its first connections are open (unless
    /// [lazy](PoolOptions::lazy)), then runs the pending migrations (unless told not
    /// to).
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration, or a lazy pool told to run
    /// migrations; [`Error::Connection`] when the server cannot be reached within the
    /// connection timeout (the message names the host, never the password);
    /// [`Error::Migration`] when a migration fails.
    pub fn connect(self) -> Result<PgPool> {
        self.connect_with_metrics().map(|(pool, _)| pool)
    }

    /// [`PoolOptions::connect`], and a [`PoolMetrics`] handle on the pool's counters.
    ///
    /// # Errors
    /// As [`PoolOptions::connect`].
    pub fn connect_with_metrics(self) -> Result<(PgPool, PoolMetrics)> {
        let run_migrations = self.get_run_migrations();
        if self.lazy && run_migrations {
            return Err(Error::Config(
                "a lazy pool opens no connection before it returns, so it cannot run \
                 migrations: leave run_migrations unset (or false), and run them on a \
                 connection of the pool (todo_store::run_migrations)"
                    .into(),
            ));
        }
        let (pool, metrics) = self.build()?;
        if run_migrations {
            let mut conn = checkout(&pool)?;
            crate::migrate::run_migrations(&mut conn)?;
        }
        Ok((pool, metrics))
    }

    /// The pool and its counters, without migrations.
    fn build(self) -> Result<(PgPool, PoolMetrics)> {
        let config = &self.config;
        config.validate()?;
        let counters = Arc::new(Counters::new(config.get_pool_size()));
        let mut manager = PgConnectionManager::new(config, self.serves);
        manager.rolled_back_on_return = Arc::clone(&counters.rolled_back_on_return);
        manager.retired_not_primary = Arc::clone(&counters.retired_not_primary);
        manager.statements = Arc::clone(&counters.statements);
        let conninfo = manager.conninfo().cloned();
        let mut builder = preset(config, Arc::clone(&counters));
        if let Some(customizer) = self.customizer {
            builder = builder.connection_customizer(Box::new(OnRelease(Arc::clone(&customizer))));
            manager.customizer = Some(customizer);
        }
        for adjust in self.r2d2 {
            builder = adjust(builder);
        }
        let pool = if self.lazy {
            builder.build_unchecked(manager)
        } else {
            builder.build(manager).map_err(|e| {
                let _ = crate::error::take_pool_timeout();
                Error::Connection {
                    target: config.redacted_url(),
                    message: connection_message(&e.to_string(), conninfo.as_ref()),
                }
            })?
        };
        // The size the r2d2 adjustments left, for the pool's checkout timeouts.
        counters.set_max_size(pool.max_size());
        let metrics = PoolMetrics {
            pool: pool.clone(),
            counters,
        };
        Ok((pool, metrics))
    }
}

/// The r2d2 builder of every pool of the crate: sizes and timeouts from `config`, the
/// health check of [`PgConnectionManager`], and the events that feed the counters and
/// name the pool in a checkout timeout.
fn preset(config: &DbConfig, counters: Arc<Counters>) -> r2d2::Builder<PgConnectionManager> {
    r2d2::Pool::builder()
        .max_size(config.get_pool_size())
        .min_idle(config.get_min_idle())
        .connection_timeout(config.get_connection_timeout())
        .test_on_check_out(true)
        .thread_pool(connection_threads(config))
        .error_handler(Box::new(r2d2::NopErrorHandler))
        .event_handler(Box::new(PoolEvents { counters }))
}

fn connection_message(r2d2_message: &str, info: Option<&Conninfo>) -> String {
    match crate::error::last_connection_error(r2d2_message, info) {
        Some(last) => format!("{last} (timed out waiting for the first connection)"),
        None => "timed out waiting for the first connection: is the server running and reachable?"
            .to_owned(),
    }
}

/// The threads that open a pool's connections: one per connection (at least r2d2's
/// default of 3, at most 32), so that a pool fills in the time of one connection. A
/// connection costs about four round trips to open (startup, diesel's two `SET`s, the
/// crate's session settings): over a 400 ms link about 1.6 s, and with r2d2's 3 threads
/// a pool of 10 took four of those, past the default 5 s connection timeout.
fn connection_threads(config: &DbConfig) -> Arc<scheduled_thread_pool::ScheduledThreadPool> {
    let threads = config.get_pool_size().clamp(3, 32) as usize;
    Arc::new(
        scheduled_thread_pool::ScheduledThreadPool::builder()
            .num_threads(threads)
            .thread_name_pattern("todo-store-connect-{}")
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lazy_pool_runs_no_migrations_unless_told_to_and_then_refuses() {
        let config = DbConfig::new("postgres://app@db.invalid/todo");
        let options = PoolOptions::new(&config);
        assert!(options.get_run_migrations() && !options.get_lazy());
        let lazy = PoolOptions::new(&config).lazy(true);
        assert!(!lazy.get_run_migrations());
        let err = lazy.run_migrations(true).connect().unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        // Lazy: returned at once, for a server that does not exist.
        let pool = PoolOptions::new(&config.min_idle(Some(0)))
            .lazy(true)
            .r2d2(|b| b.max_size(3))
            .connect()
            .unwrap();
        assert_eq!(pool.max_size(), 3);
    }
}
