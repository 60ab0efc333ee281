//! The pool: cheap checkouts, broken connections detected and discarded, timeouts.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::Text;
use todo_store::pool::{checkout, PoolOptions, RECENTLY_USED};
use todo_store::testing::TestDb;
use todo_store::{DbConfig, Error, UserRepo};

use crate::support::backend::{backend_pid, terminate};

fn one_connection_pool(db: &TestDb) -> todo_store::PgPool {
    PoolOptions::new(
        &DbConfig::new(db.url())
            .pool_size(1)
            .connection_timeout(Duration::from_secs(2)),
    )
    .run_migrations(false)
    .connect()
    .unwrap()
}

#[test]
fn a_connection_killed_while_idle_is_replaced_by_the_checkout_check() {
    let db = TestDb::new();
    let pool = one_connection_pool(&db);
    let pid = backend_pid(&mut checkout(&pool).unwrap());
    terminate(db.url(), pid);
    std::thread::sleep(RECENTLY_USED);
    // Idle for longer than the window: the checkout pings, finds it dead, opens another.
    let mut conn = checkout(&pool).unwrap();
    assert_ne!(backend_pid(&mut conn), pid);
}

#[test]
fn a_recently_used_connection_costs_no_ping_and_fails_at_most_once() {
    let db = TestDb::new();
    let pool = one_connection_pool(&db);
    let mut conn = checkout(&pool).unwrap();
    let pid = backend_pid(&mut conn);
    // The window runs from the connection's return (terminate may take a while).
    let returned = Instant::now();
    drop(conn);
    terminate(db.url(), pid);
    // Returned moments ago: handed out without a check, so the first use finds it dead...
    let first = UserRepo::count(&mut checkout(&pool).unwrap());
    if returned.elapsed() < RECENTLY_USED {
        let err = first.expect_err("the connection was dead and not checked");
        assert!(
            matches!(err, Error::Database(_) | Error::Connection { .. }),
            "{err:?}"
        );
    }
    // ...is discarded on its return, and the next checkout gets a fresh connection.
    let mut conn = checkout(&pool).unwrap();
    assert_ne!(backend_pid(&mut conn), pid);
    assert_eq!(UserRepo::count(&mut conn).unwrap(), 0);
}

