//! [`AsyncPool`]: the crate's pool for async code on tokio, without leaving synchronous
//! Diesel.
//!
//! A handler that calls `pool.get()` and a repository function directly blocks a
//! runtime worker for the whole checkout and query: up to the pool's connection
//! timeout when the pool is exhausted, and every other task on that worker waits with
//! it. `AsyncPool` runs each call on one of the pool's own connection threads instead,
//! so the runtime's workers keep running other tasks while a call waits for a
//! connection or for the server.
//!
//! ```no_run
//! use todo_store::{AsyncPool, DbConfig, TaskQuery, TaskRepo};
//!
//! # async fn handler(token: String) -> todo_store::Result<()> {
//! let pool = AsyncPool::connect(&DbConfig::from_env()?).await?; // migrations included
//! let query = TaskQuery::new().completed(false);
//! // The caller (by their session token) and the work: one trip, one connection.
//! match pool
//!     .run_authenticated(token, move |conn, _session, user| TaskRepo::list(conn, user.id, &query))
//!     .await?
//! {
//!     Some(page) => println!("{} open tasks", page.items.len()),
//!     None => println!("no live session: answer 401"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ## One trip per request
//!
//! Each [`AsyncPool::run`] (and `transaction`, `run_authenticated`) is one trip: the call
//! is queued, a connection thread takes it, checks a connection out, runs it, and wakes
//! the awaiting task. The threads are as many as the pool's connections, start with the
//! handle and end with its last clone; they take calls in the order they came. A trip costs two thread wake-ups when the threads are idle, and
//! about one under load (a thread that finishes a call finds the next one queued), a
//! few microseconds of CPU where tokio's blocking pool cost about 20 µs per trip on the
//! benchmark's machine (docs/performance.md, over HTTP). So give each request one
//! closure that does all its work: [`AsyncPool::run_authenticated`] finds the caller by
//! their session token and runs the work on the same connection, two prepared
//! statements in one trip and one checkout. Measured over HTTP with `examples/api.rs`,
//! this path serves about what the same handlers calling the repositories directly on
//! the runtime's workers serve, without ever blocking a worker.
//!
//! Why not the alternatives (all measured side by side by the benchmark's `--http` mode,
//! `API_CALLS` in `examples/api.rs`):
//! - **Calls on the workers** (`pool.get()` in the handler): the fastest on an idle
//!   machine, but an exhausted pool or a stalled server stops the worker and every task
//!   on it; on a current-thread runtime, everything.
//! - **`tokio::task::spawn_blocking`** per call: the same thread hop, but tokio starts a
//!   thread per waiting call (up to 512), all of them contending for the pool's lock and
//!   its free connections: its tail latency was 3-5x the direct calls'.
//! - **`tokio::task::block_in_place`**: the call runs in place after the worker hands its
//!   other tasks to a new thread, which costs a thread hand-off per call as well; it
//!   panics on a current-thread runtime and needs a multi-threaded one.
//!
//! `AsyncPool` works on any tokio runtime, current-thread included (its threads are its
//! own, not the runtime's), and with many more tasks than connections: they wait in the
//! queue, not on threads. Build one per pool and clone it: each `AsyncPool::new` starts
//! threads of its own (one per connection of the pool). Its closures run outside the
//! runtime: `tokio::spawn` or `Handle::current()` inside one panics (pass a `Handle` in,
//! or do async work before or after the call).
//!
//! ## Waiting for a connection, and when the caller goes away
//!
//! - A call waits in the queue while every connection thread is busy; a thread then
//!   checks a connection out within what is left of the pool's connection timeout. A
//!   call still queued when the timeout is up is answered with
//!   [`crate::Error::PoolTimeout`] then, by a watchdog thread, and never runs.
//! - **A dropped future** (the client went away, a timeout fired) cannot stop a call that
//!   started: it runs to its end and its connection goes back to the pool;
//!   [`AsyncPool::transaction`] commits or rolls back in full on its thread, whatever
//!   happens to the future. A call whose future is dropped while it waits (in the queue
//!   or for a connection) never runs. No connection is ever returned inside a
//!   transaction, and the pool is never short of one.
//! - Errors arrive as in sync code (`PoolTimeout` naming the pool, `Validation`, ...); a
//!   panic in the closure resumes in the awaiting task.
//! - [`AsyncPool::get_stats`] counts trips, waits in the queue, calls abandoned and
//!   queue timeouts; the pool's [`PoolMetrics`](crate::pool::PoolMetrics) counts checkouts,
//!   waits for a connection and statements (round trips to the server).
//! - The runtime is never blocked: a timer keeps firing on a current-thread runtime and
//!   on a multi-threaded one with one worker while calls wait for an exhausted pool or
//!   a slow statement (`tests/integration/async_pool.rs`).
//!
//! `examples/api.rs` is a small axum service over `AsyncPool`: one trip per request
//! without a body (the caller and the work), the caller checked before the body of any
//! other request is read (401 otherwise), the task endpoints with filters and cursors,
//! and every error, its own or axum's, as JSON `{"error", "field"}`;
//! `tests/integration/api.rs` drives it over real HTTP.
//!
//! ## deadpool-diesel instead
//!
//! `deadpool_diesel::postgres::Pool` with `interact(|conn| ...)` works with every
//! repository function too (they take `&mut PgConnection`); run
//! `todo_store::pool::setup_connection(conn, &config)` in its `post_create` hook and
//! `todo_store::run_migrations` once at startup. What it loses against `AsyncPool`: the
//! crate's checkout without a ping for a recently used connection (deadpool recycles with
//! its own check), the lost-connection notes that make the first failing statement after a
//! restart discard the connection (the crate then asks the connection instead, one round
//! trip after an error), the pool metrics and `PoolTimeout` naming the pool, and
//! `retry_transaction` with a fresh connection per attempt (inside `interact` it gets
//! `&mut PgConnection`: one connection, no retry after a lost connection), the rollback
//! of a connection returned inside a transaction opened with plain SQL, and the
//! retirement of connections after a migration (see the `pool` and `migrate` module
//! docs).

