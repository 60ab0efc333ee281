//! Create, update, list and delete; isolation between users.

use diesel::sql_types::Text;
use todo_store::testing::TestDb;
use todo_store::{ConflictKind, HabitPatch};
use todo_store::{HabitId, UserId};
use uuid::Uuid;

use crate::support::fixtures;

use super::*;

// ---------------------------------------------------------------------------------------
// CRUD

#[test]
fn create_returns_the_stored_habit_with_defaults() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let new = NewHabit::new(
        "  Run  ",
        Schedule::Weekly {
            days: vec![Weekday::Thu, Weekday::Mon, Weekday::Thu],
        },
    )
    .description("5 km");
    let habit = HabitRepo::create(&mut conn, user.id, &new).unwrap();
    assert_eq!(habit.name, "Run");
    assert_eq!(habit.description.as_deref(), Some("5 km"));
    assert_eq!(habit.schedule, mon_thu(), "days deduplicated, Monday first");
    assert!(habit.is_active);
    assert_eq!(habit.version, 1);
    assert_eq!(habit.user_id, user.id);
    assert_eq!(habit.id.as_uuid().get_version_num(), 7);
    assert_eq!(HabitRepo::get(&mut conn, user.id, habit.id).unwrap(), habit);
    let stored: String = diesel::select(diesel::dsl::sql::<Text>(&format!(
        "(SELECT schedule::text FROM habits WHERE id = '{}')",
        habit.id
    )))
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(
        stored,
        r#"{"v": 1, "days": ["mon", "thu"], "kind": "weekly"}"#
    );
}

#[test]
fn a_habit_of_a_missing_user_is_not_found() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let missing: UserId = Uuid::now_v7().into();
    match HabitRepo::create(&mut conn, missing, &NewHabit::new("Run", Schedule::Daily)) {
        Err(Error::NotFound {
            entity: "user",
            key,
        }) => assert_eq!(key, missing.to_string()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn update_changes_what_the_patch_says_and_checks_the_version() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let created = HabitRepo::create(
        &mut conn,
        user.id,
        &NewHabit::new("Read", Schedule::Daily).description("20 pages"),
    )
    .unwrap();
    let every_third = Schedule::EveryNDays {
        n: 3,
        start: monday(),
    };
    let patch = HabitPatch {
        name: Some(" Read more ".into()),
        schedule: Some(every_third.clone()),
        expected_version: Some(1),
        ..Default::default()
    };
    let updated = HabitRepo::update(&mut conn, user.id, created.id, &patch).unwrap();
    assert_eq!(updated.name, "Read more");
    assert_eq!(updated.schedule, every_third);
    assert_eq!(
        updated.description.as_deref(),
        Some("20 pages"),
        "unchanged"
    );
    assert!(updated.is_active);
    assert_eq!(updated.version, 2);
    assert!(updated.updated_at > created.updated_at);
    assert_eq!(updated.created_at, created.created_at);

    let pause = HabitPatch {
        is_active: Some(false),
        description: Some(None),
        ..Default::default()
    };
    let paused = HabitRepo::update(&mut conn, user.id, created.id, &pause).unwrap();
    assert!(!paused.is_active);
    assert_eq!(paused.description, None);
    assert_eq!(paused.version, 3);

    let stale = HabitPatch {
        name: Some("Stale".into()),
        expected_version: Some(1),
        ..Default::default()
    };
    match HabitRepo::update(&mut conn, user.id, created.id, &stale) {
        Err(Error::Conflict {
            kind: ConflictKind::StaleVersion { expected, actual },
        }) => assert_eq!((expected, actual), (1, 3)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        HabitRepo::get(&mut conn, user.id, created.id).unwrap(),
        paused
    );
    assert_not_found(HabitRepo::update(
        &mut conn,
        user.id,
        Uuid::now_v7().into(),
        &stale,
    ));
}

#[test]
fn list_is_oldest_first_and_delete_removes_the_habit_and_its_check_ins() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let habits: Vec<Habit> = (0..3)
        .map(|_| habit(&mut conn, &user, Schedule::Daily))
        .collect();
    assert_eq!(HabitRepo::list(&mut conn, user.id).unwrap(), habits);
    check_in_all(&mut conn, &user, &habits[1], &[monday()]);
    HabitRepo::delete(&mut conn, user.id, habits[1].id).unwrap();
    assert_not_found(HabitRepo::get(&mut conn, user.id, habits[1].id));
    assert_not_found(HabitRepo::delete(&mut conn, user.id, habits[1].id));
    assert_eq!(
        HabitRepo::list(&mut conn, user.id).unwrap(),
        [habits[0].clone(), habits[2].clone()]
    );
    assert_eq!(
        check_in_rows(&mut conn),
        0,
        "the check-in went with its habit"
    );
    // Deleting the user cascades to habits and check-ins.
    check_in_all(&mut conn, &user, &habits[0], &[monday()]);
    todo_store::UserRepo::delete(&mut conn, user.id).unwrap();
    assert!(HabitRepo::list(&mut conn, user.id).unwrap().is_empty());
    assert_eq!(check_in_rows(&mut conn), 0);
}

// ---------------------------------------------------------------------------------------
// Isolation

#[test]
fn another_users_habit_is_not_found_by_any_call_and_nothing_changes() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let owner = fixtures::user(&mut conn);
    let other = fixtures::user(&mut conn);
    let habit = habit(&mut conn, &owner, Schedule::Daily);
    check_in_all(&mut conn, &owner, &habit, &[monday()]);
    let tuesday = monday().succ_opt().unwrap();
    let id = habit.id;
    let patch = HabitPatch {
        name: Some("Stolen".into()),
        ..Default::default()
    };
    let c = &mut conn;
    assert_not_found(HabitRepo::get(c, other.id, id));
    assert_not_found(HabitRepo::update(c, other.id, id, &patch));
    let versioned = HabitPatch {
        expected_version: Some(1),
        ..patch.clone()
    };
    assert_not_found(HabitRepo::update(c, other.id, id, &versioned));
    assert_not_found(HabitRepo::delete(c, other.id, id));
    assert_not_found(HabitRepo::check_in(c, other.id, id, tuesday));
    assert_not_found(HabitRepo::undo_check_in(c, other.id, id, monday()));
    assert_not_found(HabitRepo::check_ins(c, other.id, id, monday(), tuesday));
    assert_not_found(HabitRepo::streak(c, other.id, id, tuesday));
    assert!(HabitRepo::list(c, other.id).unwrap().is_empty());
    assert!(HabitRepo::due_on(c, other.id, monday()).unwrap().is_empty());
    // A missing habit is the same.
    let missing: HabitId = Uuid::now_v7().into();
    assert_not_found(HabitRepo::check_in(c, owner.id, missing, monday()));
    assert_not_found(HabitRepo::streak(c, owner.id, missing, monday()));
    assert_not_found(HabitRepo::check_ins(
        c,
        owner.id,
        missing,
        monday(),
        tuesday,
    ));
    assert_not_found(HabitRepo::undo_check_in(c, owner.id, missing, monday()));

    assert_eq!(HabitRepo::get(c, owner.id, id).unwrap(), habit);
    assert_eq!(
        HabitRepo::check_ins(c, owner.id, id, monday(), tuesday).unwrap(),
        [monday()]
    );
    assert_eq!(HabitRepo::list(c, owner.id).unwrap(), [habit]);
}
