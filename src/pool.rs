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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::{CacheSize, Instrumentation, InstrumentationEvent, SimpleConnection};
use diesel::r2d2::{ManageConnection, R2D2Connection};
use diesel::result::{ConnectionError, DatabaseErrorKind, Error as DieselError};
use diesel::{Connection, PgConnection, QueryResult};

use crate::config::DbConfig;
use crate::conninfo::{self, Conninfo};
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
    let manager = PgConnectionManager::new(config);
    let conninfo = manager.conninfo.clone();
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

/// A handle on a pool's counters; cheap to clone, readable from any thread.
#[derive(Clone)]
pub struct PoolMetrics {
    pool: PgPool,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for PoolMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PoolMetrics")
            .field(&self.snapshot())
            .finish()
    }
}

/// The state and counters of a pool at one moment (counters since the pool was built).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Maximum connections.
    pub max_size: u32,
    /// Connections open now (in use or idle).
    pub connections: u32,
    /// Idle connections now.
    pub idle_connections: u32,
    /// Successful checkouts.
    pub checkouts: u64,
    /// Checkouts that waited 1 ms or more for a connection.
    pub waits: u64,
    /// Total time checkouts waited.
    pub wait_time: Duration,
    /// Longest wait of a checkout.
    pub max_wait: Duration,
    /// Checkouts that gave up ([`Error::PoolTimeout`]).
    pub timeouts: u64,
    /// Connections opened.
    pub connections_opened: u64,
    /// Connections closed (broken, or reaped).
    pub connections_closed: u64,
}

