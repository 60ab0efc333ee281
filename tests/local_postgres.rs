//! Integration tests of `todo_store::local_postgres`: they start real clusters from the
//! system's PostgreSQL binaries.
#![cfg(feature = "local-postgres")]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use todo_store::local_postgres::{find_bin_dir, LocalPostgres, LocalPostgresError, ShutdownMode};

use support::wait::wait_until;

/// Set in the child process of `watchdog_removes_the_cluster_of_a_killed_process`.
const WATCHDOG_CHILD_ENV: &str = "TODO_STORE_LOCAL_POSTGRES_WATCHDOG_CHILD";
const WATCHDOG_MARKER: &str = "WATCHDOG-CHILD-STARTED";

fn connect(url: &str) -> PgConnection {
    PgConnection::establish(url).unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

fn select_one(url: &str) -> i32 {
    diesel::select(sql::<Integer>("1"))
        .get_result(&mut connect(url))
        .unwrap_or_else(|e| panic!("SELECT 1 on {url}: {e}"))
}

fn postmaster_pid(data_dir: &Path) -> i32 {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).expect("postmaster.pid");
    text.lines().next().unwrap().trim().parse().unwrap()
}

/// Whether a process lives (zombies count as dead).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .next();
        !matches!(state, Some("Z" | "X") | None)
    })
}

