//! count_matching: the rows of a full walk, whatever the sort, limit and cursor.

use todo_store::testing::TestDb;

use super::*;

#[test]
fn count_matching_equals_the_rows_of_a_full_walk() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let t0 = fx.t0;
    let queries = [
        TaskQuery::new(),
        TaskQuery::new().completed(true),
        TaskQuery::new().completed(false).priority(Priority::High),
        TaskQuery::new()
            .priority(Priority::High)
            .priority(Priority::Low),
        TaskQuery::new().overdue(),
        TaskQuery::new().due_after(t0),
        TaskQuery::new()
            .due_before(t0)
            .due_after(t0 - Duration::days(5)),
        TaskQuery::new()
            .created_after(fx.batches[0])
            .created_before(fx.batches[2]),
        TaskQuery::new().search("alpha").completed(false),
        TaskQuery::new().search("alpha or zebra -report"),
        TaskQuery::new().search("nothing matches this"),
    ];
    for q in &queries {
        let walked = walk(&mut conn, fx.user.id, q, 3).len() as i64;
        assert_eq!(
            TaskRepo::count_matching(&mut conn, fx.user.id, q).unwrap(),
            walked,
            "{q:?}"
        );
        let theirs = walk(&mut conn, fx.other.id, q, 3).len() as i64;
        assert_eq!(
            TaskRepo::count_matching(&mut conn, fx.other.id, q).unwrap(),
            theirs,
            "{q:?}"
        );
    }
    assert_eq!(
        TaskRepo::count_matching(&mut conn, fx.user.id, &TaskQuery::new()).unwrap(),
        TaskRepo::count(&mut conn, fx.user.id).unwrap()
    );
    assert_eq!(
        TaskRepo::count_matching(&mut conn, Uuid::now_v7().into(), &TaskQuery::new()).unwrap(),
        0
    );
}

#[test]
fn count_matching_ignores_sort_limit_and_cursor() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let q = TaskQuery::new().completed(false);
    let expected = TaskRepo::count_matching(&mut conn, fx.user.id, &q).unwrap();
    assert_eq!(
        expected,
        fx.tasks.iter().filter(|t| !t.completed).count() as i64
    );
    let cursor = cursor_of(&mut conn, fx.user.id, &q);
    let other_cursor = cursor_of(&mut conn, fx.user.id, &TaskQuery::new());
    for variant in [
        q.clone().limit(1),
        q.clone().limit(0),
        q.clone().limit(501),
        q.clone().sort(TaskSort::Title, Direction::Asc),
        q.clone().sort(TaskSort::DueDate, Direction::Desc).limit(2),
        q.clone().after(&cursor),
        q.clone().after(&other_cursor),
        q.clone().after("garbage"),
    ] {
        assert_eq!(
            TaskRepo::count_matching(&mut conn, fx.user.id, &variant).unwrap(),
            expected,
            "{variant:?}"
        );
    }
    let q = TaskQuery::new().search("alpha");
    let expected = TaskRepo::count_matching(&mut conn, fx.user.id, &q).unwrap();
    let by_rank = q.sort(TaskSort::Relevance, Direction::Asc).limit(1);
    assert_eq!(
        TaskRepo::count_matching(&mut conn, fx.user.id, &by_rank).unwrap(),
        expected
    );
}
