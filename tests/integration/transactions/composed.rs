//! Repo calls composed in a caller's transaction: rolled back whole, nested through
//! savepoints.

use todo_store::{ConflictKind, Error, NewTask, NewUser, TaskPatch, UserPatch, UserRepo};

use crate::support::fixtures;

use super::*;

struct World {
    user: todo_store::User,
    tasks: Vec<todo_store::Task>,
}

fn world(conn: &mut PgConnection) -> World {
    let user = fixtures::user(conn);
    let tasks = (0..4)
        .map(|i| fixtures::task(conn, &user, &format!("existing {i}")))
        .collect();
    World { user, tasks }
}

/// Every kind of write the repos offer, inside the caller's transaction; checks inside
/// the transaction that each took effect there.
fn write_everything(conn: &mut PgConnection, w: &World) -> todo_store::Result<()> {
    let uid = w.user.id;
    let t = &w.tasks;
    let newcomer = UserRepo::create(
        conn,
        &NewUser::new(format!("new-{}@example.com", Uuid::now_v7()), "New"),
    )?;
    UserRepo::create_many(
        conn,
        &[
            NewUser::new(format!("bulk-a-{}@example.com", Uuid::now_v7()), "Bulk A"),
            NewUser::new(format!("bulk-b-{}@example.com", Uuid::now_v7()), "Bulk B"),
        ],
    )?;
    UserRepo::update(
        conn,
        uid,
        &UserPatch {
            name: Some("Renamed".into()),
            ..Default::default()
        },
    )?;
    TaskRepo::create(conn, uid, &NewTask::new("created"))?;
    TaskRepo::create(conn, newcomer.id, &NewTask::new("newcomer's"))?;
    TaskRepo::update(
        conn,
        uid,
        t[0].id,
        &TaskPatch {
            title: Some("updated".into()),
            expected_version: Some(1),
            ..Default::default()
        },
    )?;
    TaskRepo::set_completed(conn, uid, t[1].id, true)?;
    TaskRepo::delete(conn, uid, t[2].id)?;
    let many = TaskRepo::create_many(
        conn,
        uid,
        &[
            NewTask::new("many 1"),
            NewTask::new("many 2"),
            NewTask::new("many 3"),
        ],
    )?;
    let ids: Vec<TaskId> = many.iter().map(|t| t.id).chain([t[3].id]).collect();
    assert_eq!(TaskRepo::set_completed_many(conn, uid, &ids, true)?, 4);
    assert_eq!(TaskRepo::delete_many(conn, uid, &ids[..2])?, 2);
    // In the transaction, every change is there.
    assert_eq!(UserRepo::get(conn, uid)?.name, "Renamed");
    assert_eq!(TaskRepo::count(conn, uid)?, 4 - 1 + 1 + 3 - 2);
    assert_eq!(TaskRepo::count(conn, newcomer.id)?, 1);
    assert_eq!(TaskRepo::get(conn, uid, t[0].id)?.title, "updated");
    assert!(TaskRepo::get(conn, uid, t[1].id)?.completed);
    assert!(TaskRepo::get(conn, uid, t[2].id)
        .unwrap_err()
        .is_not_found());
    assert_eq!(UserRepo::get(conn, newcomer.id)?, newcomer);
    Ok(())
}

#[test]
fn a_failed_callers_transaction_leaves_nothing_of_any_repo_write() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let w = world(&mut conn);
    let before = snapshot(&mut conn);
    let mut ran_to_the_end = false;
    let err = conn
        .transaction(|conn| {
            write_everything(conn, &w)?;
            ran_to_the_end = true;
            // A real database error last: the email is taken.
            UserRepo::create(conn, &NewUser::new(w.user.email.clone(), "Twin"))?;
            Ok::<_, Error>(())
        })
        .unwrap_err();
    assert!(ran_to_the_end);
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(
        snapshot(&mut conn),
        before,
        "nothing of the transaction remains"
    );

    // The same writes, committed, all remain: the snapshot above could tell.
    conn.transaction(|conn| write_everything(conn, &w)).unwrap();
    let (users, tasks) = snapshot(&mut conn);
    assert_eq!(users.len(), before.0.len() + 3);
    assert_eq!(tasks.len(), before.1.len() + 2);
    assert_ne!(tasks, before.1);
}

