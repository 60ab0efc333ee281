//! The retry helper, each transient failure forced for real.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Instant;

use todo_store::pool::{checkout, RECENTLY_USED};
use todo_store::retry::{retry_serializable, retry_transaction};
use todo_store::{ConflictKind, Error, NewTask, NewUser, Priority, TaskPatch, UserRepo};

use crate::support::backend::{backend_pid, terminate};
use crate::support::fixtures;

use super::*;

/// Write skew: two SERIALIZABLE transactions each read how many tasks are open and close
/// their own task only if two are open. Run side by side, both read 2; under
/// SERIALIZABLE one of them fails with 40001, is retried, reads 1 and closes nothing.
/// (At READ COMMITTED both would close theirs and none would be left open.)
#[test]
fn a_serialization_failure_is_retried_and_the_outcome_is_serializable() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let a = fixtures::task(&mut conn, &user, "on call: a");
    let b = fixtures::task(&mut conn, &user, "on call: b");
    let uid = user.id;
    drop(conn);

    let barrier = Barrier::new(2);
    let calls = AtomicU32::new(0);
    // Room for the other transaction's COMMIT to land on a loaded machine: a retry
    // before it fails again.
    let policy = fast_policy(10).max_delay(Duration::from_millis(500));
    let open_seen: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = [a.id, b.id]
            .into_iter()
            .map(|mine| {
                let (barrier, calls, policy, pool) = (&barrier, &calls, &policy, db.pool());
                s.spawn(move || {
                    let mut attempt = 0;
                    retry_serializable(pool, policy, |conn| {
                        attempt += 1;
                        calls.fetch_add(1, Ordering::SeqCst);
                        let open = TaskRepo::count_matching(
                            conn,
                            uid,
                            &TaskQuery::new().completed(false),
                        )?;
                        if attempt == 1 {
                            // Both have read before either writes.
                            barrier.wait();
                        }
                        if open >= 2 {
                            TaskRepo::set_completed(conn, uid, mine, true)?;
                        }
                        Ok(open)
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .expect("no panic")
                    .expect("retried until it committed")
            })
            .collect()
    });

    let mut conn = db.conn();
    let open =
        TaskRepo::count_matching(&mut conn, user.id, &TaskQuery::new().completed(false)).unwrap();
    assert_eq!(open, 1, "exactly one task closed, as in a serial order");
    let mut seen = open_seen.clone();
    seen.sort();
    assert_eq!(
        seen,
        [1, 2],
        "the retried transaction saw the other's commit"
    );
    assert!(
        calls.load(Ordering::SeqCst) >= 3,
        "one transaction ran again after its serialization failure"
    );
}

/// Two transactions lock two tasks in opposite orders: the server aborts one with
/// 40P01 "deadlock detected"; the helper runs it again and both changes land.
#[test]
fn a_deadlock_is_retried_and_both_transactions_apply() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let a = fixtures::task(&mut conn, &user, "first");
    let b = fixtures::task(&mut conn, &user, "second");
    let uid = user.id;
    drop(conn);

    let barrier = Barrier::new(2);
    let calls = AtomicU32::new(0);
    let errors_seen = Mutex::new(Vec::new());
    let policy = fast_policy(5);
    std::thread::scope(|s| {
        let completes = TaskPatch {
            completed: Some(true),
            ..Default::default()
        };
        let prioritizes = TaskPatch {
            priority: Some(Priority::High),
            ..Default::default()
        };
        let plans = [(a.id, b.id, completes), (b.id, a.id, prioritizes)];
        let handles: Vec<_> = plans
            .into_iter()
            .map(|(first, second, patch)| {
                let (barrier, calls, errors_seen, policy, pool) =
                    (&barrier, &calls, &errors_seen, &policy, db.pool());
                s.spawn(move || {
                    let mut attempt = 0;
                    retry_transaction(pool, policy, |conn| {
                        attempt += 1;
                        calls.fetch_add(1, Ordering::SeqCst);
                        TaskRepo::update(conn, uid, first, &patch)?;
                        if attempt == 1 {
                            // Each holds its first row's lock before taking the second.
                            barrier.wait();
                        }
                        TaskRepo::update(conn, uid, second, &patch).inspect_err(|e| {
                            errors_seen.lock().unwrap().push(format!(
                                "deadlock={} {e} (attempt {attempt} of the transaction \
                                     taking {first} then {second})",
                                e.is_deadlock()
                            ))
                        })
                    })
                })
            })
            .collect();
        for h in handles {
            h.join()
                .expect("no panic")
                .expect("retried until it committed");
        }
    });

    let errors = errors_seen.into_inner().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("deadlock=true"), "{errors:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 3, "the victim ran twice");
    let mut conn = db.conn();
    for id in [a.id, b.id] {
        let task = TaskRepo::get(&mut conn, user.id, id).unwrap();
        assert!(task.completed, "{task:?}");
        assert_eq!(task.priority, Priority::High, "{task:?}");
        assert_eq!(task.version, 3, "both updates, once each: {task:?}");
    }
}

