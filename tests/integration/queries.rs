//! Task queries against real PostgreSQL : filters, sorts, keyset pagination,
//! cursors, full-text search, count_matching, stats and the bulk operations, plus a
//! property test that random pages concatenate to the filtered, sorted set.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use diesel::sql_types::Timestamptz;
use diesel::{Connection, RunQueryDsl};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use todo_store::testing::TestDb;
use todo_store::{
    Direction, Error, NewTask, PgConnection, Priority, Task, TaskPatch, TaskQuery, TaskRepo,
    TaskSort, User,
};
use uuid::Uuid;

use crate::support::cursor_forge::{forge, version_1_title_cursor, KEY, TITLE_NONCE};
use crate::support::fixtures;

/// Every sort that can be computed in Rust (all but relevance).
const SORTS: [TaskSort; 5] = [
    TaskSort::CreatedAt,
    TaskSort::UpdatedAt,
    TaskSort::DueDate,
    TaskSort::Priority,
    TaskSort::Title,
];
const DIRECTIONS: [Direction; 2] = [Direction::Asc, Direction::Desc];

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The crate's order, computed in Rust: the key in `direction`, ties on id in the same
/// direction; tasks without a due date last in both directions of the due-date sort;
/// titles by the bytes of their UTF-8.
fn compare(sort: TaskSort, direction: Direction, a: &Task, b: &Task) -> Ordering {
    if sort == TaskSort::DueDate {
        match (a.due_date.is_some(), b.due_date.is_some()) {
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
    }
    let key = match sort {
        TaskSort::CreatedAt => a.created_at.cmp(&b.created_at),
        TaskSort::UpdatedAt => a.updated_at.cmp(&b.updated_at),
        TaskSort::DueDate => a.due_date.cmp(&b.due_date),
        TaskSort::Priority => a.priority.cmp(&b.priority),
        TaskSort::Title => a.title.as_bytes().cmp(b.title.as_bytes()),
        other => panic!("{other:?} cannot be computed in Rust"),
    };
    let order = key.then_with(|| a.id.cmp(&b.id));
    match direction {
        Direction::Asc => order,
        Direction::Desc => order.reverse(),
    }
}

/// `tasks` in the crate's order for `sort` and `direction`.
fn sorted(
    tasks: impl IntoIterator<Item = Task>,
    sort: TaskSort,
    direction: Direction,
) -> Vec<Task> {
    let mut tasks: Vec<Task> = tasks.into_iter().collect();
    tasks.sort_by(|a, b| compare(sort, direction, a, b));
    tasks
}

fn ids(tasks: &[Task]) -> Vec<Uuid> {
    tasks.iter().map(|t| t.id).collect()
}

/// A compact listing of tasks for failure messages.
fn show(tasks: &[Task]) -> String {
    tasks
        .iter()
        .map(|t| {
            format!(
                "  {:?} prio={} done={} due={:?} created={} updated={} id=..{}\n",
                t.title,
                t.priority,
                t.completed,
                t.due_date.map(|d| d.to_rfc3339()),
                t.created_at.to_rfc3339(),
                t.updated_at.to_rfc3339(),
                &t.id.simple().to_string()[24..],
            )
        })
        .collect()
}

#[track_caller]
fn assert_same(got: &[Task], expected: &[Task], context: &str) {
    if got != expected {
        panic!(
            "{context}: got {} tasks:\n{}expected {} tasks:\n{}",
            got.len(),
            show(got),
            expected.len(),
            show(expected)
        );
    }
}

/// Asserts a validation error on `field`.
#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(result: todo_store::Result<T>, field: &str) {
    match result {
        Err(Error::Validation { field: ref f, .. }) if f == field => {}
        other => panic!("expected a validation error on {field:?}, got {other:?}"),
    }
}

/// Every page of `query` at `limit` rows a page, concatenated. Checks that each page
/// but the last is full, the last one is not empty unless it is the only one, and the
/// last one has no cursor.
fn walk(conn: &mut PgConnection, user_id: Uuid, query: &TaskQuery, limit: usize) -> Vec<Task> {
    walk_with(conn, user_id, query, limit, true, |_, _| {})
}

/// [`walk`], calling `between(conn, pages_so_far)` before each page after the first.
fn walk_with(
    conn: &mut PgConnection,
    user_id: Uuid,
    query: &TaskQuery,
    limit: usize,
    strict: bool,
    mut between: impl FnMut(&mut PgConnection, usize),
) -> Vec<Task> {
    let query = query.clone().limit(limit);
    let mut all = Vec::new();
    let mut page = TaskRepo::list(conn, user_id, &query)
        .unwrap_or_else(|e| panic!("first page of {query:?}: {e:?}"));
    for n in 1.. {
        assert!(n <= 100_000, "the walk does not end: {query:?}");
        let next = page.next_cursor.take();
        match next {
            Some(_) => assert_eq!(
                page.items.len(),
                limit,
                "a page with a cursor is full: {query:?}"
            ),
            None => assert!(page.items.len() <= limit),
        }
        if strict && n > 1 {
            assert!(
                !page.items.is_empty(),
                "a cursor led to an empty page: {query:?}"
            );
        }
        all.append(&mut page.items);
        let Some(cursor) = next else { break };
        between(conn, n);
        page = TaskRepo::list(conn, user_id, &query.clone().after(&cursor))
            .unwrap_or_else(|e| panic!("page {} of {query:?}: {e:?}", n + 1));
    }
    all
}

/// The server's `now()` and the start of its day (UTC), fixed for a transaction.
fn server_now_and_today(conn: &mut PgConnection) -> (DateTime<Utc>, DateTime<Utc>) {
    diesel::select((
        diesel::dsl::sql::<Timestamptz>("now()"),
        diesel::dsl::sql::<Timestamptz>("date_trunc('day', now())"),
    ))
    .get_result(conn)
    .expect("now()")
}

/// Lowercased words of a task's title and description.
fn words(task: &Task) -> Vec<String> {
    let text = format!(
        "{} {}",
        task.title,
        task.description.as_deref().unwrap_or("")
    );
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn has_word(task: &Task, word: &str) -> bool {
    words(task).iter().any(|w| w == word)
}

/// Micro-second precision, as PostgreSQL stores it.
fn now_micros() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

// ---------------------------------------------------------------------------------------
// The fixture of the filter, sort and search tests
// ---------------------------------------------------------------------------------------

/// One user's tasks made in three `create_many` calls (created_at ties within each),
/// then two single creates, then a few updates; and another user with tasks of their own
/// (some without due date) that must never show up.
struct Fixture {
    user: User,
    other: User,
    /// The user's tasks as stored now.
    tasks: Vec<Task>,
    /// The other user's tasks.
    others: Vec<Task>,
    /// created_at of each create_many call.
    batches: Vec<DateTime<Utc>>,
    /// A reference instant: due dates are whole days around it.
    t0: DateTime<Utc>,
}

fn fixture(conn: &mut PgConnection) -> Fixture {
    use Priority::{High, Low, Medium};
    let user = fixtures::user(conn);
    let other = fixtures::user(conn);
    let t0 = now_micros();
    let day = |n: i64| t0 + Duration::days(n);
    let task =
        |title: &str, desc: Option<&str>, priority: Priority, due: Option<i64>, done: bool| {
            let mut new = NewTask::new(title).priority(priority).completed(done);
            new.description = desc.map(str::to_owned);
            new.due_date = due.map(day);
            new
        };
    let batches_in = [
        vec![
            task(
                "Buy milk",
                Some("two litres, semi-skimmed"),
                High,
                Some(-3),
                false,
            ),
            task("buy eggs", None, Low, Some(2), false),
            task("Call mom", None, Medium, None, true),
            task("Écrire le rapport", None, High, Some(-10), true),
            task(
                "alpha report",
                Some("quarterly alpha numbers"),
                Medium,
                Some(5),
                false,
            ),
        ],
        vec![
            task("Zebra crossing", None, Low, None, false),
            task("Alpha", None, High, Some(5), true),
            task("ALPHA", None, Low, Some(-3), false),
            task(
                "run the tests",
                Some("running late"),
                Medium,
                Some(1),
                false,
            ),
            task("bravo", Some("alpha bravo charlie"), Medium, None, false),
        ],
        vec![
            task("日本 trip", None, Medium, Some(30), false),
            task("😀 party", None, High, None, false),
            task("b", None, Low, Some(-1), true),
            task("a b", None, Medium, Some(1), false),
            task("Alpha", None, Medium, None, false),
        ],
    ];
    let mut tasks = Vec::new();
    let mut batches = Vec::new();
    for batch in &batches_in {
        let created = TaskRepo::create_many(conn, user.id, batch).expect("create_many");
        batches.push(created[0].created_at);
        tasks.extend(created);
    }
    for new in [
        task("charlie delta", None, High, Some(-20), false),
        task("Zebra crossing", None, Low, None, true),
    ] {
        tasks.push(TaskRepo::create(conn, user.id, &new).expect("create"));
    }
    // Updates move updated_at (and make completed/description differ from creation).
    TaskRepo::set_completed(conn, user.id, tasks[1].id, true).unwrap();
    let patch = TaskPatch {
        description: Some(Some("striped".into())),
        ..Default::default()
    };
    TaskRepo::update(conn, user.id, tasks[5].id, &patch).unwrap();
    let tasks: Vec<Task> = tasks
        .iter()
        .map(|t| TaskRepo::get(conn, user.id, t.id).unwrap())
        .collect();

    let others = TaskRepo::create_many(
        conn,
        other.id,
        &[
            task("Alpha", Some("alpha"), High, None, false),
            task("other undated", None, Low, None, false),
            task("other dated", None, Medium, Some(-1), false),
            task("zzz", None, High, Some(2), true),
            task("aaa", None, Low, None, true),
        ],
    )
    .unwrap();
    Fixture {
        user,
        other,
        tasks,
        others,
        batches,
        t0,
    }
}

impl Fixture {
    /// The user's tasks that `keep` selects, in the order of `sort` and `direction`.
    fn expected(
        &self,
        keep: impl Fn(&Task) -> bool,
        sort: TaskSort,
        direction: Direction,
    ) -> Vec<Task> {
        sorted(
            self.tasks.iter().filter(|t| keep(t)).cloned(),
            sort,
            direction,
        )
    }
}

/// Which of the fixture's tasks a query should select.
type Keep = fn(&Task) -> bool;

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

#[track_caller]
fn assert_selects(conn: &mut PgConnection, fx: &Fixture, query: TaskQuery, expected: &[Task]) {
    for limit in [1, 3, 50] {
        let got = walk(conn, fx.user.id, &query, limit);
        assert_same(&got, expected, &format!("{query:?} at limit {limit}"));
    }
    let count = TaskRepo::count_matching(conn, fx.user.id, &query).unwrap();
    assert_eq!(count, expected.len() as i64, "count_matching of {query:?}");
}

// ---------------------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------------------

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

/// Two filter sets that a concatenation of their fields without tags or lengths would
/// encode alike (a priority byte, then absent bounds; or four bounds chosen to spell
/// the same bytes): the cursor of one is not accepted by the other.
#[test]
fn a_cursor_of_a_query_with_the_same_field_bytes_is_rejected() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    for _ in 0..2 {
        TaskRepo::create(
            &mut conn,
            user.id,
            &NewTask::new("apple pie").priority(Priority::Low),
        )
        .unwrap();
    }
    let far = |micros: i64| DateTime::from_timestamp_micros(micros).unwrap();
    let first = TaskQuery::new()
        .priority(Priority::Low)
        .search("apple")
        .limit(1);
    let other = TaskQuery::new()
        .due_before(far(0x0A80_0000_0000_0000))
        .due_after(far(0x0080_0000_0000_0000))
        .created_before(far(0x0080_0000_0000_0000))
        .created_after(far(0x0080_0000_0000_0000))
        .search("\0apple")
        .limit(1);
    let cursor = TaskRepo::list(&mut conn, user.id, &first)
        .unwrap()
        .next_cursor
        .expect("a second page");
    assert!(TaskRepo::list(&mut conn, user.id, &first.clone().after(&cursor)).is_ok());
    assert_invalid(
        TaskRepo::list(&mut conn, user.id, &other.after(&cursor)),
        "cursor",
    );
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
    let mine: HashSet<Uuid> = fx.tasks.iter().map(|t| t.id).collect();
    let theirs: HashSet<Uuid> = fx.others.iter().map(|t| t.id).collect();
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

// ---------------------------------------------------------------------------------------
// Sorts
// ---------------------------------------------------------------------------------------

/// Every page size gives the order computed in Rust for `sort`, in both directions.
fn assert_sort(conn: &mut PgConnection, fx: &Fixture, sort: TaskSort) {
    for dir in DIRECTIONS {
        let expected = fx.expected(|_| true, sort, dir);
        for limit in [1, 2, 5, 500] {
            let got = walk(conn, fx.user.id, &TaskQuery::new().sort(sort, dir), limit);
            assert_same(
                &got,
                &expected,
                &format!("{sort:?} {dir:?} at limit {limit}"),
            );
        }
    }
    // Desc is exactly Asc reversed (the order is total), except that undated tasks stay
    // last: for them too, Desc is Asc reversed.
    let asc = walk(
        conn,
        fx.user.id,
        &TaskQuery::new().sort(sort, Direction::Asc),
        500,
    );
    let desc = walk(
        conn,
        fx.user.id,
        &TaskQuery::new().sort(sort, Direction::Desc),
        500,
    );
    let (mut dated, mut undated): (Vec<Task>, Vec<Task>) = if sort == TaskSort::DueDate {
        asc.into_iter().partition(|t| t.due_date.is_some())
    } else {
        (asc, Vec::new())
    };
    dated.reverse();
    undated.reverse();
    dated.extend(undated);
    assert_eq!(ids(&dated), ids(&desc), "{sort:?}: Desc is Asc reversed");
}

#[test]
fn created_at_sort_in_both_directions_breaks_ties_by_id() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    assert!(
        fx.tasks
            .iter()
            .filter(|t| t.created_at == fx.batches[0])
            .count()
            > 1
    );
    assert_sort(&mut conn, &fx, TaskSort::CreatedAt);
}