impl PoolMetrics {
    /// The pool's state and counters now.
    pub fn snapshot(&self) -> PoolStats {
        let state = self.pool.state();
        let c = &self.counters;
        PoolStats {
            max_size: self.pool.max_size(),
            connections: state.connections,
            idle_connections: state.idle_connections,
            checkouts: c.checkouts.load(Ordering::Relaxed),
            waits: c.waits.load(Ordering::Relaxed),
            wait_time: Duration::from_nanos(c.wait_nanos.load(Ordering::Relaxed)),
            max_wait: Duration::from_nanos(c.max_wait_nanos.load(Ordering::Relaxed)),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            connections_opened: c.opened.load(Ordering::Relaxed),
            connections_closed: c.closed.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    checkouts: AtomicU64,
    waits: AtomicU64,
    wait_nanos: AtomicU64,
    max_wait_nanos: AtomicU64,
    timeouts: AtomicU64,
    opened: AtomicU64,
    closed: AtomicU64,
}

/// Feeds r2d2's events into [`Counters`], and tells a checkout timeout which pool it
/// was.
#[derive(Debug)]
struct PoolEvents {
    counters: Arc<Counters>,
    max_size: u32,
}

impl r2d2::HandleEvent for PoolEvents {
    fn handle_acquire(&self, _: r2d2::event::AcquireEvent) {
        self.counters.opened.fetch_add(1, Ordering::Relaxed);
    }

    fn handle_release(&self, _: r2d2::event::ReleaseEvent) {
        self.counters.closed.fetch_add(1, Ordering::Relaxed);
    }

    fn handle_checkout(&self, event: r2d2::event::CheckoutEvent) {
        let waited = event.duration();
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        let c = &self.counters;
        c.checkouts.fetch_add(1, Ordering::Relaxed);
        c.wait_nanos.fetch_add(nanos, Ordering::Relaxed);
        c.max_wait_nanos.fetch_max(nanos, Ordering::Relaxed);
        if waited >= Duration::from_millis(1) {
            c.waits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// r2d2 calls this on the thread whose `pool.get()` timed out, just before that
    /// call returns its `r2d2::Error`: the conversion of that error into
    /// [`Error::PoolTimeout`] (`pool.get()?`) then names this pool's size and timeout.
    fn handle_timeout(&self, event: r2d2::event::TimeoutEvent) {
        self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
        crate::error::note_pool_timeout(self.max_size, event.timeout());
    }
}

/// Checks a connection out of `pool`, with an [`Error::PoolTimeout`] that names the
/// pool's size and timeout when none becomes free in time.
///
/// # Errors
/// [`Error::PoolTimeout`].
pub fn checkout(pool: &PgPool) -> Result<PooledConn> {
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

/// Opens PostgreSQL connections for the pool, sets each one up, and decides cheaply
/// whether a connection may be handed out again (see the [module docs](self)).
pub struct PgConnectionManager {
    url: String,
    /// libpq's reading of `url`, to remove its secrets from connection errors exactly.
    conninfo: Option<Conninfo>,
    session: SessionSettings,
}

impl PgConnectionManager {
    /// A manager for `config`'s database: for an r2d2 pool of your own
    /// ([`builder`] presets one from the same configuration).
    pub fn new(config: &DbConfig) -> Self {
        PgConnectionManager {
            url: config.url().to_owned(),
            conninfo: Conninfo::parse(config.url()).ok(),
            session: SessionSettings::from_config(config),
        }
    }

    /// `err` with the URL's secrets removed from its text, before r2d2 keeps it as the
    /// pool's last error.
    fn scrubbed(&self, err: ConnectionError) -> ConnectionError {
        let text = err.to_string();
        let clean = conninfo::scrub(&text, self.conninfo.as_ref());
        if clean == text {
            err
        } else {
            ConnectionError::BadConnection(clean)
        }
    }
}

impl std::fmt::Debug for PgConnectionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnectionManager")
            .field("url", &crate::config::redact_url(&self.url))
            .finish()
    }
}

impl ManageConnection for PgConnectionManager {
    type Connection = PgConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> std::result::Result<PgConnection, Self::Error> {
        let mut conn = PgConnection::establish(&self.url)
            .map_err(|e| diesel::r2d2::Error::ConnectionError(self.scrubbed(e)))?;
        self.session
            .apply(&mut conn)
            .map_err(diesel::r2d2::Error::QueryError)?;
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut PgConnection) -> std::result::Result<(), Self::Error> {
        let recently_used =
            health(conn).is_some_and(|h| !h.broken && h.returned.elapsed() < RECENTLY_USED);
        if recently_used {
            return Ok(());
        }
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        let broken = match health(conn) {
            Some(h) => {
                h.returned = Instant::now();
                h.broken
            }
            None => false,
        };
        broken || std::thread::panicking() || conn.is_broken()
    }
}

/// The pool's notes on one connection, kept in the connection's instrumentation slot
/// so they travel with it. It also reports each statement at debug level (target
/// `todo_store::sql`, SQL without bind values).
///
/// diesel has one instrumentation slot per connection; this takes it, so it passes
/// every event on to what the slot held before: the instrumentation diesel's
/// `set_default_instrumentation` gives new connections, if the application set one.
struct ConnectionHealth {
    returned: Instant,
    broken: bool,
    /// Start times of the statements running now (a type lookup can run inside another).
    queries_started: Vec<Instant>,
    /// The application's own instrumentation, which sees every event too.
    inner: Option<Box<dyn Instrumentation>>,
}

impl ConnectionHealth {
    fn chained_to(inner: Option<Box<dyn Instrumentation>>) -> Self {
        ConnectionHealth {
            returned: Instant::now(),
            broken: false,
            queries_started: Vec::new(),
            inner,
        }
    }
}

impl Instrumentation for ConnectionHealth {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        self.note(&event);
        if let Some(inner) = self.inner.as_mut() {
            inner.on_connection_event(event);
        }
    }
}

impl ConnectionHealth {
    fn note(&mut self, event: &InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => {
                if tracing::enabled!(target: "todo_store::sql", tracing::Level::DEBUG) {
                    self.queries_started.push(Instant::now());
                }
            }
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                if error.is_some_and(crate::error::is_lost_connection) {
                    self.broken = true;
                }
                if let Some(started) = self.queries_started.pop() {
                    tracing::debug!(
                        target: "todo_store::sql",
                        sql = %crate::telemetry::sql_without_binds(&query),
                        duration_us = started.elapsed().as_micros() as u64,
                        failed = error.is_some(),
                    );
                }
            }
            _ => {}
        }
    }
}

/// The connection's health notes, unless the caller replaced the instrumentation.
fn health(conn: &mut PgConnection) -> Option<&mut ConnectionHealth> {
    conn.instrumentation().downcast_mut::<ConnectionHealth>()
}

/// Whether `conn` has lost its server, decided from the connection's own state rather
/// than from the shape of an error: a connection of the crate's pool that saw any of
/// its statements fail with a lost connection (diesel's own type lookups included,
/// whose errors never reach the caller) knows it already; any other is asked once,
/// with an empty statement that libpq refuses at once when it has marked the
/// connection bad (and that costs one round trip when the connection is alive).
///
/// Call it after an error whose cause is unclear; a connection that answers it is
/// usable (unless it is inside a failed transaction, which still needs a rollback).
pub fn has_lost_server(conn: &mut PgConnection) -> bool {
    if health(conn).is_some_and(|h| h.broken) {
        return true;
    }
    match conn.batch_execute("") {
        Err(err) if crate::error::is_lost_connection(&err) => {
            if let Some(h) = health(conn) {
                h.broken = true;
            }
            true
        }
        _ => false,
    }
}

