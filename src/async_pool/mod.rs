//! [`AsyncPool`]: the crate's pool for async code on tokio, without leaving synchronous
//! Diesel.
//!
//! A handler that calls `pool.get()` and a repository function directly blocks a
//! runtime worker for the whole checkout and query: up to the pool's connection
//! timeout when the pool is exhausted, and every other task on that worker waits with
//! it. `AsyncPool` runs the checkout and the call on tokio's blocking thread pool
//! instead (`spawn_blocking`), so the runtime's workers keep running other tasks while a
//! call waits for a connection or for the server.
//!
//! ```no_run
//! use todo_store::{AsyncPool, DbConfig, TaskQuery, TaskRepo};
//!
//! # async fn handler() -> todo_store::Result<()> {
//! let pool = AsyncPool::connect(&DbConfig::from_env()?).await?;
//! # let user_id: todo_store::UserId = uuid::Uuid::nil().into();
//! let query = TaskQuery::new().completed(false);
//! let page = pool.run(move |conn| TaskRepo::list(conn, user_id, &query)).await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## When the caller goes away
//!
//! A future that is dropped before it finishes (the client disconnected, a timeout
//! fired) cannot stop a blocking call that has started: it runs to its end on its
//! blocking thread, and its connection goes back to the pool. A call that has not
//! started when its future is dropped (still waiting for a connection) is skipped once
//! it gets one. [`AsyncPool::transaction`] commits or rolls back in full on the blocking
//! thread, whatever happens to the future, so no connection is ever returned to the
//! pool inside a transaction, and the pool is never short of a connection.
//!
//! ## In a handler
//!
//! ```rust,no_run
//! use todo_store::{AsyncPool, DbConfig, NewTask, TaskQuery, TaskRepo};
//!
//! # async fn example() -> todo_store::Result<()> {
//! let pool = AsyncPool::connect(&DbConfig::from_env()?).await?; // migrations included
//! # let user_id: todo_store::UserId = uuid::Uuid::nil().into();
//! let query = TaskQuery::new().completed(false);
//! let page = pool.run(move |conn| TaskRepo::list(conn, user_id, &query)).await?;
//! let task = pool
//!     .transaction(move |conn| TaskRepo::create(conn, user_id, &NewTask::new("Ship it")))
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! - `AsyncPool` is a cheap clone (`AsyncPool::new(pool)` wraps any `PgPool`, a
//!   `TestDb`'s too). `run` checks out and calls on a blocking thread; `transaction` does
//!   the same inside one transaction. Errors arrive as in sync code (`PoolTimeout`
//!   naming the pool, `Validation`, ...); a panic in the closure resumes in the awaiting
//!   task.
//! - **A dropped future** (the client went away, a timeout fired) cannot stop a call that
//!   started: it runs to its end and its connection goes back to the pool; a transaction
//!   commits or rolls back in full. A call still waiting for a connection when its future
//!   is dropped never runs. No connection is ever returned inside a transaction.
//! - The runtime is never blocked: a timer keeps firing on a single-threaded runtime
//!   while calls wait for an exhausted pool or a slow statement (`tests/integration/async_pool.rs`).
//! - `examples/api.rs` is a small axum service over `AsyncPool`: the caller from a session
//!   token, checked in a layer before any part of the request is read (401 otherwise), the
//!   task endpoints with filters and cursors, and every error, its own or axum's, as JSON
//!   `{"error", "field"}` (400/404/405/409/413/415/422/503); `tests/integration/api.rs`
//!   drives it over real HTTP.
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
    /// [`crate::testing::TestDb`]). Its connection threads, at most one per connection of
    /// `pool`, start with the first calls and end when the last clone of this handle is
    /// dropped.
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
    /// [`PoolMetrics`](crate::PoolMetrics).
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
    /// that waited that long for a thread fails when a thread takes it, without running),
    /// and whatever `f` returned.
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
    /// rollback happens on the blocking thread whatever becomes of the future.
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
    /// Connection threads running now (at most the pool's size; they start with the
    /// first calls).
    pub threads: u32,
    /// Calls a connection thread took: each one trip from the runtime to a thread and
    /// back, with one checkout.
    pub trips: u64,
    /// Calls that waited 1 ms or more in the queue for a free connection thread.
    pub queue_waits: u64,
    /// Total time calls waited in the queue.
    pub queue_wait_time: Duration,
    /// Longest wait of a call in the queue.
    pub max_queue_wait: Duration,
    /// Calls skipped because their future was dropped before a thread took them.
    pub abandoned: u64,
    /// Calls that had waited the pool's whole connection timeout in the queue when a
    /// thread took them: they failed with [`crate::Error::PoolTimeout`] without running.
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
