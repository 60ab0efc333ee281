//! [`ReplicaRouter`] against a real hot standby: a primary cluster and a second one made
//! from it with `pg_basebackup -R -X stream`, streaming replication on unix sockets.

mod common;

use std::fs;
use std::os::unix::fs::{chown, MetadataExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use todo_store::local_postgres::{LocalPostgres, ShutdownMode};
use todo_store::pool::RECENTLY_USED;
use todo_store::replica::{ReplicaRouter, WriteMark, REPLICA_RETRY_AFTER};
use todo_store::testing::TestDb;
use todo_store::{DbConfig, Error, NewTask, NewUser, TaskRepo, User, UserRepo};

/// The router's longest wait for a replica connection before it falls back to the
/// primary (`REPLICA_CHECKOUT_TIMEOUT`, private to `todo_store::replica`).
const REPLICA_CHECKOUT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long replication may take in these tests before they give up.
const REPLICATION_DEADLINE: Duration = Duration::from_secs(15);
/// The application's database on the primary (and so on the standby).
const DB: &str = "todo";

/// A primary and its hot standby. Dropping it stops the standby and removes its
/// directory, then the primary (a temporary cluster) goes too.
struct Pair {
    standby: Option<LocalPostgres>,
    standby_root: PathBuf,
    primary: LocalPostgres,
}

impl Pair {
    /// A primary with the `todo` database, and a standby streaming from it.
    fn start() -> Pair {
        Self::start_with(&[])
    }

    /// As [`Pair::start`], with extra settings for the primary.
    fn start_with(primary_settings: &[(&str, &str)]) -> Pair {
        let mut builder = LocalPostgres::builder();
        for (name, value) in primary_settings {
            builder = builder.setting(name, value);
        }
        let primary = builder.start().expect("starting the primary");
        let mut admin = PgConnection::establish(&primary.url("postgres")).unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {DB}"))
            .unwrap();

        // The standby lives inside the primary's temporary directory, so that even a
        // killed test process leaves nothing behind (the primary's watchdog removes the
        // directory, and a postmaster whose lock file is gone shuts itself down); it is
        // owned by the clusters' OS user, who runs pg_basebackup and the server.
        let base = primary.data_dir().parent().unwrap();
        let standby_root = base.join("standby");
        fs::create_dir(&standby_root).unwrap();
        let owner = fs::metadata(primary.data_dir()).unwrap();
        chown(&standby_root, Some(owner.uid()), Some(owner.gid())).unwrap();
        let mut pair = Pair {
            standby: None,
            standby_root,
            primary,
        };

        let out = pair
            .primary
            .command("pg_basebackup")
            .arg("-D")
            .arg(pair.standby_root.join("data"))
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
            .output()
            .expect("running pg_basebackup");
        assert!(
            out.status.success(),
            "pg_basebackup failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(pair.standby_root.join("data/standby.signal").is_file());

        // A persistent cluster keeps the data it finds: the base backup, as a standby.
        // Its settings file is rewritten at start, and a standby refuses to run with
        // fewer connections than its primary (which a temporary cluster raises): give
        // it the primary's.
        let max_connections: String =
            diesel::select(sql::<Text>("current_setting('max_connections')"))
                .get_result(&mut pair.primary_conn())
                .unwrap();
        let standby = LocalPostgres::builder()
            .persistent(&pair.standby_root)
            .durable(false)
            .setting("max_connections", &max_connections)
            .start()
            .expect("starting the standby");
        assert_ne!(
            (standby.socket_dir(), standby.port()),
            (pair.primary.socket_dir(), pair.primary.port()),
            "the standby must listen somewhere else than the primary"
        );
        pair.standby = Some(standby);

        assert!(!in_recovery(&mut pair.primary_conn()));
        assert!(in_recovery(&mut pair.standby_conn()));
        // Wait until the standby streams from the primary.
        wait_for("the standby to stream from the primary", || {
            diesel::select(sql::<Bool>(
                "EXISTS (SELECT 1 FROM pg_stat_replication WHERE state = 'streaming')",
            ))
            .get_result::<bool>(&mut pair.primary_conn())
            .unwrap()
        });
        pair
    }

    fn standby(&self) -> &LocalPostgres {
        self.standby.as_ref().unwrap()
    }

    fn primary_conn(&self) -> PgConnection {
        PgConnection::establish(&self.primary.url(DB)).unwrap()
    }

    fn standby_conn(&self) -> PgConnection {
        PgConnection::establish(&self.standby().url(DB)).unwrap()
    }

    /// The primary with the standby as its replica; migrations run on the primary.
    fn config(&self) -> DbConfig {
        DbConfig::new(self.primary.url(DB))
            .pool_size(3)
            .replica_url(self.standby().url(DB))
    }

    /// A router for [`Pair::config`], with a user created on the primary and replicated.
    fn router_and_user(&self) -> (ReplicaRouter, User) {
        let router = ReplicaRouter::connect(&self.config()).unwrap();
        let user = common::user(&mut router.write().unwrap());
        wait_for("the user on the replica", || {
            let mut conn = router.read().unwrap();
            in_recovery(&mut conn) && UserRepo::get(&mut conn, user.id).is_ok()
        });
        (router, user)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Stop the standby (a persistent cluster stops on drop), then remove it.
        drop(self.standby.take());
        let _ = fs::remove_dir_all(&self.standby_root);
        if !std::thread::panicking() {
            assert!(
                !self.standby_root.exists(),
                "{}",
                self.standby_root.display()
            );
        }
    }
}

/// Whether the connection's server is a standby.
fn in_recovery(conn: &mut PgConnection) -> bool {
    diesel::select(sql::<Bool>("pg_is_in_recovery()"))
        .get_result(conn)
        .unwrap()
}

/// Polls `done` until it is true, for at most [`REPLICATION_DEADLINE`].
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + REPLICATION_DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn reads_are_served_by_the_replica_and_see_writes_once_replicated() {
    let pair = Pair::start();
    let router = ReplicaRouter::connect(&pair.config()).unwrap();
    assert!(in_recovery(&mut router.read().unwrap()));
    assert!(!in_recovery(&mut router.write().unwrap()));

    let mut primary = router.write().unwrap();
    let user = common::user(&mut primary);
    let task = common::task(&mut primary, &user, "written on the primary");
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
        let task = common::task(&mut primary, &user, &format!("write {i}"));
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
    let task = common::task(&mut primary, &user, "not replayed yet");
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
    let started = Instant::now();
    for _ in 0..5 {
        assert_on_primary(&mut router.read().unwrap(), "a read while it is down");
    }
    assert!(
        started.elapsed() < REPLICA_CHECKOUT_TIMEOUT,
        "{:?}",
        started.elapsed()
    );

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
    assert!(
        stopped_at.elapsed() < REPLICA_RETRY_AFTER + Duration::from_secs(3),
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
    let user = common::user(&mut router.write().unwrap());
    assert_eq!(UserRepo::get(&mut conn, user.id).unwrap(), user);
    assert!(
        started.elapsed() < REPLICA_CHECKOUT_TIMEOUT * 2 + Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let _ = fs::remove_dir(&empty_dir);
}
