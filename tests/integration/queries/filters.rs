//! Filters: completion, priorities, due and creation bounds, and their combinations.

use std::collections::HashSet;

use todo_store::testing::TestDb;

use super::*;

/// `query` (default order) selects exactly the tasks `keep` selects, newest first, at
/// every page size, and count_matching agrees. The selection must be a proper, non-empty
/// subset so the filter is really exercised.
#[track_caller]
fn assert_filter(
    conn: &mut PgConnection,
    fx: &Fixture,
    query: TaskQuery,
    keep: impl Fn(&Task) -> bool,
) {
    let expected = fx.expected(&keep, TaskSort::CreatedAt, Direction::Desc);
    assert!(
        !expected.is_empty() && expected.len() < fx.tasks.len(),
        "the fixture should exercise {query:?}"
    );
    assert_selects(conn, fx, query, &expected);
}

#[test]
fn completed_filter_selects_done_or_open_tasks() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    assert_filter(&mut conn, &fx, TaskQuery::new().completed(true), |t| {
        t.completed
    });
    assert_filter(&mut conn, &fx, TaskQuery::new().completed(false), |t| {
        !t.completed
    });
}

#[test]
fn priority_filter_selects_one_priority() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    for p in Priority::ALL {
        assert_filter(&mut conn, &fx, TaskQuery::new().priority(p), |t| {
            t.priority == p
        });
    }
}

#[test]
fn several_priorities_select_any_of_them() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let q = TaskQuery::new()
        .priority(Priority::High)
        .priority(Priority::Low);
    assert_filter(&mut conn, &fx, q, |t| t.priority != Priority::Medium);
    let q = TaskQuery::new()
        .priority(Priority::Medium)
        .priority(Priority::Medium);
    assert_filter(&mut conn, &fx, q, |t| t.priority == Priority::Medium);
    let all = TaskQuery::new()
        .priority(Priority::Low)
        .priority(Priority::Medium)
        .priority(Priority::High);
    let expected = fx.expected(|_| true, TaskSort::CreatedAt, Direction::Desc);
    assert_selects(&mut conn, &fx, all, &expected);
}

#[test]
fn due_before_is_a_strict_upper_bound_and_skips_undated_tasks() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    // Two tasks are due exactly at t0 - 3 days: a strict bound leaves them out.
    let at = fx.t0 - Duration::days(3);
    assert_filter(&mut conn, &fx, TaskQuery::new().due_before(at), |t| {
        t.due_date.is_some_and(|d| d < at)
    });
    let just_after = at + Duration::microseconds(1);
    assert_filter(
        &mut conn,
        &fx,
        TaskQuery::new().due_before(just_after),
        |t| t.due_date.is_some_and(|d| d <= at),
    );
    let far = fx.t0 + Duration::days(1000);
    assert_filter(&mut conn, &fx, TaskQuery::new().due_before(far), |t| {
        t.due_date.is_some()
    });
}

#[test]
fn due_after_is_a_strict_lower_bound_and_skips_undated_tasks() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let at = fx.t0 + Duration::days(5);
    assert_filter(&mut conn, &fx, TaskQuery::new().due_after(at), |t| {
        t.due_date.is_some_and(|d| d > at)
    });
    let just_before = at - Duration::microseconds(1);
    assert_filter(
        &mut conn,
        &fx,
        TaskQuery::new().due_after(just_before),
        |t| t.due_date.is_some_and(|d| d >= at),
    );
    let long_ago = fx.t0 - Duration::days(1000);
    assert_filter(&mut conn, &fx, TaskQuery::new().due_after(long_ago), |t| {
        t.due_date.is_some()
    });
    // A window between two bounds.
    let (from, to) = (fx.t0 - Duration::days(3), fx.t0 + Duration::days(5));
    assert_filter(
        &mut conn,
        &fx,
        TaskQuery::new().due_after(from).due_before(to),
        |t| t.due_date.is_some_and(|d| d > from && d < to),
    );
}

#[test]
fn overdue_means_past_due_and_open() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let now = Utc::now();
    let overdue = |t: &Task| !t.completed && t.due_date.is_some_and(|d| d < now);
    assert_filter(&mut conn, &fx, TaskQuery::new().overdue(), overdue);
    // Past-due but completed tasks exist in the fixture and are left out.
    assert!(fx
        .tasks
        .iter()
        .any(|t| t.completed && t.due_date.is_some_and(|d| d < now)));
    assert_eq!(
        fx.expected(overdue, TaskSort::CreatedAt, Direction::Desc)
            .iter()
            .map(|t| t.title.as_str())
            .collect::<Vec<_>>(),
        ["charlie delta", "ALPHA", "Buy milk"]
    );
}

#[test]
fn created_before_and_after_are_strict_bounds() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let (b1, b2, b3) = (fx.batches[0], fx.batches[1], fx.batches[2]);
    assert_filter(&mut conn, &fx, TaskQuery::new().created_before(b2), |t| {
        t.created_at == b1
    });
    assert_filter(&mut conn, &fx, TaskQuery::new().created_after(b2), |t| {
        t.created_at > b2
    });
    assert_filter(
        &mut conn,
        &fx,
        TaskQuery::new().created_after(b1).created_before(b3),
        |t| t.created_at == b2,
    );
    let q = TaskQuery::new().created_after(b2).created_before(b2);
    assert_selects(&mut conn, &fx, q, &[]);
    let q = TaskQuery::new().created_before(b2 + Duration::microseconds(1));
    assert_filter(&mut conn, &fx, q, |t| t.created_at <= b2);
}