#[test]
fn an_exhausted_pool_times_out_naming_its_size_and_timeout() {
    let db = TestDb::new();
    let pool = PoolOptions::new(
        &DbConfig::new(db.url())
            .pool_size(2)
            .connection_timeout(Duration::from_millis(300)),
    )
    .run_migrations(false)
    .connect()
    .unwrap();
    let _held = (checkout(&pool).unwrap(), checkout(&pool).unwrap());
    let started = Instant::now();
    let Err(err) = checkout(&pool) else {
        panic!("a third checkout of a pool of two succeeded")
    };
    assert!(started.elapsed() < Duration::from_secs(2));
    match &err {
        Error::PoolTimeout {
            max_size: 2,
            timeout,
            ..
        } => {
            assert_eq!(*timeout, Duration::from_millis(300))
        }
        other => panic!("expected PoolTimeout, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("pool size 2") && message.contains("300ms"),
        "{message}"
    );
}

/// The way callers write it: `pool.get()?` in a function returning the crate's
/// `Result`. The conversion names the pool's size and timeout too, and the same pool's
/// next timeout on another thread is named as well.
#[test]
fn pool_get_with_question_mark_names_the_pool_size_and_timeout() {
    fn get_conn(pool: &todo_store::PgPool) -> todo_store::Result<todo_store::PooledConn> {
        Ok(pool.get()?)
    }
    let db = TestDb::new();
    let pool = PoolOptions::new(
        &DbConfig::new(db.url())
            .pool_size(1)
            .connection_timeout(Duration::from_millis(250)),
    )
    .run_migrations(false)
    .connect()
    .unwrap();
    let _held = get_conn(&pool).unwrap();
    for attempt in 0..2 {
        let err = std::thread::scope(|s| {
            s.spawn(|| {
                get_conn(&pool)
                    .map(drop)
                    .expect_err("the pool is exhausted")
            })
            .join()
            .unwrap()
        });
        match &err {
            Error::PoolTimeout {
                max_size: 1,
                timeout,
                ..
            } => assert_eq!(*timeout, Duration::from_millis(250), "attempt {attempt}"),
            other => panic!("expected PoolTimeout naming the pool, got {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains("pool size 1") && message.contains("250ms"),
            "{message}"
        );
    }
}

#[test]
fn new_connections_get_the_configured_session_settings() {
    let db = TestDb::new();
    let pool = PoolOptions::new(
        &DbConfig::new(db.url())
            .statement_timeout(Some(Duration::from_millis(1234)))
            .application_name("settings-test"),
    )
    .run_migrations(false)
    .connect()
    .unwrap();
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        value: String,
    }
    let mut conn = checkout(&pool).unwrap();
    let show = |conn: &mut PgConnection, name: &str| {
        diesel::sql_query(format!("SELECT current_setting('{name}') AS value"))
            .get_result::<Setting>(conn)
            .unwrap()
            .value
    };
    assert_eq!(show(&mut conn, "statement_timeout"), "1234ms");
    assert_eq!(show(&mut conn, "application_name"), "settings-test");
}

/// The caller's customizer runs after the crate's setup, which stays; an r2d2
/// adjustment applies, and a checkout timeout names the size it left.
#[test]
fn options_run_the_callers_customizer_and_r2d2_adjustments() {
    use diesel::connection::SimpleConnection;
    use diesel::r2d2::CustomizeConnection;
    #[derive(Debug)]
    struct WorkMem;
    impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for WorkMem {
        fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
            conn.batch_execute("SET work_mem = '7MB'")
                .map_err(diesel::r2d2::Error::QueryError)
        }
    }
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        value: String,
    }
    let db = TestDb::new();
    let options = PoolOptions::new(
        &DbConfig::new(db.url())
            .pool_size(3)
            .application_name("options-test")
            .connection_timeout(Duration::from_millis(300)),
    )
    .run_migrations(false)
    .customizer(WorkMem)
    .r2d2(|b| b.max_size(1));
    let (pool, metrics) = options.connect_with_metrics().unwrap();
    assert_eq!(pool.max_size(), 1);
    assert_eq!(metrics.snapshot().max_size, 1);
    let mut conn = checkout(&pool).unwrap();
    for (name, value) in [("work_mem", "7MB"), ("application_name", "options-test")] {
        let shown = diesel::sql_query(format!("SELECT current_setting('{name}') AS value"))
            .get_result::<Setting>(&mut conn)
            .unwrap()
            .value;
        assert_eq!(shown, value, "{name}");
    }
    match pool.get().map(drop).map_err(Error::from) {
        Err(Error::PoolTimeout { max_size: 1, .. }) => {}
        other => panic!("expected a PoolTimeout naming size 1, got {other:?}"),
    }
}

#[test]
fn a_slow_statement_is_a_statement_timeout_error() {
    let db = TestDb::new();
    let pool =
        PoolOptions::new(&DbConfig::new(db.url()).statement_timeout(Some(Duration::from_secs(1))))
            .run_migrations(false)
            .connect()
            .unwrap();
    let mut conn = checkout(&pool).unwrap();
    let err: Error = diesel::sql_query("SELECT pg_sleep(5)")
        .execute(&mut conn)
        .map_err(Error::from)
        .unwrap_err();
    assert!(matches!(err, Error::StatementTimeout), "{err:?}");
    // The connection stays usable.
    assert_eq!(UserRepo::count(&mut conn).unwrap(), 0);
}

#[test]
fn connecting_to_no_server_fails_fast_naming_the_host_not_the_password() {
    let config = DbConfig::new("postgres://app:sup3rsecret@127.0.0.1:1/todo")
        .connection_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let err = todo_store::connect(&config).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let message = err.to_string();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(!message.contains("sup3rsecret") && !format!("{err:?}").contains("sup3rsecret"));
}

