//! Hostile new tasks and task patches, and dates PostgreSQL cannot hold.

use std::cell::RefCell;

use proptest::sample::Index;
use todo_store::testing::TestDb;
use todo_store::TaskPatch;

use super::*;

#[derive(Debug, Clone)]
struct GenTask {
    title: String,
    description: Option<String>,
    priority: Priority,
    due: Option<DateTime<Utc>>,
    completed: bool,
}

impl GenTask {
    fn new_task(&self) -> NewTask {
        NewTask {
            title: self.title.clone(),
            description: self.description.clone(),
            priority: self.priority,
            due_date: self.due,
            completed: self.completed,
            metadata: Default::default(),
            ..Default::default()
        }
    }
}

fn gen_task() -> impl Strategy<Value = GenTask> {
    (
        text(2),
        prop::option::of(hostile_text()),
        priority(),
        prop::option::of(extreme_date()),
        any::<bool>(),
    )
        .prop_map(|(title, description, priority, due, completed)| GenTask {
            title,
            description,
            priority,
            due,
            completed,
        })
}

/// Whose task a call names: the user's own, the other user's, or none at all.
#[derive(Debug, Clone, Copy)]
enum Owner {
    User,
    Other,
    Nobody,
}

fn owner() -> impl Strategy<Value = Owner> {
    prop_oneof![6 => Just(Owner::User), 1 => Just(Owner::Other), 1 => Just(Owner::Nobody)]
}

#[test]
fn hostile_new_tasks_are_stored_exactly_or_rejected_without_a_trace() {
    let db = TestDb::new();
    let conn = RefCell::new(db.conn());
    let fx = fixture(&mut conn.borrow_mut());
    let strategy = (gen_task(), prop::collection::vec(gen_task(), 0..4), owner());
    run(160, strategy, |(g, batch, owner)| {
        let mut guard = conn.borrow_mut();
        let conn: &mut PgConnection = &mut guard;
        let user = match owner {
            Owner::User => fx.user.id,
            Owner::Other => fx.other.id,
            Owner::Nobody => Uuid::now_v7().into(),
        };
        let before = digest(conn);
        let created = TaskRepo::create(conn, user, &g.new_task());
        check(conn, &before, "TaskRepo::create", &created)?;
        if let Ok(task) = &created {
            prop_assert_eq!(task.user_id, user);
            prop_assert_eq!(&task.title, g.title.trim());
            prop_assert_eq!(&task.description, &g.description);
            prop_assert_eq!(task.priority, g.priority);
            prop_assert_eq!(task.completed, g.completed);
            prop_assert_eq!(task.version, 1);
            prop_assert_eq!(task.due_date.is_some(), g.due.is_some());
            prop_assert_eq!(&TaskRepo::get(conn, user, task.id).unwrap(), task);
        }
        let news: Vec<NewTask> = batch.iter().map(GenTask::new_task).collect();
        let before = digest(conn);
        let count = TaskRepo::count(conn, user).unwrap();
        let created = TaskRepo::create_many(conn, user, &news);
        check(conn, &before, "TaskRepo::create_many", &created)?;
        if let Ok(tasks) = &created {
            prop_assert_eq!(tasks.len(), news.len());
            prop_assert_eq!(
                TaskRepo::count(conn, user).unwrap(),
                count + news.len() as i64
            );
            for task in tasks {
                // The due date as returned has a test of its own
                // (create_many_returns_the_due_dates_it_stored).
                let mut stored = TaskRepo::get(conn, user, task.id).unwrap();
                prop_assert_eq!(stored.due_date.is_some(), task.due_date.is_some());
                stored.due_date = task.due_date;
                prop_assert_eq!(&stored, task);
            }
        }
        Ok(())
    });
}

/// Which `expected_version` a patch carries.
#[derive(Debug, Clone, Copy)]
enum Version {
    Unchecked,
    Current,
    Stale,
    Any(i32),
}