/// The pooled connection is killed while idle; it was returned moments ago, so the
/// checkout hands it out unchecked and `BEGIN` finds it dead: nothing was sent, and the
/// helper runs the transaction on a fresh connection.
#[test]
fn a_connection_lost_before_the_transaction_started_is_retried_on_a_fresh_connection() {
    let db = TestDb::new();
    let user = fixtures::user(&mut db.conn());
    let pool = one_connection_pool(&db);
    let mut tries = 0;
    loop {
        tries += 1;
        let killed = backend_pid(&mut checkout(&pool).unwrap());
        let returned = Instant::now();
        terminate(db.url(), killed);
        if returned.elapsed() + Duration::from_millis(100) > RECENTLY_USED {
            // Too slow: the checkout would ping and replace it; no retry to observe.
            assert!(
                tries < 20,
                "could not kill a backend within {RECENTLY_USED:?}"
            );
            continue;
        }
        let mut pids = Vec::new();
        let task = retry_transaction(&pool, &fast_policy(3), |conn| {
            pids.push(backend_pid(conn));
            TaskRepo::create(conn, user.id, &NewTask::new(format!("after kill {tries}")))
        })
        .expect("retried on a fresh connection");
        assert_eq!(
            pids.len(),
            1,
            "the closure ran once: BEGIN failed, not the closure"
        );
        assert_ne!(pids[0], killed);
        assert_eq!(titles(&mut db.conn(), user.id), [task.title]);
        break;
    }
}

/// With a single connection there is no fresh one to retry on: the lost connection is
/// the error.
#[test]
fn a_lost_single_connection_is_not_retried() {
    let db = TestDb::new();
    let mut conn = PgConnection::establish(db.url()).unwrap();
    terminate(db.url(), backend_pid(&mut conn));
    let mut calls = 0;
    let err = retry_transaction(&mut conn, &fast_policy(5), |_| {
        calls += 1;
        Ok(())
    })
    .unwrap_err();
    assert!(err.is_connection_lost(), "{err:?}");
    assert_eq!(calls, 0);
}

