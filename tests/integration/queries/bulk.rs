//! The bulk operations: create_many, set_completed_many and delete_many.

use std::collections::HashSet;

use diesel::Connection;
use todo_store::testing::TestDb;

use super::*;

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
    let unique: HashSet<TaskId> = created.iter().map(|t| t.id).collect();
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
    let missing: UserId = Uuid::now_v7().into();
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
    assert!(TaskRepo::create_many(&mut conn, Uuid::now_v7().into(), &[])
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
        assert!(
            TaskRepo::create_many(conn, Uuid::now_v7().into(), &news[5..])
                .unwrap_err()
                .is_not_found()
        );
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
    let news = || -> Vec<NewTask> { (0..5).map(|i| NewTask::new(format!("t{i}"))).collect() };
    let ada_tasks = TaskRepo::create_many(conn, ada.id, &news()).unwrap();
    let bob_tasks = TaskRepo::create_many(conn, bob.id, &news()).unwrap();
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
    let all: Vec<TaskId> = ada_tasks.iter().map(|t| t.id).collect();
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
    let unknown: [TaskId; 3] = [
        Uuid::now_v7().into(),
        Uuid::nil().into(),
        Uuid::max().into(),
    ];
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
        TaskRepo::set_completed_many(&mut conn, Uuid::now_v7().into(), &ids, true).unwrap(),
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
    let unknown: [TaskId; 2] = [Uuid::now_v7().into(), Uuid::nil().into()];
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
