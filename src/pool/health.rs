//! Whether a connection's server is gone: each connection of the crate's pools notes
//! it in its instrumentation slot as its statements fail ([`has_lost_server`] asks the
//! connection otherwise), and [`settle`] turns an error of unclear cause into a
//! lost-connection error when the connection says so.
//!
//! It also notes whether the caller may have left a transaction open that diesel does
//! not know of (a `BEGIN` sent as plain SQL), so that the connection is rolled back
//! before the pool hands it out again (see [`ConnectionHealth::may_be_in_transaction`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{Connection, PgConnection};

use super::schema_epoch::SchemaEpoch;
use crate::error::{Error, Result};

/// Opens a new connection set up as the pool's, to replace one whose caches a migration
/// made stale (see [`renew_after_schema_change`]).
pub(super) type Reopen = Arc<dyn Fn() -> Result<PgConnection> + Send + Sync>;

/// What a connection of the crate's pool knows of its pool: its database's schema
/// changes, how to open a connection like it, and the pool's count of statements
/// ([`super::PoolStats::statements`]).
pub(super) struct PoolLink {
    pub(super) epoch: SchemaEpoch,
    pub(super) reopen: Reopen,
    pub(super) statements: Arc<AtomicU64>,
    /// Whether the pool is for writes ([`super::manager::Serves::Writes`]): a write its
    /// connection's server refuses as read-only may mean the server is no longer the
    /// primary.
    pub(super) serves_writes: bool,
}

/// The pool's notes on one connection, kept in the connection's instrumentation slot
/// so they travel with it. It also reports each statement at debug level (target
/// `todo_store::sql`, SQL without bind values).
///
/// diesel has one instrumentation slot per connection; this takes it, so it passes
/// every event on to what the slot held before: the instrumentation diesel's
/// `set_default_instrumentation` gives new connections, if the application set one.
pub(super) struct ConnectionHealth {
    pub(super) returned: Instant,
    pub(super) broken: bool,
    /// Whether a statement of the caller's own, outside the crate's calls and other
    /// than diesel's transaction manager's, could have opened a transaction: its SQL
    /// says `begin` or `start` (any case, anywhere: `BEGIN`, `START TRANSACTION`).
    ///
    /// libpq knows the server's transaction status after every statement
    /// (`PQtransactionStatus`), but diesel keeps the libpq handle private and tracks
    /// only the transactions it opened itself, so a transaction opened with plain SQL
    /// would otherwise go back to the pool open. The check over-approximates (a string
    /// literal saying "start" counts): a false alarm costs one `ROLLBACK` round trip
    /// at return, a missed transaction cannot happen. The crate's own statements and
    /// diesel's `BEGIN`/`COMMIT`/`ROLLBACK`/savepoints are never looked at, so calls
    /// of the crate cost nothing more.
    pub(super) may_be_in_transaction: bool,
    /// The server is no longer a primary that takes writes, or is going away (see
    /// [`retire_if_not_primary`]): the connection is retired, and counted in
    /// [`super::PoolStats::retired_not_primary`].
    pub(super) not_primary: bool,
    /// A statement failed with SQLSTATE 25006 (a write in a read-only transaction) on a
    /// connection of a pool for writes: whether the server or only the transaction was
    /// read-only is asked when the connection comes back ([`retire_if_not_primary`]).
    pub(super) refused_as_read_only: bool,
    /// Whether the connection's pool is for writes ([`PoolLink::serves_writes`]).
    serves_writes: bool,
    /// Calls of the crate running now on this connection (see [`crate_call`]).
    crate_calls: u32,
    /// Diesel's transaction manager announced a statement of its own (an event comes
    /// just before its `BEGIN`, `COMMIT`, `ROLLBACK` or savepoint statement).
    transaction_manager_statement: bool,
    /// The schema changes of the connection's database, and their count when it
    /// opened; `None` for connections of other pools.
    schema: Option<(SchemaEpoch, u64)>,
    /// Whether the connection ran a statement since it was set up: only then can it
    /// hold diesel's caches of the schema (type OIDs, prepared statements).
    used: bool,
    /// How the crate's pool opens a connection like this one; `None` for connections
    /// of other pools ([`super::setup_connection`]).
    reopen: Option<Reopen>,
    /// The pool's count of statements sent; `None` for connections of other pools.
    statements: Option<Arc<AtomicU64>>,
    /// The thread of the retry attempt running on this connection, if one is (see
    /// [`watch_attempt`]).
    attempt_thread: Option<std::thread::ThreadId>,
    /// Statements sent while an attempt ran, from another thread than the attempt's:
    /// its thread's ledger did not see them.
    statements_from_other_threads: u64,
    /// Start times of the statements running now (a type lookup can run inside another).
    queries_started: Vec<Instant>,
    /// The application's own instrumentation, which sees every event too.
    inner: Option<Box<dyn Instrumentation>>,
}