/// The first statement after the server ended the connection is the first to bind a
/// `task_priority` value, so diesel first looks the type up, that lookup fails, and the
/// caller sees a failed type lookup instead of a lost connection. The crate decides
/// from the connection's state instead: each such call reports a lost connection,
/// pooled or not, and the retry helper runs the transaction again on a fresh one.
#[test]
fn a_connection_lost_before_the_first_enum_bind_is_reported_as_lost_and_retried() {
    let db = TestDb::new();
    let user = fixtures::user(&mut db.conn());
    let task = fixtures::task(&mut db.conn(), &user, "existing");
    type Call = fn(&mut PgConnection, UserId, TaskId) -> todo_store::Result<()>;
    let calls: [(&str, Call); 4] = [
        ("create", |conn, user, _| {
            TaskRepo::create(conn, user, &NewTask::new("new")).map(drop)
        }),
        ("update", |conn, user, task| {
            let patch = TaskPatch {
                priority: Some(Priority::High),
                ..Default::default()
            };
            TaskRepo::update(conn, user, task, &patch).map(drop)
        }),
        ("set_completed", |conn, user, task| {
            TaskRepo::set_completed(conn, user, task, true).map(drop)
        }),
        ("list by priority", |conn, user, _| {
            TaskRepo::list(conn, user, &TaskQuery::new().priority(Priority::Low)).map(drop)
        }),
    ];
    for (name, call) in calls {
        // A connection of its own (no pool, no instrumentation): its state is asked.
        let mut conn = PgConnection::establish(db.url()).unwrap();
        terminate(db.url(), backend_pid(&mut conn));
        let err = call(&mut conn, user.id, task.id).expect_err(name);
        assert!(
            err.is_connection_lost(),
            "{name} on a plain connection: {err:?}"
        );

        // A pooled connection.
        let pool = one_connection_pool(&db);
        let mut conn = checkout(&pool).unwrap();
        terminate(db.url(), backend_pid(&mut conn));
        let err = call(&mut conn, user.id, task.id).expect_err(name);
        assert!(
            err.is_connection_lost(),
            "{name} on a pooled connection: {err:?}"
        );
        drop(conn);

        // Through the retry helper: the first attempt's connection is killed inside
        // the transaction, before the call; the second attempt succeeds.
        let pool = one_connection_pool(&db);
        let mut attempts = 0;
        retry_transaction(&pool, &fast_policy(3), |conn| {
            attempts += 1;
            if attempts == 1 {
                terminate(db.url(), backend_pid(conn));
            }
            call(conn, user.id, task.id)
        })
        .unwrap_or_else(|e| panic!("{name} is retried: {e:?}"));
        assert_eq!(attempts, 2, "{name}");
    }
}

/// The backend dies while the closure runs, before COMMIT: PostgreSQL rolls the open
/// transaction back, so running it again cannot apply anything twice.
#[test]
fn a_connection_lost_inside_the_transaction_is_retried_and_the_first_attempt_left_nothing() {
    let db = TestDb::new();
    let user = fixtures::user(&mut db.conn());
    let pool = one_connection_pool(&db);
    let mut calls = 0;
    let mut lost = Vec::new();
    retry_transaction(&pool, &fast_policy(3), |conn| {
        calls += 1;
        TaskRepo::create(
            conn,
            user.id,
            &NewTask::new(format!("first of attempt {calls}")),
        )?;
        if calls == 1 {
            terminate(db.url(), backend_pid(conn));
        }
        TaskRepo::create(
            conn,
            user.id,
            &NewTask::new(format!("second of attempt {calls}")),
        )
        .inspect_err(|e| lost.push(e.is_connection_lost()))
    })
    .expect("retried on a fresh connection");
    assert_eq!(calls, 2);
    assert_eq!(lost, [true]);
    assert_eq!(
        titles(&mut db.conn(), user.id),
        ["first of attempt 2", "second of attempt 2"]
    );
}

/// The connection dies while COMMIT is being processed (a deferred trigger makes the
/// backend terminate itself at commit time): whether it committed is unknown to the
/// client, so the helper must not run the transaction again.
#[test]
fn a_connection_lost_during_commit_is_not_retried() {
    let db = TestDb::new();
    db.conn()
        .batch_execute(
            "CREATE TABLE commit_probe (id serial PRIMARY KEY, note text NOT NULL);
             CREATE FUNCTION die_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 PERFORM pg_terminate_backend(pg_backend_pid());
                 RETURN NULL;
             END $$;
             CREATE CONSTRAINT TRIGGER die_at_commit AFTER INSERT ON commit_probe
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION die_at_commit();",
        )
        .unwrap();
    let pool = one_connection_pool(&db);
    let mut calls = 0;
    let err = retry_transaction(&pool, &fast_policy(5), |conn| {
        calls += 1;
        diesel::sql_query("INSERT INTO commit_probe (note) VALUES ('once')").execute(conn)?;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(calls, 1, "run once: the outcome of the COMMIT is unknown");
    assert!(err.is_connection_lost(), "{err:?}");
    assert!(!err.is_transient(), "{err:?}");
    // The pool heals: the next transaction gets a fresh connection.
    let n = retry_transaction(&pool, &fast_policy(1), |conn| {
        Ok(diesel::sql_query("SELECT count(*) AS n FROM commit_probe")
            .get_result::<Count>(conn)?
            .n)
    })
    .unwrap();
    assert!(n <= 1, "at most the one attempt: {n}");
}

#[test]
fn validation_and_conflict_errors_are_not_retried_and_roll_back() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    drop(conn);
    let before = snapshot(&mut db.conn());

    let mut calls = 0;
    let err = retry_transaction(db.pool(), &fast_policy(5), |conn| {
        calls += 1;
        TaskRepo::create(conn, user.id, &NewTask::new("valid"))?;
        TaskRepo::create(conn, user.id, &NewTask::new("   "))
    })
    .unwrap_err();
    assert!(err.is_validation(), "{err:?}");
    assert_eq!(calls, 1);

    let mut calls = 0;
    let err = retry_transaction(db.pool(), &fast_policy(5), |conn| {
        calls += 1;
        TaskRepo::create(conn, user.id, &NewTask::new("valid"))?;
        UserRepo::create(conn, &NewUser::new(user.email.to_uppercase(), "Twin"))
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                kind: ConflictKind::EmailTaken
            }
        ),
        "{err:?}"
    );
    assert_eq!(calls, 1);

    let mut calls = 0;
    let err = retry_transaction(db.pool(), &fast_policy(5), |conn| {
        calls += 1;
        TaskRepo::get(conn, user.id, Uuid::now_v7().into())
    })
    .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(calls, 1);

    assert_eq!(snapshot(&mut db.conn()), before);
}

