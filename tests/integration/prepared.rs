//! The hot statements are prepared once per connection and reused, not parsed and
//! planned on every call (diesel does not cache its own UPDATEs or `sql` literals).

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use todo_store::testing::TestDb;
use todo_store::{Direction, Priority, TaskPatch, TaskQuery, TaskRepo, TaskSort};

use crate::support::backend::{assert_prepared_once, prepared_statements};
use crate::support::fixtures;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[test]
fn list_count_stats_and_update_are_prepared_once_and_reused() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let task = fixtures::task(&mut conn, &user, "prepare me");
    let shapes = [
        TaskQuery::new().completed(false),
        TaskQuery::new()
            .search("prepare")
            .sort(TaskSort::Relevance, Direction::Desc),
        TaskQuery::new()
            .priority(Priority::High)
            .sort(TaskSort::DueDate, Direction::Asc),
    ];
    let run = |conn: &mut PgConnection| {
        for query in &shapes {
            TaskRepo::list(conn, user.id, query).unwrap();
            TaskRepo::count_matching(conn, user.id, query).unwrap();
        }
        TaskRepo::stats(conn, user.id).unwrap();
        let patch = TaskPatch {
            title: Some("prepared".into()),
            ..Default::default()
        };
        TaskRepo::update(conn, user.id, task.id, &patch).unwrap();
        // Twice: the second finds the task done and reads it (a statement of its own).
        TaskRepo::set_completed(conn, user.id, task.id, true).unwrap();
        TaskRepo::set_completed(conn, user.id, task.id, true).unwrap();
    };
    run(&mut conn);
    let first = prepared_statements(&mut conn);
    for needle in [
        "ORDER BY created_at DESC",
        "ts_rank_cd",
        "due_date ASC NULLS LAST",
        "count(*) FILTER",
        "UPDATE tasks SET",
    ] {
        assert!(
            first.iter().any(|s| s.contains(needle)),
            "no prepared statement contains {needle:?}: {first:#?}"
        );
    }
    // The same calls again prepare nothing new (sql_query, used to look, is never
    // prepared itself).
    run(&mut conn);
    let n: i64 = diesel::sql_query("SELECT count(*) AS n FROM pg_prepared_statements")
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n;
    assert_eq!(n as usize, first.len(), "the second round prepared again");
}

#[test]
fn stats_in_every_time_zone_share_one_prepared_statement() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    TaskRepo::stats(&mut conn, user.id).unwrap();
    let mut first = prepared_statements(&mut conn);
    first.sort();
    assert!(
        first.iter().any(|s| s.contains("AT TIME ZONE $")),
        "the zone is not a parameter: {first:#?}"
    );
    // The zone is a bind parameter: other zones reuse the statement stats() prepared.
    for zone in ["Europe/Paris", "Asia/Tokyo", "UTC", "America/New_York"] {
        TaskRepo::stats_in_time_zone(&mut conn, user.id, zone).unwrap();
    }
    let mut again = prepared_statements(&mut conn);
    again.sort();
    assert_eq!(again, first);
}

/// Every session call is a statement prepared once per connection: `authenticate` runs
/// on every request, and diesel would parse and plan its own UPDATEs every time.
#[test]
fn session_statements_are_prepared_once_and_reused() {
    use chrono::{Duration, Utc};
    use todo_store::{NewSession, SessionRepo};
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let run = |conn: &mut PgConnection| {
        let (s, token) = SessionRepo::create(
            conn,
            user.id,
            &NewSession::new(Utc::now() + Duration::days(1)),
        )
        .unwrap();
        SessionRepo::authenticate(conn, &token).unwrap().unwrap();
        SessionRepo::touch(conn, user.id, s.id, Utc::now() + Duration::days(2)).unwrap();
        SessionRepo::list(conn, user.id).unwrap();
        SessionRepo::revoke(conn, user.id, s.id).unwrap();
        SessionRepo::revoke_all(conn, user.id).unwrap();
        SessionRepo::purge_expired(conn, 10).unwrap();
    };
    assert_prepared_once(
        &mut conn,
        run,
        &[
            "INSERT INTO \"sessions\"",
            "INNER JOIN \"users\"",
            "UPDATE sessions SET expires_at",
            "UPDATE sessions SET revoked_at = coalesce",
            "UPDATE sessions SET revoked_at = statement_timestamp()",
            "DELETE FROM sessions",
        ],
    );
}

/// The searches of a search box are prepared once per connection: the first page and
/// the pages after a cursor share one statement, and so do all search texts.
#[test]
fn search_statements_are_prepared_once_and_reused() {
    use todo_store::{HabitRepo, NewHabit, Schedule, SearchQuery, SearchRepo};
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    for i in 0..3 {
        fixtures::task(&mut conn, &user, &format!("prepare report {i}"));
        HabitRepo::create(
            &mut conn,
            user.id,
            &NewHabit::new(format!("prepare habit {i}"), Schedule::Daily),
        )
        .unwrap();
    }
    let run = |conn: &mut PgConnection| {
        for terms in ["prepare", "report or habit", "\"prepare habit\" -report"] {
            let query = SearchQuery::new(terms).limit(2);
            let mut page = SearchRepo::search(conn, user.id, &query).unwrap();
            while let Some(cursor) = page.next_cursor.take() {
                page = SearchRepo::search(conn, user.id, &query.clone().after(&cursor)).unwrap();
            }
            HabitRepo::search(conn, user.id, terms).unwrap();
        }
    };
    assert_prepared_once(
        &mut conn,
        run,
        &["WITH q AS (SELECT websearch_to_tsquery", "FROM \"habits\""],
    );
    let statements = prepared_statements(&mut conn);
    assert_eq!(
        statements
            .iter()
            .filter(|s| s.contains("WITH q AS (SELECT websearch_to_tsquery"))
            .count(),
        1,
        "{statements:#?}"
    );
}
