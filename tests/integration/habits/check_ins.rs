//! Check-ins: idempotent, undoable, listed by range, one per day under concurrency.

use todo_store::testing::TestDb;

use crate::support::fixtures;

use super::*;

#[test]
fn check_ins_are_idempotent_undoable_and_listed_in_their_range() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let habit = habit(&mut conn, &user, mon_thu());
    let c = &mut conn;
    let days: Vec<NaiveDate> = (0..10).map(|i| monday() + chrono::Days::new(i)).collect();
    for &day in days.iter().rev() {
        assert!(HabitRepo::check_in(c, user.id, habit.id, day).unwrap());
        assert!(!HabitRepo::check_in(c, user.id, habit.id, day).unwrap());
    }
    assert_eq!(
        HabitRepo::check_ins(c, user.id, habit.id, days[0], days[9]).unwrap(),
        days
    );
    assert_eq!(
        HabitRepo::check_ins(c, user.id, habit.id, days[2], days[4]).unwrap(),
        &days[2..=4]
    );
    assert_eq!(
        HabitRepo::check_ins(c, user.id, habit.id, days[3], days[3]).unwrap(),
        [days[3]]
    );
    let later = date(2027, 1, 1);
    assert!(HabitRepo::check_ins(c, user.id, habit.id, later, later)
        .unwrap()
        .is_empty());
    assert!(HabitRepo::undo_check_in(c, user.id, habit.id, days[3]).unwrap());
    assert!(!HabitRepo::undo_check_in(c, user.id, habit.id, days[3]).unwrap());
    assert_eq!(
        HabitRepo::check_ins(c, user.id, habit.id, days[2], days[4]).unwrap(),
        [days[2], days[4]]
    );
    // Check-ins do not change the habit.
    assert_eq!(HabitRepo::get(c, user.id, habit.id).unwrap(), habit);
}

#[test]
fn concurrent_check_ins_of_one_day_make_exactly_one() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let habit = habit(&mut conn, &user, Schedule::Daily);
    drop(conn);
    for round in 0..5u64 {
        let day = monday() + chrono::Days::new(round);
        let barrier = std::sync::Barrier::new(8);
        let made: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let mut conn = db.conn();
                        barrier.wait();
                        HabitRepo::check_in(&mut conn, user.id, habit.id, day).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(made.iter().filter(|&&m| m).count(), 1, "{made:?}");
    }
    let mut conn = db.conn();
    assert_eq!(check_in_rows(&mut conn), 5);
}
