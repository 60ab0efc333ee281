//! Page sizes and keyset pagination: walking every page, the last page, a cursor at
//! another limit, stability while rows change.

use std::collections::HashSet;

use todo_store::testing::TestDb;

use super::*;

// ---------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------

#[test]
fn limit_0_and_501_are_invalid() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    for limit in [0i64, 501, -1, i64::MIN, i64::MAX] {
        assert_invalid(
            TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(limit)),
            "limit",
        );
    }
    // Values that do not fit an i64 are invalid too, not truncated.
    assert_invalid(
        TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(u64::MAX)),
        "limit",
    );
    assert_invalid(
        TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(0u8)),
        "limit",
    );
}

#[test]
fn limit_1_and_500_are_accepted_and_the_default_is_50() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let news: Vec<_> = (0..501)
        .map(|i| NewTask::new(format!("task {i:03}")))
        .collect();
    let created = TaskRepo::create_many(&mut conn, user.id, &news).unwrap();
    let newest_first = sorted(created, TaskSort::CreatedAt, Direction::Desc);

    let one = TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(1)).unwrap();
    assert_same(&one.items, &newest_first[..1], "limit 1");
    assert!(one.next_cursor.is_some());

    let five_hundred = TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(500u16)).unwrap();
    assert_same(&five_hundred.items, &newest_first[..500], "limit 500");
    let rest = TaskQuery::new()
        .limit(500)
        .after(five_hundred.next_cursor.as_deref().unwrap());
    let last = TaskRepo::list(&mut conn, user.id, &rest).unwrap();
    assert_same(&last.items, &newest_first[500..], "after 500");
    assert_eq!(last.next_cursor, None);

    let default = TaskRepo::list(&mut conn, user.id, &TaskQuery::new()).unwrap();
    assert_same(&default.items, &newest_first[..50], "default limit");
}

// ---------------------------------------------------------------------------------------
// Keyset pagination
// ---------------------------------------------------------------------------------------

#[test]
fn walking_all_pages_gives_the_full_ordered_set_for_every_sort() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let filters: [(TaskQuery, Keep); 3] = [
        (TaskQuery::new(), |_| true),
        (TaskQuery::new().completed(false), |t| !t.completed),
        (
            TaskQuery::new()
                .priority(Priority::Medium)
                .priority(Priority::High),
            |t| t.priority != Priority::Low,
        ),
    ];
    for (q, keep) in &filters {
        for sort in SORTS {
            for dir in DIRECTIONS {
                let expected = fx.expected(keep, sort, dir);
                for limit in [1, 2, 3, 7, expected.len().max(1), expected.len() + 1] {
                    let q = q.clone().sort(sort, dir);
                    let got = walk(&mut conn, fx.user.id, &q, limit);
                    assert_same(&got, &expected, &format!("{q:?} at limit {limit}"));
                }
            }
        }
    }
}

#[test]
fn the_last_page_has_no_cursor() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    // Empty: one empty page, no cursor.
    let page = TaskRepo::list(&mut conn, user.id, &TaskQuery::new()).unwrap();
    assert!(page.items.is_empty());
    assert_eq!(page.next_cursor, None);

    let news: Vec<_> = (0..6).map(|i| NewTask::new(format!("t{i}"))).collect();
    TaskRepo::create_many(&mut conn, user.id, &news).unwrap();
    // Exactly two full pages: the second is the last and has no cursor.
    let first = TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(3)).unwrap();
    assert_eq!(first.items.len(), 3);
    let cursor = first.next_cursor.expect("a second page");
    let second = TaskRepo::list(
        &mut conn,
        user.id,
        &TaskQuery::new().limit(3).after(&cursor),
    )
    .unwrap();
    assert_eq!(second.items.len(), 3);
    assert_eq!(second.next_cursor, None);
    // One page that holds everything: no cursor.
    let all = TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(6)).unwrap();
    assert_eq!(all.items.len(), 6);
    assert_eq!(all.next_cursor, None);
}

#[test]
fn a_cursor_continues_at_another_limit() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    for sort in SORTS {
        let q = TaskQuery::new().sort(sort, Direction::Asc);
        let expected = fx.expected(|_| true, sort, Direction::Asc);
        let first = TaskRepo::list(&mut conn, fx.user.id, &q.clone().limit(2)).unwrap();
        let cursor = first.next_cursor.unwrap();
        let rest =
            TaskRepo::list(&mut conn, fx.user.id, &q.clone().limit(100).after(&cursor)).unwrap();
        let mut got = first.items;
        got.extend(rest.items);
        assert_same(&got, &expected, &format!("{sort:?}"));
        assert_eq!(rest.next_cursor, None);
    }
}