#[test]
fn updated_at_sort_in_both_directions_breaks_ties_by_id() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let newest = fx.tasks.iter().max_by_key(|t| t.updated_at).unwrap();
    assert_eq!(
        newest.id, fx.tasks[5].id,
        "the last update moved updated_at"
    );
    assert_sort(&mut conn, &fx, TaskSort::UpdatedAt);
}

#[test]
fn due_date_sort_puts_undated_tasks_last_in_both_directions() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    assert_sort(&mut conn, &fx, TaskSort::DueDate);
    let undated = fx.tasks.iter().filter(|t| t.due_date.is_none()).count();
    for dir in DIRECTIONS {
        let got = walk(
            &mut conn,
            fx.user.id,
            &TaskQuery::new().sort(TaskSort::DueDate, dir),
            3,
        );
        let (dated, rest) = got.split_at(got.len() - undated);
        assert!(dated.iter().all(|t| t.due_date.is_some()), "{dir:?}");
        assert!(
            rest.iter().all(|t| t.due_date.is_none()),
            "{dir:?}: undated last"
        );
    }
}

#[test]
fn due_date_paging_never_leaks_other_users_undated_tasks() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    for dir in DIRECTIONS {
        for limit in [1, 4] {
            let q = TaskQuery::new()
                .sort(TaskSort::DueDate, dir)
                .completed(false);
            let got = walk(&mut conn, fx.user.id, &q, limit);
            let expected = fx.expected(|t| !t.completed, TaskSort::DueDate, dir);
            assert_same(&got, &expected, &format!("{q:?} at limit {limit}"));
        }
    }
}

#[test]
fn priority_sort_orders_low_medium_high_and_breaks_ties_by_id() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    assert_sort(&mut conn, &fx, TaskSort::Priority);
    let asc = walk(
        &mut conn,
        fx.user.id,
        &TaskQuery::new().sort(TaskSort::Priority, Direction::Asc),
        4,
    );
    let first_medium = asc
        .iter()
        .position(|t| t.priority == Priority::Medium)
        .unwrap();
    let first_high = asc
        .iter()
        .position(|t| t.priority == Priority::High)
        .unwrap();
    assert!(asc[..first_medium]
        .iter()
        .all(|t| t.priority == Priority::Low));
    assert!(asc[first_medium..first_high]
        .iter()
        .all(|t| t.priority == Priority::Medium));
    assert!(asc[first_high..]
        .iter()
        .all(|t| t.priority == Priority::High));
}

#[test]
fn title_sort_is_byte_order() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    assert_sort(&mut conn, &fx, TaskSort::Title);

    // Byte order of UTF-8, whatever the database's collation would say.
    let user = fixtures::user(&mut conn);
    let titles = [
        "b", "B", "a", "é", "e", "z", "Z", "ä", "日本", "😀", "aa", "a b", "a-b", "A", "_x", "1",
    ];
    let news: Vec<_> = titles.iter().map(|t| NewTask::new(*t)).collect();
    TaskRepo::create_many(&mut conn, user.id, &news).unwrap();
    let mut expected: Vec<&str> = titles.to_vec();
    expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for limit in [1, 3, 100] {
        let got = walk(
            &mut conn,
            user.id,
            &TaskQuery::new().sort(TaskSort::Title, Direction::Asc),
            limit,
        );
        let got: Vec<&str> = got.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(got, expected, "limit {limit}");
        let got = walk(
            &mut conn,
            user.id,
            &TaskQuery::new().sort(TaskSort::Title, Direction::Desc),
            limit,
        );
        let got: Vec<&str> = got.iter().map(|t| t.title.as_str()).rev().collect();
        assert_eq!(got, expected, "Desc at limit {limit}");
    }
}

#[test]
fn default_order_is_newest_first() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let expected = fx.expected(|_| true, TaskSort::CreatedAt, Direction::Desc);
    let page = TaskRepo::list(&mut conn, fx.user.id, &TaskQuery::new()).unwrap();
    assert_same(&page.items, &expected, "default order");
    assert_eq!(page.next_cursor, None);
    let explicit = TaskQuery::new().sort(TaskSort::CreatedAt, Direction::Desc);
    assert_eq!(TaskQuery::new(), explicit);
    assert_eq!(TaskQuery::default(), explicit);
    // The two single creates come last, so they are first.
    assert_eq!(page.items[0].title, "Zebra crossing");
    assert_eq!(page.items[1].title, "charlie delta");
}

#[test]
fn relevance_sort_puts_best_matches_first() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    // Title words weigh more than description words: title+description > title only >
    // description only. Tasks within a group rank the same and tie on id.
    let both = NewTask::new("alpha").description("alpha");
    let title_only = NewTask::new("alpha plan");
    let description_only = NewTask::new("plan").description("alpha");
    let news = [
        description_only.clone(),
        title_only.clone(),
        both.clone(),
        NewTask::new("bravo").description("charlie"),
        title_only.clone(),
        description_only,
        both,
        title_only,
    ];
    let created = TaskRepo::create_many(&mut conn, user.id, &news).unwrap();
    let group = |t: &Task| match (
        t.title.contains("alpha"),
        t.description.as_deref() == Some("alpha"),
    ) {
        (true, true) => 0,
        (true, false) => 1,
        (false, true) => 2,
        (false, false) => 3,
    };
    let mut best_first: Vec<Task> = created.iter().filter(|t| group(t) < 3).cloned().collect();
    best_first.sort_by(|a, b| group(a).cmp(&group(b)).then(b.id.cmp(&a.id)));
    let mut worst_first = best_first.clone();
    worst_first.sort_by(|a, b| group(b).cmp(&group(a)).then(a.id.cmp(&b.id)));
    for limit in [1, 2, 3, 50] {
        let q = TaskQuery::new()
            .search("alpha")
            .sort(TaskSort::Relevance, Direction::Desc);
        assert_same(
            &walk(&mut conn, user.id, &q, limit),
            &best_first,
            &format!("Desc, limit {limit}"),
        );
        let q = TaskQuery::new()
            .search("alpha")
            .sort(TaskSort::Relevance, Direction::Asc);
        assert_same(
            &walk(&mut conn, user.id, &q, limit),
            &worst_first,
            &format!("Asc, limit {limit}"),
        );
    }
}

#[test]
fn relevance_sort_without_search_is_invalid() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    fixtures::task(&mut conn, &user, "alpha");
    for dir in DIRECTIONS {
        let q = TaskQuery::new().sort(TaskSort::Relevance, dir);
        assert_invalid(TaskRepo::list(&mut conn, user.id, &q), "sort");
        // A blank search is no search.
        let q = TaskQuery::new()
            .search("  \t ")
            .sort(TaskSort::Relevance, dir);
        assert_invalid(TaskRepo::list(&mut conn, user.id, &q), "sort");
    }
}

// ---------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------

#[test]
fn limit_0_and_501_are_invalid() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    for limit in [0i64, 501, -1, i64::MIN, i64::MAX] {
        assert_invalid(
            TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(limit)),
            "limit",
        );
    }
    // Values that do not fit an i64 are invalid too, not truncated.
    assert_invalid(
        TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(u64::MAX)),
        "limit",
    );
    assert_invalid(
        TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(0u8)),
        "limit",
    );
}

#[test]
fn limit_1_and_500_are_accepted_and_the_default_is_50() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let news: Vec<_> = (0..501)
        .map(|i| NewTask::new(format!("task {i:03}")))
        .collect();
    let created = TaskRepo::create_many(&mut conn, user.id, &news).unwrap();
    let newest_first = sorted(created, TaskSort::CreatedAt, Direction::Desc);

    let one = TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(1)).unwrap();
    assert_same(&one.items, &newest_first[..1], "limit 1");
    assert!(one.next_cursor.is_some());

    let five_hundred = TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(500u16)).unwrap();
    assert_same(&five_hundred.items, &newest_first[..500], "limit 500");
    let rest = TaskQuery::new()
        .limit(500)
        .after(five_hundred.next_cursor.as_deref().unwrap());
    let last = TaskRepo::list(&mut conn, user.id, &rest).unwrap();
    assert_same(&last.items, &newest_first[500..], "after 500");
    assert_eq!(last.next_cursor, None);

    let default = TaskRepo::list(&mut conn, user.id, &TaskQuery::new()).unwrap();
    assert_same(&default.items, &newest_first[..50], "default limit");
}

// ---------------------------------------------------------------------------------------
// Keyset pagination
// ---------------------------------------------------------------------------------------

