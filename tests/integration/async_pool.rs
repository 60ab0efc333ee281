//! `AsyncPool` on tokio against real PostgreSQL: calls run off the runtime's workers (a
//! timer keeps firing on a single-threaded runtime while calls wait for an exhausted
//! pool or a slow statement), errors arrive as in sync code, and a dropped future never
//! leaves a connection in a transaction or the pool short of one.
#![cfg(feature = "tokio")]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use todo_store::testing::TestDb;
use todo_store::PoolOptions;
use todo_store::{
    AsyncPool, DbConfig, Error, NewSession, NewTask, PgPool, SessionRepo, TaskQuery, TaskRepo,
};
use uuid::Uuid;

use crate::support::fixtures;

fn small_pool(db: &TestDb, size: u32, timeout: Duration) -> PgPool {
    PoolOptions::new(
        &DbConfig::new(db.url())
            .pool_size(size)
            .connection_timeout(timeout)
            .application_name("async-pool-test"),
    )
    .run_migrations(false)
    .connect()
    .unwrap()
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Connections of this test's pools (its own database) that sit inside a transaction.
fn in_transaction(db: &TestDb) -> i64 {
    diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'async-pool-test' \
         AND datname = current_database() \
         AND state LIKE 'idle in transaction%'",
    )
    .get_result::<Count>(&mut db.conn())
    .unwrap()
    .n
}

/// Waits until every connection of `pool` is back, idle.
async fn all_returned(pool: &PgPool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = pool.state();
        if state.idle_connections == state.connections {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "connections not returned: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_return_what_the_sync_api_returns_errors_included() {
    let db = TestDb::new();
    let user = fixtures::user(&mut db.conn());
    let pool = AsyncPool::new(db.pool().clone());
    let task = pool
        .run(move |conn| TaskRepo::create(conn, user.id, &NewTask::new("async")))
        .await
        .unwrap();
    let page = pool
        .run(move |conn| TaskRepo::list(conn, user.id, &TaskQuery::new()))
        .await
        .unwrap();
    assert_eq!(page.items, std::slice::from_ref(&task));
    let err = pool
        .run(move |conn| TaskRepo::get(conn, user.id, Uuid::now_v7().into()))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = pool
        .run(move |conn| TaskRepo::create(conn, user.id, &NewTask::new(" ")))
        .await
        .unwrap_err();
    assert!(err.is_validation(), "{err:?}");
    // AsyncPool::connect migrates and connects off the workers.
    let other = AsyncPool::connect(&DbConfig::new(db.url())).await.unwrap();
    let again = other
        .run(move |conn| TaskRepo::get(conn, user.id, task.id))
        .await
        .unwrap();
    assert_eq!(again, task);
}

#[tokio::test(flavor = "current_thread")]
async fn an_exhausted_pool_is_a_pool_timeout_naming_the_pool() {
    let db = TestDb::new();
    let pool = AsyncPool::new(small_pool(&db, 1, Duration::from_millis(200)));
    let held = pool.pool().get().unwrap();
    let err = pool.run(|_| Ok(())).await.unwrap_err();
    match err {
        Error::PoolTimeout {
            max_size: 1,
            timeout,
            ..
        } => assert_eq!(timeout, Duration::from_millis(200)),
        other => panic!("expected PoolTimeout, got {other:?}"),
    }
    drop(held);
}

/// On a runtime with one thread, a timer task keeps firing while calls wait for an
/// exhausted pool and while a statement runs for half a second.
#[tokio::test(flavor = "current_thread")]
async fn the_runtime_keeps_running_while_calls_wait() {
    a_timer_keeps_firing_while_calls_wait().await;
}

/// The same on a multi-threaded runtime with one worker, where a call made on the
/// worker would stop every other task as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn one_worker_keeps_running_while_calls_wait() {
    a_timer_keeps_firing_while_calls_wait().await;
}

async fn a_timer_keeps_firing_while_calls_wait() {
    let db = TestDb::new();
    let pool = AsyncPool::new(small_pool(&db, 1, Duration::from_millis(600)));
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(10));
            loop {
                interval.tick().await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // A slow statement holds the only connection; a second call waits for the pool.
    let started = Instant::now();
    let slow = pool.run(|conn| {
        conn.batch_execute("SELECT pg_sleep(0.5)")?;
        Ok(())
    });
    let waiting = pool.run(|_| Ok(()));
    let before = ticks.load(Ordering::Relaxed);
    let (slow, waiting) = tokio::join!(slow, waiting);
    let elapsed = started.elapsed();
    let fired = ticks.load(Ordering::Relaxed) - before;
    slow.unwrap();
    // The second call either got the connection after the first or timed out; both
    // are fine: the point is that the runtime was free meanwhile.
    let _ = waiting;
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert!(
        fired as u128 >= elapsed.as_millis() / 10 / 3,
        "the timer fired {fired} times in {elapsed:?}: the runtime was blocked"
    );
    ticker.abort();
}

