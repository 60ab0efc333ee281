//! Exactly-once writes: an input's id is fixed when it is built, and a repeated
//! create returns its own row; a repeated versioned update recognises its own write by
//! the task's write mark; set_completed writes a state once. (`retry_transaction`
//! running them again after a COMMIT of unknown outcome: tests/unknown_commit.rs.)

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use todo_store::testing::TestDb;
use todo_store::{
    ConflictKind, Error, HabitRepo, NewHabit, NewSession, NewTask, NewUser, Priority, Schedule,
    SessionRepo, TaskPatch, TaskRepo, UserRepo,
};

use crate::support::fixtures;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(conn: &mut PgConnection, table: &str) -> i64 {
    diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
        .get_result::<Count>(conn)
        .unwrap()
        .n
}

fn is_id_in_use(err: &Error, entity: &str) -> bool {
    matches!(err, Error::Conflict { kind: ConflictKind::IdInUse { entity: e } } if *e == entity)
}

#[test]
fn a_repeated_task_create_returns_the_task_it_created() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let new = NewTask::new("Write the report")
        .priority(Priority::High)
        .description("by Friday")
        .metadata(
            serde_json::json!({"estimate": 1e3, "labels": ["work"]})
                .as_object()
                .cloned()
                .unwrap(),
        );
    let first = TaskRepo::create(&mut conn, user.id, &new).unwrap();
    assert_eq!(first.id, new.id);
    let again = TaskRepo::create(&mut conn, user.id, &new).unwrap();
    assert_eq!(again, first);
    assert_eq!(count(&mut conn, "tasks"), 1);
}

#[test]
fn a_task_id_taken_by_other_content_or_another_user_is_a_conflict() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let ann = fixtures::user(&mut conn);
    let bob = fixtures::user(&mut conn);
    let new = NewTask::new("Ann's task");
    let task = TaskRepo::create(&mut conn, ann.id, &new).unwrap();

    let other_title = NewTask::new("Something else").id(new.id);
    let err = TaskRepo::create(&mut conn, ann.id, &other_title).unwrap_err();
    assert!(is_id_in_use(&err, "task"), "{err:?}");
    // Another user sending Ann's id (even with Ann's content) learns nothing of it.
    let err = TaskRepo::create(&mut conn, bob.id, &new).unwrap_err();
    assert!(is_id_in_use(&err, "task"), "{err:?}");
    assert!(!err.to_string().contains("Ann"), "{err}");
    // A task changed since it was created is not recreated by its input.
    TaskRepo::set_completed(&mut conn, ann.id, task.id, true).unwrap();
    let err = TaskRepo::create(&mut conn, ann.id, &new).unwrap_err();
    assert!(is_id_in_use(&err, "task"), "{err:?}");
    assert_eq!(
        TaskRepo::get(&mut conn, ann.id, task.id).unwrap().version,
        2
    );
    assert_eq!(count(&mut conn, "tasks"), 1);
}

#[test]
fn a_repeated_task_batch_returns_the_tasks_it_created() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let batch: Vec<NewTask> = (0..5).map(|i| NewTask::new(format!("task {i}"))).collect();
    let first = TaskRepo::create_many(&mut conn, user.id, &batch).unwrap();
    let again = TaskRepo::create_many(&mut conn, user.id, &batch).unwrap();
    assert_eq!(again, first);
    assert_eq!(count(&mut conn, "tasks"), 5);

    // One item changed: not a repeat, nothing written.
    let mut changed = batch.clone();
    changed[2].title = "changed".into();
    let err = TaskRepo::create_many(&mut conn, user.id, &changed).unwrap_err();
    assert!(is_id_in_use(&err, "task"), "{err:?}");
    // The same input twice in one batch.
    let twice = vec![NewTask::new("a"), batch[0].clone()];
    let fresh = NewTask::new("b");
    let err =
        TaskRepo::create_many(&mut conn, user.id, &[fresh.clone(), fresh.clone()]).unwrap_err();
    assert!(is_id_in_use(&err, "task"), "{err:?}");
    let err = TaskRepo::create_many(&mut conn, user.id, &twice).unwrap_err();
    assert!(is_id_in_use(&err, "task"), "{err:?}");
    assert_eq!(count(&mut conn, "tasks"), 5);
}

