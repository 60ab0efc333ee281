//! `retry_transaction` and a COMMIT whose outcome is unknown, for real: the client's
//! connection drops (a proxy resets it) while the server is still processing the
//! COMMIT (a deferred trigger holds it for a second), and the server then commits. An
//! attempt whose writes are all exactly-once is run again and recognises its row; any
//! other is not, and the caller hears that the outcome is unknown.
//!
//! A binary of its own: the proxy needs a cluster that listens on TCP.
#![cfg(feature = "local-postgres")]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use support::proxy::FaultProxy;
use todo_store::local_postgres::LocalPostgres;
use todo_store::retry::{retry_transaction, RetryPolicy};
use todo_store::{
    DbConfig, HabitRepo, NewHabit, NewSession, NewTask, NewUser, PgPool, PoolOptions, Schedule,
    SessionRepo, TaskPatch, TaskRepo, User, UserRepo,
};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A migrated cluster listening on 127.0.0.1, a user, and the trigger that stalls the
/// COMMITs of marked sessions.
struct Setup {
    pg: LocalPostgres,
    user: User,
}

impl Setup {
    fn new() -> Setup {
        let pg = LocalPostgres::builder()
            .listen_tcp(true)
            .start()
            .expect("a local PostgreSQL cluster");
        let pool = todo_store::connect(&DbConfig::new(pg.url("postgres")).pool_size(1)).unwrap();
        let mut conn = pool.get().unwrap();
        let user = UserRepo::create(&mut conn, &NewUser::new("ann@example.com", "Ann")).unwrap();
        stall_commits_of_marked_sessions(&mut conn, "tasks");
        Setup { pg, user }
    }

    fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.pg.url("postgres")).unwrap()
    }

    fn tasks(&self) -> i64 {
        diesel::sql_query("SELECT count(*) AS n FROM tasks")
            .get_result::<Count>(&mut self.conn())
            .unwrap()
            .n
    }

    fn server_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.pg.port()))
    }
}

/// A pool of one connection through `proxy`, whose connection is marked to stall its
/// COMMITs (see [`stall_commits_of_marked_sessions`]); the connections that replace it
/// are not.
fn stalling_pool(proxy: &FaultProxy) -> PgPool {
    let pool = PoolOptions::new(
        &DbConfig::new(proxy.url("postgres"))
            .pool_size(1)
            .connection_timeout(Duration::from_secs(10)),
    )
    .run_migrations(false)
    .connect()
    .unwrap();
    pool.get()
        .unwrap()
        .batch_execute("SET test.stall_commit = 'on'")
        .unwrap();
    pool
}

/// A COMMIT of a session with `test.stall_commit` on that wrote `table` (an insert or
/// an update) waits a second
/// (a deferred trigger) and then commits.
fn stall_commits_of_marked_sessions(conn: &mut PgConnection, table: &str) {
    conn.batch_execute(&format!(
        "CREATE OR REPLACE FUNCTION stall_commit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF current_setting('test.stall_commit', true) = 'on' THEN
                 PERFORM pg_sleep(1);
             END IF;
             RETURN NULL;
         END $$;
         CREATE CONSTRAINT TRIGGER stall_commit AFTER INSERT OR UPDATE ON {table}
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION stall_commit();"
    ))
    .unwrap();
}

/// Resets the proxy's connections once a COMMIT stalls: the client loses its
/// connection while the server goes on to commit. The thread's result says whether it
/// did (join it only after the call: the reset is what ends the call).
fn drop_the_connection_during_the_commit(
    setup: &Setup,
    proxy: Arc<FaultProxy>,
) -> std::thread::JoinHandle<bool> {
    let url = setup.pg.url("postgres");
    std::thread::spawn(move || {
        let mut watcher = PgConnection::establish(&url).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let stalled = diesel::sql_query(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event = 'PgSleep' \
                 AND datname = current_database()",
            )
            .get_result::<Count>(&mut watcher)
            .unwrap()
            .n;
            if stalled > 0 {
                proxy.reset_all();
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    })
}

fn policy() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(5)
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(50))
}