#[test]
fn a_transaction_failed_by_a_validation_error_or_a_bulk_call_leaves_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let w = world(&mut conn);
    let before = snapshot(&mut conn);
    for failing_step in 0..4 {
        let err = conn
            .transaction(|conn| {
                write_everything(conn, &w)?;
                match failing_step {
                    // One bad item fails the whole batch, and then the transaction.
                    0 => TaskRepo::create_many(
                        conn,
                        w.user.id,
                        &[NewTask::new("ok"), NewTask::new("")],
                    )
                    .map(drop),
                    // COPY into a missing user's tasks fails on the server.
                    1 => TaskRepo::create_many(
                        conn,
                        Uuid::now_v7().into(),
                        &[NewTask::new("orphan")],
                    )
                    .map(drop),
                    2 => TaskRepo::update(
                        conn,
                        w.user.id,
                        w.tasks[0].id,
                        &TaskPatch {
                            title: Some("stale".into()),
                            expected_version: Some(1),
                            ..Default::default()
                        },
                    )
                    .map(drop),
                    _ => TaskRepo::delete(conn, w.user.id, w.tasks[2].id),
                }
            })
            .unwrap_err();
        let expected = match failing_step {
            0 => err.is_validation(),
            1 | 3 => err.is_not_found(),
            _ => matches!(
                err,
                Error::Conflict {
                    kind: ConflictKind::StaleVersion {
                        expected: 1,
                        actual: 2
                    }
                }
            ),
        };
        assert!(expected, "step {failing_step}: {err:?}");
        assert_eq!(snapshot(&mut conn), before, "step {failing_step}");
    }
}

/// An inner `conn.transaction` is a savepoint: its failure undoes only its own writes,
/// and the outer transaction goes on and commits.
#[test]
fn a_failed_nested_transaction_rolls_back_to_its_savepoint_and_the_outer_commits() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let w = world(&mut conn);
    let uid = w.user.id;
    let other = fixtures::user(&mut conn);
    let before_other = rows(&mut conn, "users")
        .into_iter()
        .find(|r| r.contains(&other.id.to_string()))
        .unwrap();

    conn.transaction(|conn| {
        let kept = TaskRepo::create(conn, uid, &NewTask::new("outer before"))?;

        // Inner 1 fails with a validation error after several writes.
        let inner: todo_store::Result<()> = conn.transaction(|conn| {
            TaskRepo::create(conn, uid, &NewTask::new("inner 1"))?;
            TaskRepo::set_completed_many(conn, uid, &[kept.id, w.tasks[0].id], true)?;
            TaskRepo::delete_many(conn, uid, &[w.tasks[1].id])?;
            UserRepo::update(
                conn,
                other.id,
                &UserPatch {
                    name: Some("Changed".into()),
                    ..Default::default()
                },
            )?;
            TaskRepo::create(conn, uid, &NewTask::new("")).map(drop)
        });
        assert!(inner.unwrap_err().is_validation());
        assert!(!TaskRepo::get(conn, uid, kept.id)?.completed);
        assert_eq!(TaskRepo::get(conn, uid, w.tasks[1].id)?.version, 1);

        // Inner 2 fails with a database error (the server aborted the statement): the
        // savepoint makes the outer transaction usable again.
        let inner: todo_store::Result<()> = conn.transaction(|conn| {
            TaskRepo::create_many(
                conn,
                uid,
                &[NewTask::new("inner 2a"), NewTask::new("inner 2b")],
            )?;
            UserRepo::create(conn, &NewUser::new(w.user.email.clone(), "Twin")).map(drop)
        });
        assert!(inner.unwrap_err().is_conflict());

        // A bulk call that fails on the server rolls back its own savepoint, even
        // without an inner transaction of the caller's.
        let orphan = TaskRepo::create_many(conn, Uuid::now_v7().into(), &[NewTask::new("orphan")]);
        assert!(orphan.unwrap_err().is_not_found());

        // Inner 3 succeeds and stays.
        conn.transaction(|conn| {
            TaskRepo::create(conn, uid, &NewTask::new("inner 3"))?;
            // Doubly nested, failing: only its own write goes.
            let deeper: todo_store::Result<()> = conn.transaction(|conn| {
                TaskRepo::create(conn, uid, &NewTask::new("deeper"))?;
                Err(Error::validation("test", "fail on purpose"))
            });
            assert!(deeper.is_err());
            Ok::<_, Error>(())
        })?;
        TaskRepo::create(conn, uid, &NewTask::new("outer after"))?;
        Ok::<_, Error>(())
    })
    .unwrap();

    let mut expected: Vec<String> = ["outer before", "inner 3", "outer after"]
        .into_iter()
        .map(String::from)
        .chain(w.tasks.iter().map(|t| t.title.clone()))
        .collect();
    expected.sort();
    assert_eq!(titles(&mut conn, uid), expected);
    for task in &w.tasks {
        assert_eq!(
            &TaskRepo::get(&mut conn, uid, task.id).unwrap(),
            task,
            "untouched"
        );
    }
    let after_other = rows(&mut conn, "users")
        .into_iter()
        .find(|r| r.contains(&other.id.to_string()))
        .unwrap();
    assert_eq!(after_other, before_other);
}
