//! TaskRepo against real PostgreSQL: CRUD, user isolation, versions, validation.

use chrono::{Duration, SubsecRound, Utc};
use todo_store::testing::TestDb;
use todo_store::{ConflictKind, Error, NewTask, Priority, TaskPatch, TaskQuery, TaskRepo};
use uuid::Uuid;

use crate::support::fixtures;

#[test]
fn create_returns_the_stored_task_with_defaults() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let task = TaskRepo::create(&mut conn, user.id, &NewTask::new("  Buy milk  ")).unwrap();
    assert_eq!(task.title, "Buy milk");
    assert_eq!(task.user_id, user.id);
    assert_eq!(task.priority, Priority::Medium);
    assert_eq!(task.description, None);
    assert_eq!(task.due_date, None);
    assert!(!task.completed);
    assert_eq!(task.version, 1);
    assert_eq!(task.id.as_uuid().get_version_num(), 7);
    assert_eq!(TaskRepo::get(&mut conn, user.id, task.id).unwrap(), task);
}

#[test]
fn create_keeps_every_field() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let due = (Utc::now() + Duration::days(3)).trunc_subsecs(6);
    let new = NewTask::new("Report")
        .description("Quarterly numbers")
        .priority(Priority::High)
        .due_date(due)
        .completed(true);
    let task = TaskRepo::create(&mut conn, user.id, &new).unwrap();
    assert_eq!(task.description.as_deref(), Some("Quarterly numbers"));
    assert_eq!(task.priority, Priority::High);
    assert_eq!(task.due_date, Some(due));
    assert!(task.completed);
}

#[test]
fn creating_a_task_for_a_missing_user_is_not_found() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let err =
        TaskRepo::create(&mut conn, Uuid::now_v7().into(), &NewTask::new("orphan")).unwrap_err();
    assert!(
        matches!(err, Error::NotFound { entity: "user", .. }),
        "{err:?}"
    );
}

#[test]
fn update_is_partial_and_bumps_version_and_updated_at() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let due = (Utc::now() + Duration::days(1)).trunc_subsecs(6);
    let task = TaskRepo::create(
        &mut conn,
        user.id,
        &NewTask::new("Draft").description("first").due_date(due),
    )
    .unwrap();

    let patch = TaskPatch {
        title: Some("Final".into()),
        ..Default::default()
    };
    let updated = TaskRepo::update(&mut conn, user.id, task.id, &patch).unwrap();
    assert_eq!(updated.title, "Final");
    assert_eq!(updated.description, task.description);
    assert_eq!(updated.due_date, task.due_date);
    assert_eq!(updated.priority, task.priority);
    assert_eq!(updated.version, 2);
    assert!(updated.updated_at > task.updated_at);
    assert_eq!(updated.created_at, task.created_at);

    let cleared = TaskRepo::update(
        &mut conn,
        user.id,
        task.id,
        &TaskPatch {
            description: Some(None),
            due_date: Some(None),
            priority: Some(Priority::Low),
            completed: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(cleared.description, None);
    assert_eq!(cleared.due_date, None);
    assert_eq!(cleared.priority, Priority::Low);
    assert!(cleared.completed);
    assert_eq!(cleared.title, "Final");
    assert_eq!(cleared.version, 3);
    assert_eq!(TaskRepo::get(&mut conn, user.id, task.id).unwrap(), cleared);
}

#[test]
fn stale_expected_version_is_a_conflict_and_changes_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let task = fixtures::task(&mut conn, &user, "shared");
    let first = TaskPatch {
        title: Some("mine".into()),
        expected_version: Some(1),
        ..Default::default()
    };
    let updated = TaskRepo::update(&mut conn, user.id, task.id, &first).unwrap();
    assert_eq!(updated.version, 2);

    let stale = TaskPatch {
        title: Some("theirs".into()),
        expected_version: Some(1),
        ..Default::default()
    };
    let err = TaskRepo::update(&mut conn, user.id, task.id, &stale).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                kind: ConflictKind::StaleVersion {
                    expected: 1,
                    actual: 2
                }
            }
        ),
        "{err:?}"
    );
    assert_eq!(TaskRepo::get(&mut conn, user.id, task.id).unwrap(), updated);
}

#[test]
fn set_completed_marks_done_and_open() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let task = fixtures::task(&mut conn, &user, "laundry");
    let done = TaskRepo::set_completed(&mut conn, user.id, task.id, true).unwrap();
    assert!(done.completed);
    assert_eq!(done.version, 2);
    let open = TaskRepo::set_completed(&mut conn, user.id, task.id, false).unwrap();
    assert!(!open.completed);
    assert_eq!(open.version, 3);
}

#[test]
fn delete_removes_the_task() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let task = fixtures::task(&mut conn, &user, "gone soon");
    TaskRepo::delete(&mut conn, user.id, task.id).unwrap();
    assert!(TaskRepo::get(&mut conn, user.id, task.id)
        .unwrap_err()
        .is_not_found());
    assert!(TaskRepo::delete(&mut conn, user.id, task.id)
        .unwrap_err()
        .is_not_found());
}