#[test]
fn walking_all_pages_gives_the_full_ordered_set_for_every_sort() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let filters: [(TaskQuery, Keep); 3] = [
        (TaskQuery::new(), |_| true),
        (TaskQuery::new().completed(false), |t| !t.completed),
        (
            TaskQuery::new()
                .priority(Priority::Medium)
                .priority(Priority::High),
            |t| t.priority != Priority::Low,
        ),
    ];
    for (q, keep) in &filters {
        for sort in SORTS {
            for dir in DIRECTIONS {
                let expected = fx.expected(keep, sort, dir);
                for limit in [1, 2, 3, 7, expected.len().max(1), expected.len() + 1] {
                    let q = q.clone().sort(sort, dir);
                    let got = walk(&mut conn, fx.user.id, &q, limit);
                    assert_same(&got, &expected, &format!("{q:?} at limit {limit}"));
                }
            }
        }
    }
}

#[test]
fn the_last_page_has_no_cursor() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    // Empty: one empty page, no cursor.
    let page = TaskRepo::list(&mut conn, user.id, &TaskQuery::new()).unwrap();
    assert!(page.items.is_empty());
    assert_eq!(page.next_cursor, None);

    let news: Vec<_> = (0..6).map(|i| NewTask::new(format!("t{i}"))).collect();
    TaskRepo::create_many(&mut conn, user.id, &news).unwrap();
    // Exactly two full pages: the second is the last and has no cursor.
    let first = TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(3)).unwrap();
    assert_eq!(first.items.len(), 3);
    let cursor = first.next_cursor.expect("a second page");
    let second = TaskRepo::list(
        &mut conn,
        user.id,
        &TaskQuery::new().limit(3).after(&cursor),
    )
    .unwrap();
    assert_eq!(second.items.len(), 3);
    assert_eq!(second.next_cursor, None);
    // One page that holds everything: no cursor.
    let all = TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(6)).unwrap();
    assert_eq!(all.items.len(), 6);
    assert_eq!(all.next_cursor, None);
}

#[test]
fn a_cursor_continues_at_another_limit() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    for sort in SORTS {
        let q = TaskQuery::new().sort(sort, Direction::Asc);
        let expected = fx.expected(|_| true, sort, Direction::Asc);
        let first = TaskRepo::list(&mut conn, fx.user.id, &q.clone().limit(2)).unwrap();
        let cursor = first.next_cursor.unwrap();
        let rest =
            TaskRepo::list(&mut conn, fx.user.id, &q.clone().limit(100).after(&cursor)).unwrap();
        let mut got = first.items;
        got.extend(rest.items);
        assert_same(&got, &expected, &format!("{sort:?}"));
        assert_eq!(rest.next_cursor, None);
    }
}

#[test]
fn paging_is_stable_while_rows_are_inserted_updated_and_deleted() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let t0 = now_micros();
    let titles = [
        "kiwi", "apple", "mango", "banana", "cherry", "fig", "grape", "lemon",
    ];
    // 3 batches of 10: ties on created_at, due dates, priorities and titles.
    for b in 0..3 {
        let news: Vec<_> = (0..10)
            .map(|i: i64| {
                let n = b * 10 + i;
                let mut new = NewTask::new(titles[(n * 5 % 8) as usize])
                    .priority(Priority::ALL[(n % 3) as usize]);
                if n % 4 != 0 {
                    new = new.due_date(t0 + Duration::days(n % 5 - 2));
                }
                new
            })
            .collect();
        TaskRepo::create_many(&mut conn, user.id, &news).unwrap();
    }
    let shapes = [
        (TaskSort::CreatedAt, Direction::Desc),
        (TaskSort::CreatedAt, Direction::Asc),
        (TaskSort::UpdatedAt, Direction::Asc),
        (TaskSort::UpdatedAt, Direction::Desc),
        (TaskSort::DueDate, Direction::Asc),
        (TaskSort::DueDate, Direction::Desc),
        (TaskSort::Priority, Direction::Desc),
        (TaskSort::Priority, Direction::Asc),
        (TaskSort::Title, Direction::Asc),
        (TaskSort::Title, Direction::Desc),
    ];
    let mut inserted = 0;
    for (sort, dir) in shapes {
        let q = TaskQuery::new().sort(sort, dir);
        let before = walk(&mut conn, user.id, &q, 500);
        let mut deleted: HashSet<Uuid> = HashSet::new();
        let got = walk_with(&mut conn, user.id, &q, 4, false, |conn, page| {
            // Insert rows whose keys land everywhere in the order.
            let news: Vec<_> = (0..2)
                .map(|i| {
                    inserted += 1;
                    NewTask::new(titles[(inserted + i) % 8])
                        .priority(Priority::ALL[inserted % 3])
                        .due_date(t0 + Duration::days((inserted % 5) as i64 - 2))
                })
                .collect();
            TaskRepo::create_many(conn, user.id, &news).unwrap();
            // Update fields that are not the sort key (any update moves updated_at).
            if sort != TaskSort::UpdatedAt {
                let target = &before[(page * 7 + 3) % before.len()];
                if !deleted.contains(&target.id) {
                    let patch = if sort == TaskSort::Title {
                        TaskPatch {
                            priority: Some(Priority::ALL[page % 3]),
                            completed: Some(page % 2 == 0),
                            ..Default::default()
                        }
                    } else {
                        TaskPatch {
                            description: Some(Some(format!("changed on page {page}"))),
                            completed: Some(page % 2 == 0),
                            ..Default::default()
                        }
                    };
                    TaskRepo::update(conn, user.id, target.id, &patch).unwrap();
                }
            }
            // Delete rows already seen and rows still ahead.
            let victim = before[(page * 5) % before.len()].id;
            if deleted.insert(victim) {
                TaskRepo::delete(conn, user.id, victim).unwrap();
            }
        });
        let got_ids = ids(&got);
        let unique: HashSet<Uuid> = got_ids.iter().copied().collect();
        assert_eq!(
            unique.len(),
            got_ids.len(),
            "{sort:?} {dir:?}: a row appeared twice"
        );
        let survivors: Vec<Uuid> = ids(&before)
            .into_iter()
            .filter(|id| !deleted.contains(id))
            .collect();
        let seen_survivors: Vec<Uuid> = got_ids
            .iter()
            .copied()
            .filter(|id| survivors.contains(id))
            .collect();
        assert_eq!(
            seen_survivors, survivors,
            "{sort:?} {dir:?}: rows present through the whole walk appear once, in order"
        );
        assert!(!deleted.is_empty());
        // Put the deleted rows' count back so the next shape has as many rows to walk.
        let refill: Vec<_> = (0..deleted.len())
            .map(|i| NewTask::new(titles[i % 8]))
            .collect();
        TaskRepo::create_many(&mut conn, user.id, &refill).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Cursors that do not belong to the query
// ---------------------------------------------------------------------------------------

/// A real cursor: the first page of `query` at limit 2.
fn cursor_of(conn: &mut PgConnection, user_id: Uuid, query: &TaskQuery) -> String {
    TaskRepo::list(conn, user_id, &query.clone().limit(2))
        .unwrap()
        .next_cursor
        .expect("a second page")
}

#[test]
fn a_cursor_for_another_sort_or_direction_is_invalid() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let all_shapes: Vec<(TaskSort, Direction, TaskQuery)> = SORTS
        .iter()
        .chain([TaskSort::Relevance].iter())
        .flat_map(|&sort| {
            DIRECTIONS.iter().map(move |&dir| {
                let q = TaskQuery::new().search("alpha").sort(sort, dir);
                (sort, dir, q)
            })
        })
        .collect();
    for (sort, dir, q) in &all_shapes {
        let cursor = cursor_of(&mut conn, fx.user.id, q);
        assert!(TaskRepo::list(&mut conn, fx.user.id, &q.clone().after(&cursor)).is_ok());
        for (other_sort, other_dir, other) in &all_shapes {
            if (sort, dir) != (other_sort, other_dir) {
                let result = TaskRepo::list(&mut conn, fx.user.id, &other.clone().after(&cursor));
                assert_invalid(result, "cursor");
            }
        }
    }
}

#[test]
fn a_cursor_for_other_filters_is_invalid() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let t0 = fx.t0;
    let queries = [
        TaskQuery::new(),
        TaskQuery::new().completed(false),
        TaskQuery::new().completed(true),
        TaskQuery::new().priority(Priority::High),
        TaskQuery::new()
            .priority(Priority::High)
            .priority(Priority::Low),
        TaskQuery::new().due_before(t0 + Duration::days(100)),
        TaskQuery::new().due_before(t0 + Duration::days(101)),
        TaskQuery::new().due_after(t0 - Duration::days(100)),
        TaskQuery::new().overdue(),
        TaskQuery::new().created_before(t0 + Duration::days(1)),
        TaskQuery::new().created_after(t0 - Duration::days(1)),
        TaskQuery::new().search("alpha"),
        TaskQuery::new().search("alpha or bravo"),
    ];
    for (i, q) in queries.iter().enumerate() {
        let Some(cursor) = TaskRepo::list(&mut conn, fx.user.id, &q.clone().limit(1))
            .unwrap()
            .next_cursor
        else {
            panic!("{q:?} should have two pages");
        };
        for (j, other) in queries.iter().enumerate() {
            let result = TaskRepo::list(&mut conn, fx.user.id, &other.clone().after(&cursor));
            if i == j {
                assert!(result.is_ok(), "{q:?}: {result:?}");
            } else {
                assert_invalid(result, "cursor");
            }
        }
        // count_matching ignores the cursor.
        assert!(TaskRepo::count_matching(&mut conn, fx.user.id, &q.clone().after(&cursor)).is_ok());
    }
}

#[test]
fn a_cursor_for_another_user_is_invalid() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    for sort in SORTS {
        let q = TaskQuery::new().sort(sort, Direction::Asc);
        let mine = cursor_of(&mut conn, fx.user.id, &q);
        assert_invalid(
            TaskRepo::list(&mut conn, fx.other.id, &q.clone().after(&mine)),
            "cursor",
        );
        let theirs = cursor_of(&mut conn, fx.other.id, &q);
        assert_invalid(
            TaskRepo::list(&mut conn, fx.user.id, &q.clone().after(&theirs)),
            "cursor",
        );
    }
}

#[test]
fn a_truncated_or_tampered_cursor_is_invalid() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for sort in SORTS {
        let q = TaskQuery::new().sort(sort, Direction::Desc);
        let cursor = cursor_of(&mut conn, fx.user.id, &q);
        for cut in 0..cursor.len() {
            let truncated = &cursor[..cut];
            assert_invalid(
                TaskRepo::list(&mut conn, fx.user.id, &q.clone().after(truncated)),
                "cursor",
            );
        }
        let bytes = cursor.as_bytes();
        for (i, &original) in bytes.iter().enumerate() {
            for replacement in [
                alphabet[(i * 7) % 64],
                alphabet[(i * 13 + 5) % 64],
                b'=',
                b'.',
            ] {
                if replacement == original {
                    continue;
                }
                let mut tampered = bytes.to_vec();
                tampered[i] = replacement;
                let tampered = String::from_utf8(tampered).unwrap();
                let result = TaskRepo::list(&mut conn, fx.user.id, &q.clone().after(&tampered));
                assert_invalid(result, "cursor");
            }
        }
        for extra in ["A", "AA", "AAAA", "x", "=="] {
            let longer = format!("{cursor}{extra}");
            assert_invalid(
                TaskRepo::list(&mut conn, fx.user.id, &q.clone().after(&longer)),
                "cursor",
            );
        }
    }
}