/// A transaction that always fails with a (real, server-raised) serialization failure
/// runs exactly `max_attempts` times, waiting within the policy's bounds in between.
#[test]
fn retries_stop_after_max_attempts_with_bounded_waits() {
    let db = TestDb::new();
    let user = fixtures::user(&mut db.conn());
    let policy = RetryPolicy::default()
        .max_attempts(4)
        .base_delay(Duration::from_millis(40))
        .max_delay(Duration::from_millis(100));
    // Waits before retries 1..=3: ceilings 40, 80, 100 ms; each at least half of its.
    let (min_wait, max_wait) = (
        Duration::from_millis(20 + 40 + 50),
        Duration::from_millis(220),
    );
    let mut calls = 0;
    let started = Instant::now();
    let err = retry_transaction(db.pool(), &policy, |conn| {
        calls += 1;
        TaskRepo::create(conn, user.id, &NewTask::new(format!("attempt {calls}")))?;
        raise(conn, "forced", "40001")
    })
    .unwrap_err();
    let elapsed = started.elapsed();
    assert!(err.is_serialization_failure(), "{err:?}");
    assert_eq!(calls, 4);
    assert!(elapsed >= min_wait, "{elapsed:?}");
    assert!(elapsed < max_wait + Duration::from_secs(2), "{elapsed:?}");
    assert!(
        titles(&mut db.conn(), user.id).is_empty(),
        "every attempt rolled back"
    );

    // Deadlocks count against the same budget; a success ends the loop.
    let mut calls = 0;
    let value = retry_transaction(db.pool(), &fast_policy(3), |conn| {
        calls += 1;
        if calls < 3 {
            raise(conn, "deadlock detected", "40P01")?;
        }
        Ok(calls)
    })
    .unwrap();
    assert_eq!(value, 3);

    // One attempt means no retry.
    let mut calls = 0;
    let err = retry_transaction(db.pool(), &RetryPolicy::no_retries(), |conn| {
        calls += 1;
        raise(conn, "deadlock detected", "40P01")
    })
    .unwrap_err();
    assert!(err.is_deadlock() && err.is_transient(), "{err:?}");
    assert_eq!(calls, 1);
}

/// Inside a caller's transaction the helper runs the closure once, in a savepoint: a
/// transient failure goes to the owner of the outer transaction, which alone can retry.
#[test]
fn inside_a_callers_transaction_the_helper_uses_a_savepoint_and_does_not_retry() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let mut calls = 0;
    let outer: todo_store::Result<()> = conn.transaction(|conn| {
        TaskRepo::create(conn, user.id, &NewTask::new("outer"))?;
        let inner = retry_transaction(&mut *conn, &fast_policy(5), |conn| {
            calls += 1;
            TaskRepo::create(conn, user.id, &NewTask::new("inner"))?;
            raise(conn, "deadlock detected", "40P01")
        });
        assert!(inner.unwrap_err().is_deadlock());
        // The savepoint rolled back; the outer transaction goes on.
        retry_transaction(&mut *conn, &fast_policy(5), |conn| {
            TaskRepo::create(conn, user.id, &NewTask::new("inner ok")).map(drop)
        })
    });
    outer.unwrap();
    assert_eq!(calls, 1);
    assert_eq!(titles(&mut conn, user.id), ["inner ok", "outer"]);
}