#[test]
fn pool_metrics_count_connections_checkouts_waits_and_timeouts() {
    let db = TestDb::new();
    let (pool, metrics) = PoolOptions::new(
        &DbConfig::new(db.url())
            .pool_size(1)
            .connection_timeout(Duration::from_millis(200)),
    )
    .run_migrations(false)
    .connect_with_metrics()
    .unwrap();
    let start = metrics.snapshot();
    assert_eq!((start.max_size, start.connections), (1, 1));
    {
        let held = checkout(&pool).unwrap();
        let busy = metrics.snapshot();
        assert_eq!((busy.connections, busy.idle_connections), (1, 0));
        assert!(checkout(&pool).is_err(), "the only connection is held");
        drop(held);
    }
    // A checkout that has to wait for the connection held by another thread.
    // (Its own timeout, long enough for a loaded machine; held 50 ms from when it asks.)
    let held = checkout(&pool).unwrap();
    std::thread::scope(|s| {
        let (asking, asks) = std::sync::mpsc::channel();
        let pool = &pool;
        let waiter = s.spawn(move || {
            asking.send(Instant::now()).unwrap();
            pool.get_timeout(Duration::from_secs(10)).map(drop)
        });
        let asked = asks.recv().unwrap();
        std::thread::sleep(
            (asked + Duration::from_millis(50)).saturating_duration_since(Instant::now()),
        );
        drop(held);
        waiter.join().unwrap().unwrap();
    });
    let end = metrics.snapshot();
    assert_eq!(end.timeouts, 1);
    assert_eq!(end.checkouts, start.checkouts + 3);
    assert!(
        end.waits >= 1 && end.max_wait >= Duration::from_millis(20),
        "{end:?}"
    );
    assert!(end.connections_opened >= 1);
}

/// The crate's instrumentation on pooled connections passes every event on to diesel's
/// default instrumentation, so an application's own keeps seeing its statements.
#[test]
fn an_applications_default_instrumentation_still_sees_pooled_statements() {
    use diesel::connection::{set_default_instrumentation, Instrumentation, InstrumentationEvent};
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    fn counting() -> Option<Box<dyn Instrumentation>> {
        Some(Box::new(|event: InstrumentationEvent<'_>| {
            if matches!(event, InstrumentationEvent::FinishQuery { .. }) {
                SEEN.fetch_add(1, Ordering::SeqCst);
            }
        }))
    }
    set_default_instrumentation(counting).unwrap();
    let db = TestDb::new();
    let pool = PoolOptions::new(&DbConfig::new(db.url()).pool_size(1))
        .run_migrations(false)
        .connect()
        .unwrap();
    let mut conn = checkout(&pool).unwrap();
    let before = SEEN.load(Ordering::SeqCst);
    assert_eq!(UserRepo::count(&mut conn).unwrap(), 0);
    assert!(
        SEEN.load(Ordering::SeqCst) > before,
        "the application's instrumentation saw nothing"
    );
    // And the crate's own notes still work: a lost connection is known without asking.
    let pid = backend_pid(&mut conn);
    terminate(db.url(), pid);
    assert!(UserRepo::count(&mut conn).unwrap_err().is_connection_lost());
    assert!(todo_store::pool::has_lost_server(&mut conn));
}

/// Tasks of `user_id` that another connection sees (committed ones).
fn committed_tasks(db: &TestDb, user_id: todo_store::UserId) -> i64 {
    todo_store::TaskRepo::count_matching(&mut db.conn(), user_id, &todo_store::TaskQuery::new())
        .unwrap()
}