#[derive(Debug, Clone)]
struct GenTaskPatch {
    title: Option<String>,
    description: Option<Option<String>>,
    completed: Option<bool>,
    priority: Option<Priority>,
    due: Option<Option<DateTime<Utc>>>,
    version: Version,
    owner: Owner,
    index: Index,
    /// 0: update; 1: set_completed; 2: delete (when the user cannot see the task).
    op: u8,
}

fn gen_task_patch() -> impl Strategy<Value = GenTaskPatch> {
    let version = prop_oneof![
        Just(Version::Unchecked),
        Just(Version::Current),
        Just(Version::Stale),
        any::<i32>().prop_map(Version::Any),
        prop::sample::select(vec![i32::MIN, -1, 0, 1, i32::MAX]).prop_map(Version::Any),
    ];
    (
        (
            prop::option::of(text(1)),
            prop::option::of(prop::option::of(text(1))),
            prop::option::of(any::<bool>()),
            prop::option::of(priority()),
            prop::option::of(prop::option::of(extreme_date())),
        ),
        version,
        owner(),
        any::<Index>(),
        prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
    )
        .prop_map(
            |((title, description, completed, priority, due), version, owner, index, op)| {
                GenTaskPatch {
                    title,
                    description,
                    completed,
                    priority,
                    due,
                    version,
                    owner,
                    index,
                    op,
                }
            },
        )
}

#[test]
fn hostile_task_patches_apply_exactly_or_change_nothing() {
    let db = TestDb::new();
    let conn = RefCell::new(db.conn());
    let fx = fixture(&mut conn.borrow_mut());
    let user = fx.user.id;
    run(192, gen_task_patch(), |g| {
        let mut guard = conn.borrow_mut();
        let conn: &mut PgConnection = &mut guard;
        // Every call is as `user`: the other user's tasks must behave as missing ones.
        let target = match g.owner {
            Owner::User => g.index.get(&fx.tasks).id,
            Owner::Other => g.index.get(&fx.other_tasks).id,
            Owner::Nobody => Uuid::now_v7().into(),
        };
        let old = TaskRepo::get(conn, user, target).ok();
        let current = old.as_ref().map_or(1, |t| t.version);
        let patch = TaskPatch {
            title: g.title.clone(),
            description: g.description.clone(),
            completed: g.completed,
            priority: g.priority,
            due_date: g.due,
            metadata: None,
            expected_version: match g.version {
                Version::Unchecked => None,
                Version::Current => Some(current),
                Version::Stale => Some(if current > 1 {
                    current - 1
                } else {
                    current + 1
                }),
                Version::Any(v) => Some(v),
            },
            write_id: Uuid::now_v7(),
        };
        let before = digest(conn);
        if g.op == 2 {
            // Only tasks the user cannot see: deleting their own would empty the fixture.
            if old.is_none() {
                let deleted = TaskRepo::delete(conn, user, target);
                check(conn, &before, "TaskRepo::delete", &deleted)?;
                prop_assert!(
                    matches!(deleted, Err(Error::NotFound { .. })),
                    "{deleted:?}"
                );
            }
            return Ok(());
        }
        let (op, result) = match g.op {
            0 => (
                "TaskRepo::update",
                TaskRepo::update(conn, user, target, &patch),
            ),
            _ => (
                "TaskRepo::set_completed",
                TaskRepo::set_completed(conn, user, target, g.completed.unwrap_or(true)),
            ),
        };
        check(conn, &before, op, &result)?;
        match (&result, &old) {
            (Ok(new), Some(old)) => {
                prop_assert_eq!(new.id, old.id);
                prop_assert_eq!(new.user_id, user);
                // set_completed to the state a task has writes nothing.
                let unchanged = g.op != 0 && old.completed == g.completed.unwrap_or(true);
                prop_assert_eq!(new.version, old.version + i32::from(!unchanged));
                if unchanged {
                    prop_assert_eq!(new, old);
                }
                if g.op == 0 {
                    let title = g.title.as_deref().map_or(old.title.as_str(), str::trim);
                    prop_assert_eq!(&new.title, title);
                    prop_assert_eq!(
                        &new.description,
                        g.description.as_ref().unwrap_or(&old.description)
                    );
                    prop_assert_eq!(new.priority, g.priority.unwrap_or(old.priority));
                }
                prop_assert_eq!(&TaskRepo::get(conn, user, target).unwrap(), new);
            }
            (Ok(_), None) => prop_assert!(false, "changed a task {:?} cannot see", g.owner),
            (Err(_), None) => prop_assert!(
                matches!(
                    result,
                    Err(Error::NotFound { .. }) | Err(Error::Validation { .. })
                ),
                "{result:?}"
            ),
            (Err(_), Some(_)) => {}
        }
        Ok(())
    });
    // The other user's tasks are untouched.
    let mut conn = db.conn();
    for task in &fx.other_tasks {
        assert_eq!(
            &TaskRepo::get(&mut conn, fx.other.id, task.id).unwrap(),
            task
        );
    }
}