#[test]
fn a_garbage_cursor_is_invalid() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let random_bytes =
        URL_SAFE_NO_PAD.encode((0..64u8).map(|i| i.wrapping_mul(37)).collect::<Vec<_>>());
    let garbage = [
        "".to_owned(),
        " ".to_owned(),
        "null".to_owned(),
        "not a cursor".to_owned(),
        "%%%".to_owned(),
        "🙂".to_owned(),
        "\0".to_owned(),
        "'; DROP TABLE tasks; --".to_owned(),
        "A".repeat(10_000),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        random_bytes,
        URL_SAFE_NO_PAD.encode([1u8; 8]),
        URL_SAFE_NO_PAD.encode([0u8; 16]),
    ];
    for sort in SORTS.into_iter().chain([TaskSort::Relevance]) {
        for dir in DIRECTIONS {
            let q = TaskQuery::new().search("alpha").sort(sort, dir);
            for g in &garbage {
                assert_invalid(
                    TaskRepo::list(&mut conn, fx.user.id, &q.clone().after(g)),
                    "cursor",
                );
            }
        }
    }
}

#[test]
fn a_forged_cursor_with_a_valid_checksum_is_invalid_never_a_database_error() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let user = fx.user.id;
    let mut list =
        |q: &TaskQuery, cursor: &str| TaskRepo::list(&mut conn, user, &q.clone().after(cursor));

    let by_created = TaskQuery::new().sort(TaskSort::CreatedAt, Direction::Desc);
    let real = {
        let page = TaskRepo::list(&mut db.conn(), user, &by_created.clone().limit(2)).unwrap();
        page.next_cursor.unwrap()
    };
    // The forging itself is right: an unchanged payload is accepted.
    assert!(list(&by_created, &forge(&real, |_| {})).is_ok());
    // Timestamps PostgreSQL cannot hold (before 4713 BC), or chrono cannot.
    for micros in [
        i64::MIN,
        i64::MAX,
        -210_866_803_200_000_001,
        -8_000_000_000_000_000_000,
    ] {
        let forged = forge(&real, |p| {
            p[KEY..KEY + 8].copy_from_slice(&micros.to_be_bytes())
        });
        assert_invalid(list(&by_created, &forged), "cursor");
    }
    // The earliest instant PostgreSQL holds is a valid key.
    let earliest = forge(&real, |p| {
        p[KEY..KEY + 8].copy_from_slice(&(-210_866_803_200_000_000i64).to_be_bytes())
    });
    assert!(list(&by_created, &earliest).unwrap().items.is_empty());
    // Unknown version, sort or direction bytes; extra or missing bytes.
    assert_invalid(list(&by_created, &forge(&real, |p| p[0] = 99)), "cursor");
    assert_invalid(list(&by_created, &forge(&real, |p| p[1] = 99)), "cursor");
    assert_invalid(list(&by_created, &forge(&real, |p| p[2] = 99)), "cursor");
    assert_invalid(list(&by_created, &forge(&real, |p| p.push(0))), "cursor");
    assert_invalid(
        list(
            &by_created,
            &forge(&real, |p| {
                p.pop();
            }),
        ),
        "cursor",
    );

    // Due dates: the same timestamps, and an unknown presence byte.
    let by_due = TaskQuery::new().sort(TaskSort::DueDate, Direction::Asc);
    let real = cursor_of(&mut db.conn(), user, &by_due);
    assert!(list(&by_due, &forge(&real, |_| {})).is_ok());
    for micros in [i64::MIN, -210_866_803_200_000_001] {
        let forged = forge(&real, |p| {
            p[KEY] = 1;
            p[KEY + 1..KEY + 9].copy_from_slice(&micros.to_be_bytes());
        });
        assert_invalid(list(&by_due, &forged), "cursor");
    }
    assert_invalid(list(&by_due, &forge(&real, |p| p[KEY] = 2)), "cursor");

    // Priorities: an unknown one.
    let by_priority = TaskQuery::new().sort(TaskSort::Priority, Direction::Asc);
    let real = cursor_of(&mut db.conn(), user, &by_priority);
    assert_invalid(list(&by_priority, &forge(&real, |p| p[KEY] = 3)), "cursor");

    // Titles: NUL (which PostgreSQL text cannot hold), invalid UTF-8, a wrong length.
    let by_title = TaskQuery::new().sort(TaskSort::Title, Direction::Asc);
    let real = cursor_of(&mut db.conn(), user, &by_title);
    let with_title = |title: &[u8], declared: u32| {
        forge(&real, |p| {
            let at = KEY + TITLE_NONCE;
            let old_len = u32::from_be_bytes(p[at..at + 4].try_into().unwrap()) as usize;
            let id = p[at + 4 + old_len..].to_vec();
            p.truncate(at);
            p.extend_from_slice(&declared.to_be_bytes());
            p.extend_from_slice(title);
            p.extend_from_slice(&id);
        })
    };
    // The title travels masked (no task text in clear in a URL): any bytes there are
    // a page or Validation (what they unmask to may be NUL or invalid UTF-8), never a
    // database error.
    for bytes in [&b"a b"[..], b"a\0b", b"\xff\xfe", b"", &[0u8; 255]] {
        match list(&by_title, &with_title(bytes, bytes.len() as u32)) {
            Ok(_) | Err(Error::Validation { .. }) => {}
            Err(other) => panic!("{bytes:?}: {other:?}"),
        }
    }
    assert_invalid(list(&by_title, &with_title(b"abc", 4)), "cursor");
    assert_invalid(list(&by_title, &with_title(b"abc", u32::MAX)), "cursor");

    // Relevance: NaN and infinite ranks.
    let by_rank = TaskQuery::new()
        .search("alpha")
        .sort(TaskSort::Relevance, Direction::Desc);
    let real = cursor_of(&mut db.conn(), user, &by_rank);
    for rank in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let forged = forge(&real, |p| {
            p[KEY..KEY + 4].copy_from_slice(&rank.to_bits().to_be_bytes())
        });
        assert_invalid(list(&by_rank, &forged), "cursor");
    }
    let forged = forge(&real, |p| {
        p[KEY..KEY + 4].copy_from_slice(&(-1.5f32).to_bits().to_be_bytes())
    });
    assert!(list(&by_rank, &forged).is_ok());
}

// ---------------------------------------------------------------------------------------
// Full-text search
// ---------------------------------------------------------------------------------------

/// `terms` select exactly the tasks `keep` selects (default order), and count agrees.
#[track_caller]
fn assert_search(conn: &mut PgConnection, fx: &Fixture, terms: &str, keep: impl Fn(&Task) -> bool) {
    let expected = fx.expected(keep, TaskSort::CreatedAt, Direction::Desc);
    assert_selects(conn, fx, TaskQuery::new().search(terms), &expected);
}

#[test]
fn search_finds_words_in_title_and_description() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    // In titles (any case) and in descriptions.
    assert_search(&mut conn, &fx, "alpha", |t| has_word(t, "alpha"));
    assert_search(&mut conn, &fx, "ALPHA", |t| has_word(t, "alpha"));
    let expected_titles = ["Alpha", "bravo", "ALPHA", "Alpha", "alpha report"];
    let got = walk(&mut conn, fx.user.id, &TaskQuery::new().search("alpha"), 50);
    assert_eq!(
        got.iter().map(|t| t.title.as_str()).collect::<Vec<_>>(),
        expected_titles
    );
    // Only in a description.
    assert_search(&mut conn, &fx, "litres", |t| t.title == "Buy milk");
    assert_search(&mut conn, &fx, "striped", |t| {
        t.title == "Zebra crossing" && t.description.is_some()
    });
    // Several words: all must match, in title or description.
    assert_search(&mut conn, &fx, "bravo charlie", |t| t.title == "bravo");
    assert_search(&mut conn, &fx, "milk skimmed", |t| t.title == "Buy milk");
    // Non-ASCII words.
    // (Exact case: whether PostgreSQL folds the case of non-ASCII letters depends on the
    // database's LC_CTYPE; under C it does not.)
    assert_search(&mut conn, &fx, "Écrire", |t| t.title.starts_with("Écrire"));
    assert_search(&mut conn, &fx, "rapport", |t| t.title.starts_with("Écrire"));
    assert_search(&mut conn, &fx, "日本", |t| t.title.starts_with("日本"));
    // No match.
    assert_selects(&mut conn, &fx, TaskQuery::new().search("xylophone"), &[]);
    // Other users' words never match.
    assert_selects(&mut conn, &fx, TaskQuery::new().search("undated"), &[]);
}

#[test]
fn search_stems_words() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let run = |t: &Task| t.title == "run the tests";
    for terms in ["running", "run", "runs", "RUNNING", "test", "testing"] {
        assert_search(&mut conn, &fx, terms, run);
    }
    assert_search(&mut conn, &fx, "calling", |t| t.title == "Call mom");
    assert_search(&mut conn, &fx, "parties", |t| t.title.contains("party"));
}

#[test]
fn search_quoted_phrases_need_adjacent_words_in_order() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    assert_search(&mut conn, &fx, "\"two litres\"", |t| t.title == "Buy milk");
    assert_search(&mut conn, &fx, "\"alpha numbers\"", |t| {
        t.title == "alpha report"
    });
    assert_search(&mut conn, &fx, "\"zebra crossing\"", |t| {
        t.title == "Zebra crossing"
    });
    // Both words present but not adjacent, or not in this order: no match.
    assert_search(&mut conn, &fx, "alpha charlie", |t| t.title == "bravo");
    assert_selects(
        &mut conn,
        &fx,
        TaskQuery::new().search("\"alpha charlie\""),
        &[],
    );
    assert_selects(
        &mut conn,
        &fx,
        TaskQuery::new().search("\"numbers alpha\""),
        &[],
    );
    assert_selects(
        &mut conn,
        &fx,
        TaskQuery::new().search("\"crossing zebra\""),
        &[],
    );
}

#[test]
fn search_or_matches_either_word() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    assert_search(&mut conn, &fx, "zebra or milk", |t| {
        has_word(t, "zebra") || has_word(t, "milk")
    });
    assert_search(&mut conn, &fx, "zebra OR milk", |t| {
        has_word(t, "zebra") || has_word(t, "milk")
    });
    assert_selects(&mut conn, &fx, TaskQuery::new().search("zebra milk"), &[]);
    assert_search(&mut conn, &fx, "eggs or mom or party", |t| {
        ["eggs", "mom", "party"].iter().any(|w| has_word(t, w))
    });
}

#[test]
fn search_minus_excludes_a_word() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    assert_search(&mut conn, &fx, "alpha -report", |t| {
        has_word(t, "alpha") && !has_word(t, "report")
    });
    assert_search(&mut conn, &fx, "alpha -bravo -report", |t| {
        has_word(t, "alpha") && !has_word(t, "bravo") && !has_word(t, "report")
    });
    assert_search(&mut conn, &fx, "-alpha", |t| !has_word(t, "alpha"));
    assert_search(&mut conn, &fx, "buy -\"two litres\"", |t| {
        t.title == "buy eggs"
    });
}

#[test]
fn repeated_negations_cancel_by_parity() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let alpha = |t: &Task| has_word(t, "alpha");
    let no_alpha = |t: &Task| !has_word(t, "alpha");
    for n in [2, 4, 32, 34, 100, 496] {
        assert_search(&mut conn, &fx, &format!("{}alpha", "-".repeat(n)), alpha);
        assert_search(&mut conn, &fx, &format!("{}alpha", "- ".repeat(n)), alpha);
        assert_search(
            &mut conn,
            &fx,
            &format!("{}alpha", "-".repeat(n + 1)),
            no_alpha,
        );
        assert_search(
            &mut conn,
            &fx,
            &format!("{}alpha", "-(".repeat(n + 1)),
            no_alpha,
        );
    }
    assert_search(
        &mut conn,
        &fx,
        &format!("alpha {}report", "-".repeat(33)),
        |t| has_word(t, "alpha") && !has_word(t, "report"),
    );
    // Dashes inside words are no negations.
    assert_search(&mut conn, &fx, "semi-skimmed", |t| t.title == "Buy milk");
    assert_search(&mut conn, &fx, "semi--skimmed", |t| t.title == "Buy milk");
}