mod lanes;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use diesel::Connection;

use crate::config::DbConfig;
use crate::error::Result;
use crate::models::{Session, User};
use crate::pool::{checkout_within, PgPool};
use crate::repo::SessionRepo;
use crate::PgConnection;
use lanes::Lanes;

/// A cheap-to-clone handle on a [`PgPool`] for async code: every call runs on one of
/// the pool's connection threads (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct AsyncPool {
    pool: PgPool,
    lanes: Arc<Lanes>,
}

impl AsyncPool {
    /// Wraps `pool` (from [`crate::connect`], [`crate::PoolOptions`], or a test's
    /// [`crate::testing::TestDb`]) and starts its connection threads, one per connection
    /// of `pool`, and a watchdog; they end when the last clone of this handle is dropped
    /// (the connection threads once the calls queued then have run). Build one per pool
    /// and clone it.
    pub fn new(pool: PgPool) -> Self {
        let lanes = Arc::new(Lanes::new(pool.max_size(), pool.connection_timeout()));
        AsyncPool { pool, lanes }
    }

    /// [`crate::connect`] off the runtime's workers: builds the pool, waits for its first
    /// connections and runs the pending migrations.
    ///
    /// # Errors
    /// As [`crate::connect`].
    pub async fn connect(config: &DbConfig) -> Result<AsyncPool> {
        let config = config.clone();
        let pool = blocking(move || crate::connect(&config)).await?;
        Ok(AsyncPool::new(pool))
    }

    /// The synchronous pool underneath, for code that runs on a blocking thread already.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// What this handle's connection threads did: trips, waits in the queue, calls
    /// abandoned before they started (counters since [`AsyncPool::new`], shared by its
    /// clones). The pool's own counters (checkouts, statements) are its
    /// [`PoolMetrics`](crate::pool::PoolMetrics).
    pub fn get_stats(&self) -> AsyncPoolStats {
        let c = &self.lanes.counters;
        AsyncPoolStats {
            threads: c.threads.load(Ordering::Relaxed),
            trips: c.trips.load(Ordering::Relaxed),
            queue_waits: c.queue_waits.load(Ordering::Relaxed),
            queue_wait_time: Duration::from_nanos(c.queue_wait_nanos.load(Ordering::Relaxed)),
            max_queue_wait: Duration::from_nanos(c.max_queue_wait_nanos.load(Ordering::Relaxed)),
            abandoned: c.abandoned.load(Ordering::Relaxed),
            queue_timeouts: c.queue_timeouts.load(Ordering::Relaxed),
        }
    }

