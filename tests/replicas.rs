//! [`ReplicaRouter`] against a real hot standby: a primary cluster and a second one made
//! from it with `pg_basebackup -R -X stream`, streaming replication on unix sockets.

mod support;

use std::fs;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use todo_store::local_postgres::ShutdownMode;
use todo_store::pool::RECENTLY_USED;
use todo_store::replica::{ReplicaRouter, WriteMark, REPLICA_RETRY_AFTER};
use todo_store::testing::TestDb;
use todo_store::{Error, NewTask, NewUser, TaskRepo, UserRepo};

use support::fixtures;
use support::standby::{in_recovery, wait_for, Pair};

/// The router's longest wait for a replica connection before it falls back to the
/// primary (`REPLICA_CHECKOUT_TIMEOUT`, private to `todo_store::replica`).
const REPLICA_CHECKOUT_TIMEOUT: Duration = Duration::from_millis(500);

#[test]
fn reads_are_served_by_the_replica_and_see_writes_once_replicated() {
    let pair = Pair::start();
    let router = ReplicaRouter::connect(&pair.config()).unwrap();
    // The replica's pool opens its first connection on this read: on a loaded machine
    // that may outlast the router's wait, and the read falls back to the primary.
    wait_for("reads from the replica", || {
        in_recovery(&mut router.read().unwrap())
    });
    assert!(!in_recovery(&mut router.write().unwrap()));

    let mut primary = router.write().unwrap();
    let user = fixtures::user(&mut primary);
    let task = fixtures::task(&mut primary, &user, "written on the primary");
    drop(primary);

    let started = Instant::now();
    wait_for("the task on the replica", || {
        let mut conn = router.read().unwrap();
        assert!(in_recovery(&mut conn), "read() must use the replica");
        match TaskRepo::get(&mut conn, user.id, task.id) {
            Ok(found) => {
                assert_eq!(found, task);
                assert_eq!(UserRepo::get(&mut conn, user.id).unwrap(), user);
                true
            }
            Err(e) if e.is_not_found() => false,
            // The migrations that connect ran on the primary may not be replayed yet.
            Err(e) if e.to_string().contains("does not exist") => false,
            Err(e) => panic!("{e}"),
        }
    });
    eprintln!("replicated after {:?}", started.elapsed());
}

#[test]
fn read_after_a_mark_sees_the_write_on_a_caught_up_replica_else_on_the_primary() {
    // The server's default, and production's: a commit returns once its WAL is flushed.
    read_after_sees_the_write(&Pair::start_with(&[("synchronous_commit", "on")]));
}

#[test]
fn read_after_a_mark_sees_the_write_with_asynchronous_commit_too() {
    // A commit returns before its WAL is written (the throwaway cluster's setting, and
    // a common throughput setting): the mark must still cover the commit.
    read_after_sees_the_write(&Pair::start_with(&[("synchronous_commit", "off")]));
}