#[test]
fn blank_search_is_no_filter() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let all = fx.expected(|_| true, TaskSort::CreatedAt, Direction::Desc);
    for blank in ["", " ", "   \t\n ", "\0", " \0 \0 "] {
        assert_selects(&mut conn, &fx, TaskQuery::new().search(blank), &all);
    }
}

#[test]
fn a_search_of_stop_words_only_matches_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    for terms in ["the", "the and of", "\"the\"", "-the"] {
        let q = TaskQuery::new().search(terms);
        let page = TaskRepo::list(&mut conn, fx.user.id, &q).unwrap();
        assert!(page.items.is_empty(), "{terms:?}: {}", show(&page.items));
        assert_eq!(
            TaskRepo::count_matching(&mut conn, fx.user.id, &q).unwrap(),
            0
        );
        let by_rank = q.sort(TaskSort::Relevance, Direction::Desc);
        assert!(TaskRepo::list(&mut conn, fx.user.id, &by_rank)
            .unwrap()
            .items
            .is_empty());
    }
}

/// Strings a user might type, or an attacker might send.
fn hostile_strings() -> Vec<String> {
    let mut strings: Vec<String> = [
        "\"",
        "\"unbalanced",
        "unbalanced\"",
        "\"\"\"",
        "\"alpha",
        "&|!():*<->",
        "& | ! ( ) : * <-> <1> <2>",
        "alpha & bravo | !charlie",
        "(alpha",
        "alpha)",
        "alpha:*",
        "alpha:A",
        "<->",
        "!!",
        "!",
        "-",
        "--",
        "---alpha",
        "- -",
        "-\"",
        "or",
        "or or or",
        "alpha or",
        "or alpha",
        "\"or\"",
        "alpha -",
        "'",
        "''",
        "'alpha'",
        "'; DROP TABLE tasks; --",
        "\"; DROP TABLE tasks; --",
        "alpha'); DELETE FROM tasks; --",
        "$1",
        "$$",
        "%_",
        "\\",
        "\\\\",
        "alpha\\",
        "\\\"alpha\\\"",
        "back\\slash\\",
        "\0",
        "alpha\0bravo",
        "\0alpha\0",
        "😀",
        "🔥 alpha 🔥",
        "👨‍👩‍👧‍👦",
        "\u{202e}alpha",
        "\u{feff}",
        "\u{1}\u{2}\u{7f}",
        "\t\r\n",
        "ｆｕｌｌｗｉｄｔｈ",
        "עברית",
        "null",
        "NULL",
        "true",
        "1=1",
        "* FROM users",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    strings.push("a".repeat(1000));
    strings.push("é".repeat(1000));
    strings.push("😀".repeat(1000));
    strings.push("alpha ".repeat(166));
    strings.push("\"".repeat(1000));
    strings.push("-".repeat(1000));
    strings.push("or ".repeat(333));
    strings.push("!(".repeat(500));
    strings.push(format!("\"{}\"", "alpha bravo ".repeat(80).trim_end()));
    strings.push("\\".repeat(1000));
    strings.push("\0".repeat(1000));
    // websearch_to_tsquery fails ("tsquery stack too small") on 33 negations in a row.
    for n in [31, 32, 33, 34, 64, 999] {
        let dashes = "-".repeat(n);
        strings.push(dashes.clone());
        strings.push(format!("{dashes}alpha"));
        strings.push(format!("alpha {dashes}bravo"));
        strings.push(format!("alpha or {dashes} bravo"));
        strings.push(format!("\"alpha\"{dashes}bravo"));
        strings.push(format!("alpha!{dashes}bravo"));
        strings.push(format!("\"{dashes} alpha\""));
    }
    strings.push("- ".repeat(500));
    strings.push(format!("{}alpha", "- ".repeat(497)));
    strings.push("-(".repeat(500));
    strings.push("-!".repeat(500));
    strings.push("-<".repeat(500));
    strings.push("-&-|-)".repeat(166));
    strings.push("-\t-\n-\u{3000}".repeat(200));
    strings.push("-\u{a0}".repeat(500));
    strings.push("-😀".repeat(500));
    strings.push("\"-\"".repeat(333));
    strings.push("-\"".repeat(500));
    strings.push("-'".repeat(500));
    strings.push("-\\".repeat(500));
    strings.push("-,".repeat(500));
    strings.push("-the ".repeat(200));
    strings.push("-alpha ".repeat(142));
    // At most 1000 characters, the longest search there is.
    strings
        .into_iter()
        .map(|s| s.chars().take(1000).collect())
        .collect()
}

#[test]
fn hostile_search_strings_never_produce_a_database_error() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    for terms in hostile_strings() {
        assert!(terms.chars().count() <= 1000);
        let q = TaskQuery::new().search(&terms);
        for (sort, dir) in [
            (TaskSort::CreatedAt, Direction::Desc),
            (TaskSort::Title, Direction::Asc),
            (TaskSort::DueDate, Direction::Desc),
        ] {
            let q = q.clone().sort(sort, dir);
            let got = walk(&mut conn, fx.user.id, &q, 2);
            let count = TaskRepo::count_matching(&mut conn, fx.user.id, &q)
                .unwrap_or_else(|e| panic!("count_matching {terms:?}: {e:?}"));
            assert_eq!(count, got.len() as i64, "{terms:?}");
        }
        if !terms.replace('\0', " ").trim().is_empty() {
            let by_rank = q.clone().sort(TaskSort::Relevance, Direction::Desc);
            walk(&mut conn, fx.user.id, &by_rank, 2);
        }
    }
    // The table is intact.
    assert_eq!(
        TaskRepo::count(&mut conn, fx.user.id).unwrap(),
        fx.tasks.len() as i64
    );
    // NUL separates words like a space.
    let got = walk(
        &mut conn,
        fx.user.id,
        &TaskQuery::new().search("alpha\0bravo"),
        10,
    );
    assert_eq!(
        got.iter().map(|t| t.title.as_str()).collect::<Vec<_>>(),
        ["bravo"]
    );
}

#[test]
fn a_search_of_1000_characters_is_accepted_and_1001_is_invalid() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    fixtures::task(&mut conn, &user, "alpha");
    for unit in ["a", "é", "😀", "alpha "] {
        let ok = unit.repeat(1000).chars().take(1000).collect::<String>();
        assert_eq!(ok.chars().count(), 1000);
        let q = TaskQuery::new().search(&ok);
        assert!(
            TaskRepo::list(&mut conn, user.id, &q).is_ok(),
            "{unit:?} x 1000"
        );
        assert!(TaskRepo::count_matching(&mut conn, user.id, &q).is_ok());
        let too_long = format!("{ok}{}", unit.chars().next().unwrap());
        let q = TaskQuery::new().search(&too_long);
        assert_invalid(TaskRepo::list(&mut conn, user.id, &q), "search");
        assert_invalid(TaskRepo::count_matching(&mut conn, user.id, &q), "search");
        let q = q.sort(TaskSort::Relevance, Direction::Desc);
        assert_invalid(TaskRepo::list(&mut conn, user.id, &q), "search");
    }
    // Characters, not bytes: 1000 four-byte characters fit.
    let q = TaskQuery::new().search(&"😀".repeat(1000));
    assert!(TaskRepo::list(&mut conn, user.id, &q).is_ok());
}

#[test]
fn search_combines_with_filters_and_every_sort() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let cases: [(TaskQuery, Keep); 4] = [
        (TaskQuery::new().search("alpha").completed(false), |t| {
            has_word(t, "alpha") && !t.completed
        }),
        (
            TaskQuery::new()
                .search("alpha or zebra")
                .priority(Priority::Low),
            |t| (has_word(t, "alpha") || has_word(t, "zebra")) && t.priority == Priority::Low,
        ),
        (
            TaskQuery::new()
                .search("alpha -bravo")
                .priority(Priority::High)
                .priority(Priority::Medium),
            |t| has_word(t, "alpha") && !has_word(t, "bravo") && t.priority != Priority::Low,
        ),
        (TaskQuery::new().search("buy or alpha").overdue(), |t| {
            (has_word(t, "buy") || has_word(t, "alpha"))
                && !t.completed
                && t.due_date.is_some_and(|d| d < Utc::now())
        }),
    ];
    for (q, keep) in &cases {
        for sort in SORTS {
            for dir in DIRECTIONS {
                let expected = fx.expected(keep, sort, dir);
                assert!(!expected.is_empty(), "{q:?}");
                for limit in [1, 2, 50] {
                    let q = q.clone().sort(sort, dir);
                    assert_same(
                        &walk(&mut conn, fx.user.id, &q, limit),
                        &expected,
                        &format!("{q:?} at {limit}"),
                    );
                }
            }
        }
        // Relevance: the same set, every row once.
        for dir in DIRECTIONS {
            let expected: HashSet<Uuid> =
                fx.tasks.iter().filter(|t| keep(t)).map(|t| t.id).collect();
            let q = q.clone().sort(TaskSort::Relevance, dir);
            let got = ids(&walk(&mut conn, fx.user.id, &q, 1));
            assert_eq!(got.len(), expected.len(), "{q:?}");
            assert_eq!(got.into_iter().collect::<HashSet<_>>(), expected, "{q:?}");
        }
        assert_eq!(
            TaskRepo::count_matching(&mut conn, fx.user.id, q).unwrap(),
            fx.tasks.iter().filter(|t| keep(t)).count() as i64
        );
    }
}

// ---------------------------------------------------------------------------------------
// count_matching
// ---------------------------------------------------------------------------------------

#[test]
fn count_matching_equals_the_rows_of_a_full_walk() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let t0 = fx.t0;
    let queries = [
        TaskQuery::new(),
        TaskQuery::new().completed(true),
        TaskQuery::new().completed(false).priority(Priority::High),
        TaskQuery::new()
            .priority(Priority::High)
            .priority(Priority::Low),
        TaskQuery::new().overdue(),
        TaskQuery::new().due_after(t0),
        TaskQuery::new()
            .due_before(t0)
            .due_after(t0 - Duration::days(5)),
        TaskQuery::new()
            .created_after(fx.batches[0])
            .created_before(fx.batches[2]),
        TaskQuery::new().search("alpha").completed(false),
        TaskQuery::new().search("alpha or zebra -report"),
        TaskQuery::new().search("nothing matches this"),
    ];
    for q in &queries {
        let walked = walk(&mut conn, fx.user.id, q, 3).len() as i64;
        assert_eq!(
            TaskRepo::count_matching(&mut conn, fx.user.id, q).unwrap(),
            walked,
            "{q:?}"
        );
        let theirs = walk(&mut conn, fx.other.id, q, 3).len() as i64;
        assert_eq!(
            TaskRepo::count_matching(&mut conn, fx.other.id, q).unwrap(),
            theirs,
            "{q:?}"
        );
    }
    assert_eq!(
        TaskRepo::count_matching(&mut conn, fx.user.id, &TaskQuery::new()).unwrap(),
        TaskRepo::count(&mut conn, fx.user.id).unwrap()
    );
    assert_eq!(
        TaskRepo::count_matching(&mut conn, Uuid::now_v7(), &TaskQuery::new()).unwrap(),
        0
    );
}