/// Waits for the server to finish the COMMIT whose client went away: for no other
/// client backend to be running a statement. (Not for no `PgSleep`: a COMMIT that
/// fires the trigger twice is between its two sleeps for a moment.)
fn until_no_commit_stalls(conn: &mut PgConnection) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'active' \
         AND backend_type = 'client backend' AND pid <> pg_backend_pid() \
         AND datname = current_database()",
    )
    .get_result::<Count>(conn)
    .unwrap()
    .n > 0
    {
        assert!(Instant::now() < deadline, "the stalled COMMIT never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Setup {
    /// Runs `f` through `retry_transaction` on a pool whose first `COMMIT` is lost on
    /// its way (the proxy resets the connection while the server, stalled, goes on to
    /// commit); returns its result and how many attempts ran, once the server has
    /// finished that `COMMIT`.
    fn retry_through_a_lost_commit<T>(
        &self,
        mut f: impl FnMut(&mut PgConnection) -> todo_store::Result<T>,
    ) -> (todo_store::Result<T>, u32) {
        let proxy = Arc::new(FaultProxy::start(self.server_addr()));
        let pool = stalling_pool(&proxy);
        let watcher = drop_the_connection_during_the_commit(self, proxy.clone());
        let mut attempts = 0;
        let result = retry_transaction(&pool, &policy(), |conn| {
            attempts += 1;
            f(conn)
        });
        // Joined, not read as a flag: the call returns as soon as the reset reaches
        // it, which may be before the watcher could note that it reset.
        assert!(
            watcher.join().expect("the watcher ran"),
            "the COMMIT was not interrupted: after {attempts} attempt(s) the call {}",
            match &result {
                Ok(_) => "succeeded".to_string(),
                Err(e) => format!("failed: {e:?}"),
            }
        );
        until_no_commit_stalls(&mut self.conn());
        (result, attempts)
    }
}

#[test]
fn a_create_whose_commit_outcome_is_unknown_is_retried_and_returns_its_task_once() {
    let setup = Setup::new();
    let user = &setup.user;
    let new = NewTask::new("exactly once"); // built once, before the call
    let (task, attempts) = setup.retry_through_a_lost_commit(|conn| {
        // A read of the crate's own does not make the attempt blind.
        TaskRepo::count(conn, user.id)?;
        TaskRepo::create(conn, user.id, &new)
    });
    let task = task.expect("retried after the unknown COMMIT");
    assert_eq!(attempts, 2);
    assert_eq!(task.id, new.id);
    assert_eq!(task.version, 1);
    assert_eq!(setup.tasks(), 1);
}

/// An attempt that creates a task exactly-once and runs `blind` (a statement the ledger
/// cannot vouch for) after it: its COMMIT is lost on its way, and the caller hears the
/// unknown outcome, the attempt not run again.
fn a_blind_attempt_is_not_retried(blind: impl Fn(&mut PgConnection) -> todo_store::Result<usize>) {
    let setup = Setup::new();
    let user = &setup.user;
    let new = NewTask::new("exactly once");
    let (result, attempts) = setup.retry_through_a_lost_commit(|conn| {
        let task = TaskRepo::create(conn, user.id, &new)?;
        blind(conn)?;
        Ok(task)
    });
    let err = result.unwrap_err();
    assert_eq!(attempts, 1, "the outcome is unknown: not run again");
    assert!(err.is_connection_lost() && !err.is_transient(), "{err:?}");
    assert_eq!(setup.tasks(), 1, "it had committed");
}

#[test]
fn a_blind_write_whose_commit_outcome_is_unknown_is_not_retried() {
    // A statement of the caller's own: it could be any write.
    a_blind_attempt_is_not_retried(|conn| Ok(diesel::sql_query("SELECT 1").execute(conn)?));
}

#[test]
fn a_write_sent_from_another_thread_makes_the_attempt_blind() {
    // The closure hands its connection to a thread of its own, whose statements the
    // attempt's thread never sees: the connection counts them.
    a_blind_attempt_is_not_retried(|conn| {
        std::thread::scope(|s| {
            s.spawn(|| Ok(diesel::sql_query("UPDATE tasks SET title = title").execute(conn)?))
                .join()
                .expect("the thread ran")
        })
    });
}

#[test]
fn a_nested_retry_on_another_thread_makes_the_attempt_blind() {
    // The other thread's own retry_transaction (a savepoint on the same connection)
    // keeps a ledger of its own, on its thread, which the outer attempt never reads:
    // the connection still counts what that thread sends.
    a_blind_attempt_is_not_retried(|conn| {
        std::thread::scope(|s| {
            s.spawn(|| {
                retry_transaction(&mut *conn, &policy(), |conn| {
                    Ok(diesel::sql_query("UPDATE tasks SET title = title").execute(conn)?)
                })
            })
            .join()
            .expect("the thread ran")
        })
    });
}

#[test]
fn a_retry_that_builds_its_input_again_does_not_commit_a_second_row() {
    let setup = Setup::new();
    let user = &setup.user;
    let (result, attempts) = setup.retry_through_a_lost_commit(|conn| {
        // A new id on every attempt: the retry cannot recognise the first one's row.
        TaskRepo::create(conn, user.id, &NewTask::new("built in the closure"))
    });
    let err = result.unwrap_err();
    assert_eq!(attempts, 2, "run again, then rolled back");
    assert!(err.is_connection_lost() && !err.is_transient(), "{err:?}");
    assert_eq!(setup.tasks(), 1, "the first attempt's row only");
}

#[test]
fn a_versioned_update_and_a_set_completed_whose_commit_outcome_is_unknown_apply_once() {
    let setup = Setup::new();
    let user = &setup.user;
    // Created on a connection that does not stall.
    let (a, b) = {
        let mut conn = setup.conn();
        let a = TaskRepo::create(&mut conn, user.id, &NewTask::new("draft")).unwrap();
        let b = TaskRepo::create(&mut conn, user.id, &NewTask::new("laundry")).unwrap();
        (a, b)
    };
    let patch = TaskPatch {
        title: Some("final".into()),
        expected_version: Some(a.version),
        ..TaskPatch::default()
    }; // built once, before the call
    let (result, attempts) = setup.retry_through_a_lost_commit(|conn| {
        let updated = TaskRepo::update(conn, user.id, a.id, &patch)?;
        let done = TaskRepo::set_completed(conn, user.id, b.id, true)?;
        Ok((updated, done))
    });
    let (updated, done) = result.expect("retried after the unknown COMMIT");
    assert_eq!(attempts, 2);
    assert_eq!((updated.version, updated.title.as_str()), (2, "final"));
    assert_eq!((done.version, done.completed), (2, true));
    let mut conn = setup.conn();
    assert_eq!(TaskRepo::get(&mut conn, user.id, a.id).unwrap(), updated);
    assert_eq!(TaskRepo::get(&mut conn, user.id, b.id).unwrap(), done);
    assert_eq!(setup.tasks(), 2);
}

#[test]
fn a_retry_that_builds_its_patch_again_is_rolled_back() {
    let setup = Setup::new();
    let user = &setup.user;
    let task = TaskRepo::create(&mut setup.conn(), user.id, &NewTask::new("draft")).unwrap();
    let (result, attempts) = setup.retry_through_a_lost_commit(|conn| {
        // A new write id on every attempt: the retry cannot recognise the first write.
        let patch = TaskPatch {
            title: Some("final".into()),
            expected_version: Some(1),
            ..TaskPatch::default()
        };
        TaskRepo::update(conn, user.id, task.id, &patch)
    });
    let err = result.unwrap_err();
    assert_eq!(
        attempts, 2,
        "run again: stale, the caller hears the unknown outcome"
    );
    assert!(err.is_connection_lost() && !err.is_transient(), "{err:?}");
    let stored = TaskRepo::get(&mut setup.conn(), user.id, task.id).unwrap();
    assert_eq!(
        (stored.version, stored.title.as_str()),
        (2, "final"),
        "written once"
    );
}

#[test]
fn a_session_create_and_a_check_in_whose_commit_outcome_is_unknown_apply_once() {
    let setup = Setup::new();
    let user = &setup.user;
    let habit = {
        let mut conn = setup.conn();
        stall_commits_of_marked_sessions(&mut conn, "sessions");
        stall_commits_of_marked_sessions(&mut conn, "habit_check_ins");
        HabitRepo::create(&mut conn, user.id, &NewHabit::new("Run", Schedule::Daily)).unwrap()
    };
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
    // Built once, before the call: its id and its token.
    let new = NewSession::new(chrono::Utc::now() + chrono::Duration::days(30));
    let mut checked_in = Vec::new();
    let (result, attempts) = setup.retry_through_a_lost_commit(|conn| {
        checked_in.push(HabitRepo::check_in(conn, user.id, habit.id, day)?);
        SessionRepo::create(conn, user.id, &new)
    });
    let (session, token) = result.expect("retried after the unknown COMMIT");
    assert_eq!(attempts, 2);
    assert_eq!(
        checked_in,
        [true, false],
        "the repeat found the day checked in"
    );
    assert_eq!(session.id, new.id);
    let mut conn = setup.conn();
    let (found, _) = SessionRepo::authenticate(&mut conn, &token)
        .unwrap()
        .expect("the token the caller got is the stored session's");
    assert_eq!(found, session);
    assert_eq!(SessionRepo::list(&mut conn, user.id).unwrap().len(), 1);
    assert_eq!(
        HabitRepo::check_ins(&mut conn, user.id, habit.id, day, day).unwrap(),
        [day]
    );
}

#[test]
fn a_replay_that_sets_the_other_state_is_rolled_back() {
    let setup = Setup::new();
    let user = &setup.user;
    let task = TaskRepo::create(&mut setup.conn(), user.id, &NewTask::new("toggled")).unwrap();
    let mut attempt = 0;
    let (result, attempts) = setup.retry_through_a_lost_commit(|conn| {
        attempt += 1;
        if attempt > 1 {
            // Once the first attempt's COMMIT is done (before, the repeat would wait
            // for its row lock and find the state it sets already there).
            until_no_commit_stalls(&mut setup.conn());
        }
        // A toggle: the repeat reads the state the first attempt committed and sets
        // the other one, a write the first attempt never made.
        let now = TaskRepo::get(conn, user.id, task.id)?.completed;
        TaskRepo::set_completed(conn, user.id, task.id, !now)
    });
    let err = result.unwrap_err();
    assert_eq!(attempts, 2, "run again, then rolled back");
    assert!(err.is_connection_lost() && !err.is_transient(), "{err:?}");
    let stored = TaskRepo::get(&mut setup.conn(), user.id, task.id).unwrap();
    assert_eq!(
        (stored.completed, stored.version),
        (true, 2),
        "toggled once"
    );
}
