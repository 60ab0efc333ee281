//! The server process behind a connection: its pid, ending it, what it has prepared.

use std::time::{Duration, Instant};

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};

/// The pid of the server process serving `conn`.
pub fn backend_pid(conn: &mut PgConnection) -> i32 {
    try_backend_pid(conn).expect("backend pid")
}

/// As [`backend_pid`], for callers that report a failure instead of panicking (through
/// PgBouncer, where the statement may fail like any other).
pub fn try_backend_pid(conn: &mut PgConnection) -> QueryResult<i32> {
    diesel::select(sql::<Integer>("pg_backend_pid()")).get_result(conn)
}

/// Terminates backend `pid` from a connection of its own (to `url`) and waits until it
/// is gone, so that what the test does next meets a dead connection, not a dying one.
pub fn terminate(url: &str, pid: i32) {
    let mut other = PgConnection::establish(url).expect("a second connection");
    diesel::select(sql::<diesel::sql_types::Bool>(&format!(
        "pg_terminate_backend({pid})"
    )))
    .get_result::<bool>(&mut other)
    .expect("pg_terminate_backend");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive: i64 = diesel::select(sql::<BigInt>(&format!(
            "(SELECT count(*) FROM pg_stat_activity WHERE pid = {pid})"
        )))
        .get_result(&mut other)
        .expect("pg_stat_activity");
        if alive == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "backend {pid} did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[derive(QueryableByName)]
struct Prepared {
    #[diesel(sql_type = Text)]
    statement: String,
}

/// The statements prepared on `conn`'s session, as their SQL.
pub fn prepared_statements(conn: &mut PgConnection) -> Vec<String> {
    diesel::sql_query("SELECT statement FROM pg_prepared_statements")
        .load::<Prepared>(conn)
        .unwrap()
        .into_iter()
        .map(|p| p.statement)
        .collect()
}

/// Runs `calls` on `conn` twice: after the first run some prepared statement contains
/// each of `needles`; the second run prepares nothing more (each statement was
/// prepared once and reused).
pub fn assert_prepared_once(
    conn: &mut PgConnection,
    mut calls: impl FnMut(&mut PgConnection),
    needles: &[&str],
) {
    calls(conn);
    let first = prepared_statements(conn);
    for needle in needles {
        assert!(
            first.iter().any(|s| s.contains(needle)),
            "no prepared statement contains {needle:?}: {first:#?}"
        );
    }
    calls(conn);
    assert_eq!(
        prepared_statements(conn).len(),
        first.len(),
        "nothing prepared again"
    );
}
