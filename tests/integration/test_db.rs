//! The test harness itself: isolation between TestDbs, cleanup.

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use todo_store::testing::TestDb;
use todo_store::{TaskRepo, UserRepo};

use crate::support::fixtures;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[test]
fn two_test_dbs_do_not_see_each_others_rows() {
    let a = TestDb::new();
    let b = TestDb::new();
    assert_ne!(a.name(), b.name());
    let user = fixtures::user(&mut a.conn());
    fixtures::task(&mut a.conn(), &user, "only in a");
    assert_eq!(UserRepo::count(&mut b.conn()).unwrap(), 0);
    assert!(UserRepo::get(&mut b.conn(), user.id)
        .unwrap_err()
        .is_not_found());
    assert_eq!(TaskRepo::count(&mut b.conn(), user.id).unwrap(), 0);
    assert_eq!(UserRepo::count(&mut a.conn()).unwrap(), 1);
}

#[test]
fn a_dropped_test_db_is_gone_from_the_server() {
    let keeper = TestDb::new();
    let db = TestDb::new();
    let name = db.name().to_owned();
    drop(db);
    let n = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<diesel::sql_types::Text, _>(&name)
        .get_result::<Count>(&mut keeper.conn())
        .unwrap()
        .n;
    assert_eq!(n, 0, "{name} still exists");
}

#[test]
fn many_test_dbs_in_parallel_are_all_fresh() {
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let db = TestDb::new();
                let mut conn = db.conn();
                assert_eq!(UserRepo::count(&mut conn).unwrap(), 0);
                fixtures::user(&mut conn);
                assert_eq!(UserRepo::count(&mut conn).unwrap(), 1);
            });
        }
    });
}