/// A future dropped while its call runs: the call finishes on its blocking thread, and
/// its connection comes back to the pool, never inside a transaction; a transaction
/// commits or rolls back in full as its closure decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_future_leaves_no_transaction_open_and_no_connection_missing() {
    let db = TestDb::new();
    let user = fixtures::user(&mut db.conn());
    let raw = small_pool(&db, 2, Duration::from_secs(5));
    let pool = AsyncPool::new(raw.clone());
    for (title, commit) in [("kept", true), ("rolled back", false)] {
        let call = pool.transaction(move |conn| {
            TaskRepo::create(conn, user.id, &NewTask::new(title))?;
            conn.batch_execute("SELECT pg_sleep(0.3)")?;
            if commit {
                Ok(())
            } else {
                Err(Error::validation("test", "roll back"))
            }
        });
        // The client goes away after 50 ms, mid-transaction.
        assert!(tokio::time::timeout(Duration::from_millis(50), call)
            .await
            .is_err());
    }
    all_returned(&raw).await;
    assert_eq!(in_transaction(&db), 0);
    let titles: Vec<String> = TaskRepo::list(&mut db.conn(), user.id, &TaskQuery::new())
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.title)
        .collect();
    assert_eq!(titles, ["kept"]);
    // The pool still serves with both connections.
    let (a, b) = tokio::join!(pool.run(|_| Ok(1)), pool.run(|_| Ok(2)));
    assert_eq!((a.unwrap(), b.unwrap()), (1, 2));
    assert_eq!(raw.state().connections, 2);
}

/// A call whose future is dropped while it still waits for a connection never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_abandoned_before_it_got_a_connection_never_runs() {
    let db = TestDb::new();
    let raw = small_pool(&db, 1, Duration::from_secs(5));
    let pool = AsyncPool::new(raw.clone());
    let held = raw.get().unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let call = {
        let ran = ran.clone();
        pool.run(move |_| {
            ran.store(true, Ordering::SeqCst);
            Ok(())
        })
    };
    assert!(tokio::time::timeout(Duration::from_millis(100), call)
        .await
        .is_err());
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    all_returned(&raw).await;
    assert!(!ran.load(Ordering::SeqCst), "the abandoned call ran");
    pool.run(|_| Ok(())).await.unwrap();
}

