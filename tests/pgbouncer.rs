//! The crate through a real PgBouncer in transaction mode (`pool_mode = transaction`,
//! two server connections per database and user), in front of a throwaway cluster.
//!
//! PgBouncer (Debian's `pgbouncer` package, 1.18 on bookworm) is started by each test
//! on a free loopback port; the tests fail, with what to install, when it is missing.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use chrono::{SubsecRound, TimeZone, Utc};
use diesel::connection::{CacheSize, SimpleConnection};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use todo_store::local_postgres::LocalPostgres;
use todo_store::migrate::{pending_migrations, run_migrations};
use todo_store::pool::{checkout, PgPool, PoolOptions};
use todo_store::{
    ConflictKind, DbConfig, Error, NewTask, NewUser, Priority, TaskPatch, TaskQuery, TaskRepo,
    UserPatch, UserRepo,
};
use uuid::Uuid;

use support::backend::try_backend_pid;
use support::fixtures;
use support::pgbouncer::{self, PgBouncer};

/// The role of the statement-timeout test, listed in PgBouncer's auth file.
const TIMEOUT_ROLE: &str = "todo_timeout";
/// The statement timeout that role gets with `ALTER ROLE`.
const ROLE_TIMEOUT: &str = "200ms";

/// The cluster behind every PgBouncer of this test binary (removed at exit by its
/// watchdog).
fn cluster() -> &'static LocalPostgres {
    static PG: OnceLock<LocalPostgres> = OnceLock::new();
    PG.get_or_init(|| {
        LocalPostgres::start_temporary()
            .unwrap_or_else(|e| panic!("could not start a PostgreSQL cluster: {e}"))
    })
}

/// A fresh database on [`cluster`]; migrated (directly, not through PgBouncer) when
/// `migrated`.
fn fresh_database(migrated: bool) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let pg = cluster();
    let name = format!("pgb_{}", COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut admin = PgConnection::establish(&pg.url("postgres")).unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    if migrated {
        let mut conn = PgConnection::establish(&pg.url(&name)).unwrap();
        run_migrations(&mut conn).unwrap();
    }
    name
}

fn start_bouncer() -> PgBouncer {
    PgBouncer::start(cluster(), &["postgres", TIMEOUT_ROLE])
}

/// The crate's configuration for `db` through `bouncer` as `postgres`.
fn bouncer_config(bouncer: &PgBouncer, db: &str) -> DbConfig {
    DbConfig::new(bouncer.url("postgres", db))
        .connection_timeout(Duration::from_secs(20))
        .pgbouncer(true)
}

// ---------------------------------------------------------------------------------
// (a) and (b): every repo operation, from several threads sharing two server connections
// ---------------------------------------------------------------------------------

/// Why a workload stopped.
#[derive(Debug)]
enum Failure {
    /// A repo call failed.
    Db(Error),
    /// A repo call returned something wrong.
    Check(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Db(e) => write!(f, "{e}"),
            Failure::Check(what) => write!(f, "wrong result: {what}"),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Db(e)
    }
}

impl From<diesel::result::Error> for Failure {
    fn from(e: diesel::result::Error) -> Self {
        Failure::Db(e.into())
    }
}

macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(Failure::Check(format!($($msg)+)));
        }
    };
}