#[test]
fn a_repeated_user_create_returns_the_user_it_created() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let new = NewUser::new("ada@example.com", "Ada").email_verified(true);
    let first = UserRepo::create(&mut conn, &new).unwrap();
    assert_eq!(first.id, new.id);
    assert_eq!(UserRepo::create(&mut conn, &new).unwrap(), first);
    assert_eq!(count(&mut conn, "users"), 1);

    let renamed = NewUser {
        name: "Ada L.".into(),
        ..new.clone()
    };
    let err = UserRepo::create(&mut conn, &renamed).unwrap_err();
    assert!(is_id_in_use(&err, "user"), "{err:?}");
    // A new user with a taken address is still EmailTaken.
    let err = UserRepo::create(&mut conn, &NewUser::new("ADA@example.com", "Other")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                kind: ConflictKind::EmailTaken
            }
        ),
        "{err:?}"
    );

    let batch = vec![
        NewUser::new("bea@example.com", "Bea"),
        NewUser::new("cy@example.com", "Cy"),
    ];
    let users = UserRepo::create_many(&mut conn, &batch).unwrap();
    assert_eq!(UserRepo::create_many(&mut conn, &batch).unwrap(), users);
    // The same addresses under new ids: a conflict on the email, as before.
    let new_ids = vec![NewUser::new("bea@example.com", "Bea")];
    let err = UserRepo::create_many(&mut conn, &new_ids).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                kind: ConflictKind::EmailTaken
            }
        ),
        "{err:?}"
    );
    assert_eq!(count(&mut conn, "users"), 3);
}

#[test]
fn a_repeated_habit_create_returns_the_habit_it_created() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let ann = fixtures::user(&mut conn);
    let bob = fixtures::user(&mut conn);
    let new = NewHabit::new("Run", Schedule::Daily).description("5 km");
    let first = HabitRepo::create(&mut conn, ann.id, &new).unwrap();
    assert_eq!(first.id, new.id);
    assert_eq!(HabitRepo::create(&mut conn, ann.id, &new).unwrap(), first);
    let err = HabitRepo::create(&mut conn, bob.id, &new).unwrap_err();
    assert!(is_id_in_use(&err, "habit"), "{err:?}");
    let walk = NewHabit::new("Walk", Schedule::Daily).id(new.id);
    let err = HabitRepo::create(&mut conn, ann.id, &walk).unwrap_err();
    assert!(is_id_in_use(&err, "habit"), "{err:?}");
    assert_eq!(count(&mut conn, "habits"), 1);
}

#[test]
fn a_repeated_session_create_returns_the_session_and_token_it_created() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let ann = fixtures::user(&mut conn);
    let bob = fixtures::user(&mut conn);
    let new = NewSession::new(chrono::Utc::now() + chrono::Duration::days(1)).user_agent("curl");
    let (first, token) = SessionRepo::create(&mut conn, ann.id, &new).unwrap();
    assert_eq!(first.id, new.id);
    assert_eq!(
        SessionRepo::create(&mut conn, ann.id, &new).unwrap(),
        (first.clone(), token.clone())
    );
    assert_eq!(count(&mut conn, "sessions"), 1);
    let (found, user) = SessionRepo::authenticate(&mut conn, &token)
        .unwrap()
        .unwrap();
    assert_eq!((found, user.id), (first, ann.id));

    // Another user, other fields, or another token under the same id: a conflict.
    let err = SessionRepo::create(&mut conn, bob.id, &new).unwrap_err();
    assert!(is_id_in_use(&err, "session"), "{err:?}");
    let other_agent = new.clone().user_agent("wget");
    let err = SessionRepo::create(&mut conn, ann.id, &other_agent).unwrap_err();
    assert!(is_id_in_use(&err, "session"), "{err:?}");
    let other_token = NewSession::new(new.expires_at)
        .user_agent("curl")
        .id(new.id);
    let err = SessionRepo::create(&mut conn, ann.id, &other_token).unwrap_err();
    assert!(is_id_in_use(&err, "session"), "{err:?}");
    // The same token under another id: a conflict too, not a second session.
    let same_token = new.clone().id(uuid::Uuid::now_v7().into());
    let err = SessionRepo::create(&mut conn, ann.id, &same_token).unwrap_err();
    assert!(is_id_in_use(&err, "session"), "{err:?}");
    assert_eq!(count(&mut conn, "sessions"), 1);

    // Two sign-ins, two inputs: two sessions with two tokens.
    let (second, second_token) = SessionRepo::create(
        &mut conn,
        ann.id,
        &NewSession::new(chrono::Utc::now() + chrono::Duration::days(1)),
    )
    .unwrap();
    assert_ne!((second.id, &second_token), (new.id, &token));
    assert_eq!(count(&mut conn, "sessions"), 2);
}