/// A fresh directory for a persistent cluster, removed (with a fallback data directory
/// elsewhere) by `cleanup_persistent`.
fn persistent_root(name: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("lpg-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    root
}

#[test]
fn temporary_cluster_answers_and_is_removed_on_drop() {
    // A directory left by a dead owner is swept by the next temporary start.
    let stale = std::env::temp_dir().join(format!("todo-store-pg-stale{}", std::process::id()));
    std::fs::create_dir_all(stale.join("data")).unwrap();
    std::fs::write(stale.join("owner.pid"), "999999999\n").unwrap();

    let pg = LocalPostgres::start_temporary().expect("start a temporary cluster");
    assert!(
        !stale.exists(),
        "the stale directory {} was not swept",
        stale.display()
    );
    assert!(pg.is_temporary());
    assert!(!pg.was_already_running());
    assert!(pg.tcp_url("postgres").is_none());
    assert_eq!(select_one(&pg.url("postgres")), 1);

    let base = pg.data_dir().parent().unwrap().to_path_buf();
    assert!(pg.data_dir().join("PG_VERSION").is_file());
    assert!(pg.log_file().starts_with(&base));
    assert!(pg
        .socket_dir()
        .join(format!(".s.PGSQL.{}", pg.port()))
        .exists());
    let url = pg.url("postgres");
    assert!(
        url.starts_with("postgres://postgres@localhost/postgres?host=%2F"),
        "{url}"
    );

    // psql accepts the URL, psql_command works as printed, command() targets the cluster.
    let psql = pg.bin_dir().join("psql");
    let out = Command::new(&psql)
        .args([url.as_str(), "-tAc", "SELECT 41 + 1"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42", "{out:?}");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{} -tAc 'SELECT 7'", pg.psql_command("postgres")))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "7", "{out:?}");
    let out = pg
        .command("psql")
        .args(["-tAc", "SHOW max_connections", "postgres"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "200",
        "{out:?}"
    );
    let fsync: String = diesel::select(sql::<Text>("current_setting('fsync')"))
        .get_result(&mut connect(&url))
        .unwrap();
    assert_eq!(fsync, "off");

    let pid = postmaster_pid(pg.data_dir());
    assert!(alive(pid));
    drop(pg);
    assert!(!base.exists(), "{} still exists after drop", base.display());
    assert!(!alive(pid), "the postmaster {pid} survived the drop");
}

#[test]
fn restart_fast_and_immediate() {
    let pg = LocalPostgres::start_temporary().unwrap();
    let url = pg.url("postgres");
    let mut conn = connect(&url);
    conn.batch_execute("CREATE TABLE survives (n int); INSERT INTO survives VALUES (1)")
        .unwrap();
    drop(conn);
    for mode in [ShutdownMode::Fast, ShutdownMode::Immediate] {
        let before = postmaster_pid(pg.data_dir());
        pg.restart(mode)
            .unwrap_or_else(|e| panic!("restart {mode:?}: {e}"));
        assert_ne!(
            postmaster_pid(pg.data_dir()),
            before,
            "{mode:?}: same postmaster"
        );
        let count: i64 = diesel::select(sql::<BigInt>("(SELECT count(*) FROM survives)"))
            .get_result(&mut connect(&url))
            .unwrap();
        assert_eq!(count, 1, "after restart {mode:?}");
    }
}

#[test]
fn stop_then_start() {
    let pg = LocalPostgres::start_temporary().unwrap();
    let url = pg.url("postgres");
    assert_eq!(select_one(&url), 1);
    pg.stop(ShutdownMode::Smart).unwrap();
    assert!(
        PgConnection::establish(&url).is_err(),
        "connected to a stopped server"
    );
    let err = pg.stop(ShutdownMode::Fast).unwrap_err();
    assert!(matches!(err, LocalPostgresError::Command { .. }), "{err:?}");
    assert!(err.to_string().contains("pg_ctl"), "{err}");
    pg.start().unwrap();
    assert_eq!(select_one(&url), 1);
}

#[test]
fn persistent_cluster_keeps_rows_and_is_reused_when_running() {
    let root = persistent_root("persist");
    let start = || {
        LocalPostgres::builder()
            .persistent(&root)
            .durable(false)
            .start()
            .expect("start the persistent cluster")
    };

    let first = start();
    assert!(!first.is_temporary());
    assert!(!first.was_already_running());
    assert_eq!(first.port(), 5432);
    assert!(first
        .data_dir()
        .starts_with(std::fs::canonicalize(&root).unwrap()));
    let url = first.url("postgres");
    connect(&url)
        .batch_execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (1), (2), (3)")
        .unwrap();
    drop(first);
    assert!(
        PgConnection::establish(&url).is_err(),
        "dropping did not stop the cluster"
    );

    let again = start();
    assert!(!again.was_already_running());
    assert_eq!(again.url("postgres"), url);
    let count = || -> i64 {
        diesel::select(sql::<BigInt>("(SELECT count(*) FROM kept)"))
            .get_result(&mut connect(&url))
            .unwrap()
    };
    assert_eq!(count(), 3);

    let second = LocalPostgres::start_persistent(&root).unwrap();
    assert!(second.was_already_running());
    assert_eq!(second.url("postgres"), url);
    drop(second);
    assert_eq!(
        count(),
        3,
        "dropping the reusing handle stopped the cluster"
    );

    drop(again);
    assert!(PgConnection::establish(&url).is_err());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn persistent_cluster_kept_running_is_reused() {
    let root = persistent_root("keep");
    let pg = LocalPostgres::builder()
        .persistent(&root)
        .durable(false)
        .listen_tcp(true)
        .start()
        .unwrap();
    let tcp = pg.tcp_url("postgres").expect("a TCP URL");
    let port = pg.port();
    pg.keep_running();
    assert_eq!(select_one(&tcp), 1);

    let reused = LocalPostgres::builder()
        .persistent(&root)
        .listen_tcp(true)
        .start()
        .unwrap();
    assert!(reused.was_already_running());
    assert_eq!(reused.port(), port);
    assert_eq!(reused.tcp_url("postgres").as_deref(), Some(tcp.as_str()));
    reused.stop(ShutdownMode::Fast).unwrap();
    drop(reused);

    // Started again by us: the port is kept, and drop stops it.
    let restarted = LocalPostgres::builder()
        .persistent(&root)
        .durable(false)
        .listen_tcp(true)
        .start()
        .unwrap();
    assert!(!restarted.was_already_running());
    assert_eq!(restarted.port(), port);
    assert_eq!(select_one(&tcp), 1);
    drop(restarted);
    assert!(PgConnection::establish(&tcp).is_err());

    // A port taken while the cluster was down is replaced by a free one.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let moved = LocalPostgres::builder()
        .persistent(&root)
        .durable(false)
        .listen_tcp(true)
        .start()
        .unwrap();
    assert_ne!(moved.port(), port);
    assert_eq!(select_one(&moved.tcp_url("postgres").unwrap()), 1);
    drop(moved);
    drop(squatter);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn persistent_root_unreachable_by_the_server_user_uses_a_fallback() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return; // only root hands the cluster to another OS user
    }
    let private = persistent_root("private");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let root = private.join("pg");
    let pg = LocalPostgres::builder()
        .persistent(&root)
        .durable(false)
        .start()
        .unwrap();
    assert!(
        !pg.data_dir().starts_with(&private),
        "{}",
        pg.data_dir().display()
    );
    assert!(pg.data_dir().join("PG_VERSION").is_file());
    assert!(root.join("DATA_LOCATION.txt").is_file());
    assert_eq!(select_one(&pg.url("postgres")), 1);
    let fallback = pg.data_dir().parent().unwrap().to_path_buf();
    drop(pg);
    std::fs::remove_dir_all(&fallback).unwrap();
    std::fs::remove_dir_all(&private).unwrap();
}

#[test]
fn listen_tcp_and_settings() {
    let pg = LocalPostgres::builder()
        .listen_tcp(true)
        .setting("work_mem", "8MB")
        .setting("application_name", "it's quoted")
        .start()
        .unwrap();
    let tcp = pg.tcp_url("todo").expect("a TCP URL");
    assert_eq!(
        tcp,
        format!("postgres://postgres@127.0.0.1:{}/todo", pg.port())
    );
    let tcp = pg.tcp_url("postgres").unwrap();
    assert_eq!(select_one(&tcp), 1);
    assert_eq!(select_one(&pg.url("postgres")), 1);
    let mut conn = connect(&tcp);
    let work_mem: String = diesel::select(sql::<Text>("current_setting('work_mem')"))
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(work_mem, "8MB");
    let addr: String = diesel::select(sql::<Text>("host(inet_server_addr())"))
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(addr, "127.0.0.1");
}

#[test]
fn bad_setting_names_are_rejected() {
    let err = LocalPostgres::builder()
        .setting("port = 1\nfsync", "off")
        .start()
        .unwrap_err();
    assert!(
        matches!(err, LocalPostgresError::InvalidSetting { .. }),
        "{err:?}"
    );
}

#[test]
fn a_failed_start_names_the_command_and_shows_the_server_log() {
    let err = LocalPostgres::builder()
        .setting("max_connections", "many")
        .start()
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, LocalPostgresError::Command { .. }), "{err:?}");
    assert!(message.contains("pg_ctl"), "{message}");
    assert!(message.contains("max_connections"), "{message}");
}