/// Every core operation of `UserRepo` and `TaskRepo` on one client connection, with
/// its results checked; returns the backend pids the connection's statements ran on.
fn repo_workload(conn: &mut PgConnection, tag: &str) -> Result<Vec<i32>, Failure> {
    let mut pids = vec![try_backend_pid(conn)?];
    let email = format!("{tag}-{}@Example.com", Uuid::now_v7().simple());
    let user = UserRepo::create(conn, &NewUser::new(&email, "Pooled User"))?;
    check!(UserRepo::get(conn, user.id)? == user, "get user");
    check!(
        UserRepo::find_by_email(conn, &email.to_uppercase())? == Some(user.clone()),
        "find_by_email"
    );
    let renamed = UserRepo::update(
        conn,
        user.id,
        &UserPatch {
            name: Some("Renamed".into()),
            ..Default::default()
        },
    )?;
    check!(
        renamed.name == "Renamed" && renamed.email == user.email,
        "update user: {renamed:?}"
    );
    check!(
        UserRepo::list(conn, 1000, 0)?.iter().any(|u| u == &renamed),
        "list users"
    );
    pids.push(try_backend_pid(conn)?);

    let due = (Utc::now() + chrono::Duration::days(2)).trunc_subsecs(6);
    let a = TaskRepo::create(
        conn,
        user.id,
        &NewTask::new("Pay invoice 42")
            .priority(Priority::High)
            .due_date(due),
    )?;
    let b = TaskRepo::create(
        conn,
        user.id,
        &NewTask::new("Water the plants").priority(Priority::Low),
    )?;
    let c = TaskRepo::create(
        conn,
        user.id,
        &NewTask::new("Send the invoice reminder").description("to ACME"),
    )?;
    check!(TaskRepo::get(conn, user.id, a.id)? == a, "get task");
    check!(a.due_date == Some(due), "due date: {:?}", a.due_date);

    let a2 = TaskRepo::update(
        conn,
        user.id,
        a.id,
        &TaskPatch {
            title: Some("Pay invoice 42 today".into()),
            expected_version: Some(1),
            ..Default::default()
        },
    )?;
    check!(
        a2.version == 2 && a2.title == "Pay invoice 42 today",
        "update: {a2:?}"
    );
    match TaskRepo::update(
        conn,
        user.id,
        a.id,
        &TaskPatch {
            title: Some("stale".into()),
            expected_version: Some(1),
            ..Default::default()
        },
    ) {
        Err(Error::Conflict {
            kind:
                ConflictKind::StaleVersion {
                    expected: 1,
                    actual: 2,
                },
        }) => {}
        other => check!(false, "stale update: {other:?}"),
    }
    let b2 = TaskRepo::set_completed(conn, user.id, b.id, true)?;
    check!(b2.completed && b2.version == 2, "set_completed: {b2:?}");
    check!(TaskRepo::count(conn, user.id)? == 3, "count");
    pids.push(try_backend_pid(conn)?);

    let open = TaskRepo::list(conn, user.id, &TaskQuery::new().completed(false))?;
    check!(
        ids(&open.items) == vec![c.id, a.id] && open.next_cursor.is_none(),
        "open tasks: {open:?}"
    );
    let high = TaskRepo::list(conn, user.id, &TaskQuery::new().priority(Priority::High))?;
    check!(high.items == vec![a2.clone()], "high: {high:?}");

    let many: Vec<NewTask> = (0..5)
        .map(|i| NewTask::new(format!("Bulk task {i}")))
        .collect();
    let created = TaskRepo::create_many(conn, user.id, &many)?;
    check!(
        created.len() == 5 && created.iter().all(|t| t.user_id == user.id),
        "create_many: {created:?}"
    );
    check!(
        TaskRepo::count(conn, user.id)? == 8,
        "count after create_many"
    );

    // Keyset paging, three at a time, through the whole list.
    let all = TaskRepo::list(conn, user.id, &TaskQuery::new())?;
    check!(all.items.len() == 8, "all: {}", all.items.len());
    let query = TaskQuery::new().limit(3);
    let mut walked = Vec::new();
    let mut page = TaskRepo::list(conn, user.id, &query)?;
    loop {
        walked.extend(ids(&page.items));
        match page.next_cursor.take() {
            Some(cursor) => page = TaskRepo::list(conn, user.id, &query.clone().after(&cursor))?,
            None => break,
        }
    }
    check!(walked == ids(&all.items), "paged walk: {walked:?}");
    pids.push(try_backend_pid(conn)?);

    let found = TaskRepo::list(conn, user.id, &TaskQuery::new().search("invoice"))?;
    check!(
        ids(&found.items).into_iter().collect::<BTreeSet<_>>() == BTreeSet::from([a.id, c.id]),
        "search: {found:?}"
    );
    check!(
        TaskRepo::count_matching(conn, user.id, &TaskQuery::new().search("invoice"))? == 2,
        "count_matching search"
    );
    check!(
        TaskRepo::count_matching(conn, user.id, &TaskQuery::new().completed(false))? == 7,
        "count_matching open"
    );
    let stats = TaskRepo::stats(conn, user.id)?;
    check!(
        stats.total == 8
            && stats.completed == 1
            && stats.open == 7
            && stats.overdue == 0
            && stats.priority_count(Priority::High) == 1
            && stats.priority_count(Priority::Medium) == 6
            && stats.priority_count(Priority::Low) == 1,
        "stats: {stats:?}"
    );

    let bulk_ids = ids(&created);
    check!(
        TaskRepo::set_completed_many(conn, user.id, &bulk_ids, true)? == 5,
        "set_completed_many"
    );
    check!(
        TaskRepo::stats(conn, user.id)?.completed == 6,
        "completed after set_completed_many"
    );
    check!(
        TaskRepo::delete_many(
            conn,
            user.id,
            &[bulk_ids[0], bulk_ids[1], Uuid::now_v7().into()]
        )? == 2,
        "delete_many"
    );
    TaskRepo::delete(conn, user.id, c.id)?;
    check!(
        TaskRepo::get(conn, user.id, c.id).is_err_and(|e| e.is_not_found()),
        "deleted task still there"
    );
    check!(TaskRepo::count(conn, user.id)? == 5, "count after deletes");
    pids.push(try_backend_pid(conn)?);

    UserRepo::delete(conn, user.id)?;
    check!(
        UserRepo::get(conn, user.id).is_err_and(|e| e.is_not_found()),
        "deleted user still there"
    );
    check!(
        TaskRepo::count(conn, user.id)? == 0,
        "tasks of a deleted user"
    );
    pids.push(try_backend_pid(conn)?);
    Ok(pids)
}

