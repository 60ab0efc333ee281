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

use tokio::sync::oneshot;

use diesel::Connection;

use crate::config::DbConfig;
use crate::error::Result;
use crate::pool::{checkout, PgPool};
use crate::PgConnection;

/// A cheap-to-clone handle on a [`PgPool`] for async code: every call runs on tokio's
/// blocking thread pool (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct AsyncPool {
    pool: PgPool,
}

impl AsyncPool {
    /// Wraps `pool` (from [`crate::connect`], [`crate::PoolOptions`], or a test's
    /// [`crate::testing::TestDb`]).
    pub fn new(pool: PgPool) -> Self {
        AsyncPool { pool }
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

    /// Checks a connection out and runs `f` on it, both on tokio's blocking thread pool;
    /// resolves to what `f` returned.
    ///
    /// # Errors
    /// [`crate::Error::PoolTimeout`] when no connection became free in time (as
    /// [`crate::pool::checkout`]), and whatever `f` returned.
    ///
    /// # Panics
    /// Resumes the panic of `f`, if it panicked, in the awaiting task.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut PgConnection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        run_unless_abandoned(move |done| {
            let mut conn = checkout(&pool)?;
            if done.is_closed() {
                return Err(abandoned());
            }
            f(&mut conn)
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

/// The error a call gets when its future was dropped before the call started: never
/// seen by anyone, since no one awaits it.
fn abandoned() -> crate::Error {
    crate::Error::Config("the call's future was dropped before it started".into())
}

/// Runs `f` on the blocking thread pool; `f` gets the sender's state so it can skip its
/// work when no one waits for the result any more.
async fn run_unless_abandoned<T, F>(f: F) -> Result<T>
where
    F: FnOnce(&oneshot::Sender<std::thread::Result<Result<T>>>) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let (done, result) = oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&done)));
        // The receiver is gone when the future was dropped: nothing to deliver.
        let _ = done.send(outcome);
    });
    match result.await {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        // The runtime shut down while the call was queued: it never ran.
        Err(_) => Err(crate::Error::Config(
            "the tokio runtime shut down before the call could run".into(),
        )),
    }
}

/// Runs `f` on the blocking thread pool and resolves to its result.
async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    run_unless_abandoned(move |_| f()).await
}