#[test]
fn the_helper_commits_and_accepts_a_pooled_connection() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let task = retry_transaction(&mut conn, &RetryPolicy::default(), |conn| {
        TaskRepo::create(conn, user.id, &NewTask::new("committed"))
    })
    .unwrap();
    drop(conn);
    // Visible from another connection: committed, not left open.
    let other = retry_serializable(db.pool(), &RetryPolicy::default(), |conn| {
        TaskRepo::get(conn, user.id, task.id)
    })
    .unwrap();
    assert_eq!(other, task);
}

/// `retry_transaction` takes any r2d2 pool of `PgConnection`s, diesel's own
/// `ConnectionManager` included: a connection the server ends inside the first attempt
/// is found lost from its state, and the transaction runs again on a fresh one.
#[test]
fn the_retry_helper_works_with_a_pool_that_is_not_the_crates() {
    use diesel::r2d2::{ConnectionManager, Pool};
    let db = TestDb::new();
    let user = fixtures::user(&mut db.conn());
    let pool: Pool<ConnectionManager<PgConnection>> = Pool::builder()
        .max_size(1)
        .build(ConnectionManager::new(db.url()))
        .unwrap();
    let mut attempts = 0;
    let task = retry_transaction(&pool, &fast_policy(3), |conn| {
        attempts += 1;
        if attempts == 1 {
            terminate(db.url(), backend_pid(conn));
        }
        TaskRepo::create(conn, user.id, &NewTask::new("through diesel's pool"))
    })
    .expect("retried on a fresh connection");
    assert_eq!(attempts, 2);
    assert_eq!(titles(&mut db.conn(), user.id), [task.title]);
    // A pooled connection of that pool is a single-connection source.
    let mut conn = pool.get().unwrap();
    retry_transaction(&mut conn, &fast_policy(3), |conn| {
        TaskRepo::count(conn, user.id).map(drop)
    })
    .unwrap();
}

/// A closure that fails with another connection's lost connection (here a second
/// connection whose server process was ended; in life a nested `retry_transaction`
/// whose `COMMIT`'s outcome is unknown) runs once: its own connection is alive, so
/// running it again could apply the other connection's write twice.
#[test]
fn a_lost_connection_that_is_not_the_attempts_own_is_not_retried() {
    let db = TestDb::new();
    let mut other = db.conn();
    let other_pid = backend_pid(&mut other);
    terminate(db.url(), other_pid);
    let mut calls = 0;
    let err = retry_transaction(db.pool(), &fast_policy(5), |_conn| {
        calls += 1;
        UserRepo::count(&mut other).map(drop)
    })
    .unwrap_err();
    assert!(err.is_connection_lost(), "{err:?}");
    assert_eq!(calls, 1, "run again after another connection's loss");
}

#[test]
fn a_pool_the_server_refuses_for_good_is_not_retried_through_the_failover_budget() {
    let db = TestDb::new();
    let missing = db.url().replacen(
        &format!("/{}", db.name()),
        "/todo_store_no_such_database",
        1,
    );
    assert_ne!(missing, db.url());
    let pool =
        PoolOptions::new(&DbConfig::new(missing).connection_timeout(Duration::from_millis(300)))
            .run_migrations(false)
            .lazy(true)
            .connect()
            .unwrap();
    let policy = fast_policy(3).failover_budget(Duration::from_secs(600));
    let started = Instant::now();
    let mut ran = 0;
    let err = retry_transaction(&pool, &policy, |_| {
        ran += 1;
        Ok(())
    })
    .unwrap_err();
    assert!(matches!(err, Error::PoolTimeout { .. }), "{err:?}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert_eq!(ran, 0);
    // Returned at once, not after the ten minutes of the failover budget: no failover
    // creates a database.
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "{:?}",
        started.elapsed()
    );
}
