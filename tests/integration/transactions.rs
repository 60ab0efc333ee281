//! Transactions against real PostgreSQL: the retry helper (`todo_store::retry`) with each
//! transient failure forced for real, and repo calls composed inside a caller's
//! transaction (rolled back whole, nested through savepoints).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use todo_store::pool::{build_pool, checkout, RECENTLY_USED};
use todo_store::retry::{retry_serializable, retry_transaction, RetryPolicy};
use todo_store::testing::TestDb;
use todo_store::{
    ConflictKind, DbConfig, Error, NewTask, NewUser, PgPool, Priority, TaskPatch, TaskQuery,
    TaskRepo, UserPatch, UserRepo,
};
use uuid::Uuid;

use crate::support::backend::{backend_pid, terminate};
use crate::support::fixtures;

// ---------------------------------------------------------------------------------------
// Helpers

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

fn titles(conn: &mut PgConnection, user_id: Uuid) -> Vec<String> {
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
    build_pool(
        &DbConfig::new(db.url())
            .pool_size(1)
            .connection_timeout(Duration::from_secs(10)),
    )
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
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
    }
}

// ---------------------------------------------------------------------------------------
// Retry: each transient failure forced for real

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
    let policy = fast_policy(10);
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
    type Call = fn(&mut PgConnection, Uuid, Uuid) -> todo_store::Result<()>;
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
        TaskRepo::get(conn, user.id, Uuid::now_v7())
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
    let policy = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(40),
        max_delay: Duration::from_millis(100),
    };
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

// ---------------------------------------------------------------------------------------
// Repo calls composed in a caller's transaction

struct World {
    user: todo_store::User,
    tasks: Vec<todo_store::Task>,
}

fn world(conn: &mut PgConnection) -> World {
    let user = fixtures::user(conn);
    let tasks = (0..4)
        .map(|i| fixtures::task(conn, &user, &format!("existing {i}")))
        .collect();
    World { user, tasks }
}

/// Every kind of write the repos offer, inside the caller's transaction; checks inside
/// the transaction that each took effect there.
fn write_everything(conn: &mut PgConnection, w: &World) -> todo_store::Result<()> {
    let uid = w.user.id;
    let t = &w.tasks;
    let newcomer = UserRepo::create(
        conn,
        &NewUser::new(format!("new-{}@example.com", Uuid::now_v7()), "New"),
    )?;
    UserRepo::create_many(
        conn,
        &[
            NewUser::new(format!("bulk-a-{}@example.com", Uuid::now_v7()), "Bulk A"),
            NewUser::new(format!("bulk-b-{}@example.com", Uuid::now_v7()), "Bulk B"),
        ],
    )?;
    UserRepo::update(
        conn,
        uid,
        &UserPatch {
            name: Some("Renamed".into()),
            ..Default::default()
        },
    )?;
    TaskRepo::create(conn, uid, &NewTask::new("created"))?;
    TaskRepo::create(conn, newcomer.id, &NewTask::new("newcomer's"))?;
    TaskRepo::update(
        conn,
        uid,
        t[0].id,
        &TaskPatch {
            title: Some("updated".into()),
            expected_version: Some(1),
            ..Default::default()
        },
    )?;
    TaskRepo::set_completed(conn, uid, t[1].id, true)?;
    TaskRepo::delete(conn, uid, t[2].id)?;
    let many = TaskRepo::create_many(
        conn,
        uid,
        &[
            NewTask::new("many 1"),
            NewTask::new("many 2"),
            NewTask::new("many 3"),
        ],
    )?;
    let ids: Vec<Uuid> = many.iter().map(|t| t.id).chain([t[3].id]).collect();
    assert_eq!(TaskRepo::set_completed_many(conn, uid, &ids, true)?, 4);
    assert_eq!(TaskRepo::delete_many(conn, uid, &ids[..2])?, 2);
    // In the transaction, every change is there.
    assert_eq!(UserRepo::get(conn, uid)?.name, "Renamed");
    assert_eq!(TaskRepo::count(conn, uid)?, 4 - 1 + 1 + 3 - 2);
    assert_eq!(TaskRepo::count(conn, newcomer.id)?, 1);
    assert_eq!(TaskRepo::get(conn, uid, t[0].id)?.title, "updated");
    assert!(TaskRepo::get(conn, uid, t[1].id)?.completed);
    assert!(TaskRepo::get(conn, uid, t[2].id)
        .unwrap_err()
        .is_not_found());
    assert_eq!(UserRepo::get(conn, newcomer.id)?, newcomer);
    Ok(())
}

#[test]
fn a_failed_callers_transaction_leaves_nothing_of_any_repo_write() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let w = world(&mut conn);
    let before = snapshot(&mut conn);
    let mut ran_to_the_end = false;
    let err = conn
        .transaction(|conn| {
            write_everything(conn, &w)?;
            ran_to_the_end = true;
            // A real database error last: the email is taken.
            UserRepo::create(conn, &NewUser::new(w.user.email.clone(), "Twin"))?;
            Ok::<_, Error>(())
        })
        .unwrap_err();
    assert!(ran_to_the_end);
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(
        snapshot(&mut conn),
        before,
        "nothing of the transaction remains"
    );

    // The same writes, committed, all remain: the snapshot above could tell.
    conn.transaction(|conn| write_everything(conn, &w)).unwrap();
    let (users, tasks) = snapshot(&mut conn);
    assert_eq!(users.len(), before.0.len() + 3);
    assert_eq!(tasks.len(), before.1.len() + 2);
    assert_ne!(tasks, before.1);
}