#[test]
fn count_matching_ignores_sort_limit_and_cursor() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let q = TaskQuery::new().completed(false);
    let expected = TaskRepo::count_matching(&mut conn, fx.user.id, &q).unwrap();
    assert_eq!(
        expected,
        fx.tasks.iter().filter(|t| !t.completed).count() as i64
    );
    let cursor = cursor_of(&mut conn, fx.user.id, &q);
    let other_cursor = cursor_of(&mut conn, fx.user.id, &TaskQuery::new());
    for variant in [
        q.clone().limit(1),
        q.clone().limit(0),
        q.clone().limit(501),
        q.clone().sort(TaskSort::Title, Direction::Asc),
        q.clone().sort(TaskSort::DueDate, Direction::Desc).limit(2),
        q.clone().after(&cursor),
        q.clone().after(&other_cursor),
        q.clone().after("garbage"),
    ] {
        assert_eq!(
            TaskRepo::count_matching(&mut conn, fx.user.id, &variant).unwrap(),
            expected,
            "{variant:?}"
        );
    }
    let q = TaskQuery::new().search("alpha");
    let expected = TaskRepo::count_matching(&mut conn, fx.user.id, &q).unwrap();
    let by_rank = q.sort(TaskSort::Relevance, Direction::Asc).limit(1);
    assert_eq!(
        TaskRepo::count_matching(&mut conn, fx.user.id, &by_rank).unwrap(),
        expected
    );
}

// ---------------------------------------------------------------------------------------
// stats
// ---------------------------------------------------------------------------------------

#[track_caller]
fn assert_stats(
    conn: &mut PgConnection,
    user_id: Uuid,
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
    assert_stats(&mut conn, Uuid::now_v7(), (0, 0, 0, 0, 0), (0, 0, 0));
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
    let open: Vec<Uuid> = fx
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

// ---------------------------------------------------------------------------------------
// create_many
// ---------------------------------------------------------------------------------------

#[test]
fn create_many_returns_the_stored_tasks_in_input_order() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let due = now_micros() + Duration::days(2);
    let news: Vec<NewTask> = (0..12)
        .map(|i| {
            let mut new = NewTask::new(format!("  task {} ", 12 - i))
                .priority(Priority::ALL[i % 3])
                .completed(i % 4 == 0);
            if i % 2 == 0 {
                new = new.description(format!("  described {i}  "));
            }
            if i % 3 == 0 {
                new = new.due_date(due + Duration::hours(i as i64));
            }
            new
        })
        .collect();
    let created = TaskRepo::create_many(&mut conn, user.id, &news).unwrap();
    assert_eq!(created.len(), news.len());
    for (task, new) in created.iter().zip(&news) {
        assert_eq!(task.title, new.title.trim());
        assert_eq!(
            task.description, new.description,
            "descriptions are kept as given"
        );
        assert_eq!(task.priority, new.priority);
        assert_eq!(task.completed, new.completed);
        assert_eq!(task.due_date, new.due_date);
        assert_eq!(task.user_id, user.id);
        assert_eq!(task.version, 1);
        assert_eq!(task.updated_at, task.created_at);
        assert_eq!(
            task.created_at, created[0].created_at,
            "one transaction, one now()"
        );
        assert_eq!(TaskRepo::get(&mut conn, user.id, task.id).unwrap(), *task);
    }
    let unique: HashSet<Uuid> = created.iter().map(|t| t.id).collect();
    assert_eq!(unique.len(), created.len());
    assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 12);
}

#[test]
fn create_many_with_one_bad_item_names_its_index_and_writes_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let good = || NewTask::new("fine");
    let cases: Vec<(usize, NewTask, &str)> = vec![
        (3, NewTask::new("   "), "tasks[3].title"),
        (0, NewTask::new(""), "tasks[0].title"),
        (9, NewTask::new("x".repeat(256)), "tasks[9].title"),
        (5, NewTask::new("a\0b"), "tasks[5].title"),
        (
            7,
            good().description("d".repeat(10_001)),
            "tasks[7].description",
        ),
        (2, good().description("nul\0"), "tasks[2].description"),
    ];
    for (index, bad, field) in cases {
        let mut news: Vec<NewTask> = (0..10).map(|_| good()).collect();
        news[index] = bad;
        assert_invalid(TaskRepo::create_many(&mut conn, user.id, &news), field);
        assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 0, "{field}");
    }
    // Two bad items: the first is named.
    let mut news: Vec<NewTask> = (0..10).map(|_| good()).collect();
    news[3] = NewTask::new(" ");
    news[8] = NewTask::new("");
    assert_invalid(
        TaskRepo::create_many(&mut conn, user.id, &news),
        "tasks[3].title",
    );
    assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 0);
}

#[test]
fn create_many_for_a_missing_user_is_not_found() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let missing = Uuid::now_v7();
    let news = [NewTask::new("a"), NewTask::new("b")];
    match TaskRepo::create_many(&mut conn, missing, &news) {
        Err(Error::NotFound {
            entity: "user",
            key,
        }) => assert_eq!(key, missing.to_string()),
        other => panic!("expected NotFound user, got {other:?}"),
    }
    // The connection is still usable, and nothing was written for anybody.
    assert_eq!(TaskRepo::count(&mut conn, missing).unwrap(), 0);
    assert_eq!(
        TaskRepo::create_many(&mut conn, user.id, &news)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn create_many_of_nothing_is_ok_and_empty() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    assert_eq!(
        TaskRepo::create_many(&mut conn, user.id, &[]).unwrap(),
        Vec::<Task>::new()
    );
    // Even for a user that does not exist: nothing to write, nothing to check.
    assert!(TaskRepo::create_many(&mut conn, Uuid::now_v7(), &[])
        .unwrap()
        .is_empty());
    assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 0);
}

#[test]
fn create_many_writes_20000_tasks_in_one_call() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let due = now_micros();
    let news: Vec<NewTask> = (0..20_000)
        .map(|i| {
            let mut new = NewTask::new(format!("bulk task {i}")).priority(Priority::ALL[i % 3]);
            if i % 2 == 0 {
                new = new.description(format!("description {i}"));
            }
            if i % 5 == 0 {
                new = new.due_date(due + Duration::minutes(i as i64));
            }
            new
        })
        .collect();
    let created = TaskRepo::create_many(&mut conn, user.id, &news).unwrap();
    assert_eq!(created.len(), 20_000);
    for (task, new) in created.iter().zip(&news) {
        assert_eq!(task.title, new.title);
        assert_eq!(task.due_date, new.due_date);
    }
    assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 20_000);
    let stored = walk(
        &mut conn,
        user.id,
        &TaskQuery::new().sort(TaskSort::CreatedAt, Direction::Asc),
        500,
    );
    assert_same(
        &stored,
        &sorted(created.clone(), TaskSort::CreatedAt, Direction::Asc),
        "stored",
    );
    let stats = TaskRepo::stats(&mut conn, user.id).unwrap();
    assert_eq!(stats.priority_count(Priority::Low), 6667);
    assert_eq!(stats.priority_count(Priority::Medium), 6667);
    assert_eq!(stats.priority_count(Priority::High), 6666);
}

#[test]
fn create_many_inside_a_failing_transaction_leaves_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let news: Vec<NewTask> = (0..100).map(|i| NewTask::new(format!("t{i}"))).collect();
    let result: Result<(), Error> = conn.transaction(|conn| {
        let created = TaskRepo::create_many(conn, user.id, &news)?;
        assert_eq!(created.len(), 100);
        assert_eq!(TaskRepo::count(conn, user.id)?, 100);
        TaskRepo::create(conn, user.id, &NewTask::new(""))?; // fails: rolls everything back
        Ok(())
    });
    assert!(result.unwrap_err().is_validation());
    assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 0);

    // A failing create_many inside a transaction that goes on: only it is undone.
    conn.transaction::<_, Error, _>(|conn| {
        TaskRepo::create_many(conn, user.id, &news[..3])?;
        assert!(TaskRepo::create_many(conn, Uuid::now_v7(), &news)
            .unwrap_err()
            .is_not_found());
        TaskRepo::create_many(conn, user.id, &news[3..5])?;
        Ok(())
    })
    .unwrap();
    assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 5);
}

// ---------------------------------------------------------------------------------------
// set_completed_many and delete_many
// ---------------------------------------------------------------------------------------

/// Two users with five open tasks each.
fn two_users_with_tasks(conn: &mut PgConnection) -> (User, Vec<Task>, User, Vec<Task>) {
    let ada = fixtures::user(conn);
    let bob = fixtures::user(conn);
    let news: Vec<NewTask> = (0..5).map(|i| NewTask::new(format!("t{i}"))).collect();
    let ada_tasks = TaskRepo::create_many(conn, ada.id, &news).unwrap();
    let bob_tasks = TaskRepo::create_many(conn, bob.id, &news).unwrap();
    (ada, ada_tasks, bob, bob_tasks)
}

#[test]
fn set_completed_many_counts_and_changes_only_the_users_tasks() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let (ada, ada_tasks, bob, bob_tasks) = two_users_with_tasks(&mut conn);
    let targets = [
        ada_tasks[0].id,
        bob_tasks[0].id,
        ada_tasks[2].id,
        bob_tasks[1].id,
    ];
    assert_eq!(
        TaskRepo::set_completed_many(&mut conn, ada.id, &targets, true).unwrap(),
        2
    );
    for (i, before) in ada_tasks.iter().enumerate() {
        let now = TaskRepo::get(&mut conn, ada.id, before.id).unwrap();
        if i == 0 || i == 2 {
            assert!(now.completed);
            assert_eq!(now.version, 2);
            assert!(now.updated_at > before.updated_at);
            assert_eq!(
                (&now.title, now.created_at),
                (&before.title, before.created_at)
            );
        } else {
            assert_eq!(now, *before);
        }
    }
    for before in &bob_tasks {
        assert_eq!(
            TaskRepo::get(&mut conn, bob.id, before.id).unwrap(),
            *before,
            "bob's tasks untouched"
        );
    }
    // And back: counted again, whatever their state was.
    assert_eq!(
        TaskRepo::set_completed_many(&mut conn, ada.id, &targets, false).unwrap(),
        2
    );
    assert!(
        !TaskRepo::get(&mut conn, ada.id, ada_tasks[0].id)
            .unwrap()
            .completed
    );
    let all: Vec<Uuid> = ada_tasks.iter().map(|t| t.id).collect();
    assert_eq!(
        TaskRepo::set_completed_many(&mut conn, ada.id, &all, true).unwrap(),
        5
    );
    assert_eq!(
        TaskRepo::count_matching(&mut conn, ada.id, &TaskQuery::new().completed(true)).unwrap(),
        5
    );
    assert_eq!(
        TaskRepo::count_matching(&mut conn, bob.id, &TaskQuery::new().completed(true)).unwrap(),
        0
    );
}

#[test]
fn set_completed_many_ignores_unknown_ids_and_counts_duplicates_once() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let (ada, ada_tasks, _, _) = two_users_with_tasks(&mut conn);
    let unknown = [Uuid::now_v7(), Uuid::nil(), Uuid::max()];
    assert_eq!(
        TaskRepo::set_completed_many(&mut conn, ada.id, &unknown, true).unwrap(),
        0
    );
    let ids = [
        ada_tasks[1].id,
        unknown[0],
        ada_tasks[1].id,
        ada_tasks[3].id,
        ada_tasks[1].id,
    ];
    assert_eq!(
        TaskRepo::set_completed_many(&mut conn, ada.id, &ids, true).unwrap(),
        2
    );
    let once = TaskRepo::get(&mut conn, ada.id, ada_tasks[1].id).unwrap();
    assert_eq!(once.version, 2, "a duplicated id is updated once");
    // Another user's id (a user that does not exist): nothing.
    assert_eq!(
        TaskRepo::set_completed_many(&mut conn, Uuid::now_v7(), &ids, true).unwrap(),
        0
    );
}