/// Every date input, with a date PostgreSQL cannot hold: `Ok` or an error a caller can
/// act on (a query may well answer `Ok`: no task is due before 4714 BC), and nothing
/// changed by an error.
#[test]
fn dates_postgresql_cannot_hold_are_rejected_cleanly() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let (user, task) = (fx.user.id, fx.tasks[0].id);
    // Every call is tried; the failures are reported together.
    let mut failures: Vec<String> = Vec::new();
    let mut record = |outcome: Result<(), TestCaseError>| {
        if let Err(e) = outcome {
            failures.push(e.to_string());
        }
    };
    for date in dates_beyond_postgres() {
        let before = digest(&mut conn);
        let new = NewTask::new("x").due_date(date);
        let r = TaskRepo::create(&mut conn, user, &new);
        record(check(&mut conn, &before, &format!("create due {date}"), &r));
        let r = TaskRepo::create_many(&mut conn, user, &[new]);
        record(check(
            &mut conn,
            &before,
            &format!("create_many due {date}"),
            &r,
        ));
        let patch = TaskPatch {
            due_date: Some(Some(date)),
            ..TaskPatch::default()
        };
        let r = TaskRepo::update(&mut conn, user, task, &patch);
        record(check(&mut conn, &before, &format!("update due {date}"), &r));
        for (name, query) in [
            ("due_before", TaskQuery::new().due_before(date)),
            ("due_after", TaskQuery::new().due_after(date)),
            ("created_before", TaskQuery::new().created_before(date)),
            ("created_after", TaskQuery::new().created_after(date)),
        ] {
            let r = TaskRepo::list(&mut conn, user, &query);
            record(check(
                &mut conn,
                &before,
                &format!("list {name}({date})"),
                &r,
            ));
            let r = TaskRepo::count_matching(&mut conn, user, &query);
            record(check(
                &mut conn,
                &before,
                &format!("count_matching {name}({date})"),
                &r,
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} calls failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `create_many` returns the tasks as stored, like `create`: due dates with
/// nanoseconds (PostgreSQL keeps microseconds) or on a leap second included.
#[test]
fn create_many_returns_the_due_dates_it_stored() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn).id;
    for date in [
        DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("a date"),
        DateTime::UNIX_EPOCH + Duration::nanoseconds(1),
        ymd(1999, 12, 31) - Duration::nanoseconds(500),
        leap_second(),
    ] {
        let new = NewTask::new("x").due_date(date);
        let created = TaskRepo::create(&mut conn, user, &new).unwrap();
        assert_eq!(TaskRepo::get(&mut conn, user, created.id).unwrap(), created);
        let batch = TaskRepo::create_many(&mut conn, user, &[new]).unwrap();
        let stored = TaskRepo::get(&mut conn, user, batch[0].id).unwrap();
        assert_eq!(
            batch[0].due_date, stored.due_date,
            "create_many returned another due date than it stored for {date:?} \
             (create returned {:?})",
            created.due_date
        );
    }
}