fn read_after_sees_the_write(pair: &Pair) {
    let (router, user) = pair.router_and_user();

    // Right after each write: the write is always visible, from whichever server.
    let mut served_by_replica = 0;
    for i in 0..20 {
        let mut primary = router.write().unwrap();
        let task = fixtures::task(&mut primary, &user, &format!("write {i}"));
        let mark = router.mark(&mut primary).unwrap();
        drop(primary);
        let mut conn = router.read_after(&mark).unwrap();
        let replica = in_recovery(&mut conn);
        served_by_replica += usize::from(replica);
        match TaskRepo::get(&mut conn, user.id, task.id) {
            Ok(found) => assert_eq!(found, task),
            Err(e) => panic!(
                "write {i}: read_after({mark:?}) gave a connection to the {} that does not \
                 see the write: {e}",
                if replica { "replica" } else { "primary" }
            ),
        }
    }
    eprintln!("{served_by_replica} of 20 reads-after-write served by the replica");

    // A replica that has not replayed the write: plain reads there miss it, reads after
    // the mark go to the primary.
    let mut standby = pair.standby_conn();
    standby
        .batch_execute("SELECT pg_wal_replay_pause()")
        .unwrap();
    wait_for("replay to pause", || {
        diesel::select(sql::<Text>("pg_get_wal_replay_pause_state()"))
            .get_result::<String>(&mut standby)
            .unwrap()
            == "paused"
    });
    let mut primary = router.write().unwrap();
    let task = fixtures::task(&mut primary, &user, "not replayed yet");
    let mark: WriteMark = router.mark(&mut primary).unwrap();
    drop(primary);

    let mut stale = router.read().unwrap();
    assert!(in_recovery(&mut stale));
    assert!(TaskRepo::get(&mut stale, user.id, task.id)
        .unwrap_err()
        .is_not_found());
    drop(stale);
    let mut fresh = router.read_after(&mark).unwrap();
    assert!(
        !in_recovery(&mut fresh),
        "read_after must not use a replica that is behind the mark"
    );
    assert_eq!(TaskRepo::get(&mut fresh, user.id, task.id).unwrap(), task);
    drop(fresh);

    // Once the replica has caught up, read_after uses it again.
    standby
        .batch_execute("SELECT pg_wal_replay_resume()")
        .unwrap();
    wait_for("read_after to use the caught-up replica", || {
        let mut conn = router.read_after(&mark).unwrap();
        let replica = in_recovery(&mut conn);
        assert_eq!(TaskRepo::get(&mut conn, user.id, task.id).unwrap(), task);
        replica
    });
}

#[test]
fn writes_on_a_replica_connection_fail_with_read_only() {
    let pair = Pair::start();
    let (router, user) = pair.router_and_user();
    let mut replica = router.read().unwrap();
    assert!(in_recovery(&mut replica));

    let err = TaskRepo::create(&mut replica, user.id, &NewTask::new("on the replica")).unwrap_err();
    match &err {
        Error::ReadOnly { message } => assert!(message.contains("read-only"), "{message}"),
        other => panic!("expected Error::ReadOnly, got {other:?}"),
    }
    assert!(
        err.to_string().contains("send writes to the primary"),
        "{err}"
    );
    let err =
        UserRepo::create(&mut replica, &NewUser::new("ro@example.com", "Read Only")).unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    let err = TaskRepo::create_many(&mut replica, user.id, &[NewTask::new("copied")]).unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    drop(replica);

    // Nothing was written; the same write on the primary works.
    let mut primary = router.write().unwrap();
    assert_eq!(TaskRepo::count(&mut primary, user.id).unwrap(), 0);
    TaskRepo::create(&mut primary, user.id, &NewTask::new("on the primary")).unwrap();
}

#[test]
fn a_replica_stopped_while_idle_falls_back_to_the_primary_and_is_used_again_after_the_retry_delay()
{
    let pair = Pair::start();
    let (router, user) = pair.router_and_user();
    assert!(in_recovery(&mut router.read().unwrap()));
    // The replica's pooled connections are idle (for longer than the pool's
    // no-ping window) when it goes down.
    std::thread::sleep(RECENTLY_USED);
    pair.standby().stop(ShutdownMode::Fast).unwrap();
    let stopped_at = Instant::now();

    let started = Instant::now();
    let mut conn = router.read().unwrap();
    let waited = started.elapsed();
    assert_on_primary(&mut conn, "the first read after the stop");
    assert_eq!(UserRepo::get(&mut conn, user.id).unwrap(), user);
    drop(conn);
    assert!(
        waited < REPLICA_CHECKOUT_TIMEOUT + Duration::from_secs(1),
        "fallback took {waited:?}"
    );
    // The replica is now skipped: no more waiting for it.
    for _ in 0..5 {
        let started = Instant::now();
        assert_on_primary(&mut router.read().unwrap(), "a read while it is down");
        let took = started.elapsed();
        assert!(took < REPLICA_CHECKOUT_TIMEOUT, "a read waited {took:?}");
    }

    pair.standby().start().unwrap();
    wait_for("the restarted standby to stream", || {
        diesel::select(sql::<Bool>(
            "EXISTS (SELECT 1 FROM pg_stat_replication WHERE state = 'streaming')",
        ))
        .get_result::<bool>(&mut pair.primary_conn())
        .unwrap()
    });
    // Up again, but still within REPLICA_RETRY_AFTER of the failure: still the primary.
    if stopped_at.elapsed() + Duration::from_millis(500) < REPLICA_RETRY_AFTER {
        assert_on_primary(&mut router.read().unwrap(), "a read within the retry delay");
    }
    // After it: back to the replica.
    std::thread::sleep(REPLICA_RETRY_AFTER.saturating_sub(stopped_at.elapsed()));
    wait_for("reads to go back to the replica", || {
        in_recovery(&mut router.read().unwrap())
    });
    // (The replica pool's own reconnect backoff may add a few seconds to the delay.)
    assert!(
        stopped_at.elapsed() < REPLICA_RETRY_AFTER + Duration::from_secs(6),
        "{:?}",
        stopped_at.elapsed()
    );
    let mut conn = router.read().unwrap();
    assert!(in_recovery(&mut conn));
    assert_eq!(UserRepo::get(&mut conn, user.id).unwrap(), user);
}

