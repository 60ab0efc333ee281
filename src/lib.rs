#![doc = include_str!("../README.md")]
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
    Habit, HabitId, HabitPatch, MetadataChange, NewHabit, NewSession, NewTask, NewUser, Priority,
    Schedule, Session, SessionId, Streak, Task, TaskId, TaskPatch, TaskStats, User, UserId,
    UserPatch,
};
pub use pool::{connect, PgPool, PoolOptions, PooledConn};
pub use repo::{
    Direction, Found, HabitRepo, Page, SearchQuery, SearchRepo, SessionRepo, TaskQuery, TaskRepo,
    TaskSort, UserQuery, UserRepo, UserSort,
};

/// Diesel's PostgreSQL connection, re-exported so callers need not depend on diesel to name it.
pub use diesel::PgConnection;
