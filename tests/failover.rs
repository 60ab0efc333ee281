//! The crate through a failover, on servers of the test's own: a URL of several hosts
//! whose first refuses connections, and a server stopped and started again while
//! `retry_transaction` calls run (the pool's timeout is shorter than the outage, so
//! checkouts time out too, as while a cluster elects a leader). What a caller must
//! see: no error but a `COMMIT` lost on its way (outcome unknown, which
//! `retry_transaction` does not decide), each write applied at most once, every
//! acknowledged one present.

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Array, Integer, Text};
use todo_store::local_postgres::{LocalPostgres, ShutdownMode};
use todo_store::retry::{retry_transaction, RetryPolicy};
use todo_store::{DbConfig, Error, NewTask, TaskQuery, TaskRepo};

use support::fixtures;

/// A port on 127.0.0.1 where nothing listens: connections to it are refused at once.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn server_with_tcp() -> LocalPostgres {
    let pg = LocalPostgres::builder()
        .listen_tcp(true)
        .start()
        .expect("a local PostgreSQL cluster");
    PgConnection::establish(&pg.url("postgres"))
        .unwrap()
        .batch_execute("CREATE DATABASE todo")
        .unwrap();
    pg
}

fn server_port(conn: &mut PgConnection) -> i32 {
    diesel::select(sql::<Integer>("inet_server_port()"))
        .get_result(conn)
        .unwrap()
}

#[test]
fn a_url_whose_first_host_refuses_connects_to_the_next_in_either_form() {
    let pg = server_with_tcp();
    let (closed, live) = (closed_port(), pg.port());
    for url in [
        format!("postgres://postgres:s3cret@127.0.0.1:{closed},127.0.0.1:{live}/todo"),
        format!(
            "host=127.0.0.1,127.0.0.1 port={closed},{live} user=postgres password=s3cret \
             dbname=todo"
        ),
    ] {
        let config = DbConfig::new(url.as_str()).pool_size(2);
        config.validate().unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
        let pool = todo_store::connect(&config).unwrap_or_else(|e| panic!("{url}: {e}"));
        let mut conn = pool.get().unwrap();
        assert_eq!(server_port(&mut conn), i32::from(live), "{url}");
        let user = fixtures::user(&mut conn);
        TaskRepo::create(&mut conn, user.id, &NewTask::new("through the second host")).unwrap();
    }

    // Every host refusing: an error that names the hosts, not the password.
    let url = format!(
        "postgres://postgres:s3cret@127.0.0.1:{},127.0.0.1:{}/todo",
        closed_port(),
        closed_port()
    );
    let config = DbConfig::new(url).connection_timeout(Duration::from_secs(1));
    let err = todo_store::connect(&config).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(
        text.contains("127.0.0.1") && !text.contains("s3cret"),
        "{text}"
    );
}

#[test]
fn reads_and_writes_through_retry_transaction_ride_through_a_restart_longer_than_the_pool_timeout()
{
    let pg = server_with_tcp();
    let config = DbConfig::new(pg.url("todo"))
        .pool_size(4)
        .connection_timeout(Duration::from_millis(700));
    let pool = todo_store::connect(&config).unwrap();
    let user = fixtures::user(&mut pool.get().unwrap());
    let policy = RetryPolicy::default().failover_budget(Duration::from_secs(15));

    let stop = std::sync::atomic::AtomicBool::new(false);
    // From the stop's start until the server was up again: the calls' wait follows it.
    let outage = std::sync::Mutex::new(Duration::ZERO);
    let (written, reads, slowest) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let (mut written, mut unknown, mut slowest) = (Vec::new(), Vec::new(), Duration::ZERO);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let new = NewTask::new(format!("write {}", written.len()));
                let started = Instant::now();
                let result =
                    retry_transaction(&pool, &policy, |conn| TaskRepo::create(conn, user.id, &new));
                slowest = slowest.max(started.elapsed());
                match result {
                    Ok(task) => written.push(task.title),
                    Err(e) if commit_outcome_unknown(&e) => unknown.push(new.title),
                    Err(e) => panic!("a write failed: {e:?}"),
                }
            }
            (written, unknown, slowest)
        });
        let reader = s.spawn(|| {
            let (mut reads, mut unknown_reads, mut slowest) = (0, 0, Duration::ZERO);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                let result = retry_transaction(&pool, &policy, |conn| {
                    TaskRepo::list(conn, user.id, &TaskQuery::new().limit(5))
                });
                slowest = slowest.max(started.elapsed());
                match result {
                    Ok(_) => reads += 1,
                    Err(e) if commit_outcome_unknown(&e) => unknown_reads += 1,
                    Err(e) => panic!("a read failed: {e:?}"),
                }
            }
            (reads, unknown_reads, slowest)
        });
        std::thread::sleep(Duration::from_millis(500));
        let down = Instant::now();
        pg.stop(ShutdownMode::Fast).unwrap();
        std::thread::sleep(Duration::from_secs(2));
        pg.start().unwrap();
        *outage.lock().unwrap() = down.elapsed();
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (written, unknown, write_slowest) = writer.join().unwrap();
        let (reads, unknown_reads, read_slowest) = reader.join().unwrap();
        (
            (written, unknown),
            (reads, unknown_reads),
            write_slowest.max(read_slowest),
        )
    });
    let ((written, unknown), (reads, unknown_reads), slowest) = (written, reads, slowest);
    eprintln!(
        "{} writes acknowledged, {} with a COMMIT of unknown outcome; {reads} reads, \
         {unknown_reads} with a COMMIT of unknown outcome; the slowest call took {slowest:?}",
        written.len(),
        unknown.len()
    );
    // The calls waited through the outage, and not much longer: past it, at most a
    // backoff (1 s), a checkout's timeout (700 ms) and a second for a loaded machine.
    let outage = outage.into_inner().unwrap();
    assert!(slowest >= Duration::from_millis(1500), "{slowest:?}");
    assert!(
        slowest < outage + Duration::from_millis(2700),
        "{slowest:?}, the server down for {outage:?}"
    );
    // Every acknowledged write is there, once; nothing else is.
    let mut titles: Vec<String> = diesel::select(sql::<Array<Text>>(&format!(
        "ARRAY(SELECT title FROM tasks WHERE user_id = '{}')",
        user.id
    )))
    .get_result(&mut *pool.get().unwrap())
    .unwrap();
    titles.sort();
    let before = titles.len();
    titles.dedup();
    assert_eq!(titles.len(), before, "a write applied twice");
    for title in &written {
        assert!(titles.contains(title), "acknowledged {title} is missing");
    }
    for title in &titles {
        assert!(
            written.contains(title) || unknown.contains(title),
            "{title} was never written"
        );
    }
}

/// A connection lost while `COMMIT` was on its way: the one failure a failover may
/// still show a caller of `retry_transaction` (its outcome is unknown).
fn commit_outcome_unknown(err: &Error) -> bool {
    err.is_connection_lost() && !err.is_connection_lost_before_send()
}