#[test]
fn paging_is_stable_while_rows_are_inserted_updated_and_deleted() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let t0 = now_micros();
    let titles = [
        "kiwi", "apple", "mango", "banana", "cherry", "fig", "grape", "lemon",
    ];
    // 3 batches of 10: ties on created_at, due dates, priorities and titles.
    for b in 0..3 {
        let news: Vec<_> = (0..10)
            .map(|i: i64| {
                let n = b * 10 + i;
                let mut new = NewTask::new(titles[(n * 5 % 8) as usize])
                    .priority(Priority::ALL[(n % 3) as usize]);
                if n % 4 != 0 {
                    new = new.due_date(t0 + Duration::days(n % 5 - 2));
                }
                new
            })
            .collect();
        TaskRepo::create_many(&mut conn, user.id, &news).unwrap();
    }
    let shapes = [
        (TaskSort::CreatedAt, Direction::Desc),
        (TaskSort::CreatedAt, Direction::Asc),
        (TaskSort::UpdatedAt, Direction::Asc),
        (TaskSort::UpdatedAt, Direction::Desc),
        (TaskSort::DueDate, Direction::Asc),
        (TaskSort::DueDate, Direction::Desc),
        (TaskSort::Priority, Direction::Desc),
        (TaskSort::Priority, Direction::Asc),
        (TaskSort::Title, Direction::Asc),
        (TaskSort::Title, Direction::Desc),
    ];
    let mut inserted = 0;
    for (sort, dir) in shapes {
        let q = TaskQuery::new().sort(sort, dir);
        let before = walk(&mut conn, user.id, &q, 500);
        let mut deleted: HashSet<TaskId> = HashSet::new();
        let got = walk_with(&mut conn, user.id, &q, 4, false, |conn, page| {
            // Insert rows whose keys land everywhere in the order.
            let news: Vec<_> = (0..2)
                .map(|i| {
                    inserted += 1;
                    NewTask::new(titles[(inserted + i) % 8])
                        .priority(Priority::ALL[inserted % 3])
                        .due_date(t0 + Duration::days((inserted % 5) as i64 - 2))
                })
                .collect();
            TaskRepo::create_many(conn, user.id, &news).unwrap();
            // Update fields that are not the sort key (any update moves updated_at).
            if sort != TaskSort::UpdatedAt {
                let target = &before[(page * 7 + 3) % before.len()];
                if !deleted.contains(&target.id) {
                    let patch = if sort == TaskSort::Title {
                        TaskPatch {
                            priority: Some(Priority::ALL[page % 3]),
                            completed: Some(page % 2 == 0),
                            ..Default::default()
                        }
                    } else {
                        TaskPatch {
                            description: Some(Some(format!("changed on page {page}"))),
                            completed: Some(page % 2 == 0),
                            ..Default::default()
                        }
                    };
                    TaskRepo::update(conn, user.id, target.id, &patch).unwrap();
                }
            }
            // Delete rows already seen and rows still ahead.
            let victim = before[(page * 5) % before.len()].id;
            if deleted.insert(victim) {
                TaskRepo::delete(conn, user.id, victim).unwrap();
            }
        });
        let got_ids = ids(&got);
        let unique: HashSet<TaskId> = got_ids.iter().copied().collect();
        assert_eq!(
            unique.len(),
            got_ids.len(),
            "{sort:?} {dir:?}: a row appeared twice"
        );
        let survivors: Vec<TaskId> = ids(&before)
            .into_iter()
            .filter(|id| !deleted.contains(id))
            .collect();
        let seen_survivors: Vec<TaskId> = got_ids
            .iter()
            .copied()
            .filter(|id| survivors.contains(id))
            .collect();
        assert_eq!(
            seen_survivors, survivors,
            "{sort:?} {dir:?}: rows present through the whole walk appear once, in order"
        );
        assert!(!deleted.is_empty());
        // Put the deleted rows' count back so the next shape has as many rows to walk.
        let refill: Vec<_> = (0..deleted.len())
            .map(|i| NewTask::new(titles[i % 8]))
            .collect();
        TaskRepo::create_many(&mut conn, user.id, &refill).unwrap();
    }
}