/// Bounds finer than a microsecond (`Utc::now()` has nanoseconds) stay strict: a row at
/// a whole microsecond `t` is before `t + 1ns` and after `t - 1ns`, on both sides of
/// PostgreSQL's epoch (2000-01-01), toward which a bound sent as given would be cut.
#[test]
fn time_bounds_below_a_microsecond_are_strict() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let ns = Duration::nanoseconds(1);
    for due in [
        DateTime::from_timestamp_micros(1_900_000_000_123_456).unwrap(),
        DateTime::from_timestamp_micros(-900_000_000_654_321).unwrap(),
    ] {
        let task =
            TaskRepo::create(&mut conn, user.id, &NewTask::new("bounded").due_date(due)).unwrap();
        let found = |conn: &mut PgConnection, q: TaskQuery| {
            TaskRepo::list(conn, user.id, &q.limit(500))
                .unwrap()
                .items
                .iter()
                .any(|t| t.id == task.id)
        };
        let created = task.created_at;
        for (what, query, expected) in [
            (
                "due_before(t + 1ns)",
                TaskQuery::new().due_before(due + ns),
                true,
            ),
            (
                "due_after(t - 1ns)",
                TaskQuery::new().due_after(due - ns),
                true,
            ),
            ("due_before(t)", TaskQuery::new().due_before(due), false),
            ("due_after(t)", TaskQuery::new().due_after(due), false),
            (
                "due_before(t - 1ns)",
                TaskQuery::new().due_before(due - ns),
                false,
            ),
            (
                "due_after(t + 1ns)",
                TaskQuery::new().due_after(due + ns),
                false,
            ),
            (
                "created_before(c + 1ns)",
                TaskQuery::new().created_before(created + ns),
                true,
            ),
            (
                "created_after(c - 1ns)",
                TaskQuery::new().created_after(created - ns),
                true,
            ),
            (
                "created_before(c)",
                TaskQuery::new().created_before(created),
                false,
            ),
            (
                "created_after(c + 1ns)",
                TaskQuery::new().created_after(created + ns),
                false,
            ),
        ] {
            let count = TaskRepo::count_matching(&mut conn, user.id, &query).unwrap();
            assert_eq!(found(&mut conn, query), expected, "{what} with t = {due}");
            assert_eq!(count > 0, expected, "count_matching {what} with t = {due}");
        }
        TaskRepo::delete(&mut conn, user.id, task.id).unwrap();
    }
}

#[test]
fn filters_combine_with_and() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let t0 = fx.t0;
    let q = TaskQuery::new().completed(false).priority(Priority::High);
    assert_filter(&mut conn, &fx, q, |t| {
        !t.completed && t.priority == Priority::High
    });
    let q = TaskQuery::new()
        .completed(false)
        .priority(Priority::Low)
        .priority(Priority::Medium)
        .due_before(t0 + Duration::days(10));
    assert_filter(&mut conn, &fx, q, |t| {
        !t.completed
            && t.priority != Priority::High
            && t.due_date.is_some_and(|d| d < t0 + Duration::days(10))
    });
    let q = TaskQuery::new().overdue().priority(Priority::High);
    assert_filter(&mut conn, &fx, q, |t| {
        !t.completed && t.priority == Priority::High && t.due_date.is_some_and(|d| d < t0)
    });
    let b2 = fx.batches[1];
    let q = TaskQuery::new()
        .created_after(fx.batches[0])
        .due_after(t0 - Duration::days(5))
        .search("alpha");
    assert_filter(&mut conn, &fx, q, |t| {
        t.created_at >= b2
            && t.due_date.is_some_and(|d| d > t0 - Duration::days(5))
            && has_word(t, "alpha")
    });
    // Contradictory filters select nothing.
    let q = TaskQuery::new().overdue().completed(true);
    assert_selects(&mut conn, &fx, q, &[]);
}

#[test]
fn filters_never_see_other_users_tasks() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let mine: HashSet<TaskId> = fx.tasks.iter().map(|t| t.id).collect();
    let theirs: HashSet<TaskId> = fx.others.iter().map(|t| t.id).collect();
    let queries = [
        TaskQuery::new(),
        TaskQuery::new().search("alpha"),
        TaskQuery::new().completed(true),
        TaskQuery::new().priority(Priority::High),
        TaskQuery::new().overdue(),
    ];
    for q in queries {
        for sort in SORTS {
            for dir in DIRECTIONS {
                let q = q.clone().sort(sort, dir);
                for t in walk(&mut conn, fx.user.id, &q, 2) {
                    assert!(
                        mine.contains(&t.id),
                        "{q:?} returned another user's task {t:?}"
                    );
                }
                for t in walk(&mut conn, fx.other.id, &q, 2) {
                    assert!(
                        theirs.contains(&t.id),
                        "{q:?} returned another user's task {t:?}"
                    );
                }
            }
        }
    }
}