#[test]
fn find_bin_dir_finds_the_server_binaries() {
    let dir = find_bin_dir().expect("PostgreSQL is installed here");
    for name in ["initdb", "pg_ctl", "postgres"] {
        assert!(dir.join(name).is_file(), "{} lacks {name}", dir.display());
    }
}

/// Run by `watchdog_removes_the_cluster_of_a_killed_process` in a child process.
#[test]
#[ignore = "helper: run as a child process by watchdog_removes_the_cluster_of_a_killed_process"]
fn watchdog_child() {
    if std::env::var_os(WATCHDOG_CHILD_ENV).is_none() {
        return;
    }
    let pg = LocalPostgres::start_temporary().unwrap();
    println!(
        "{WATCHDOG_MARKER} {} {}",
        postmaster_pid(pg.data_dir()),
        pg.data_dir().parent().unwrap().display()
    );
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn watchdog_removes_the_cluster_of_a_killed_process() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "watchdog_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WATCHDOG_CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            // libtest may print "test watchdog_child ... " before it on the same line.
            let at = line.find(WATCHDOG_MARKER)?;
            Some(line[at..].to_owned())
        })
        .expect("the child started a cluster");
    let mut parts = line.splitn(3, ' ').skip(1);
    let pid: i32 = parts.next().unwrap().parse().unwrap();
    let dir = PathBuf::from(parts.next().unwrap());
    assert!(dir.exists() && alive(pid));

    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    wait_until("the watchdog's cleanup", Duration::from_secs(10), || {
        !dir.exists() && !alive(pid)
    });
}