/// A panic in the closure reaches the awaiting task, and its connection is discarded,
/// not handed out again mid-whatever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_call_panics_in_the_awaiting_task() {
    let db = TestDb::new();
    let raw = small_pool(&db, 1, Duration::from_secs(5));
    let pool = AsyncPool::new(raw.clone());
    let joined = tokio::spawn({
        let pool = pool.clone();
        async move {
            pool.run(|conn| -> todo_store::Result<()> {
                conn.batch_execute("BEGIN")?;
                panic!("boom")
            })
            .await
        }
    })
    .await;
    assert!(joined.unwrap_err().is_panic());
    pool.run(|_| Ok(())).await.unwrap();
    all_returned(&raw).await;
    assert_eq!(in_transaction(&db), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_leaves_a_transaction_open_with_plain_sql_does_not_pass_it_on() {
    let db = TestDb::new();
    let user = fixtures::user(&mut db.conn());
    let pool = AsyncPool::new(small_pool(&db, 1, Duration::from_secs(2)));
    let user_id = user.id;
    pool.run(move |c| {
        diesel::sql_query("BEGIN").execute(c)?;
        TaskRepo::create(c, user_id, &NewTask::new("never committed"))?;
        Ok(())
    })
    .await
    .unwrap();
    pool.run(move |c| {
        TaskRepo::create(c, user_id, &NewTask::new("committed"))?;
        Ok(())
    })
    .await
    .unwrap();
    all_returned(pool.pool()).await;
    assert_eq!(in_transaction(&db), 0);
    let seen = TaskRepo::list(&mut db.conn(), user.id, &TaskQuery::new()).unwrap();
    let titles: Vec<&str> = seen.items.iter().map(|t| t.title.as_str()).collect();
    assert_eq!(titles, ["committed"]);
}

/// A request's caller and its work: one trip to a connection thread, one checkout and
/// two statements (the session, then the work), counted by the pool's instrumentation;
/// a token of no live session runs nothing but the lookup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_and_the_work_are_one_trip_one_checkout_two_statements() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let task = fixtures::task(&mut conn, &user, "Pay rent");
    let expiry = chrono::Utc::now() + chrono::Duration::days(1);
    let (_, token) = SessionRepo::create(&mut conn, user.id, &NewSession::new(expiry)).unwrap();
    let (expired, expired_token) =
        SessionRepo::create(&mut conn, user.id, &NewSession::new(expiry)).unwrap();
    fixtures::expire_session(&mut conn, expired.id);
    let (raw, metrics) = PoolOptions::new(&DbConfig::new(db.url()).pool_size(1))
        .run_migrations(false)
        .connect_with_metrics()
        .unwrap();
    let pool = AsyncPool::new(raw);
    let get = |token: String| {
        let pool = pool.clone();
        async move {
            pool.run_authenticated(token, move |conn, session, caller| {
                assert_eq!(session.user_id, caller.id);
                TaskRepo::get(conn, caller.id, task.id)
            })
            .await
            .unwrap()
        }
    };
    // The first call prepares the statements (and may ping the connection).
    assert_eq!(get(token.clone()).await.unwrap().id, task.id);

    let (before, trips) = (metrics.snapshot(), pool.get_stats().trips);
    for _ in 0..10 {
        assert_eq!(get(token.clone()).await.unwrap().title, "Pay rent");
    }
    let after = metrics.snapshot();
    assert_eq!(pool.get_stats().trips - trips, 10);
    assert_eq!(after.checkouts - before.checkouts, 10);
    // Two statements a call (the session's lookup, the get), and a health ping's
    // `SELECT 1` on a checkout more than 500 ms after the connection came back.
    let statements = after.statements - before.statements;
    assert!((20..=22).contains(&statements), "{statements}");

    // No live session: the lookup, and nothing else runs.
    for refused in [expired_token, "not-a-token".to_owned(), String::new()] {
        let before = metrics.snapshot();
        let ran = Arc::new(AtomicBool::new(false));
        let seen = {
            let ran = ran.clone();
            pool.run_authenticated(refused.clone(), move |_, _, _| {
                ran.store(true, Ordering::SeqCst);
                Ok(())
            })
            .await
            .unwrap()
        };
        assert_eq!(seen, None, "{refused:?}");
        assert!(!ran.load(Ordering::SeqCst), "{refused:?}");
        assert!(metrics.snapshot().statements - before.statements <= 1);
    }
}

/// Never more connection threads than connections, however many calls wait; calls
/// that wait for a thread are counted; one still queued when the pool's timeout is up
/// is answered with PoolTimeout then (not when a thread is free) and never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_wait_in_the_queue_for_at_most_the_pools_timeout() {
    let db = TestDb::new();
    // The 50 calls queue behind each other for longer than 400 ms on a loaded machine:
    // a pool with room for that, then one whose timeout the queued call outlives.
    let pool = AsyncPool::new(small_pool(&db, 2, Duration::from_secs(10)));
    let calls: Vec<_> = (0..50)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move |conn| {
                    conn.batch_execute("SELECT pg_sleep(0.005)")?;
                    Ok(i)
                })
                .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap().unwrap());
    }
    assert_eq!(results, (0..50).collect::<Vec<_>>());
    let stats = pool.get_stats();
    assert_eq!(stats.threads, 2, "{stats:?}");
    assert_eq!(stats.trips, 50, "{stats:?}");
    assert!(stats.queue_waits > 0, "{stats:?}");
    assert!(
        stats.max_queue_wait >= Duration::from_millis(5),
        "{stats:?}"
    );

    // Both threads busy for 2 s: a call queued behind them is answered with a
    // PoolTimeout when its 400 ms are up, not when a thread is free.
    let pool = AsyncPool::new(small_pool(&db, 2, Duration::from_millis(400)));
    fn slow(pool: &AsyncPool) -> impl std::future::Future<Output = todo_store::Result<()>> + '_ {
        pool.run(|conn| {
            conn.batch_execute("SELECT pg_sleep(2)")?;
            Ok(())
        })
    }
    let ran = Arc::new(AtomicBool::new(false));
    let queued = {
        let ran = ran.clone();
        let pool = pool.clone();
        async move {
            let started = Instant::now();
            let result = pool
                .run(move |_| {
                    ran.store(true, Ordering::SeqCst);
                    Ok(())
                })
                .await;
            (result, started.elapsed())
        }
    };
    let (a, b, (queued, waited)) = tokio::join!(slow(&pool), slow(&pool), queued);
    a.unwrap();
    b.unwrap();
    match queued {
        Err(Error::PoolTimeout {
            max_size: 2,
            timeout,
            ..
        }) => assert_eq!(timeout, Duration::from_millis(400)),
        other => panic!("expected PoolTimeout, got {other:?}"),
    }
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_millis(1500),
        "answered after {waited:?}"
    );
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(pool.get_stats().queue_timeouts, 1);
}
