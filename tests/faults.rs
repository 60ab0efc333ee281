//! Faults: each test starts a PostgreSQL cluster of its own, so it can restart (or crash)
//! the server while 4 threads work through one pool, or keep it down while connecting.
//!
//! What is checked, from the callers' side: no panic; no call takes longer than the
//! pool's connection timeout (plus a margin); once the server is back, the same pool
//! serves again within 5 s, with at most one error per pooled connection; and every
//! write the library acknowledged is in the rows afterwards, while a write that failed
//! is either wholly there or wholly absent.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use support::workload::{check_rows, is_fault, violations, Call, Worker};
use todo_store::local_postgres::{LocalPostgres, ShutdownMode};
use todo_store::pool::checkout;
use todo_store::{DbConfig, Error, NewUser, PgPool, UserRepo};
use uuid::Uuid;

/// The load tests share the machine (read); the test that counts errors per connection
/// runs alone (write): how a crash surfaces on an idle connection depends on timing.
static MACHINE: RwLock<()> = RwLock::new(());

const POOL_SIZE: u32 = 4;
const THREADS: usize = 4;
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// Allowance over the connection timeout for a call's own statements and a busy machine.
const MARGIN: Duration = Duration::from_millis(1500);
/// How soon after the restart the pool must serve again.
const RECOVERY: Duration = Duration::from_secs(5);

fn config(pg: &LocalPostgres) -> DbConfig {
    DbConfig::new(pg.url("postgres"))
        .pool_size(POOL_SIZE)
        .connection_timeout(CONNECTION_TIMEOUT)
}

/// A fault of the server.
#[derive(Debug, Clone, Copy)]
enum Outage {
    /// `pg_ctl restart -m MODE`: down for a moment.
    Restart(ShutdownMode),
    /// `pg_ctl stop -m MODE`, down for the duration (longer than the pool's connection
    /// timeout, so checkouts time out), then `pg_ctl start`.
    Down(ShutdownMode, Duration),
}

/// When an outage began and when the server accepted connections again.
#[derive(Debug, Clone, Copy)]
struct Window {
    began: Instant,
    back: Instant,
}

fn probe(pool: &PgPool) -> Call {
    let started = Instant::now();
    let result = checkout(pool).and_then(|mut c| UserRepo::count(&mut c));
    Call {
        op: "probe",
        started,
        took: started.elapsed(),
        error: result.err().map(|e| format!("{e:?}")),
    }
}