#[test]
fn set_completed_many_of_nothing_is_zero() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let (ada, ada_tasks, _, _) = two_users_with_tasks(&mut conn);
    assert_eq!(
        TaskRepo::set_completed_many(&mut conn, ada.id, &[], true).unwrap(),
        0
    );
    for t in &ada_tasks {
        assert_eq!(TaskRepo::get(&mut conn, ada.id, t.id).unwrap(), *t);
    }
}

#[test]
fn delete_many_counts_and_deletes_only_the_users_tasks() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let (ada, ada_tasks, bob, bob_tasks) = two_users_with_tasks(&mut conn);
    let targets = [
        bob_tasks[0].id,
        ada_tasks[1].id,
        bob_tasks[4].id,
        ada_tasks[4].id,
    ];
    assert_eq!(
        TaskRepo::delete_many(&mut conn, ada.id, &targets).unwrap(),
        2
    );
    for (i, t) in ada_tasks.iter().enumerate() {
        let got = TaskRepo::get(&mut conn, ada.id, t.id);
        if i == 1 || i == 4 {
            assert!(got.unwrap_err().is_not_found());
        } else {
            assert_eq!(got.unwrap(), *t);
        }
    }
    for t in &bob_tasks {
        assert_eq!(
            TaskRepo::get(&mut conn, bob.id, t.id).unwrap(),
            *t,
            "bob's tasks untouched"
        );
    }
    assert_eq!(TaskRepo::count(&mut conn, ada.id).unwrap(), 3);
    assert_eq!(TaskRepo::count(&mut conn, bob.id).unwrap(), 5);
    // Deleting them again: already gone, not counted.
    assert_eq!(
        TaskRepo::delete_many(&mut conn, ada.id, &targets).unwrap(),
        0
    );
}

#[test]
fn delete_many_ignores_unknown_ids_and_counts_duplicates_once() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let (ada, ada_tasks, bob, _) = two_users_with_tasks(&mut conn);
    let unknown = [Uuid::now_v7(), Uuid::nil()];
    assert_eq!(
        TaskRepo::delete_many(&mut conn, ada.id, &unknown).unwrap(),
        0
    );
    let ids = [
        ada_tasks[0].id,
        ada_tasks[0].id,
        unknown[0],
        ada_tasks[2].id,
        ada_tasks[0].id,
    ];
    assert_eq!(
        TaskRepo::delete_many(&mut conn, bob.id, &ids).unwrap(),
        0,
        "not bob's"
    );
    assert_eq!(TaskRepo::delete_many(&mut conn, ada.id, &ids).unwrap(), 2);
    assert_eq!(TaskRepo::count(&mut conn, ada.id).unwrap(), 3);
}

#[test]
fn delete_many_of_nothing_is_zero() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let (ada, _, _, _) = two_users_with_tasks(&mut conn);
    assert_eq!(TaskRepo::delete_many(&mut conn, ada.id, &[]).unwrap(), 0);
    assert_eq!(TaskRepo::count(&mut conn, ada.id).unwrap(), 5);
}

// ---------------------------------------------------------------------------------------
// Property: random pages concatenate to the filtered, sorted set
// ---------------------------------------------------------------------------------------

/// Words whose English stems are distinct, none a stop word: a search for one matches
/// exactly the tasks that contain it.
const WORDS: [&str; 6] = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];

/// `word` as typed: 0 lower case, 1 Capitalised, 2 UPPER CASE.
fn spell(word: &str, spelling: u8) -> String {
    match spelling {
        0 => word.to_owned(),
        1 => word[..1].to_uppercase() + &word[1..],
        _ => word.to_uppercase(),
    }
}

/// Due dates and filter bounds: slots 0..=4 lie far in the past, 5 is the start of the
/// property, 6..=10 lie far in the future, an hour apart. Data uses 0..=3 and 6..=9, so
/// bounds hit data exactly (strictness) or lie beyond all of it.
fn slot_instant(base: DateTime<Utc>, slot: u8) -> DateTime<Utc> {
    match slot {
        0..=4 => base - Duration::days(1000) + Duration::hours(slot.into()),
        5 => base,
        _ => base + Duration::days(1000) + Duration::hours(i64::from(slot) - 6),
    }
}

#[derive(Debug, Clone)]
struct GenTask {
    title: Vec<(usize, u8)>,
    description: Option<Vec<usize>>,
    priority: Priority,
    completed: bool,
    due: Option<u8>,
}

impl GenTask {
    fn new_task(&self, base: DateTime<Utc>) -> NewTask {
        let title: Vec<String> = self
            .title
            .iter()
            .map(|&(w, s)| spell(WORDS[w], s))
            .collect();
        let mut new = NewTask::new(title.join(" "))
            .priority(self.priority)
            .completed(self.completed);
        new.description = self.description.as_ref().map(|words| {
            words
                .iter()
                .map(|&w| WORDS[w])
                .collect::<Vec<_>>()
                .join(" ")
        });
        new.due_date = self.due.map(|slot| slot_instant(base, slot));
        new
    }
}

fn gen_task() -> impl Strategy<Value = GenTask> {
    (
        prop::collection::vec((0..WORDS.len(), 0..3u8), 1..=3),
        prop::option::of(prop::collection::vec(0..WORDS.len(), 0..=3)),
        prop::sample::select(Priority::ALL.to_vec()),
        any::<bool>(),
        prop::option::of(prop_oneof![0..=3u8, 6..=9u8]),
    )
        .prop_map(|(title, description, priority, completed, due)| GenTask {
            title,
            description,
            priority,
            completed,
            due,
        })
}

/// A search in web-search syntax, and what it matches.
#[derive(Debug, Clone)]
enum GenSearch {
    Word(usize, u8),
    All(usize, usize),
    Either(usize, usize),
    Not(usize),
    Without(usize, usize),
    Phrase(usize, usize),
}

impl GenSearch {
    fn text(&self) -> String {
        match *self {
            GenSearch::Word(w, s) => format!("  {} ", spell(WORDS[w], s)),
            GenSearch::All(a, b) => format!("{} {}", WORDS[a], WORDS[b]),
            GenSearch::Either(a, b) => format!("{} or {}", WORDS[a], WORDS[b]),
            GenSearch::Not(a) => format!("-{}", WORDS[a]),
            GenSearch::Without(a, b) => format!("{} -{}", WORDS[a], WORDS[b]),
            GenSearch::Phrase(a, b) => format!("\"{} {}\"", WORDS[a], WORDS[b]),
        }
    }

    /// Whether a task whose title and description are `tokens` (lowercase, in order)
    /// matches. The search vector is the title's words followed by the description's,
    /// so a phrase may span the two.
    fn matches(&self, tokens: &[String]) -> bool {
        let has = |w: usize| tokens.iter().any(|t| t == WORDS[w]);
        match *self {
            GenSearch::Word(w, _) => has(w),
            GenSearch::All(a, b) => has(a) && has(b),
            GenSearch::Either(a, b) => has(a) || has(b),
            GenSearch::Not(a) => !has(a),
            GenSearch::Without(a, b) => has(a) && !has(b),
            GenSearch::Phrase(a, b) => tokens
                .windows(2)
                .any(|p| p[0] == WORDS[a] && p[1] == WORDS[b]),
        }
    }
}

fn gen_search() -> impl Strategy<Value = GenSearch> {
    let w = 0..WORDS.len();
    prop_oneof![
        (w.clone(), 0..3u8).prop_map(|(w, s)| GenSearch::Word(w, s)),
        (w.clone(), w.clone()).prop_map(|(a, b)| GenSearch::All(a, b)),
        (w.clone(), w.clone()).prop_map(|(a, b)| GenSearch::Either(a, b)),
        w.clone().prop_map(GenSearch::Not),
        (w.clone(), w.clone()).prop_map(|(a, b)| GenSearch::Without(a, b)),
        (w.clone(), w).prop_map(|(a, b)| GenSearch::Phrase(a, b)),
    ]
}

#[derive(Debug, Clone)]
struct GenQuery {
    completed: Option<bool>,
    priorities: Vec<Priority>,
    due_before: Option<u8>,
    due_after: Option<u8>,
    overdue: bool,
    /// (batch, offset in microseconds) of created_at bounds.
    created_before: Option<(usize, i64)>,
    created_after: Option<(usize, i64)>,
    search: Option<GenSearch>,
    sort: TaskSort,
    direction: Direction,
    page: usize,
}

fn gen_query() -> impl Strategy<Value = GenQuery> {
    // Each filter is rare enough that combinations still select rows.
    let bound = || prop::option::weighted(0.2, 0..=10u8);
    let created = || prop::option::weighted(0.15, (0..4usize, -1..=1i64));
    (
        prop::option::weighted(0.3, any::<bool>()),
        prop::option::weighted(
            0.3,
            prop::collection::vec(prop::sample::select(Priority::ALL.to_vec()), 1..=2),
        )
        .prop_map(Option::unwrap_or_default),
        bound(),
        bound(),
        prop::bool::weighted(0.1),
        created(),
        created(),
        prop::option::weighted(0.3, gen_search()),
        prop::sample::select(SORTS.to_vec()),
        prop::sample::select(DIRECTIONS.to_vec()),
        1..=12usize,
    )
        .prop_map(
            |(
                completed,
                priorities,
                due_before,
                due_after,
                overdue,
                created_before,
                created_after,
                search,
                sort,
                direction,
                page,
            )| {
                GenQuery {
                    completed,
                    priorities,
                    due_before,
                    due_after,
                    overdue,
                    created_before,
                    created_after,
                    search,
                    sort,
                    direction,
                    page,
                }
            },
        )
}