    /// Checks a connection out and runs `f` on it, both on one of the pool's connection
    /// threads (one trip); resolves to what `f` returned.
    ///
    /// # Errors
    /// [`crate::Error::PoolTimeout`] when no connection became free within the pool's
    /// connection timeout, counted from this call (time in the queue included: a call
    /// still queued then is answered at once and never runs), and whatever `f` returned.
    ///
    /// # Panics
    /// Resumes the panic of `f`, if it panicked, in the awaiting task.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut PgConnection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        self.lanes
            .call(move |abandoned, waited| {
                let mut conn = checkout_within(&pool, waited)?;
                if abandoned() {
                    return Err(abandoned_error());
                }
                f(&mut conn)
            })
            .await
    }

    /// The caller of a request and its work in one trip on one connection: checks a
    /// connection out, finds the live session `token` names
    /// ([`SessionRepo::authenticate`], by the server's clock), and runs `f` with that
    /// session and its user on the same connection. Resolves to `None`, without
    /// running `f`, when `token` names no live session (unknown, expired, revoked, or
    /// not a token at all).
    ///
    /// Two statements, each prepared once per connection, in one trip and one checkout,
    /// where authenticating with [`AsyncPool::run`] and then running the work with it
    /// costs two of each.
    ///
    /// ```no_run
    /// use todo_store::{AsyncPool, TaskQuery, TaskRepo};
    ///
    /// # async fn handler(pool: AsyncPool, token: String) -> todo_store::Result<()> {
    /// let query = TaskQuery::new().completed(false);
    /// match pool
    ///     .run_authenticated(token, move |conn, _session, user| TaskRepo::list(conn, user.id, &query))
    ///     .await?
    /// {
    ///     Some(page) => println!("{} open tasks", page.items.len()),
    ///     None => println!("401: sign in"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`AsyncPool::run`].
    ///
    /// # Panics
    /// Resumes the panic of `f`, if it panicked, in the awaiting task.
    pub async fn run_authenticated<T, F>(&self, token: impl Into<String>, f: F) -> Result<Option<T>>
    where
        F: FnOnce(&mut PgConnection, &Session, &User) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let token = token.into();
        self.run(move |conn| match SessionRepo::authenticate(conn, &token)? {
            Some((session, user)) => f(conn, &session, &user).map(Some),
            None => Ok(None),
        })
        .await
    }

    /// As [`AsyncPool::run`], with `f` inside one database transaction: committed when
    /// `f` returns `Ok`, rolled back when it returns `Err` (or panics). The commit or
    /// rollback happens on the connection thread whatever becomes of the future.
    ///
    /// # Errors
    /// As [`AsyncPool::run`], and the errors of `BEGIN` and `COMMIT`.
    ///
    /// # Panics
    /// Resumes the panic of `f`, if it panicked, in the awaiting task.
    pub async fn transaction<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut PgConnection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run(move |conn| conn.transaction(f)).await
    }
}

/// What an [`AsyncPool`]'s connection threads did (from [`AsyncPool::get_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AsyncPoolStats {
    /// Connection threads running now: the pool's size (fewer only if the system
    /// refused to start one; a later call tries again).
    pub threads: u32,
    /// Calls a connection thread took: each one trip from the runtime to a thread and
    /// back, with one checkout unless the call was abandoned.
    pub trips: u64,
    /// Calls that waited 1 ms or more in the queue for a free connection thread.
    pub queue_waits: u64,
    /// Total time calls waited in the queue.
    pub queue_wait_time: Duration,
    /// Longest wait of a call in the queue.
    pub max_queue_wait: Duration,
    /// Calls skipped because their future was dropped before a thread took them.
    pub abandoned: u64,
    /// Calls still queued when the pool's connection timeout was up: answered with
    /// [`crate::Error::PoolTimeout`] without running.
    pub queue_timeouts: u64,
}

/// The error a call gets when its future was dropped before the call started: never
/// seen by anyone, since no one awaits it.
fn abandoned_error() -> crate::Error {
    crate::Error::Config("the call's future was dropped before it started".into())
}

/// Runs `f` on tokio's blocking thread pool and resolves to its result (for
/// [`AsyncPool::connect`], which has no pool yet).
async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        // The runtime shut down before the call could run.
        Err(_) => Err(crate::Error::Config(
            "the tokio runtime shut down before the call could run".into(),
        )),
    }
}
