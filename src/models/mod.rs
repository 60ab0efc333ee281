//! Rows, inputs and their validation: one file per table.
//!
//! Read structs ([`User`], [`Task`], [`Habit`]) are what the repositories return.
//! Inputs ([`NewUser`], [`NewTask`], [`NewHabit`], [`UserPatch`], [`TaskPatch`],
//! [`HabitPatch`]) are plain structs with public fields; each checks itself before
//! anything is written. [`Schedule`] says when a habit is due, and is stored as JSON.
//! Ids have a type per table ([`UserId`], [`TaskId`], [`HabitId`], [`SessionId`]), so
//! a user's id cannot stand where a task's is expected.

#[cfg(feature = "better-auth")]
mod better_auth_session;
mod habit;
mod ids;
pub(crate) mod patch;
mod schedule;
pub(crate) mod session;
mod task;
mod task_stats;
mod timestamp;
mod user;
pub(crate) mod validate;

#[cfg(feature = "better-auth")]
#[cfg_attr(docsrs, doc(cfg(feature = "better-auth")))]
pub use better_auth_session::BetterAuthSession;
pub(crate) use habit::HabitChanges;
pub use habit::{Habit, HabitPatch, NewHabit, Streak};
pub use ids::{HabitId, SessionId, TaskId, UserId};
pub use schedule::Schedule;
pub use session::{NewSession, Session, TOKEN_BYTES, TOKEN_CHARS, USER_AGENT_MAX_CHARS};
pub use task::{NewTask, Priority, Task, TaskPatch};
pub(crate) use task::{TaskChanges, TaskRow};
pub use task_stats::TaskStats;
pub(crate) use user::UserRow;
pub use user::{NewUser, User, UserPatch};
pub use validate::{is_invisible, INVISIBLE};
