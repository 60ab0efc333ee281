//! Load: many threads on one pool, with the database compared to a model afterwards.
//!
//! - Shared tasks, optimistic concurrency: 8 threads read tasks of a few users and
//!   update them with the version they read. Every acknowledged write gets a version
//!   of its own, so a lost update (two writes acknowledged on the same version) or a
//!   phantom one (a version nobody wrote) shows; every rejected write must be a
//!   `StaleVersion` conflict that another write explains.
//! - Isolation: threads own users and hammer them with reads, lists, searches, counts
//!   and writes, also aimed at other users' task ids: never a foreign row.
//!
//! `LOAD_OPS_PER_THREAD` (default 10,000) and `ISOLATION_ROUNDS_PER_THREAD` (default
//! 1,000) scale the two tests.
//!
//! A file per test; the settings and helpers they share are here.

mod isolation;
mod versioned;

use std::collections::HashMap;

use chrono::SubsecRound;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer, Text, Uuid as SqlUuid};
use todo_store::{TaskId, UserId};
use uuid::Uuid;

const THREADS: usize = 8;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(QueryableByName, Debug)]
struct TaskRow {
    #[diesel(sql_type = SqlUuid)]
    id: TaskId,
    #[diesel(sql_type = SqlUuid)]
    user_id: UserId,
    #[diesel(sql_type = Text)]
    title: String,
    #[diesel(sql_type = Integer)]
    version: i32,
    #[diesel(sql_type = Bool)]
    completed: bool,
}

/// Every task row, read with plain SQL (not through the repos under test).
fn all_task_rows(conn: &mut PgConnection) -> HashMap<TaskId, TaskRow> {
    diesel::sql_query("SELECT id, user_id, title, version, completed FROM tasks")
        .load::<TaskRow>(conn)
        .expect("rows")
        .into_iter()
        .map(|r| (r.id, r))
        .collect()
}
