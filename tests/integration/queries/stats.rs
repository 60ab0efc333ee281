//! stats: hand-computed numbers per user, following changes.

use std::collections::BTreeMap;

use diesel::sql_types::Timestamptz;
use diesel::{Connection, RunQueryDsl};
use todo_store::testing::TestDb;

use super::*;

/// The server's `now()` and the start of its day (UTC), fixed for a transaction.
fn server_now_and_today(conn: &mut PgConnection) -> (DateTime<Utc>, DateTime<Utc>) {
    diesel::select((
        diesel::dsl::sql::<Timestamptz>("now()"),
        diesel::dsl::sql::<Timestamptz>("date_trunc('day', now())"),
    ))
    .get_result(conn)
    .expect("now()")
}

#[track_caller]
fn assert_stats(
    conn: &mut PgConnection,
    user_id: UserId,
    (total, completed, open, overdue, due_today): (i64, i64, i64, i64, i64),
    (low, medium, high): (i64, i64, i64),
) {
    let stats = TaskRepo::stats(conn, user_id).unwrap();
    assert_eq!(
        (
            stats.total,
            stats.completed,
            stats.open,
            stats.overdue,
            stats.due_today
        ),
        (total, completed, open, overdue, due_today),
        "(total, completed, open, overdue, due_today) of {stats:?}"
    );
    let by_priority: BTreeMap<Priority, i64> = [
        (Priority::Low, low),
        (Priority::Medium, medium),
        (Priority::High, high),
    ]
    .into();
    assert_eq!(stats.by_priority, by_priority);
    for p in Priority::ALL {
        assert_eq!(stats.priority_count(p), by_priority[&p]);
    }
}

#[test]
fn stats_match_hand_computed_numbers_per_user() {
    use Priority::{High, Low, Medium};
    let db = TestDb::new();
    let mut conn = db.conn();
    let ada = fixtures::user(&mut conn);
    let bob = fixtures::user(&mut conn);
    let cy = fixtures::user(&mut conn);
    // "Overdue" is judged by the server's clock at each statement, which moves on
    // while the test runs: the task due "soon" stays ahead of it, and "today" is read
    // once (the test does not run across midnight UTC).
    conn.transaction::<_, Error, _>(|conn| {
        let (now, today) = server_now_and_today(conn);
        let soon = now + Duration::minutes(10);
        let tomorrow = today + Duration::days(1);
        let us = Duration::microseconds(1);
        let long_ago = now - Duration::days(400);
        let t = |p: Priority, due: Option<DateTime<Utc>>, done: bool| {
            let mut new = NewTask::new("t").priority(p).completed(done);
            new.due_date = due;
            new
        };
        TaskRepo::create_many(
            conn,
            ada.id,
            &[
                t(High, Some(today - us), false),   // overdue (yesterday)
                t(Medium, Some(soon), false),       // not yet overdue; today unless near midnight
                t(Low, Some(tomorrow), false),      // neither
                t(Low, Some(tomorrow - us), false), // today (last microsecond)
                t(High, Some(tomorrow - us), true), // done: neither
                t(Medium, Some(long_ago), true),    // done: not overdue
                t(High, Some(long_ago), false),     // overdue
                t(Medium, None, false),             // neither
                t(Low, Some(today), false),         // today, and overdue
                t(Low, None, true),                 // done
            ],
        )?;
        TaskRepo::create_many(
            conn,
            bob.id,
            &[t(High, Some(long_ago), false), t(High, Some(now), true)],
        )?;
        let soon_today = i64::from(soon < tomorrow);
        assert_stats(conn, ada.id, (10, 3, 7, 3, 2 + soon_today), (4, 3, 3));
        assert_stats(conn, bob.id, (2, 1, 1, 1, 0), (0, 0, 2));
        assert_stats(conn, cy.id, (0, 0, 0, 0, 0), (0, 0, 0));
        // The overdue filter and the overdue figure agree.
        assert_eq!(
            TaskRepo::count_matching(conn, ada.id, &TaskQuery::new().overdue())?,
            3
        );
        Ok(())
    })
    .unwrap();
    // A user that does not exist has no tasks.
    assert_stats(&mut conn, Uuid::now_v7().into(), (0, 0, 0, 0, 0), (0, 0, 0));
}

#[test]
fn stats_follow_changes() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let before = TaskRepo::stats(&mut conn, fx.user.id).unwrap();
    assert_eq!(before.total, fx.tasks.len() as i64);
    assert_eq!(
        before.completed,
        fx.tasks.iter().filter(|t| t.completed).count() as i64
    );
    assert_eq!(before.open, before.total - before.completed);
    assert_eq!(before.overdue, 3);
    let open: Vec<TaskId> = fx
        .tasks
        .iter()
        .filter(|t| !t.completed)
        .map(|t| t.id)
        .collect();
    TaskRepo::set_completed_many(&mut conn, fx.user.id, &open, true).unwrap();
    let after = TaskRepo::stats(&mut conn, fx.user.id).unwrap();
    assert_eq!(
        (
            after.total,
            after.completed,
            after.open,
            after.overdue,
            after.due_today
        ),
        (before.total, before.total, 0, 0, 0)
    );
    assert_eq!(after.by_priority, before.by_priority);
    // The other user's figures never moved.
    let theirs = TaskRepo::stats(&mut conn, fx.other.id).unwrap();
    assert_eq!((theirs.total, theirs.completed, theirs.overdue), (5, 2, 1));
}
