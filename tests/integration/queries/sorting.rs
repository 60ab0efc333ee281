//! Sorts: every key in both directions, ties broken by id, relevance.

use todo_store::testing::TestDb;

use super::*;

/// Every page size gives the order computed in Rust for `sort`, in both directions.
fn assert_sort(conn: &mut PgConnection, fx: &Fixture, sort: TaskSort) {
    for dir in DIRECTIONS {
        let expected = fx.expected(|_| true, sort, dir);
        for limit in [1, 2, 5, 500] {
            let got = walk(conn, fx.user.id, &TaskQuery::new().sort(sort, dir), limit);
            assert_same(
                &got,
                &expected,
                &format!("{sort:?} {dir:?} at limit {limit}"),
            );
        }
    }
    // Desc is exactly Asc reversed (the order is total), except that undated tasks stay
    // last: for them too, Desc is Asc reversed.
    let asc = walk(
        conn,
        fx.user.id,
        &TaskQuery::new().sort(sort, Direction::Asc),
        500,
    );
    let desc = walk(
        conn,
        fx.user.id,
        &TaskQuery::new().sort(sort, Direction::Desc),
        500,
    );
    let (mut dated, mut undated): (Vec<Task>, Vec<Task>) = if sort == TaskSort::DueDate {
        asc.into_iter().partition(|t| t.due_date.is_some())
    } else {
        (asc, Vec::new())
    };
    dated.reverse();
    undated.reverse();
    dated.extend(undated);
    assert_eq!(ids(&dated), ids(&desc), "{sort:?}: Desc is Asc reversed");
}

#[test]
fn created_at_sort_in_both_directions_breaks_ties_by_id() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    assert!(
        fx.tasks
            .iter()
            .filter(|t| t.created_at == fx.batches[0])
            .count()
            > 1
    );
    assert_sort(&mut conn, &fx, TaskSort::CreatedAt);
}

#[test]
fn updated_at_sort_in_both_directions_breaks_ties_by_id() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let newest = fx.tasks.iter().max_by_key(|t| t.updated_at).unwrap();
    assert_eq!(
        newest.id, fx.tasks[5].id,
        "the last update moved updated_at"
    );
    assert_sort(&mut conn, &fx, TaskSort::UpdatedAt);
}

#[test]
fn due_date_sort_puts_undated_tasks_last_in_both_directions() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    assert_sort(&mut conn, &fx, TaskSort::DueDate);
    let undated = fx.tasks.iter().filter(|t| t.due_date.is_none()).count();
    for dir in DIRECTIONS {
        let got = walk(
            &mut conn,
            fx.user.id,
            &TaskQuery::new().sort(TaskSort::DueDate, dir),
            3,
        );
        let (dated, rest) = got.split_at(got.len() - undated);
        assert!(dated.iter().all(|t| t.due_date.is_some()), "{dir:?}");
        assert!(
            rest.iter().all(|t| t.due_date.is_none()),
            "{dir:?}: undated last"
        );
    }
}

#[test]
fn due_date_paging_never_leaks_other_users_undated_tasks() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    for dir in DIRECTIONS {
        for limit in [1, 4] {
            let q = TaskQuery::new()
                .sort(TaskSort::DueDate, dir)
                .completed(false);
            let got = walk(&mut conn, fx.user.id, &q, limit);
            let expected = fx.expected(|t| !t.completed, TaskSort::DueDate, dir);
            assert_same(&got, &expected, &format!("{q:?} at limit {limit}"));
        }
    }
}

#[test]
fn priority_sort_orders_low_medium_high_and_breaks_ties_by_id() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    assert_sort(&mut conn, &fx, TaskSort::Priority);
    let asc = walk(
        &mut conn,
        fx.user.id,
        &TaskQuery::new().sort(TaskSort::Priority, Direction::Asc),
        4,
    );
    let first_medium = asc
        .iter()
        .position(|t| t.priority == Priority::Medium)
        .unwrap();
    let first_high = asc
        .iter()
        .position(|t| t.priority == Priority::High)
        .unwrap();
    assert!(asc[..first_medium]
        .iter()
        .all(|t| t.priority == Priority::Low));
    assert!(asc[first_medium..first_high]
        .iter()
        .all(|t| t.priority == Priority::Medium));
    assert!(asc[first_high..]
        .iter()
        .all(|t| t.priority == Priority::High));
}