#[test]
fn random_pages_concatenate_to_the_filtered_sorted_set() {
    let db = TestDb::new();
    // The property is `Fn`: it borrows the connection for each case.
    let conn = RefCell::new(db.conn());
    let base = now_micros();
    let config = ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let strategy = (
        prop::collection::vec(gen_task(), 0..60),
        prop::collection::vec(0..=60usize, 0..=3),
        gen_query(),
    );
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |(gen_tasks, mut cuts, gq)| {
        let mut guard = conn.borrow_mut();
        let conn: &mut PgConnection = &mut guard;
        let user = fixtures::user(conn);
        // 1 to 4 create_many calls: created_at ties within each, not across.
        let news: Vec<NewTask> = gen_tasks.iter().map(|g| g.new_task(base)).collect();
        cuts.iter_mut().for_each(|c| *c = (*c).min(news.len()));
        cuts.sort_unstable();
        let mut tasks = Vec::new();
        let mut batches = Vec::new();
        let mut start = 0;
        for end in cuts.into_iter().chain([news.len()]) {
            let created = TaskRepo::create_many(conn, user.id, &news[start..end]).unwrap();
            if let Some(first) = created.first() {
                batches.push(first.created_at);
            }
            tasks.extend(created);
            start = end;
        }
        let created_bound = |b: Option<(usize, i64)>| {
            b.map(|(batch, offset)| {
                let at = batches
                    .get(batch % batches.len().max(1))
                    .copied()
                    .unwrap_or(base);
                at + Duration::microseconds(offset)
            })
        };
        let created_before = created_bound(gq.created_before);
        let created_after = created_bound(gq.created_after);
        let due_before = gq.due_before.map(|s| slot_instant(base, s));
        let due_after = gq.due_after.map(|s| slot_instant(base, s));

        let mut query = TaskQuery::new().sort(gq.sort, gq.direction);
        if let Some(c) = gq.completed {
            query = query.completed(c);
        }
        for &p in &gq.priorities {
            query = query.priority(p);
        }
        if let Some(at) = due_before {
            query = query.due_before(at);
        }
        if let Some(at) = due_after {
            query = query.due_after(at);
        }
        if gq.overdue {
            query = query.overdue();
        }
        if let Some(at) = created_before {
            query = query.created_before(at);
        }
        if let Some(at) = created_after {
            query = query.created_after(at);
        }
        if let Some(s) = &gq.search {
            query = query.search(&s.text());
        }

        let now = Utc::now();
        let keep = |t: &Task| {
            let tokens: Vec<String> = t
                .title
                .split_whitespace()
                .chain(t.description.as_deref().unwrap_or("").split_whitespace())
                .map(str::to_lowercase)
                .collect();
            gq.completed.is_none_or(|c| t.completed == c)
                && (gq.priorities.is_empty() || gq.priorities.contains(&t.priority))
                && due_before.is_none_or(|at| t.due_date.is_some_and(|d| d < at))
                && due_after.is_none_or(|at| t.due_date.is_some_and(|d| d > at))
                && (!gq.overdue || (!t.completed && t.due_date.is_some_and(|d| d < now)))
                && created_before.is_none_or(|at| t.created_at < at)
                && created_after.is_none_or(|at| t.created_at > at)
                && gq.search.as_ref().is_none_or(|s| s.matches(&tokens))
        };
        let expected = sorted(
            tasks.iter().filter(|t| keep(t)).cloned(),
            gq.sort,
            gq.direction,
        );
        let got = walk(conn, user.id, &query, gq.page);
        prop_assert!(
            got == expected,
            "{query:?} with pages of {}: got\n{}expected\n{}",
            gq.page,
            show(&got),
            show(&expected)
        );
        let count = TaskRepo::count_matching(conn, user.id, &query).unwrap();
        prop_assert_eq!(count, expected.len() as i64);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn random_search_strings_never_produce_a_database_error() {
    let db = TestDb::new();
    let conn = RefCell::new(db.conn());
    let user = {
        let mut conn = conn.borrow_mut();
        let user = fixtures::user(&mut conn);
        let news: Vec<NewTask> = ["alpha bravo", "the alpha", "charlie - delta", "echo"]
            .iter()
            .map(|t| NewTask::new(*t).description("foxtrot -- golf"))
            .collect();
        TaskRepo::create_many(&mut conn, user.id, &news).unwrap();
        user
    };
    // Syntax characters, dashes above all, and a few words.
    let pieces = prop::sample::select(vec![
        "-",
        "-",
        "-",
        "-",
        "----------",
        "- - - - - ",
        "-(-(-(-(-(",
        " ",
        " ",
        "\"",
        "!",
        "(",
        ")",
        "&",
        "|",
        "<",
        ">",
        ":",
        "*",
        "'",
        "\\",
        "alpha",
        "the",
        "or",
        "OR",
        "😀",
        "\u{3000}",
        "\u{a0}",
        "\0",
        "é",
        ",",
    ]);
    let strategy = prop::collection::vec(pieces, 0..400)
        .prop_map(|p| p.concat().chars().take(1000).collect::<String>());
    let config = ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let result = TestRunner::new(config).run(&strategy, |terms| {
        let mut conn = conn.borrow_mut();
        for sort in [TaskSort::CreatedAt, TaskSort::Relevance] {
            let q = TaskQuery::new()
                .search(&terms)
                .sort(sort, Direction::Desc)
                .limit(2);
            match TaskRepo::list(&mut conn, user.id, &q) {
                Ok(_) => {}
                Err(Error::Validation { field, .. }) if field == "sort" => {}
                Err(e) => prop_assert!(false, "{terms:?}: {e:?}"),
            }
        }
        let count = TaskRepo::count_matching(&mut conn, user.id, &TaskQuery::new().search(&terms));
        prop_assert!(count.is_ok(), "{terms:?}: {count:?}");
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn relevance_pages_concatenate_to_one_big_page() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    // 120 tasks from the vocabulary, deterministic: many rank ties, many distinct ranks.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let news: Vec<NewTask> = (0..120)
        .map(|_| {
            let title: Vec<&str> = (0..1 + next(4)).map(|_| WORDS[next(WORDS.len())]).collect();
            let description: Vec<&str> = (0..next(6)).map(|_| WORDS[next(WORDS.len())]).collect();
            NewTask::new(title.join(" ")).description(description.join(" "))
        })
        .collect();
    for chunk in news.chunks(40) {
        TaskRepo::create_many(&mut conn, user.id, chunk).unwrap();
    }
    for terms in [
        "alpha",
        "alpha bravo",
        "alpha or bravo",
        "charlie -delta",
        "\"echo foxtrot\"",
        "-alpha",
    ] {
        let asc = TaskQuery::new()
            .search(terms)
            .sort(TaskSort::Relevance, Direction::Asc);
        let desc = TaskQuery::new()
            .search(terms)
            .sort(TaskSort::Relevance, Direction::Desc);
        let one_page_desc = TaskRepo::list(&mut conn, user.id, &desc.clone().limit(500)).unwrap();
        assert_eq!(one_page_desc.next_cursor, None);
        assert!(
            one_page_desc.items.len() > 1,
            "{terms:?} should match several tasks"
        );
        assert_eq!(
            one_page_desc.items.len() as i64,
            TaskRepo::count_matching(&mut conn, user.id, &desc).unwrap()
        );
        let mut one_page_asc = TaskRepo::list(&mut conn, user.id, &asc.clone().limit(500))
            .unwrap()
            .items;
        one_page_asc.reverse();
        assert_same(
            &one_page_asc,
            &one_page_desc.items,
            &format!("{terms:?}: Asc is Desc reversed"),
        );
        for limit in [1, 2, 5, 12] {
            assert_same(
                &walk(&mut conn, user.id, &desc, limit),
                &one_page_desc.items,
                &format!("{terms:?} Desc at limit {limit}"),
            );
            let mut walked_asc = walk(&mut conn, user.id, &asc, limit);
            walked_asc.reverse();
            assert_same(
                &walked_asc,
                &one_page_desc.items,
                &format!("{terms:?} Asc at limit {limit}"),
            );
        }
    }
}

/// Cursors end up in URLs and access logs: a title-sorted one carries its task's
/// title masked, not in clear, and still pages correctly.
#[test]
fn a_title_cursor_carries_no_title_in_clear() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    for title in ["Surprise party for Grace", "Tax return 2026"] {
        fixtures::task(&mut conn, &user, title);
    }
    let query = TaskQuery::new()
        .sort(TaskSort::Title, Direction::Asc)
        .limit(1);
    let first = TaskRepo::list(&mut conn, user.id, &query).unwrap();
    let cursor = first.next_cursor.expect("a second page");
    let bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
    for part in ["Surprise", "party", "Grace"] {
        assert!(
            !bytes.windows(part.len()).any(|w| w == part.as_bytes()),
            "{part:?} in clear in the cursor"
        );
    }
    let next = TaskRepo::list(&mut conn, user.id, &query.clone().after(&cursor)).unwrap();
    assert_eq!(next.items[0].title, "Tax return 2026");
    // Another user's query cannot use it.
    let other = fixtures::user(&mut conn);
    assert_invalid(
        TaskRepo::list(&mut conn, other.id, &query.after(&cursor)),
        "cursor",
    );
}

/// The bytes of `cursor` (base64 decoded).
fn cursor_bytes(cursor: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(cursor).unwrap()
}

/// Two title cursors of one user and query never share a keystream: their XOR is not
/// the XOR of their titles (which would give one title away to whoever knows the
/// other), and two cursors of the very same page differ in their masked titles.
#[test]
fn title_cursors_of_one_query_share_no_keystream() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    // Titles of equal length, so that the two cursors line up byte for byte.
    let titles = [
        "Alpha budget memo",
        "Bravo doctor call",
        "Charlie dentist 9",
    ];
    for title in titles {
        fixtures::task(&mut conn, &user, title);
    }
    let query = TaskQuery::new()
        .sort(TaskSort::Title, Direction::Asc)
        .limit(1);
    let first = TaskRepo::list(&mut conn, user.id, &query).unwrap();
    let after_alpha = first.next_cursor.unwrap();
    let second = TaskRepo::list(&mut conn, user.id, &query.clone().after(&after_alpha)).unwrap();
    assert_eq!(second.items[0].title, titles[1]);
    let after_bravo = second.next_cursor.unwrap();
    let (a, b) = (cursor_bytes(&after_alpha), cursor_bytes(&after_bravo));
    assert_eq!(a.len(), b.len());
    let xor: Vec<u8> = a.iter().zip(&b).map(|(x, y)| x ^ y).collect();
    let titles_xor: Vec<u8> = titles[0]
        .bytes()
        .zip(titles[1].bytes())
        .map(|(x, y)| x ^ y)
        .collect();
    assert!(
        !xor.windows(titles_xor.len()).any(|w| w == titles_xor),
        "the XOR of two cursors is the XOR of their titles: one keystream for both"
    );
    // The same page twice: two cursors, each masking the same title its own way.
    let again = TaskRepo::list(&mut conn, user.id, &query).unwrap();
    let also_after_alpha = again.next_cursor.unwrap();
    let c = cursor_bytes(&also_after_alpha);
    assert_ne!(a, c, "one page, one cursor text: a keystream used twice");
    let masked = |bytes: &[u8]| bytes[KEY..bytes.len() - 8 - 16].to_vec();
    let same = masked(&a)
        .iter()
        .zip(masked(&c))
        .filter(|(x, y)| **x == *y)
        .count();
    assert!(same < 8, "{same} bytes of the masked titles are equal");
    // Both still lead to the same next page.
    for cursor in [&after_alpha, &also_after_alpha] {
        let next = TaskRepo::list(&mut conn, user.id, &query.clone().after(cursor)).unwrap();
        assert_eq!(next.items[0].title, titles[1]);
    }
}

/// A title cursor of the format before the nonce (version 1), as a client may still
/// hold one across an upgrade, is a Validation error that says to start again, never
/// a page from a title read the wrong way.
#[test]
fn an_old_title_cursor_is_invalid_never_a_wrong_page() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    for title in ["Alpha", "Bravo", "Charlie"] {
        fixtures::task(&mut conn, &user, title);
    }
    let query = TaskQuery::new()
        .sort(TaskSort::Title, Direction::Asc)
        .limit(1);
    let cursor = TaskRepo::list(&mut conn, user.id, &query)
        .unwrap()
        .next_cursor
        .unwrap();
    let old = version_1_title_cursor(&cursor, user.id, "Alpha");
    match TaskRepo::list(&mut conn, user.id, &query.clone().after(&old)) {
        Err(Error::Validation { field, reason }) if field == "cursor" => {
            assert!(reason.contains("start again"), "{reason}");
        }
        other => panic!("expected Validation of the cursor, got {other:?}"),
    }
    // Cursors of other sorts keep their format (version 1) and stay valid.
    let by_created = TaskQuery::new().limit(1);
    let created = TaskRepo::list(&mut conn, user.id, &by_created)
        .unwrap()
        .next_cursor
        .unwrap();
    assert_eq!(cursor_bytes(&created)[0], 1);
    assert!(TaskRepo::list(&mut conn, user.id, &by_created.after(&created)).is_ok());
}
