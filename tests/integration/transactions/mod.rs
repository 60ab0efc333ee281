//! Transactions against real PostgreSQL: the retry helper (`todo_store::retry`) with each
//! transient failure forced for real, and repo calls composed inside a caller's
//! transaction (rolled back whole, nested through savepoints).
//!
//! A file per subject; the helpers they share are here.

mod composed;
mod retry;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use todo_store::retry::RetryPolicy;
use todo_store::testing::TestDb;
use todo_store::PoolOptions;
use todo_store::{DbConfig, PgPool, TaskId, TaskQuery, TaskRepo, UserId};
use uuid::Uuid;

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    row: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Every row of `table` as JSON, in id order: the whole content, not just a count.
fn rows(conn: &mut PgConnection, table: &str) -> Vec<String> {
    diesel::sql_query(format!(
        "SELECT row_to_json(t)::text AS row FROM {table} t ORDER BY id"
    ))
    .load::<Row>(conn)
    .expect("rows")
    .into_iter()
    .map(|r| r.row)
    .collect()
}

fn snapshot(conn: &mut PgConnection) -> (Vec<String>, Vec<String>) {
    (rows(conn, "users"), rows(conn, "tasks"))
}

fn titles(conn: &mut PgConnection, user_id: UserId) -> Vec<String> {
    let mut titles: Vec<String> = TaskRepo::list(conn, user_id, &TaskQuery::new().limit(500))
        .expect("list")
        .items
        .into_iter()
        .map(|t| t.title)
        .collect();
    titles.sort();
    titles
}

/// A pool of one connection over `db`, so a test knows which connection an attempt gets.
fn one_connection_pool(db: &TestDb) -> PgPool {
    PoolOptions::new(
        &DbConfig::new(db.url())
            .pool_size(1)
            .connection_timeout(Duration::from_secs(10)),
    )
    .run_migrations(false)
    .connect()
    .expect("pool")
}

/// A real server-side error with SQLSTATE `code` (not a synthetic diesel error).
fn raise(conn: &mut PgConnection, message: &str, code: &str) -> todo_store::Result<()> {
    diesel::sql_query(format!(
        "DO $$ BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = '{code}'; END $$"
    ))
    .execute(conn)?;
    Ok(())
}

fn fast_policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(max_attempts)
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(50))
}