#[test]
fn title_sort_is_byte_order() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    assert_sort(&mut conn, &fx, TaskSort::Title);

    // Byte order of UTF-8, whatever the database's collation would say.
    let user = fixtures::user(&mut conn);
    let titles = [
        "b", "B", "a", "é", "e", "z", "Z", "ä", "日本", "😀", "aa", "a b", "a-b", "A", "_x", "1",
    ];
    let news: Vec<_> = titles.iter().map(|t| NewTask::new(*t)).collect();
    TaskRepo::create_many(&mut conn, user.id, &news).unwrap();
    let mut expected: Vec<&str> = titles.to_vec();
    expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for limit in [1, 3, 100] {
        let got = walk(
            &mut conn,
            user.id,
            &TaskQuery::new().sort(TaskSort::Title, Direction::Asc),
            limit,
        );
        let got: Vec<&str> = got.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(got, expected, "limit {limit}");
        let got = walk(
            &mut conn,
            user.id,
            &TaskQuery::new().sort(TaskSort::Title, Direction::Desc),
            limit,
        );
        let got: Vec<&str> = got.iter().map(|t| t.title.as_str()).rev().collect();
        assert_eq!(got, expected, "Desc at limit {limit}");
    }
}

#[test]
fn default_order_is_newest_first() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let expected = fx.expected(|_| true, TaskSort::CreatedAt, Direction::Desc);
    let page = TaskRepo::list(&mut conn, fx.user.id, &TaskQuery::new()).unwrap();
    assert_same(&page.items, &expected, "default order");
    assert_eq!(page.next_cursor, None);
    let explicit = TaskQuery::new().sort(TaskSort::CreatedAt, Direction::Desc);
    assert_eq!(TaskQuery::new(), explicit);
    assert_eq!(TaskQuery::default(), explicit);
    // The two single creates come last, so they are first.
    assert_eq!(page.items[0].title, "Zebra crossing");
    assert_eq!(page.items[1].title, "charlie delta");
}

#[test]
fn relevance_sort_puts_best_matches_first() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    // Title words weigh more than description words: title+description > title only >
    // description only. Tasks within a group rank the same and tie on id.
    // Each call builds a new task (a NewTask's id names one task).
    let both = || NewTask::new("alpha").description("alpha");
    let title_only = || NewTask::new("alpha plan");
    let description_only = || NewTask::new("plan").description("alpha");
    let news = [
        description_only(),
        title_only(),
        both(),
        NewTask::new("bravo").description("charlie"),
        title_only(),
        description_only(),
        both(),
        title_only(),
    ];
    let created = TaskRepo::create_many(&mut conn, user.id, &news).unwrap();
    let group = |t: &Task| match (
        t.title.contains("alpha"),
        t.description.as_deref() == Some("alpha"),
    ) {
        (true, true) => 0,
        (true, false) => 1,
        (false, true) => 2,
        (false, false) => 3,
    };
    let mut best_first: Vec<Task> = created.iter().filter(|t| group(t) < 3).cloned().collect();
    best_first.sort_by(|a, b| group(a).cmp(&group(b)).then(b.id.cmp(&a.id)));
    let mut worst_first = best_first.clone();
    worst_first.sort_by(|a, b| group(b).cmp(&group(a)).then(a.id.cmp(&b.id)));
    for limit in [1, 2, 3, 50] {
        let q = TaskQuery::new()
            .search("alpha")
            .sort(TaskSort::Relevance, Direction::Desc);
        assert_same(
            &walk(&mut conn, user.id, &q, limit),
            &best_first,
            &format!("Desc, limit {limit}"),
        );
        let q = TaskQuery::new()
            .search("alpha")
            .sort(TaskSort::Relevance, Direction::Asc);
        assert_same(
            &walk(&mut conn, user.id, &q, limit),
            &worst_first,
            &format!("Asc, limit {limit}"),
        );
    }
}

#[test]
fn relevance_sort_without_search_is_invalid() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    fixtures::task(&mut conn, &user, "alpha");
    for dir in DIRECTIONS {
        let q = TaskQuery::new().sort(TaskSort::Relevance, dir);
        assert_invalid(TaskRepo::list(&mut conn, user.id, &q), "sort");
        // A blank search is no search.
        let q = TaskQuery::new()
            .search("  \t ")
            .sort(TaskSort::Relevance, dir);
        assert_invalid(TaskRepo::list(&mut conn, user.id, &q), "sort");
    }
}