fn ids(tasks: &[todo_store::Task]) -> Vec<todo_store::TaskId> {
    tasks.iter().map(|t| t.id).collect()
}

const CLIENTS: usize = 4;
const ROUNDS: usize = 3;

/// Runs [`repo_workload`] `ROUNDS` times on each of `CLIENTS` threads, each with its own
/// connection of `pool`; per client, the pids seen or the first failure.
fn run_clients(pool: &PgPool) -> Vec<Result<Vec<i32>, Failure>> {
    let start = Barrier::new(CLIENTS);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let start = &start;
                s.spawn(move || {
                    let mut conn = checkout(pool)?;
                    start.wait();
                    let mut pids = Vec::new();
                    for round in 0..ROUNDS {
                        pids.extend(repo_workload(&mut conn, &format!("c{i}r{round}"))?);
                    }
                    Ok(pids)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn every_repo_operation_works_through_pgbouncer_in_transaction_mode_with_the_switch() {
    let db = fresh_database(true);
    let bouncer = start_bouncer();
    let pool = todo_store::connect(&bouncer_config(&bouncer, &db).pool_size(CLIENTS as u32))
        .unwrap_or_else(|e| panic!("connect through PgBouncer: {e}\n{}", bouncer.log_tail()));

    let results = run_clients(&pool);
    let mut all_pids = BTreeSet::new();
    let mut moved = 0;
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(pids) => {
                let distinct: BTreeSet<i32> = pids.iter().copied().collect();
                if distinct.len() > 1 {
                    moved += 1;
                }
                all_pids.extend(distinct);
            }
            Err(e) => panic!("client {i} failed: {e}\n{}", bouncer.log_tail()),
        }
    }
    // Four clients ran on at most two server connections (default_pool_size = 2), and
    // their transactions moved between them: the server connections really were shared.
    assert!(
        all_pids.len() <= pgbouncer::POOL_SIZE,
        "server pids: {all_pids:?}"
    );
    assert!(
        moved > 0,
        "no client's transactions ever moved to another server connection"
    );
}

#[test]
fn without_the_switch_named_prepared_statements_break_through_pgbouncer() {
    let db = fresh_database(true);
    let bouncer = start_bouncer();
    // The same workload as above, with diesel's default: named prepared statements.
    let pool = PoolOptions::new(
        &bouncer_config(&bouncer, &db)
            .pgbouncer(false)
            .pool_size(CLIENTS as u32),
    )
    .run_migrations(false)
    .connect()
    .unwrap();

    let failures: Vec<String> = run_clients(&pool)
        .into_iter()
        .filter_map(|r| r.err())
        .map(|f| f.to_string())
        .collect();
    assert!(
        !failures.is_empty(),
        "every client succeeded with named prepared statements through a transaction pooler"
    );
    // What PgBouncer in transaction mode does to them: a statement prepared on one
    // server connection is missing on the next, or its name is already taken there.
    assert!(
        failures.iter().any(|f| f.contains("prepared statement")
            && f.contains("__diesel_stmt_")
            && (f.contains("does not exist") || f.contains("already exists"))),
        "{failures:#?}"
    );
}

// ---------------------------------------------------------------------------------
// (c) migrations through the pooler
// ---------------------------------------------------------------------------------

#[test]
fn concurrent_migrations_through_pgbouncer_all_succeed_and_apply_each_migration_once() {
    const THREADS: usize = 6;
    let all_versions: BTreeSet<String> = {
        let db = fresh_database(false);
        let mut conn = PgConnection::establish(&cluster().url(&db)).unwrap();
        pending_migrations(&mut conn).unwrap().into_iter().collect()
    };
    assert!(!all_versions.is_empty());
    let bouncer = start_bouncer();

    // run_migrations from several threads, each on its own connection through PgBouncer.
    let db = fresh_database(false);
    let config = bouncer_config(&bouncer, &db).pool_size(1);
    let start = Barrier::new(THREADS);
    let applied: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (config, start) = (&config, &start);
                s.spawn(move || {
                    let pool = PoolOptions::new(config)
                        .run_migrations(false)
                        .connect()
                        .unwrap();
                    let mut conn = checkout(&pool).unwrap();
                    start.wait();
                    run_migrations(&mut conn)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{e}\n{}", bouncer.log_tail()))
            })
            .collect()
    });
    let mut every: Vec<String> = applied.into_iter().flatten().collect();
    every.sort();
    assert_eq!(
        every,
        all_versions.iter().cloned().collect::<Vec<_>>(),
        "each migration must be applied exactly once, by one of the threads"
    );
    assert_schema_migrated(&db, &all_versions);

    // connect (pool, then migrations) from several threads at once on another fresh one.
    let db = fresh_database(false);
    let config = bouncer_config(&bouncer, &db).pool_size(2);
    let start = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let (config, start, bouncer) = (&config, &start, &bouncer);
            s.spawn(move || {
                start.wait();
                let pool = todo_store::connect(config)
                    .unwrap_or_else(|e| panic!("{e}\n{}", bouncer.log_tail()));
                let mut conn = checkout(&pool).unwrap();
                fixtures::user(&mut conn);
            });
        }
    });
    assert_schema_migrated(&db, &all_versions);
}

