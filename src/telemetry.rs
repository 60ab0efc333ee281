//! Tracing for every repository call, and the SQL at debug level.
//!
//! Each call of [`crate::UserRepo`], [`crate::TaskRepo`] and [`crate::HabitRepo`] runs in a `DEBUG` span
//! named `todo_store` with the fields `op` (e.g. `task.list`), `user_id` (where the call
//! has one), and, when it ends, `rows`, `outcome` (`ok`, `not_found`, `conflict`,
//! `validation`, `error`) and `duration_us`. Pooled connections also emit a `DEBUG`
//! event per statement under the target `todo_store::sql` with the SQL text and its
//! duration. Spans and events carry ids, counts and SQL with placeholders only: never a
//! text value of a user's data (bind values are left out) and never the password.
//!
//! With no subscriber installed (or `DEBUG` disabled), a span costs a check of a
//! static flag: the clock is read only for enabled spans.
//!
//! With tracing-subscriber's `EnvFilter`:
//!
//! ```sh
//! RUST_LOG=todo_store=debug,todo_store::sql=debug your-app
//! ```

use std::time::Instant;

use tracing::field::Empty;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::models::{Habit, Session, Streak, Task, TaskStats, User};

/// Runs `call` as the repository operation `op` of `user_id`, in its span.
#[inline]
pub(crate) fn traced<T: RowCount>(
    op: &'static str,
    user_id: Option<Uuid>,
    call: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let span = tracing::debug_span!(
        "todo_store",
        op,
        user_id = Empty,
        rows = Empty,
        outcome = Empty,
        duration_us = Empty
    );
    if span.is_disabled() {
        return call();
    }
    if let Some(id) = user_id {
        span.record("user_id", tracing::field::display(id));
    }
    let _entered = span.enter();
    let started = Instant::now();
    let result = call();
    span.record("duration_us", started.elapsed().as_micros() as u64);
    match &result {
        Ok(value) => {
            span.record("rows", value.row_count());
            span.record("outcome", "ok");
        }
        Err(e) => {
            span.record("outcome", outcome(e));
        }
    }
    result
}

fn outcome(error: &Error) -> &'static str {
    match error {
        Error::NotFound { .. } => "not_found",
        Error::Conflict { .. } => "conflict",
        Error::Validation { .. } => "validation",
        _ => "error",
    }
}

/// How many rows a result holds, for the `rows` field of a span.
pub(crate) trait RowCount {
    fn row_count(&self) -> u64;
}

impl RowCount for User {
    fn row_count(&self) -> u64 {
        1
    }
}

impl RowCount for Task {
    fn row_count(&self) -> u64 {
        1
    }
}

impl RowCount for Session {
    fn row_count(&self) -> u64 {
        1
    }
}

impl RowCount for Habit {
    fn row_count(&self) -> u64 {
        1
    }
}

/// A row and what comes with it (a session and its token).
impl<A, B> RowCount for (A, B) {
    fn row_count(&self) -> u64 {
        1
    }
}

impl RowCount for Streak {
    fn row_count(&self) -> u64 {
        1
    }
}

/// A check-in made or undone (`true`) or not (`false`).
impl RowCount for bool {
    fn row_count(&self) -> u64 {
        u64::from(*self)
    }
}

impl RowCount for TaskStats {
    fn row_count(&self) -> u64 {
        1
    }
}

impl RowCount for () {
    fn row_count(&self) -> u64 {
        1
    }
}

/// A count query returns one row.
impl RowCount for i64 {
    fn row_count(&self) -> u64 {
        1
    }
}

/// Rows changed by a bulk update or delete.
impl RowCount for usize {
    fn row_count(&self) -> u64 {
        *self as u64
    }
}

impl<T> RowCount for Vec<T> {
    fn row_count(&self) -> u64 {
        self.len() as u64
    }
}

impl<T> RowCount for Option<T> {
    fn row_count(&self) -> u64 {
        u64::from(self.is_some())
    }
}

/// The SQL of a statement without its bind values (which may be users' data, and may
/// be megabytes: they are never formatted). diesel shows a statement as `SQL -- binds:
/// [..]`; the text is written up to that marker and no further. Empty when diesel
/// cannot build the statement (an empty changeset, say): diesel then fails the
/// statement itself, and this must not panic where `to_string` would.
pub(crate) fn sql_without_binds(query: &dyn std::fmt::Display) -> String {
    use std::fmt::{self, Write};
    const BINDS: &str = " -- binds: ";
    struct UpToBinds(String);
    impl Write for UpToBinds {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            match s.find(BINDS) {
                Some(end) => {
                    self.0.push_str(&s[..end]);
                    Err(fmt::Error)
                }
                None => {
                    self.0.push_str(s);
                    Ok(())
                }
            }
        }
    }
    let mut sql = UpToBinds(String::new());
    // An error is the writer stopping at the marker, or a statement diesel cannot build
    // (then nothing was written): either way the text so far is the answer.
    let _ = fmt::write(&mut sql, format_args!("{query}"));
    if let Some(end) = sql.0.find(BINDS) {
        sql.0.truncate(end);
    }
    sql.0
}