/// `result`, with a database error of unclear cause turned into a lost-connection
/// error when the connection's state says the server is gone (see
/// [`has_lost_server`]). Errors that carry an answer of the server (a constraint, a
/// serialization failure, a deadlock) prove the connection was alive and are kept.
pub(crate) fn settle<T>(conn: &mut PgConnection, result: Result<T>) -> Result<T> {
    match result {
        Err(Error::Database(err)) if !server_answered(&err) && has_lost_server(conn) => {
            Err(Error::connection_lost(err))
        }
        other => other,
    }
}

/// Whether `err` is an answer of the server, or already a lost connection.
fn server_answered(err: &DieselError) -> bool {
    if crate::error::is_lost_connection(err) {
        return true;
    }
    if let DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) = err {
        // Fixed server texts of errors that end a statement, not a session.
        let message = info.message();
        if message.starts_with("deadlock detected") || message.contains("statement timeout") {
            return true;
        }
    }
    matches!(
        err,
        DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation
                | DatabaseErrorKind::ForeignKeyViolation
                | DatabaseErrorKind::SerializationFailure
                | DatabaseErrorKind::ReadOnlyTransaction
                | DatabaseErrorKind::NotNullViolation
                | DatabaseErrorKind::CheckViolation
                | DatabaseErrorKind::RestrictViolation
                | DatabaseErrorKind::ExclusionViolation,
            _
        ) | DieselError::NotFound
            | DieselError::RollbackTransaction
            | DieselError::AlreadyInTransaction
            | DieselError::NotInTransaction
    )
}

/// What is set on every new connection, in one round trip.
#[derive(Debug, Clone)]
struct SessionSettings {
    sql: String,
    /// Behind a transaction-mode pooler: no named prepared statements.
    unnamed_statements: bool,
}

impl SessionSettings {
    fn from_config(config: &DbConfig) -> Self {
        let name = config.application_name_str().replace('\'', "''");
        // PgBouncer tracks application_name per client; statement_timeout it does not,
        // so behind it a SET would stick to a server connection others then use.
        let sql = if config.behind_pgbouncer() {
            format!("SET application_name = '{name}'")
        } else {
            let timeout_ms = config
                .statement_timeout_duration()
                .map_or(0, |d| d.as_millis().max(1));
            format!("SET statement_timeout = {timeout_ms}; SET application_name = '{name}'")
        };
        SessionSettings {
            sql,
            unnamed_statements: config.behind_pgbouncer(),
        }
    }

    /// Sets `conn` up: its statement cache, the session settings (one round trip) and
    /// the health notes in its instrumentation slot, chained to diesel's default
    /// instrumentation.
    fn apply(&self, conn: &mut PgConnection) -> QueryResult<()> {
        if self.unnamed_statements {
            conn.set_prepared_statement_cache_size(CacheSize::Disabled);
        }
        conn.batch_execute(&self.sql)?;
        conn.set_instrumentation(ConnectionHealth::chained_to(
            diesel::connection::get_default_instrumentation(),
        ));
        Ok(())
    }
}

/// Applies the crate's per-connection setup to `conn`, a connection of a pool that is
/// not the crate's (your own r2d2 pool's `CustomizeConnection`, deadpool-diesel's
/// post-create hook): `statement_timeout` and `application_name` from `config` (only
/// `application_name` behind PgBouncer, with the statement cache off), and the
/// instrumentation that notes lost connections for [`has_lost_server`] and traces each
/// statement at debug level. Call it on a fresh connection: it takes diesel's one
/// instrumentation slot, passing every event on to diesel's default instrumentation
/// (`diesel::connection::set_default_instrumentation`) if the application set one; an
/// instrumentation set on the connection itself before this call is replaced, and one
/// set after it replaces the crate's (the crate then asks the server instead, see
/// [`has_lost_server`]).
///
/// ```no_run
/// use diesel::r2d2::CustomizeConnection;
/// use todo_store::{DbConfig, PgConnection};
///
/// #[derive(Debug)]
/// struct Setup(DbConfig);
///
/// impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for Setup {
///     fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
///         todo_store::pool::setup_connection(conn, &self.0)
///             .map_err(|e| diesel::r2d2::Error::QueryError(diesel::result::Error::QueryBuilderError(e.into())))
///     }
/// }
/// ```
///
/// # Errors
/// [`Error::Database`] when the server refuses the settings.
pub fn setup_connection(conn: &mut PgConnection, config: &DbConfig) -> Result<()> {
    Ok(SessionSettings::from_config(config).apply(conn)?)
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