/// Checks, directly on the server, that `db` has every migration recorded once and the
/// schema works.
fn assert_schema_migrated(db: &str, versions: &BTreeSet<String>) {
    let mut conn = PgConnection::establish(&cluster().url(db)).unwrap();
    let recorded: Vec<String> =
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations ORDER BY version")
            .load::<Version>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|v| v.version)
            .collect();
    assert_eq!(
        recorded,
        versions.iter().cloned().collect::<Vec<_>>(),
        "{db}"
    );
    assert!(pending_migrations(&mut conn).unwrap().is_empty());
    let user = fixtures::user(&mut conn);
    fixtures::task(&mut conn, &user, "after the migrations");
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Text)]
    version: String,
}

// ---------------------------------------------------------------------------------
// (d) statement_timeout and session settings
// ---------------------------------------------------------------------------------

/// pid, application_name and statement_timeout of the server connection the statement
/// ran on, read in one statement (so in one transaction, on one server connection).
fn session_probe(conn: &mut PgConnection) -> QueryResult<(i32, String, String)> {
    diesel::select(sql::<(Integer, Text, Text)>(
        "pg_backend_pid(), current_setting('application_name'), \
         current_setting('statement_timeout')",
    ))
    .get_result(conn)
}

#[test]
fn statement_timeout_fires_through_pgbouncer_from_the_role_and_session_settings_do_not_leak() {
    let db = fresh_database(true);
    let bouncer = start_bouncer();
    {
        // The documented way behind a transaction pooler: a default for the role, which
        // every new server connection of the role starts with.
        let mut admin = PgConnection::establish(&cluster().url(&db)).unwrap();
        admin
            .batch_execute(&format!(
                "CREATE ROLE {TIMEOUT_ROLE} LOGIN;
                 ALTER ROLE {TIMEOUT_ROLE} SET statement_timeout = '{ROLE_TIMEOUT}';
                 GRANT ALL ON ALL TABLES IN SCHEMA public TO {TIMEOUT_ROLE};"
            ))
            .unwrap();
    }
    // The crate's own statement_timeout (30 s here) is not SET behind the pooler.
    let timeout_pool = PoolOptions::new(
        &DbConfig::new(bouncer.url(TIMEOUT_ROLE, &db))
            .pgbouncer(true)
            .statement_timeout(Some(Duration::from_secs(30)))
            .pool_size(2),
    )
    .run_migrations(false)
    .connect()
    .unwrap();
    let mut conn = checkout(&timeout_pool).unwrap();
    let (_, _, timeout) = session_probe(&mut conn).unwrap();
    assert_eq!(timeout, ROLE_TIMEOUT);
    let started = Instant::now();
    let err: Error = diesel::sql_query("SELECT pg_sleep(2)")
        .execute(&mut *conn)
        .unwrap_err()
        .into();
    assert!(matches!(err, Error::StatementTimeout), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    // The connection (client and server) is fine afterwards, and repo calls work.
    let user = fixtures::user(&mut conn);
    assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 0);
    drop(conn);

    // Clients of one database and role, each with its own application_name and its own
    // (different) statement_timeout in DbConfig, sharing two server connections.
    let timeouts = [
        Some(Duration::from_millis(1234)),
        None,
        Some(Duration::from_secs(30)),
        Some(Duration::from_millis(777)),
    ];
    let clients: Vec<(String, PgPool)> = timeouts
        .iter()
        .enumerate()
        .map(|(i, timeout)| {
            let name = format!("client-{i}");
            let pool = PoolOptions::new(
                &bouncer_config(&bouncer, &db)
                    .application_name(&name)
                    .statement_timeout(*timeout)
                    .pool_size(1),
            )
            .run_migrations(false)
            .connect()
            .unwrap();
            (name, pool)
        })
        .collect();
    let seen = probe_clients(&clients);
    let pids: BTreeSet<i32> = seen.values().flatten().map(|(pid, _, _)| *pid).collect();
    assert!(pids.len() <= pgbouncer::POOL_SIZE, "{pids:?}");
    for (name, probes) in &seen {
        for (pid, app, timeout) in probes {
            assert_eq!(app, name, "on server pid {pid}");
            // The server's default: no client's DbConfig timeout landed on a server
            // connection, so none can be seen by another client.
            assert_eq!(timeout, "0", "{name} on server pid {pid}");
        }
    }

    // The failure the switch prevents: a client without it SETs its statement_timeout
    // on whatever server connection it got, and other clients then run with it.
    let _unswitched = PoolOptions::new(
        &bouncer_config(&bouncer, &db)
            .pgbouncer(false)
            .application_name("unswitched")
            .statement_timeout(Some(Duration::from_millis(4321)))
            .pool_size(1)
            .min_idle(Some(1)),
    )
    .run_migrations(false)
    .connect()
    .unwrap();
    let seen = probe_clients(&clients);
    let leaked: Vec<&String> = seen
        .iter()
        .filter(|(_, probes)| probes.iter().any(|(_, _, t)| t == "4321ms"))
        .map(|(name, _)| name)
        .collect();
    assert!(
        !leaked.is_empty(),
        "the session SET of a client without the switch should show on other clients"
    );
    // application_name is tracked per client by PgBouncer: it never leaks.
    for (name, probes) in &seen {
        assert!(probes.iter().all(|(_, app, _)| app == name), "{probes:?}");
    }
}