#[test]
fn a_connection_returned_inside_a_transaction_opened_with_plain_sql_is_rolled_back() {
    use diesel::connection::SimpleConnection;
    use todo_store::{NewTask, TaskRepo};
    let db = TestDb::new();
    let user = crate::support::fixtures::user(&mut db.conn());
    let (pool, metrics) = PoolOptions::new(
        &DbConfig::new(db.url())
            .pool_size(1)
            .connection_timeout(Duration::from_secs(2)),
    )
    .run_migrations(false)
    .connect_with_metrics()
    .unwrap();
    let opens: [&dyn Fn(&mut PgConnection); 4] = [
        &|c| {
            diesel::sql_query("BEGIN").execute(c).unwrap();
        },
        &|c| {
            c.batch_execute("start transaction isolation level repeatable read")
                .unwrap()
        },
        &|c| c.batch_execute("SELECT 1; /* then */ Begin").unwrap(),
        // A transaction that failed: aborted, waiting for its ROLLBACK.
        &|c| {
            c.batch_execute("BEGIN").unwrap();
            assert!(c.batch_execute("SELECT 1/0").is_err());
        },
    ];
    for (i, open) in opens.iter().enumerate() {
        let pid = {
            let mut conn = checkout(&pool).unwrap();
            let pid = backend_pid(&mut conn);
            open(&mut conn);
            // Written inside the caller's transaction, never committed (or refused, in
            // the failed one).
            let _ = TaskRepo::create(&mut conn, user.id, &NewTask::new("uncommitted"));
            pid
        };
        // The same connection (a pool of one), outside any transaction: its write is
        // committed at once, and the earlier one is gone.
        let mut conn = checkout(&pool).unwrap();
        assert_eq!(backend_pid(&mut conn), pid, "case {i}: the same connection");
        TaskRepo::create(&mut conn, user.id, &NewTask::new("committed")).unwrap();
        drop(conn);
        assert_eq!(committed_tasks(&db, user.id), i as i64 + 1, "case {i}");
    }
    assert_eq!(metrics.snapshot().rolled_back_on_return, 4);

    // The crate's calls, diesel's transactions and the caller's own statements that
    // cannot open a transaction cost no ROLLBACK.
    for _ in 0..3 {
        let mut conn = checkout(&pool).unwrap();
        TaskRepo::list(&mut conn, user.id, &todo_store::TaskQuery::new()).unwrap();
        conn.transaction::<_, Error, _>(|c| {
            TaskRepo::create(c, user.id, &NewTask::new("in diesel's transaction"))?;
            Ok(())
        })
        .unwrap();
        diesel::sql_query("SELECT 1").execute(&mut conn).unwrap();
    }
    assert_eq!(metrics.snapshot().rolled_back_on_return, 4);
    assert_eq!(committed_tasks(&db, user.id), 4 + 3);
}

#[test]
fn the_customizer_runs_on_the_connection_renewed_after_migrating() {
    use diesel::connection::SimpleConnection;
    use diesel::r2d2::CustomizeConnection;
    #[derive(Debug)]
    struct Mark;
    impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for Mark {
        fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
            conn.batch_execute("SET todo_store_test.customized = 'yes'")
                .map_err(diesel::r2d2::Error::QueryError)
        }
    }
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
        value: Option<String>,
    }
    // An empty database: connect migrates on one of the pool's connections, which is
    // then renewed.
    let db = TestDb::empty();
    let pool = PoolOptions::new(
        &DbConfig::new(db.url())
            .pool_size(2)
            .connection_timeout(Duration::from_secs(5)),
    )
    .customizer(Mark)
    .connect()
    .unwrap();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = checkout(&pool).unwrap();
        let value = diesel::sql_query(
            "SELECT current_setting('todo_store_test.customized', true) AS value",
        )
        .get_result::<Setting>(&mut conn)
        .unwrap()
        .value;
        assert_eq!(value.as_deref(), Some("yes"));
        held.push(conn);
    }
}

#[test]
fn a_callers_statement_diesel_cannot_build_is_an_error_not_a_panic() {
    mod own {
        diesel::table! {
            tasks (id) {
                id -> Uuid,
                title -> Text,
            }
        }
    }
    #[derive(AsChangeset)]
    #[diesel(table_name = own::tasks)]
    struct Nothing {
        title: Option<String>,
    }
    let db = TestDb::new();
    let pool = one_connection_pool(&db);
    let mut conn = checkout(&pool).unwrap();
    let result = diesel::update(own::tasks::table)
        .set(&Nothing { title: None })
        .execute(&mut conn);
    assert!(
        matches!(result, Err(diesel::result::Error::QueryBuilderError(_))),
        "{result:?}"
    );
}

#[test]
fn bind_values_that_say_begin_or_start_cost_no_rollback() {
    let db = TestDb::new();
    let (pool, metrics) = PoolOptions::new(&DbConfig::new(db.url()).pool_size(1))
        .run_migrations(false)
        .connect_with_metrics()
        .unwrap();
    for _ in 0..3 {
        let mut conn = checkout(&pool).unwrap();
        diesel::sql_query("SELECT $1 AS value")
            .bind::<Text, _>("Start the day; BEGIN again")
            .execute(&mut conn)
            .unwrap();
    }
    assert_eq!(metrics.snapshot().rolled_back_on_return, 0);
}
