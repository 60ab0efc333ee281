//! `TaskQuery::metadata_contains` and `metadata_has_key`: the tasks they select, with
//! every other filter, sort, cursor and search; never another user's.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};
use todo_store::serde_support::TaskQueryParams;
use todo_store::testing::TestDb;
use todo_store::{
    Direction, Error, NewTask, PgConnection, Priority, Task, TaskId, TaskQuery, TaskRepo, TaskSort,
    UserId,
};

use crate::support::fixtures;

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

/// Every page of `query`, walked with its cursors, two tasks at a time.
fn walk(conn: &mut PgConnection, user: UserId, query: &TaskQuery) -> Vec<Task> {
    let query = query.clone().limit(2);
    let mut page = TaskRepo::list(conn, user, &query).unwrap();
    let mut all = std::mem::take(&mut page.items);
    while let Some(cursor) = page.next_cursor.take() {
        page = TaskRepo::list(conn, user, &query.clone().after(&cursor)).unwrap();
        all.append(&mut page.items);
    }
    all
}

fn ids(tasks: &[Task]) -> BTreeSet<TaskId> {
    tasks.iter().map(|t| t.id).collect()
}

/// The tasks of `all` that contain `document` and have `keys`, by a Rust reading of
/// `@>` for the documents of this test (scalars and arrays of scalars) and `?&`.
fn expected(all: &[Task], document: &Map<String, Value>, keys: &[&str]) -> BTreeSet<TaskId> {
    let contains = |task: &Task| {
        document
            .iter()
            .all(|(k, v)| match (task.metadata.get(k), v) {
                (Some(Value::Array(have)), Value::Array(want)) => {
                    want.iter().all(|w| have.contains(w))
                }
                (Some(have), want) => have == want,
                (None, _) => false,
            })
    };
    all.iter()
        .filter(|t| contains(t) && keys.iter().all(|k| t.metadata.contains_key(*k)))
        .map(|t| t.id)
        .collect()
}

