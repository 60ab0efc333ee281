//! # todo-store
//!
//! The persistence layer of a multi-user todo application: users and their tasks on
//! PostgreSQL, built with Diesel 2 (synchronous), r2d2 and embedded migrations.
//!
//! Every repository function takes `conn: &mut PgConnection` first, so callers
//! compose them freely inside their own transactions; a pooled connection from
//! [`PgPool`] derefs to one.
//!
//! ```no_run
//! use todo_store::{connect, DbConfig, NewTask, NewUser, Priority, TaskQuery, TaskRepo, UserRepo};
//!
//! # fn main() -> todo_store::Result<()> {
//! // DATABASE_URL from the environment or .env; migrations run before `connect` returns.
//! let pool = connect(&DbConfig::from_env()?)?;
//! let mut conn = pool.get()?;
//!
//! let user = UserRepo::create(&mut conn, &NewUser::new("ada@example.com", "Ada"))?;
//! let task = TaskRepo::create(
//!     &mut conn,
//!     user.id,
//!     &NewTask::new("Write the report").priority(Priority::High),
//! )?;
//! TaskRepo::set_completed(&mut conn, user.id, task.id, true)?;
//!
//! let page = TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(20))?;
//! for task in &page.items {
//!     println!("{} [{}] {}", task.id, task.priority, task.title);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ## Modules
//! - [`config`]: [`DbConfig`], from the environment or built in code.
//! - [`pool`]: [`connect`] and the r2d2 [`PgPool`].
//! - [`migrate`]: embedded migrations under an advisory lock.
//! - [`error`]: [`Error`] and [`Result`].
//! - [`models`]: rows ([`User`], [`Task`]), inputs ([`NewUser`], [`NewTask`]), patches and validation.
//! - [`repo`]: [`UserRepo`] and [`TaskRepo`].
//! - Habits: [`HabitRepo`] (habits, check-ins and streaks), [`Habit`], [`NewHabit`],
//!   [`HabitPatch`], [`Schedule`] (stored as versioned JSON) and [`Streak`].
//! - `better_auth` (feature `better-auth`): who is calling, from Better Auth's session cookie, when
//!   Better Auth shares the database (docs/better-auth.md).
//! - `local_postgres` (feature `local-postgres`): a PostgreSQL cluster started from the system's binaries.
//! - `testing` (feature `testing`): `TestDb`, a fresh migrated database per test.
//! - `AsyncPool` (feature `tokio`): the pool for async code, calls on tokio's blocking pool.
//! - `serde_support` (feature `serde`): serde for rows, inputs, queries and `DbConfig`.
//! - `seed` (feature `seed`): deterministic, realistic demo data in bulk.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod async_pool;
mod checksum;
pub mod config;
mod conninfo;
pub mod error;
pub mod migrate;
pub mod models;
pub mod pool;
pub mod replica;
pub mod repo;
pub mod retry;
mod schema;
mod telemetry;

#[cfg(feature = "better-auth")]
#[cfg_attr(docsrs, doc(cfg(feature = "better-auth")))]
pub mod better_auth;
// Hidden: the fuzz targets in fuzz/ are its only users (a separate crate, so it must be
// `pub`); thin pass-throughs to crate-private code, free to change, not an API.
#[cfg(feature = "fuzzing")]
#[cfg_attr(docsrs, doc(cfg(feature = "fuzzing")))]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "local-postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "local-postgres")))]
pub mod local_postgres;
#[cfg(feature = "seed")]
#[cfg_attr(docsrs, doc(cfg(feature = "seed")))]
pub mod seed;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod serde_support;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use async_pool::AsyncPool;
pub use config::DbConfig;
pub use error::{ConflictKind, Error, Result};
pub use migrate::{revert_all_migrations, run_migrations};
pub use models::{
    Habit, HabitId, HabitPatch, NewHabit, NewSession, NewTask, NewUser, Priority, Schedule,
    Session, SessionId, Streak, Task, TaskId, TaskPatch, TaskStats, User, UserId, UserPatch,
};
pub use pool::{connect, PgPool, PooledConn};
pub use repo::{
    Direction, HabitRepo, Page, SessionRepo, TaskQuery, TaskRepo, TaskSort, UserQuery, UserRepo,
};

// The README's code blocks compile as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Diesel's PostgreSQL connection, re-exported so callers need not depend on diesel to name it.
pub use diesel::PgConnection;