#[test]
fn a_transaction_failed_by_a_validation_error_or_a_bulk_call_leaves_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let w = world(&mut conn);
    let before = snapshot(&mut conn);
    for failing_step in 0..4 {
        let err = conn
            .transaction(|conn| {
                write_everything(conn, &w)?;
                match failing_step {
                    // One bad item fails the whole batch, and then the transaction.
                    0 => TaskRepo::create_many(
                        conn,
                        w.user.id,
                        &[NewTask::new("ok"), NewTask::new("")],
                    )
                    .map(drop),
                    // COPY into a missing user's tasks fails on the server.
                    1 => TaskRepo::create_many(conn, Uuid::now_v7(), &[NewTask::new("orphan")])
                        .map(drop),
                    2 => TaskRepo::update(
                        conn,
                        w.user.id,
                        w.tasks[0].id,
                        &TaskPatch {
                            title: Some("stale".into()),
                            expected_version: Some(1),
                            ..Default::default()
                        },
                    )
                    .map(drop),
                    _ => TaskRepo::delete(conn, w.user.id, w.tasks[2].id),
                }
            })
            .unwrap_err();
        let expected = match failing_step {
            0 => err.is_validation(),
            1 | 3 => err.is_not_found(),
            _ => matches!(
                err,
                Error::Conflict {
                    kind: ConflictKind::StaleVersion {
                        expected: 1,
                        actual: 2
                    }
                }
            ),
        };
        assert!(expected, "step {failing_step}: {err:?}");
        assert_eq!(snapshot(&mut conn), before, "step {failing_step}");
    }
}

/// An inner `conn.transaction` is a savepoint: its failure undoes only its own writes,
/// and the outer transaction goes on and commits.
#[test]
fn a_failed_nested_transaction_rolls_back_to_its_savepoint_and_the_outer_commits() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let w = world(&mut conn);
    let uid = w.user.id;
    let other = fixtures::user(&mut conn);
    let before_other = rows(&mut conn, "users")
        .into_iter()
        .find(|r| r.contains(&other.id.to_string()))
        .unwrap();

    conn.transaction(|conn| {
        let kept = TaskRepo::create(conn, uid, &NewTask::new("outer before"))?;

        // Inner 1 fails with a validation error after several writes.
        let inner: todo_store::Result<()> = conn.transaction(|conn| {
            TaskRepo::create(conn, uid, &NewTask::new("inner 1"))?;
            TaskRepo::set_completed_many(conn, uid, &[kept.id, w.tasks[0].id], true)?;
            TaskRepo::delete_many(conn, uid, &[w.tasks[1].id])?;
            UserRepo::update(
                conn,
                other.id,
                &UserPatch {
                    name: Some("Changed".into()),
                    ..Default::default()
                },
            )?;
            TaskRepo::create(conn, uid, &NewTask::new("")).map(drop)
        });
        assert!(inner.unwrap_err().is_validation());
        assert!(!TaskRepo::get(conn, uid, kept.id)?.completed);
        assert_eq!(TaskRepo::get(conn, uid, w.tasks[1].id)?.version, 1);

        // Inner 2 fails with a database error (the server aborted the statement): the
        // savepoint makes the outer transaction usable again.
        let inner: todo_store::Result<()> = conn.transaction(|conn| {
            TaskRepo::create_many(
                conn,
                uid,
                &[NewTask::new("inner 2a"), NewTask::new("inner 2b")],
            )?;
            UserRepo::create(conn, &NewUser::new(w.user.email.clone(), "Twin")).map(drop)
        });
        assert!(inner.unwrap_err().is_conflict());

        // A bulk call that fails on the server rolls back its own savepoint, even
        // without an inner transaction of the caller's.
        let orphan = TaskRepo::create_many(conn, Uuid::now_v7(), &[NewTask::new("orphan")]);
        assert!(orphan.unwrap_err().is_not_found());

        // Inner 3 succeeds and stays.
        conn.transaction(|conn| {
            TaskRepo::create(conn, uid, &NewTask::new("inner 3"))?;
            // Doubly nested, failing: only its own write goes.
            let deeper: todo_store::Result<()> = conn.transaction(|conn| {
                TaskRepo::create(conn, uid, &NewTask::new("deeper"))?;
                Err(Error::validation("test", "fail on purpose"))
            });
            assert!(deeper.is_err());
            Ok::<_, Error>(())
        })?;
        TaskRepo::create(conn, uid, &NewTask::new("outer after"))?;
        Ok::<_, Error>(())
    })
    .unwrap();

    let mut expected: Vec<String> = ["outer before", "inner 3", "outer after"]
        .into_iter()
        .map(String::from)
        .chain(w.tasks.iter().map(|t| t.title.clone()))
        .collect();
    expected.sort();
    assert_eq!(titles(&mut conn, uid), expected);
    for task in &w.tasks {
        assert_eq!(
            &TaskRepo::get(&mut conn, uid, task.id).unwrap(),
            task,
            "untouched"
        );
    }
    let after_other = rows(&mut conn, "users")
        .into_iter()
        .find(|r| r.contains(&other.id.to_string()))
        .unwrap();
    assert_eq!(after_other, before_other);
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