/// 30 probes from each client, all clients at once; per client name, what it saw.
fn probe_clients(clients: &[(String, PgPool)]) -> BTreeMap<String, Vec<(i32, String, String)>> {
    let start = Barrier::new(clients.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter()
            .map(|(name, pool)| {
                let start = &start;
                s.spawn(move || {
                    let mut conn = checkout(pool).unwrap();
                    start.wait();
                    let probes: Vec<_> =
                        (0..30).map(|_| session_probe(&mut conn).unwrap()).collect();
                    (name.clone(), probes)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

// ---------------------------------------------------------------------------------
// (e) diesel's SET TIME ZONE 'UTC'
// ---------------------------------------------------------------------------------

#[test]
fn the_utc_session_time_zone_holds_through_pgbouncer() {
    let db = fresh_database(true);
    let bouncer = start_bouncer();
    let pool = todo_store::connect(&bouncer_config(&bouncer, &db).pool_size(2)).unwrap();
    let mut conn = checkout(&pool).unwrap();
    let user = fixtures::user(&mut conn);
    // Two open tasks due today in UTC, at its first and last minute: "due today" counts
    // both only when the session's day is the UTC day.
    let today = Utc::now().date_naive();
    let midnight = Utc.from_utc_datetime(&today.and_hms_opt(0, 0, 30).unwrap());
    let late = Utc.from_utc_datetime(&today.and_hms_opt(23, 59, 30).unwrap());
    let due = (Utc::now() + chrono::Duration::hours(30)).trunc_subsecs(6);
    for at in [midnight, late] {
        TaskRepo::create(&mut conn, user.id, &NewTask::new("today").due_date(at)).unwrap();
    }
    let task = TaskRepo::create(&mut conn, user.id, &NewTask::new("later").due_date(due)).unwrap();
    drop(conn);

    // Another client of the same database and role sets a far-away time zone for its
    // session: PgBouncer must keep it on that client only.
    let mut other = PgConnection::establish(&bouncer.url("postgres", &db)).unwrap();
    other.set_prepared_statement_cache_size(CacheSize::Disabled);
    other
        .batch_execute("SET TIME ZONE 'Pacific/Kiritimati'")
        .unwrap();

    let stop = std::sync::atomic::AtomicBool::new(false);
    let ((other_zones, other_pids), mine) = std::thread::scope(|s| {
        let other_thread = s.spawn(|| {
            let mut zones = BTreeSet::new();
            let mut pids = BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                let (pid, zone): (i32, String) = diesel::select(sql::<(Integer, Text)>(
                    "pg_backend_pid(), current_setting('TimeZone')",
                ))
                .get_result(&mut other)
                .unwrap();
                zones.insert(zone);
                pids.insert(pid);
            }
            (zones, pids)
        });
        let mine: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut conn = checkout(&pool).unwrap();
                    let mut seen = Vec::new();
                    for _ in 0..25 {
                        let (pid, zone, now): (i32, String, String) =
                            diesel::select(sql::<(Integer, Text, Text)>(
                                "pg_backend_pid(), current_setting('TimeZone'), now()::text",
                            ))
                            .get_result(&mut conn)
                            .unwrap();
                        let stats = TaskRepo::stats(&mut conn, user.id).unwrap();
                        let got = TaskRepo::get(&mut conn, user.id, task.id).unwrap();
                        let text: String = diesel::select(
                            sql::<Text>("(SELECT due_date::text FROM tasks WHERE id = ")
                                .bind::<diesel::sql_types::Uuid, _>(task.id)
                                .sql(")"),
                        )
                        .get_result(&mut conn)
                        .unwrap();
                        seen.push((pid, zone, now, stats.due_today, got, text));
                    }
                    seen
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        stop.store(true, Ordering::Relaxed);
        (other_thread.join().unwrap(), mine)
    });
    assert_eq!(
        other_zones,
        BTreeSet::from(["Pacific/Kiritimati".to_owned()])
    );
    // The far-away session really ran on the same server connections as ours.
    let my_pids: BTreeSet<i32> = mine.iter().map(|m| m.0).collect();
    assert!(
        !other_pids.is_disjoint(&my_pids),
        "no shared server connection: {other_pids:?} vs {my_pids:?}"
    );
    let day_changed = Utc::now().date_naive() != today;
    for (pid, zone, now, due_today, got, text) in &mine {
        assert_eq!(zone, "UTC", "server pid {pid}");
        assert!(now.ends_with("+00"), "now() = {now} on server pid {pid}");
        if !day_changed {
            assert_eq!(*due_today, 2, "server pid {pid}");
        }
        assert_eq!(got.due_date, Some(due));
        // Rendered by the server in the session's time zone: UTC, the same instant.
        assert!(text.ends_with("+00"), "{text}");
        let parsed = chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z").unwrap();
        assert_eq!(parsed, due, "{text}");
    }
}