#[test]
fn a_read_right_after_the_replica_stops_falls_back_to_the_primary() {
    let pair = Pair::start();
    let (router, user) = pair.router_and_user();
    // The replica's connections were just used (within the pool's no-ping window) when
    // it goes down: the situation of a busy application whose replica fails.
    for _ in 0..3 {
        assert!(in_recovery(&mut router.read().unwrap()));
    }
    pair.standby().stop(ShutdownMode::Fast).unwrap();

    let started = Instant::now();
    let mut conn = router.read().unwrap();
    let waited = started.elapsed();
    assert_on_primary(&mut conn, "the first read after the stop");
    assert_eq!(UserRepo::get(&mut conn, user.id).unwrap(), user);
    assert!(
        waited < REPLICA_CHECKOUT_TIMEOUT + Duration::from_secs(1),
        "fallback took {waited:?}"
    );
}

/// Asserts that `conn` is a live connection to the primary.
fn assert_on_primary(conn: &mut PgConnection, what: &str) {
    match diesel::select(sql::<Bool>("pg_is_in_recovery()")).get_result::<bool>(conn) {
        Ok(false) => {}
        Ok(true) => panic!("{what}: read() gave a replica connection"),
        Err(e) => panic!("{what}: read() gave a dead connection: {e:?}"),
    }
}

#[test]
fn a_replica_that_is_down_at_connect_does_not_fail_connect() {
    let db = TestDb::new();
    // Nothing listens on either: a closed loopback port, and a socket directory
    // without a server.
    let closed_port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let empty_dir = std::env::temp_dir().join(format!(
        "todo-store-no-server-{}",
        uuid::Uuid::new_v4().simple()
    ));
    fs::create_dir(&empty_dir).unwrap();
    let socket_url = format!(
        "postgres://postgres@localhost/{}?host={}",
        db.name(),
        empty_dir.display()
    );
    let config = db
        .config()
        .connection_timeout(Duration::from_secs(5))
        .replica_url(format!("postgres://postgres@127.0.0.1:{closed_port}/todo"))
        .replica_url(socket_url);

    let started = Instant::now();
    let router = ReplicaRouter::connect(&config);
    let connect_took = started.elapsed();
    let router = router.unwrap();
    assert!(
        connect_took < Duration::from_secs(2),
        "connect waited for the replicas: {connect_took:?}"
    );

    // Reads fall back to the primary: both replicas tried once, within the timeout each.
    let started = Instant::now();
    let mut conn = router.read().unwrap();
    assert!(!in_recovery(&mut conn));
    let user = fixtures::user(&mut router.write().unwrap());
    assert_eq!(UserRepo::get(&mut conn, user.id).unwrap(), user);
    assert!(
        started.elapsed() < REPLICA_CHECKOUT_TIMEOUT * 2 + Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let _ = fs::remove_dir(&empty_dir);
}
