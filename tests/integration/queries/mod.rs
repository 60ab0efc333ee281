//! Task queries against real PostgreSQL : filters, sorts, keyset pagination,
//! cursors, full-text search, count_matching, stats and the bulk operations, plus a
//! property test that random pages concatenate to the filtered, sorted set.
//!
//! A file per subject; the fixture and the helpers they share are here.

mod bulk;
mod counts;
mod cursors;
mod filters;
mod paging;
mod property;
pub(crate) mod search;
mod sorting;
mod stats;

use std::cmp::Ordering;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use todo_store::{
    Direction, Error, NewTask, PgConnection, Priority, Task, TaskPatch, TaskQuery, TaskRepo,
    TaskSort, User,
};
use todo_store::{TaskId, UserId};
use uuid::Uuid;

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

fn ids(tasks: &[Task]) -> Vec<TaskId> {
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
                &t.id.as_uuid().simple().to_string()[24..],
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
fn walk(conn: &mut PgConnection, user_id: UserId, query: &TaskQuery, limit: usize) -> Vec<Task> {
    walk_with(conn, user_id, query, limit, true, |_, _| {})
}

/// [`walk`], calling `between(conn, pages_so_far)` before each page after the first.
fn walk_with(
    conn: &mut PgConnection,
    user_id: UserId,
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

/// A real cursor: the first page of `query` at limit 2.
fn cursor_of(conn: &mut PgConnection, user_id: UserId, query: &TaskQuery) -> String {
    TaskRepo::list(conn, user_id, &query.clone().limit(2))
        .unwrap()
        .next_cursor
        .expect("a second page")
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

#[track_caller]
fn assert_selects(conn: &mut PgConnection, fx: &Fixture, query: TaskQuery, expected: &[Task]) {
    for limit in [1, 3, 50] {
        let got = walk(conn, fx.user.id, &query, limit);
        assert_same(&got, expected, &format!("{query:?} at limit {limit}"));
    }
    let count = TaskRepo::count_matching(conn, fx.user.id, &query).unwrap();
    assert_eq!(count, expected.len() as i64, "count_matching of {query:?}");
}
