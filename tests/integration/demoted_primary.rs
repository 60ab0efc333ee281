//! A connection whose server stopped taking writes, simulated on one server: `SET
//! default_transaction_read_only = on` in a session makes that session's server look,
//! to the crate, like a primary that was demoted (fenced read-only) under it; its writes
//! fail with SQLSTATE 25006 as they would on a standby. The pool retires such a
//! connection, `retry_transaction` runs the transaction again on a fresh one, and a
//! transaction that is read-only by its own doing keeps its connection and is not
//! retried. (tests/failover.rs does the same with a real standby.)

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::Connection;
use todo_store::pool::{checkout, PoolMetrics, PoolOptions};
use todo_store::retry::{retry_transaction, RetryPolicy};
use todo_store::testing::TestDb;
use todo_store::{DbConfig, Error, NewTask, PgPool, TaskQuery, TaskRepo};

use crate::support::backend::backend_pid;
use crate::support::fixtures;

fn one_connection_pool(db: &TestDb) -> (PgPool, PoolMetrics) {
    PoolOptions::new(
        &DbConfig::new(db.url())
            .pool_size(1)
            .connection_timeout(Duration::from_secs(2)),
    )
    .run_migrations(false)
    .connect_with_metrics()
    .unwrap()
}

/// Makes `conn`'s session read-only by default, as a demoted primary's would be.
fn demote(conn: &mut todo_store::PgConnection) {
    conn.batch_execute("SET default_transaction_read_only = on")
        .unwrap();
}

#[test]
fn a_connection_whose_server_refuses_writes_is_not_handed_out_again() {
    let db = TestDb::new();
    let user = fixtures::user(&mut db.conn());
    let (pool, metrics) = one_connection_pool(&db);
    let mut conn = checkout(&pool).unwrap();
    let demoted = backend_pid(&mut conn);
    demote(&mut conn);
    let err = TaskRepo::create(&mut conn, user.id, &NewTask::new("refused")).unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    // Reads still work on it, until it goes back.
    TaskRepo::list(&mut conn, user.id, &TaskQuery::new()).unwrap();
    drop(conn);

    let stats = metrics.snapshot();
    assert_eq!(stats.retired_not_primary, 1, "{stats:?}");
    let mut conn = checkout(&pool).unwrap();
    assert_ne!(
        backend_pid(&mut conn),
        demoted,
        "the retired connection came back"
    );
    TaskRepo::create(&mut conn, user.id, &NewTask::new("on a fresh connection")).unwrap();
}

#[test]
fn a_transaction_read_only_by_its_own_doing_keeps_its_connection_and_is_not_retried() {
    let db = TestDb::new();
    let user = fixtures::user(&mut db.conn());
    let (pool, metrics) = one_connection_pool(&db);
    let mut conn = checkout(&pool).unwrap();
    let pid = backend_pid(&mut conn);
    let err = conn
        .transaction(|conn| {
            conn.batch_execute("SET TRANSACTION READ ONLY")?;
            TaskRepo::create(conn, user.id, &NewTask::new("refused"))
        })
        .unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    drop(conn);
    assert_eq!(backend_pid(&mut checkout(&pool).unwrap()), pid);
    assert_eq!(metrics.snapshot().retired_not_primary, 0);

    let started = Instant::now();
    let mut attempts = 0;
    let err = retry_transaction(&pool, &RetryPolicy::default(), |conn| {
        attempts += 1;
        conn.batch_execute("SET TRANSACTION READ ONLY")?;
        TaskRepo::create(conn, user.id, &NewTask::new("refused"))
    })
    .unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    assert_eq!(attempts, 1);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(metrics.snapshot().retired_not_primary, 0);
}

#[test]
fn retry_transaction_runs_a_write_refused_by_a_demoted_server_again_on_a_fresh_connection() {
    let db = TestDb::new();
    let user = fixtures::user(&mut db.conn());
    let (pool, metrics) = one_connection_pool(&db);
    // The pool's one connection, demoted between two uses (a `SET` inside the
    // transaction would be undone by its rollback).
    let demoted = {
        let mut conn = checkout(&pool).unwrap();
        demote(&mut conn);
        backend_pid(&mut conn)
    };
    let mut pids = Vec::new();
    let task = retry_transaction(&pool, &RetryPolicy::default(), |conn| {
        pids.push(backend_pid(conn));
        TaskRepo::create(conn, user.id, &NewTask::new("written once"))
    })
    .expect("retried on a fresh connection");
    assert_eq!(pids.len(), 2);
    assert_eq!(pids[0], demoted);
    assert_ne!(pids[1], demoted);
    assert_eq!(metrics.snapshot().retired_not_primary, 1);
    let titles: Vec<String> = TaskRepo::list(&mut db.conn(), user.id, &TaskQuery::new())
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.title)
        .collect();
    assert_eq!(titles, [task.title]);

    // With a single connection there is no fresh one: the refusal is the error.
    let mut conn = checkout(&pool).unwrap();
    demote(&mut conn);
    let err = retry_transaction(&mut conn, &RetryPolicy::default(), |conn| {
        TaskRepo::create(conn, user.id, &NewTask::new("refused"))
    })
    .unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
}