impl ConnectionHealth {
    pub(super) fn chained_to(
        inner: Option<Box<dyn Instrumentation>>,
        pooled: Option<PoolLink>,
    ) -> Self {
        let (schema, reopen, statements, serves_writes) = match pooled {
            Some(PoolLink {
                epoch,
                reopen,
                statements,
                serves_writes,
            }) => {
                let now = epoch.now();
                (
                    Some((epoch, now)),
                    Some(reopen),
                    Some(statements),
                    serves_writes,
                )
            }
            None => (None, None, None, false),
        };
        ConnectionHealth {
            not_primary: false,
            refused_as_read_only: false,
            serves_writes,
            statements,
            schema,
            used: false,
            reopen,
            returned: Instant::now(),
            broken: false,
            may_be_in_transaction: false,
            crate_calls: 0,
            transaction_manager_statement: false,
            attempt_thread: None,
            statements_from_other_threads: 0,
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
            InstrumentationEvent::BeginTransaction { .. }
            | InstrumentationEvent::CommitTransaction { .. }
            | InstrumentationEvent::RollbackTransaction { .. } => {
                self.transaction_manager_statement = true;
            }
            InstrumentationEvent::StartQuery { query, .. } => {
                self.used = true;
                if let Some(statements) = &self.statements {
                    statements.fetch_add(1, Ordering::Relaxed);
                }
                if self
                    .attempt_thread
                    .is_some_and(|attempt| attempt != std::thread::current().id())
                    && !self.transaction_manager_statement
                {
                    self.statements_from_other_threads += 1;
                }
                crate::retry::note_statement(
                    self.transaction_manager_statement,
                    self.crate_calls > 0,
                    || crate::telemetry::sql_without_binds(query),
                );
                if std::mem::take(&mut self.transaction_manager_statement) {
                    // diesel's own transaction statement: diesel tracks it.
                } else if self.crate_calls == 0
                    && !self.may_be_in_transaction
                    && may_open_a_transaction(&crate::telemetry::sql_without_binds(query))
                {
                    self.may_be_in_transaction = true;
                }
                if tracing::enabled!(target: "todo_store::sql", tracing::Level::DEBUG) {
                    self.queries_started.push(Instant::now());
                }
            }
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                if let Some(err) = error {
                    self.note_failure(err);
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

impl ConnectionHealth {
    /// What a failed statement says of the connection: its server is gone, going away
    /// (a failover's old primary shutting down), or refused a write as read-only.
    fn note_failure(&mut self, err: &DieselError) {
        if crate::error::is_lost_connection(err) {
            self.broken = true;
        }
        if crate::error::is_server_leaving(err) {
            self.broken = true;
            self.not_primary = true;
        }
        if self.serves_writes && crate::error::is_read_only_refusal(err) {
            self.refused_as_read_only = true;
        }
    }
}

/// Whether `conn`'s server is no longer a primary that takes writes, asked after a
/// write on it was refused as read-only (SQLSTATE 25006), in one round trip and as
/// libpq's `target_session_attrs=read-write` decides: it is in recovery (a standby,
/// the old primary back after a failover) or read-only by default
/// (`default_transaction_read_only`, which some tools set to fence a primary they
/// demote). A server that cannot answer counts as not primary. Then the connection is
/// marked to be retired when it goes back to the crate's pool, and counted in
/// [`super::PoolStats::retired_not_primary`]. A primary that takes writes means the
/// refusal was the transaction's own (`SET TRANSACTION READ ONLY`): nothing changes.
///
/// A primary never turns into a standby under a live session: PostgreSQL demotes a
/// server only by restarting it, which ends every session (57P01, or a lost
/// connection). So the question is asked only after a refusal, never at checkout.
pub(crate) fn retire_if_not_primary(conn: &mut PgConnection) -> bool {
    use diesel::sql_types::Bool;
    use diesel::RunQueryDsl;
    // A read pool's connections are to standbys by design: a refused write there is
    // the caller's error, not a failover.
    if health(conn).is_some_and(|h| !h.serves_writes) {
        return false;
    }
    let not_primary = diesel::select(diesel::dsl::sql::<Bool>(
        "pg_is_in_recovery() OR current_setting('default_transaction_read_only')::boolean",
    ))
    .get_result::<bool>(conn)
    .unwrap_or(true);
    if let Some(h) = health(conn) {
        h.refused_as_read_only = false;
        if not_primary {
            h.broken = true;
            h.not_primary = true;
        }
    }
    not_primary
}

/// Whether `sql` (a statement's text, without its bind values) may open a transaction:
/// it says `begin` or `start`, in any case.
fn may_open_a_transaction(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    lower.contains("begin") || lower.contains("start")
}

/// Runs `f`, one call of the crate, on `conn`: its statements are the crate's, known
/// to open no transaction but through diesel's transaction manager, so the health
/// notes do not look at their SQL.
pub(crate) fn crate_call<T>(conn: &mut PgConnection, f: impl FnOnce(&mut PgConnection) -> T) -> T {
    if let Some(h) = health(conn) {
        h.crate_calls += 1;
    }
    // Counted down even when `f` panics: a caller that catches the panic and keeps the
    // connection must not leave its own statements unwatched.
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut *conn)));
    if let Some(h) = health(conn) {
        h.crate_calls = h.crate_calls.saturating_sub(1);
    }
    out.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Whether `conn` may hold diesel's caches of a schema that a migration of this process
/// has changed since it was opened: the OIDs of the types it looked up (an enum that a
/// migration dropped and created again has a new one) and its prepared statements. The
/// crate's pools retire such a connection instead of handing it out.
pub(super) fn is_stale(conn: &mut PgConnection) -> bool {
    health(conn).is_some_and(|h| {
        h.used
            && h.schema
                .as_ref()
                .is_some_and(|(epoch, at_open)| epoch.now() > *at_open)
    })
}

/// After a migration run on `conn` changed the schema: when `conn` is a connection of
/// the crate's pool outside any transaction, replaces it with a new one, opened and set
/// up as the pool opens its connections, so that the caller can go on using it; the
/// old one closes. Otherwise leaves it as it is (see [`crate::migrate`] for what that
/// means). The pool's other connections are retired as they come back
/// ([`is_stale`]).
///
/// # Errors
/// [`Error::Connection`] when the new connection cannot be opened; `conn` is then
/// unchanged.
pub(crate) fn renew_after_schema_change(conn: &mut PgConnection) -> Result<()> {
    use diesel::r2d2::R2D2Connection;
    let Some(h) = health(conn) else {
        return Ok(());
    };
    if let Some((epoch, _)) = &h.schema {
        epoch.advance();
    }
    let Some(reopen) = h.reopen.clone() else {
        return Ok(());
    };
    if conn.is_broken() {
        // Inside the caller's transaction: replacing the connection would end it.
        return Ok(());
    }
    *conn = reopen()?;
    Ok(())
}

/// A retry attempt's watch on its connection, from [`watch_attempt`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttemptWatch {
    /// The attempt's thread, to restore when a nested attempt ends.
    outer: Option<std::thread::ThreadId>,
    /// [`ConnectionHealth::statements_from_other_threads`] when the attempt began.
    from_other_threads: u64,
}

/// Starts watching `conn` for a retry attempt on this thread: [`crate::retry`]'s ledger
/// is kept per thread, so a statement sent on `conn` from another thread (the closure
/// handed the connection to one) is counted here instead. `None` when `conn` does not
/// report its statements (the caller replaced the crate's instrumentation).
pub(crate) fn watch_attempt(conn: &mut PgConnection) -> Option<AttemptWatch> {
    let health = health(conn)?;
    let watch = AttemptWatch {
        outer: health.attempt_thread,
        from_other_threads: health.statements_from_other_threads,
    };
    health.attempt_thread = Some(std::thread::current().id());
    Some(watch)
}

/// Whether every statement `conn` sent since `watch` began was reported to this
/// thread's ledger: none came from another thread, and the instrumentation is still
/// the crate's.
pub(crate) fn reported_every_statement(
    conn: &mut PgConnection,
    watch: Option<AttemptWatch>,
) -> bool {
    match (watch, health(conn)) {
        (Some(watch), Some(health)) => {
            health.statements_from_other_threads == watch.from_other_threads
        }
        _ => false,
    }
}

/// Ends `watch` (a nested attempt hands the connection back to the outer one's thread).
pub(crate) fn end_watch(conn: &mut PgConnection, watch: Option<AttemptWatch>) {
    if let (Some(watch), Some(health)) = (watch, health(conn)) {
        health.attempt_thread = watch.outer;
    }
}

/// The connection's health notes, unless the caller replaced the instrumentation.
pub(super) fn health(conn: &mut PgConnection) -> Option<&mut ConnectionHealth> {
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