#[test]
fn another_users_task_is_not_found_and_never_changed() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let owner = fixtures::user(&mut conn);
    let intruder = fixtures::user(&mut conn);
    let task = fixtures::task(&mut conn, &owner, "private");

    let not_found =
        |r: todo_store::Result<_>| matches!(r, Err(Error::NotFound { entity: "task", .. }));
    assert!(not_found(
        TaskRepo::get(&mut conn, intruder.id, task.id).map(|_| ())
    ));
    let patch = TaskPatch {
        title: Some("hacked".into()),
        ..Default::default()
    };
    assert!(not_found(
        TaskRepo::update(&mut conn, intruder.id, task.id, &patch).map(|_| ())
    ));
    let versioned = TaskPatch {
        expected_version: Some(1),
        ..patch.clone()
    };
    assert!(not_found(
        TaskRepo::update(&mut conn, intruder.id, task.id, &versioned).map(|_| ())
    ));
    assert!(not_found(
        TaskRepo::set_completed(&mut conn, intruder.id, task.id, true).map(|_| ())
    ));
    assert!(not_found(TaskRepo::delete(&mut conn, intruder.id, task.id)));
    assert_eq!(TaskRepo::count(&mut conn, intruder.id).unwrap(), 0);
    assert!(TaskRepo::list(&mut conn, intruder.id, &TaskQuery::new())
        .unwrap()
        .items
        .is_empty());

    assert_eq!(TaskRepo::get(&mut conn, owner.id, task.id).unwrap(), task);
}

#[test]
fn count_and_list_are_per_user_newest_first() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let other = fixtures::user(&mut conn);
    let created: Vec<_> = (0..7)
        .map(|i| fixtures::task(&mut conn, &user, &format!("t{i}")))
        .collect();
    fixtures::task(&mut conn, &other, "not mine");
    assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 7);

    let page = TaskRepo::list(&mut conn, user.id, &TaskQuery::new()).unwrap();
    let expected: Vec<_> = created.iter().rev().cloned().collect();
    assert_eq!(page.items, expected);
    assert_eq!(page.next_cursor, None);

    let first = TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(3)).unwrap();
    assert_eq!(first.items, expected[..3]);
    assert!(first.next_cursor.is_some());
}

#[test]
fn list_limit_outside_1_to_500_is_invalid() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    for limit in [0, -1, 501, i64::MAX] {
        let err = TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(limit)).unwrap_err();
        assert!(
            matches!(err, Error::Validation { ref field, .. } if field == "limit"),
            "{limit}: {err:?}"
        );
    }
    assert!(TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(500)).is_ok());
}

#[test]
fn invalid_tasks_are_rejected_and_nothing_is_written() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let cases = [
        (NewTask::new(""), "title"),
        (NewTask::new(" \t\n "), "title"),
        (NewTask::new("t".repeat(256)), "title"),
        (NewTask::new("nul\0title"), "title"),
        (
            NewTask::new("ok").description("d".repeat(10_001)),
            "description",
        ),
        (NewTask::new("ok").description("nul\0"), "description"),
    ];
    for (new, field) in cases {
        match TaskRepo::create(&mut conn, user.id, &new).unwrap_err() {
            Error::Validation { field: ref f, .. } if f == field => {}
            other => panic!("{field}: expected Validation, got {other:?}"),
        }
    }
    assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 0);
    // The limits count characters: 255 three-byte characters and 10,000 of description fit.
    let max = NewTask::new("語".repeat(255)).description("d".repeat(10_000));
    TaskRepo::create(&mut conn, user.id, &max).unwrap();
    assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 1);
}

#[test]
fn invalid_patches_are_rejected_and_change_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let task = fixtures::task(&mut conn, &user, "keep me");
    for patch in [
        TaskPatch {
            title: Some("  ".into()),
            ..Default::default()
        },
        TaskPatch {
            title: Some("x".repeat(256)),
            ..Default::default()
        },
        TaskPatch {
            title: Some("a\0b".into()),
            completed: Some(true),
            ..Default::default()
        },
        TaskPatch {
            description: Some(Some("d".repeat(10_001))),
            ..Default::default()
        },
        TaskPatch {
            expected_version: Some(0),
            ..Default::default()
        },
    ] {
        let err = TaskRepo::update(&mut conn, user.id, task.id, &patch).unwrap_err();
        assert!(err.is_validation(), "{patch:?}: {err:?}");
    }
    assert_eq!(TaskRepo::get(&mut conn, user.id, task.id).unwrap(), task);
}

#[test]
fn repo_calls_compose_in_a_callers_transaction() {
    use diesel::Connection;
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let result: Result<(), Error> = conn.transaction(|conn| {
        TaskRepo::create(conn, user.id, &NewTask::new("inside"))?;
        TaskRepo::create(conn, user.id, &NewTask::new(""))?; // fails: rolls both back
        Ok(())
    });
    assert!(result.unwrap_err().is_validation());
    assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 0);
}