fn is_stale(err: &Error, expected: i32, actual: i32) -> bool {
    matches!(
        err,
        Error::Conflict { kind: ConflictKind::StaleVersion { expected: e, actual: a } }
            if (*e, *a) == (expected, actual)
    )
}

#[test]
fn a_repeated_versioned_patch_returns_the_task_it_wrote_once() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let ann = fixtures::user(&mut conn);
    let bob = fixtures::user(&mut conn);
    let task = fixtures::task(&mut conn, &ann, "draft");
    assert_eq!(task.version, 1);
    let patch = TaskPatch {
        title: Some("final".into()),
        expected_version: Some(1),
        ..TaskPatch::default()
    };
    let first = TaskRepo::update(&mut conn, ann.id, task.id, &patch).unwrap();
    assert_eq!((first.version, first.title.as_str()), (2, "final"));
    // The same patch again, or a clone of it (the same write): its own row, unchanged.
    let again = TaskRepo::update(&mut conn, ann.id, task.id, &patch).unwrap();
    assert_eq!(again, first);
    assert_eq!(
        TaskRepo::update(&mut conn, ann.id, task.id, &patch.clone()).unwrap(),
        first
    );
    // Another user learns nothing from the mark.
    let err = TaskRepo::update(&mut conn, bob.id, task.id, &patch).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");

    // A different patch at the stale version (same changes, a new write) is stale.
    let other = TaskPatch {
        write_id: TaskPatch::default().write_id,
        ..patch.clone()
    };
    let err = TaskRepo::update(&mut conn, ann.id, task.id, &other).unwrap_err();
    assert!(is_stale(&err, 1, 2), "{err:?}");

    // The same write id with other changes (a copy by `..patch.clone()`) is another
    // write: stale, never taken for the first.
    let copied = TaskPatch {
        title: Some("something else".into()),
        ..patch.clone()
    };
    let err = TaskRepo::update(&mut conn, ann.id, task.id, &copied).unwrap_err();
    assert!(is_stale(&err, 1, 2), "{err:?}");

    // Once another writer wrote after it, the repeat is stale: it cannot be told apart.
    let later = TaskPatch {
        priority: Some(Priority::High),
        expected_version: Some(2),
        ..TaskPatch::default()
    };
    assert_eq!(
        TaskRepo::update(&mut conn, ann.id, task.id, &later)
            .unwrap()
            .version,
        3
    );
    let err = TaskRepo::update(&mut conn, ann.id, task.id, &patch).unwrap_err();
    assert!(is_stale(&err, 1, 3), "{err:?}");
    // An unversioned write after it (set_completed too) moves the version the same way.
    let retry_later = TaskRepo::update(&mut conn, ann.id, task.id, &later).unwrap();
    assert_eq!(
        retry_later.version, 3,
        "the later patch is recognised in turn"
    );
    TaskRepo::set_completed(&mut conn, ann.id, task.id, true).unwrap();
    let err = TaskRepo::update(&mut conn, ann.id, task.id, &later).unwrap_err();
    assert!(is_stale(&err, 2, 4), "{err:?}");

    let stored = TaskRepo::get(&mut conn, ann.id, task.id).unwrap();
    assert_eq!(
        (
            stored.version,
            stored.title.as_str(),
            stored.priority,
            stored.completed
        ),
        (4, "final", Priority::High, true)
    );
    // A patch for a task that does not exist is still NotFound.
    let err = TaskRepo::update(&mut conn, ann.id, NewTask::new("x").id, &patch).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

#[test]
fn set_completed_twice_bumps_the_version_once() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let ann = fixtures::user(&mut conn);
    let bob = fixtures::user(&mut conn);
    let task = fixtures::task(&mut conn, &ann, "laundry");
    let done = TaskRepo::set_completed(&mut conn, ann.id, task.id, true).unwrap();
    assert!(done.completed);
    assert_eq!(done.version, 2);
    let again = TaskRepo::set_completed(&mut conn, ann.id, task.id, true).unwrap();
    assert_eq!(again, done, "already done: returned unchanged");
    // Already open at first: no write at all.
    let other = fixtures::task(&mut conn, &ann, "dishes");
    assert_eq!(
        TaskRepo::set_completed(&mut conn, ann.id, other.id, false).unwrap(),
        other
    );
    let open = TaskRepo::set_completed(&mut conn, ann.id, task.id, false).unwrap();
    assert_eq!((open.completed, open.version), (false, 3));
    let err = TaskRepo::set_completed(&mut conn, bob.id, task.id, false).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = TaskRepo::set_completed(&mut conn, ann.id, NewTask::new("x").id, true).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(TaskRepo::get(&mut conn, ann.id, task.id).unwrap(), open);
}