/// 4 threads work through one pool while the server goes through `outages`; then every
/// property of the module docs is checked.
fn outages_under_load(pg: &LocalPostgres, outages: &[Outage]) {
    let _shared = MACHINE.read().unwrap_or_else(|e| e.into_inner());
    let pool = todo_store::connect(&config(pg)).expect("connect");
    let user_ids: Vec<todo_store::UserId> = (0..THREADS)
        .map(|t| {
            let new = NewUser::new(format!("faults-{t}-{}@example.com", Uuid::now_v7()), "F");
            UserRepo::create(&mut checkout(&pool).unwrap(), &new)
                .unwrap()
                .id
        })
        .collect();

    let stop = AtomicBool::new(false);
    let mut windows = Vec::new();
    let mut probe_calls = Vec::new();

    let workers: Vec<Worker<'_>> = std::thread::scope(|s| {
        let handles: Vec<_> = user_ids
            .iter()
            .enumerate()
            .map(|(t, &uid)| {
                let (pool, stop) = (&pool, &stop);
                s.spawn(move || {
                    let mut w = Worker::new(t, pool, uid);
                    w.run_until(stop);
                    w
                })
            })
            .collect();

        std::thread::sleep(Duration::from_millis(1500));
        for (i, outage) in outages.iter().enumerate() {
            let began = Instant::now();
            match *outage {
                Outage::Restart(mode) => pg.restart(mode).expect("restart"),
                Outage::Down(mode, down) => {
                    pg.stop(mode).expect("stop");
                    std::thread::sleep(down);
                    pg.start().expect("start");
                }
            }
            let back = Instant::now();
            windows.push(Window { began, back });
            // The same pool serves again: probe it until a call succeeds.
            loop {
                let call = probe(&pool);
                let ok = call.error.is_none();
                probe_calls.push(call);
                if ok || back.elapsed() > RECOVERY + CONNECTION_TIMEOUT {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // Load between outages; after the last, past the recovery window: every
            // call must succeed by then.
            let last = i + 1 == outages.len();
            std::thread::sleep(if last {
                RECOVERY + Duration::from_millis(1500)
            } else {
                Duration::from_millis(1500)
            });
        }
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker panicked"))
            .collect()
    });

    let mut calls: Vec<&Call> = workers.iter().flat_map(|w| &w.calls).collect();
    calls.extend(&probe_calls);
    calls.sort_by_key(|c| c.started);
    let mut violations = violations(&workers);

    // No call blocked longer than the pool's connection timeout (plus the margin).
    let slowest = calls.iter().map(|c| c.took).max().unwrap_or_default();
    for c in &calls {
        if c.took > CONNECTION_TIMEOUT + MARGIN {
            violations.push(format!("call took {:?}: {c:?}", c.took));
        }
    }

    for (i, (outage, window)) in outages.iter().zip(&windows).enumerate() {
        // The outage did hit the workers (or the test proves nothing).
        let hit = calls
            .iter()
            .filter(|c| c.error.is_some())
            .filter(|c| c.started + c.took >= window.began && c.started < window.back)
            .count();
        // The calls from the server's return to the next outage.
        let until = windows.get(i + 1).map(|w| w.began);
        let after: Vec<&&Call> = calls
            .iter()
            .filter(|c| c.started >= window.back && until.is_none_or(|u| c.started < u))
            .collect();
        let errors_after: Vec<&&Call> = after
            .iter()
            .copied()
            .filter(|c| c.error.is_some())
            .collect();
        let first_ok = after
            .iter()
            .find(|c| c.error.is_none())
            .map(|c| c.started + c.took - window.back);
        eprintln!(
            "{outage:?}: down {:?}, {hit} failed calls during it; after: {} calls, {} \
             errors, first success after {first_ok:?}",
            window.back - window.began,
            after.len(),
            errors_after.len()
        );
        if hit == 0 {
            violations.push(format!(
                "{outage:?}: no call failed, the outage went unnoticed"
            ));
        }
        // After the server is back: at most one error per pooled connection...
        if errors_after.len() > POOL_SIZE as usize {
            violations.push(format!(
                "{outage:?}: {} errors after the server was back, more than one per pooled \
                 connection: {errors_after:#?}",
                errors_after.len()
            ));
        }
        // ...the same pool serves again within 5 s...
        match first_ok {
            Some(t) if t <= RECOVERY => {}
            other => violations.push(format!("{outage:?}: the pool served again at {other:?}")),
        }
        // ...and every call succeeds after that.
        for c in after.iter().filter(|c| c.started >= window.back + RECOVERY) {
            if let Some(e) = &c.error {
                violations.push(format!("{outage:?}: a call failed {RECOVERY:?} after: {e}"));
            }
        }
    }
    let last_back = windows.last().expect("an outage").back;
    let ok_after = calls
        .iter()
        .filter(|c| c.started >= last_back && c.error.is_none())
        .count();
    assert!(
        ok_after > 100,
        "too little work after the last outage: {ok_after} calls"
    );

    // Acknowledged writes are there; failed ones are whole or absent.
    violations.extend(check_rows(&pool, &workers));
    let writes = |ok: bool| {
        workers
            .iter()
            .flat_map(|w| &w.calls)
            .filter(|c| c.error.is_none() == ok)
            .filter(|c| !matches!(c.op, "get" | "list" | "get (resync)"))
            .count()
    };
    eprintln!(
        "{} calls, slowest {slowest:?}; {} acknowledged writes, {} failed writes \
         (outcome unknown to the caller), {} tasks tracked",
        calls.len(),
        writes(true),
        writes(false),
        workers.iter().map(|w| w.tasks.len()).sum::<usize>(),
    );
    assert!(
        violations.is_empty(),
        "{} violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
}

#[test]
fn fast_restarts_under_load_lose_no_acknowledged_write_and_the_pool_recovers() {
    let pg = LocalPostgres::start_temporary().expect("a local PostgreSQL cluster");
    let fast = ShutdownMode::Fast;
    outages_under_load(
        &pg,
        &[
            Outage::Restart(fast),
            Outage::Restart(fast),
            Outage::Down(fast, CONNECTION_TIMEOUT + Duration::from_secs(1)),
        ],
    );
}

/// `-m immediate` is a crash: the server comes back through crash recovery. This cluster
/// commits synchronously: the temporary cluster's default, `synchronous_commit = off`,
/// may lose the last acknowledged commits in a crash by design. (`fsync = off` is kept:
/// a process crash leaves the OS's page cache intact.)
#[test]
fn crashes_under_load_lose_no_acknowledged_write_and_the_pool_recovers() {
    let pg = LocalPostgres::builder()
        .setting("synchronous_commit", "on")
        .start()
        .expect("a local PostgreSQL cluster");
    let crash = ShutdownMode::Immediate;
    outages_under_load(
        &pg,
        &[
            Outage::Restart(crash),
            Outage::Restart(crash),
            Outage::Down(crash, CONNECTION_TIMEOUT + Duration::from_secs(1)),
        ],
    );
}

/// The pool's promise after an outage, made deterministic: every connection of the pool
/// is checked out and used while the server restarts; once it is back, each is used
/// once more (one error each, the server they knew is gone) and returned. A returned
/// dead connection must be discarded, not handed out again unchecked (it was "used
/// moments ago") to fail a second time.
fn each_pooled_connection_fails_at_most_once_after(mode: ShutdownMode) {
    let _alone = MACHINE.write().unwrap_or_else(|e| e.into_inner());
    let pg = LocalPostgres::start_temporary().expect("a local PostgreSQL cluster");
    let pool = todo_store::connect(&config(&pg)).expect("connect");
    let mut held: Vec<_> = (0..POOL_SIZE).map(|_| checkout(&pool).unwrap()).collect();
    for conn in &mut held {
        UserRepo::count(conn).expect("count before the restart");
    }
    pg.restart(mode).expect("restart");
    let mut errors = Vec::new();
    for conn in &mut held {
        match UserRepo::count(conn) {
            Err(e) if is_fault(&e) => errors.push(format!("held connection: {e:?}")),
            other => panic!("{mode:?}: a connection to the old server gave {other:?}"),
        }
    }
    drop(held);
    for i in 0..2 * POOL_SIZE {
        let started = Instant::now();
        let result = checkout(&pool).and_then(|mut c| UserRepo::count(&mut c));
        assert!(started.elapsed() < CONNECTION_TIMEOUT + MARGIN);
        if let Err(e) = result {
            errors.push(format!("call {i} after: {e:?}"));
        }
    }
    assert!(
        errors.len() <= POOL_SIZE as usize,
        "{mode:?}: more than one error per pooled connection after the server was back: \
         {errors:#?}"
    );
}

#[test]
fn after_a_fast_restart_each_pooled_connection_fails_at_most_once() {
    each_pooled_connection_fails_at_most_once_after(ShutdownMode::Fast);
}

#[test]
fn after_a_crash_each_pooled_connection_fails_at_most_once() {
    each_pooled_connection_fails_at_most_once_after(ShutdownMode::Immediate);
}

#[test]
fn connecting_while_the_server_is_down_fails_in_time_naming_the_socket_not_the_password() {
    let pg = LocalPostgres::start_temporary().expect("a local PostgreSQL cluster");
    pg.stop(ShutdownMode::Fast).expect("stop");
    let password = "Pa55-w0rd-never-shown";
    let url = pg
        .url("postgres")
        .replacen("postgres@", &format!("postgres:{password}@"), 1);
    assert!(url.contains(password));
    let timeout = Duration::from_secs(1);
    let config = DbConfig::new(&url)
        .pool_size(POOL_SIZE)
        .connection_timeout(timeout);

    let started = Instant::now();
    let err = todo_store::connect(&config).expect_err("the server is down");
    let took = started.elapsed();
    eprintln!("connect failed after {took:?}: {err}");
    assert!(took < timeout + MARGIN, "connect took {took:?}");

    let (display, debug) = (err.to_string(), format!("{err:?}"));
    assert!(matches!(err, Error::Connection { .. }), "{debug}");
    let socket_dir = pg.socket_dir().display().to_string();
    assert!(display.contains(&socket_dir), "names the socket: {display}");
    for text in [&display, &debug] {
        assert!(!text.contains(password), "{text}");
    }

    // Once the server is up, the same configuration connects (the error was the
    // server's absence, nothing else).
    pg.start().expect("start");
    let pool = todo_store::connect(&config).expect("connect once the server is up");
    assert_eq!(UserRepo::count(&mut checkout(&pool).unwrap()).unwrap(), 0);
}
