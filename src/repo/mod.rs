//! The repositories: every query of the crate lives here.
//!
//! Functions take `conn: &mut PgConnection` first, so they compose inside a caller's
//! transaction (`conn.transaction(|conn| ...)`). Every task and habit query is scoped
//! by `user_id`: another user's task or habit is indistinguishable from a missing one.

#[cfg(feature = "better-auth")]
pub(crate) mod better_auth_session;
pub(crate) mod bulk;
pub(crate) mod cursor;
pub(crate) mod fragment;
pub(crate) mod habit;
mod habit_sql;
pub(crate) mod list;
mod query;
pub(crate) mod session;
pub(crate) mod sql_functions;
pub(crate) mod task;
mod task_update;
pub(crate) mod user;
pub(crate) mod user_query;

pub use habit::HabitRepo;
pub use query::{Direction, Page, TaskQuery, TaskSort};
pub use session::{SessionRepo, PURGE_BATCH};
pub use task::TaskRepo;
pub use user::UserRepo;
pub use user_query::{UserQuery, UserSort};

/// A fresh UUIDv7: time-ordered, so new rows land at the right edge of the primary key
/// index instead of at random pages.
pub(crate) fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// Runs the repository call `op` of `user_id` on `conn`: in its tracing span, and with
/// a database error of unclear cause checked against the connection's state, so that
/// a lost connection is reported as one whatever statement surfaced it
/// ([`crate::pool::has_lost_server`]).
#[inline]
pub(crate) fn call<T: crate::telemetry::RowCount>(
    op: &'static str,
    user_id: Option<uuid::Uuid>,
    conn: &mut diesel::PgConnection,
    f: impl FnOnce(&mut diesel::PgConnection) -> crate::Result<T>,
) -> crate::Result<T> {
    crate::telemetry::traced(op, user_id, || {
        let result = crate::pool::crate_call(conn, f);
        crate::pool::settle(conn, result)
    })
}

/// A foreign-key violation on insert means the parent row (`entity` `key`: the user of
/// a task or habit, the habit of a check-in) does not exist.
pub(crate) fn missing_as_not_found(
    err: diesel::result::Error,
    entity: &'static str,
    key: uuid::Uuid,
) -> crate::Error {
    match crate::Error::from(err) {
        crate::Error::NotFound { entity: e, .. } if e == entity => {
            crate::Error::not_found(entity, key)
        }
        other => other,
    }
}