#[test]
fn containment_and_keys_select_with_every_filter_sort_and_cursor() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let other = fixtures::user(&mut conn);
    let metadatas = [
        json!({"source": "email", "labels": ["work", "urgent"], "estimate_minutes": 30}),
        json!({"source": "email", "labels": ["home"]}),
        json!({"source": "web", "labels": ["work"], "estimate_minutes": 30}),
        json!({"source": "web"}),
        json!({}),
        json!({"estimate_minutes": 60, "links": [{"url": "https://example.com"}]}),
    ];
    let mut news = Vec::new();
    for i in 0..36 {
        let metadata = object(metadatas[i % metadatas.len()].clone());
        let title = ["invoice report", "garden plan", "call mum"][i % 3];
        news.push(
            NewTask::new(format!("{title} {i}"))
                .priority(Priority::ALL[i % 3])
                .completed(i % 4 == 0)
                .metadata(metadata),
        );
    }
    // Another user with the same metadata (tasks of their own: an id names one task):
    // never in this user's results.
    let others: Vec<NewTask> = news
        .iter()
        .map(|new| new.clone().id(uuid::Uuid::now_v7().into()))
        .collect();
    TaskRepo::create_many(&mut conn, other.id, &others).unwrap();
    let all = TaskRepo::create_many(&mut conn, user.id, &news).unwrap();

    let documents = [
        (json!({"source": "email"}), vec![]),
        (json!({"labels": ["work"]}), vec![]),
        (json!({"source": "web", "estimate_minutes": 30}), vec![]),
        (json!({}), vec!["estimate_minutes"]),
        (json!({}), vec!["labels", "estimate_minutes"]),
        (json!({"source": "email"}), vec!["estimate_minutes"]),
        (json!({"source": "nowhere"}), vec![]),
    ];
    let mut checked = 0;
    for (document, keys) in &documents {
        let document = object(document.clone());
        let mut base = TaskQuery::new();
        if !document.is_empty() {
            base = base.metadata_contains(document.clone());
        }
        for key in keys {
            base = base.metadata_has_key(*key);
        }
        let want = expected(&all, &document, keys);
        for sort in TaskSort::ALL {
            for direction in [Direction::Asc, Direction::Desc] {
                let variants = [
                    (base.clone(), want.clone()),
                    (
                        base.clone().completed(false).priority(Priority::High),
                        want.iter()
                            .copied()
                            .filter(|id| {
                                let t = all.iter().find(|t| t.id == *id).unwrap();
                                !t.completed && t.priority == Priority::High
                            })
                            .collect(),
                    ),
                    (
                        base.clone().search("invoice"),
                        want.iter()
                            .copied()
                            .filter(|id| {
                                all.iter()
                                    .find(|t| t.id == *id)
                                    .unwrap()
                                    .title
                                    .starts_with("invoice")
                            })
                            .collect(),
                    ),
                ];
                for (i, (query, want)) in variants.into_iter().enumerate() {
                    if sort == TaskSort::Relevance && i != 2 {
                        continue;
                    }
                    let query = query.sort(sort, direction);
                    let got = walk(&mut conn, user.id, &query);
                    assert_eq!(got.len(), want.len(), "{query:?}: a task twice?");
                    assert_eq!(ids(&got), want, "{query:?}");
                    assert_eq!(
                        TaskRepo::count_matching(&mut conn, user.id, &query).unwrap(),
                        want.len() as i64
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100);
    // The other user sees their own copies only.
    let theirs = walk(
        &mut conn,
        other.id,
        &TaskQuery::new().metadata_contains(object(json!({"source": "email"}))),
    );
    assert_eq!(theirs.len(), 12);
    assert!(theirs.iter().all(|t| t.user_id == other.id));
}

#[test]
fn a_cursor_of_another_metadata_filter_is_refused() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let news: Vec<NewTask> = (0..5)
        .map(|i| NewTask::new(format!("t{i}")).metadata(object(json!({"source": "email", "n": i}))))
        .collect();
    TaskRepo::create_many(&mut conn, user.id, &news).unwrap();
    let email = TaskQuery::new()
        .metadata_contains(object(json!({"source": "email"})))
        .limit(2);
    let cursor = TaskRepo::list(&mut conn, user.id, &email)
        .unwrap()
        .next_cursor
        .unwrap();
    for other in [
        TaskQuery::new().limit(2),
        TaskQuery::new()
            .metadata_contains(object(json!({"source": "web"})))
            .limit(2),
        email.clone().metadata_has_key("n"),
    ] {
        assert!(matches!(
            TaskRepo::list(&mut conn, user.id, &other.after(&cursor)),
            Err(Error::Validation { field, .. }) if field == "cursor"
        ));
    }
    assert!(TaskRepo::list(&mut conn, user.id, &email.after(&cursor)).is_ok());
}

#[test]
fn bad_metadata_filters_are_validation_errors() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    for (query, field) in [
        (TaskQuery::new().metadata_has_key(""), "metadata_has_key"),
        (
            TaskQuery::new().metadata_has_key("a\u{0}"),
            "metadata_has_key",
        ),
        (
            TaskQuery::new().metadata_contains(object(json!({"a": "\u{0}"}))),
            "metadata_contains",
        ),
        (
            TaskQuery::new().metadata_contains(object(json!({"": 1}))),
            "metadata_contains",
        ),
    ] {
        assert!(
            matches!(TaskRepo::list(&mut conn, user.id, &query), Err(Error::Validation { field: f, .. }) if f == field),
            "{query:?}"
        );
        assert!(matches!(
            TaskRepo::count_matching(&mut conn, user.id, &query),
            Err(Error::Validation { .. })
        ));
    }
}

#[test]
fn the_query_string_carries_the_metadata_filters() {
    let params: TaskQueryParams = serde_urlencoded::from_str(
        "metadata_contains=%7B%22source%22%3A%22email%22%7D&metadata_has_key=labels,estimate_minutes",
    )
    .unwrap();
    let query = TaskQuery::try_from(params).unwrap();
    assert_eq!(
        query,
        TaskQuery::new()
            .metadata_contains(object(json!({"source": "email"})))
            .metadata_has_key("estimate_minutes")
            .metadata_has_key("labels")
    );
    let params: TaskQueryParams = serde_urlencoded::from_str("metadata_contains=%5B1%5D").unwrap();
    assert!(matches!(
        TaskQuery::try_from(params),
        Err(Error::Validation { field, .. }) if field == "metadata_contains"
    ));
}
