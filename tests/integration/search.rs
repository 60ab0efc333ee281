//! Search across tasks and habits (`SearchRepo::search`) and of habits alone
//! (`HabitRepo::search`): the web-search syntax on both kinds, ranking together,
//! keyset pages without duplicates or gaps, user isolation, and odd input as typed
//! errors, never a database error.

use std::collections::HashSet;

use diesel::sql_types::{Float, Text, Uuid as SqlUuid};
use diesel::{QueryableByName, RunQueryDsl};
use todo_store::testing::TestDb;
use todo_store::{
    Error, Found, Habit, HabitRepo, NewHabit, NewTask, PgConnection, Schedule, SearchQuery,
    SearchRepo, TaskQuery, TaskRepo, TaskSort, User, UserId,
};
use uuid::Uuid;

use crate::support::fixtures;

/// A task `title` (with `description`) for `user`.
fn task(conn: &mut PgConnection, user: &User, title: &str, description: Option<&str>) -> Uuid {
    let mut new = NewTask::new(title);
    if let Some(d) = description {
        new = new.description(d);
    }
    TaskRepo::create(conn, user.id, &new)
        .expect("task")
        .id
        .into()
}

/// A daily habit `name` (with `description`) for `user`.
fn habit(conn: &mut PgConnection, user: &User, name: &str, description: Option<&str>) -> Uuid {
    let mut new = NewHabit::new(name, Schedule::Daily);
    if let Some(d) = description {
        new = new.description(d);
    }
    HabitRepo::create(conn, user.id, &new)
        .expect("habit")
        .id
        .into()
}

/// A result as (kind, id): habits 'h', tasks 't'.
fn key(found: &Found) -> (char, Uuid) {
    match found {
        Found::Task(t) => ('t', t.id.into()),
        Found::Habit(h) => ('h', h.id.into()),
        other => panic!("unknown kind {other:?}"),
    }
}

/// Every result of `terms` for `user`, page by page of `limit`.
fn walk(conn: &mut PgConnection, user: UserId, terms: &str, limit: i64) -> Vec<Found> {
    let query = SearchQuery::new(terms).limit(limit);
    let mut page = SearchRepo::search(conn, user, &query).expect("first page");
    let mut all = Vec::new();
    loop {
        assert!(page.items.len() as i64 <= limit);
        all.append(&mut page.items);
        let Some(cursor) = page.next_cursor.take() else {
            break;
        };
        assert!(all.len() < 10_000, "runaway paging");
        page = SearchRepo::search(conn, user, &query.clone().after(&cursor)).expect("next page");
    }
    all
}

#[derive(QueryableByName)]
struct Ranked {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Float)]
    rank: f32,
}

/// The expected order, computed here: each table's matches and their `ts_rank_cd`
/// asked of PostgreSQL separately, merged and sorted in Rust by rank (best first),
/// then habits before tasks, then id (newest first).
fn expected(conn: &mut PgConnection, user: UserId, terms: &str) -> Vec<(char, Uuid)> {
    let mut all: Vec<(f32, char, Uuid)> = Vec::new();
    for (kind, table) in [('t', "tasks"), ('h', "habits")] {
        let rows: Vec<Ranked> = diesel::sql_query(format!(
            "SELECT id, ts_rank_cd(search_vector, websearch_to_tsquery('english', $1)) AS rank \
             FROM {table} WHERE user_id = $2 \
             AND search_vector @@ websearch_to_tsquery('english', $1)"
        ))
        .bind::<Text, _>(terms)
        .bind::<SqlUuid, _>(Uuid::from(user))
        .load(conn)
        .unwrap();
        all.extend(rows.into_iter().map(|r| (r.rank, kind, r.id)));
    }
    let habit_first = |kind: char| kind == 'h';
    all.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(habit_first(b.1).cmp(&habit_first(a.1)))
            .then(b.2.cmp(&a.2))
    });
    all.into_iter().map(|(_, kind, id)| (kind, id)).collect()
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(field: &str, result: todo_store::Result<T>) {
    match result {
        Err(Error::Validation { field: f, .. }) if f == field => {}
        other => panic!("expected Validation on {field}, got {other:?}"),
    }
}

/// A user with tasks and habits about running, swimming and cooking.
struct Fixture {
    user: User,
    other: User,
}

fn fixture(conn: &mut PgConnection) -> Fixture {
    let user = fixtures::user(conn);
    let other = fixtures::user(conn);
    task(
        conn,
        &user,
        "Buy running shoes",
        Some("trail shoes, size 44"),
    );
    task(
        conn,
        &user,
        "Plan the marathon",
        Some("run 30 km on Sunday"),
    );
    task(conn, &user, "Book the swimming pool", None);
    task(conn, &user, "Cook dinner", Some("pasta with garden herbs"));
    task(conn, &user, "Morning run", None);
    habit(conn, &user, "Morning run", Some("5 km around the lake"));
    habit(conn, &user, "Swim", Some("in the lake, not the pool"));
    habit(conn, &user, "Stretch", Some("after every run"));
    habit(conn, &user, "Cook at home", None);
    // The other user's rows use the same words: never found by the first user.
    task(conn, &other, "Morning run", Some("lake"));
    habit(conn, &other, "Morning run", Some("swim cook pool"));
    habit(conn, &other, "Evening run", None);
    Fixture { user, other }
}

fn names(found: &[Found]) -> Vec<(char, &str)> {
    found.iter().map(|f| (key(f).0, f.name())).collect()
}

#[test]
fn tasks_and_habits_are_ranked_together_best_first() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let got = walk(&mut conn, fx.user.id, "run", 50);
    // Every row that mentions run (stemmed: running, run), of both kinds, and the
    // order PostgreSQL's ranks give.
    assert_eq!(
        got.iter().map(key).collect::<Vec<_>>(),
        expected(&mut conn, fx.user.id, "run")
    );
    let got = names(&got);
    assert_eq!(got.len(), 5, "{got:?}");
    // Title and name words weigh more than description words, whatever the kind: a
    // task titled with the word comes before a habit that only describes it, and the
    // same text ranks the same in both tables, habits first at equal rank.
    let at = |kind: char, name: &str| got.iter().position(|g| *g == (kind, name)).unwrap();
    assert_eq!(
        at('h', "Morning run") + 1,
        at('t', "Morning run"),
        "{got:?}"
    );
    assert!(at('t', "Buy running shoes") < at('h', "Stretch"), "{got:?}");
    assert!(
        at('t', "Morning run") < at('t', "Plan the marathon"),
        "{got:?}"
    );
    for terms in ["lake", "cook", "pool", "swim or cook", "\"morning run\""] {
        let got = walk(&mut conn, fx.user.id, terms, 50);
        assert!(!got.is_empty(), "{terms}");
        assert_eq!(
            got.iter().map(key).collect::<Vec<_>>(),
            expected(&mut conn, fx.user.id, terms),
            "{terms}"
        );
    }
}

#[test]
fn web_search_syntax_works_on_both_kinds() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let found = |conn: &mut PgConnection, terms: &str| -> HashSet<(char, String)> {
        walk(conn, fx.user.id, terms, 3)
            .iter()
            .map(|f| (key(f).0, f.name().to_owned()))
            .collect()
    };
    let set = |items: &[(char, &str)]| -> HashSet<(char, String)> {
        items.iter().map(|(k, n)| (*k, (*n).to_owned())).collect()
    };
    // A quoted phrase: adjacent words in order.
    assert_eq!(
        found(&mut conn, "\"morning run\""),
        set(&[('t', "Morning run"), ('h', "Morning run")])
    );
    assert_eq!(found(&mut conn, "\"run morning\""), set(&[]));
    // Excluded words, in names and in descriptions.
    assert_eq!(
        found(&mut conn, "run -morning -shoes"),
        set(&[('t', "Plan the marathon"), ('h', "Stretch")])
    );
    assert_eq!(found(&mut conn, "lake -pool"), set(&[('h', "Morning run")]));
    // or: either word.
    assert_eq!(
        found(&mut conn, "swim or cook"),
        set(&[
            ('t', "Book the swimming pool"),
            ('t', "Cook dinner"),
            ('h', "Swim"),
            ('h', "Cook at home")
        ])
    );
    // All words must match, in name or description.
    assert_eq!(found(&mut conn, "cook pasta"), set(&[('t', "Cook dinner")]));
    // Stop words alone match nothing; no match is an empty last page.
    for terms in ["the", "the and of", "xylophone"] {
        let page = SearchRepo::search(&mut conn, fx.user.id, &SearchQuery::new(terms)).unwrap();
        assert!(
            page.items.is_empty() && page.next_cursor.is_none(),
            "{terms}"
        );
    }
}

#[test]
fn pages_of_every_size_concatenate_to_the_whole_order_without_duplicates_or_gaps() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let other = fixtures::user(&mut conn);
    // Many equal ranks (identical texts) and distinct ones, in both kinds.
    let texts = [
        ("report", None),
        ("report", None),
        ("quarterly report", Some("the report for the board")),
        ("draft", Some("report draft")),
        ("report report report", None),
    ];
    for i in 0..6 {
        for (title, description) in texts {
            task(&mut conn, &user, title, description);
            if i % 2 == 0 {
                habit(&mut conn, &user, title, description);
            }
        }
        task(&mut conn, &other, "report", None);
    }
    let whole = expected(&mut conn, user.id, "report");
    assert_eq!(whole.len(), 6 * 5 + 3 * 5);
    for limit in [1, 2, 3, 7, 16, 44, 45, 46, 500] {
        let got: Vec<(char, Uuid)> = walk(&mut conn, user.id, "report", limit)
            .iter()
            .map(key)
            .collect();
        assert_eq!(got, whole, "pages of {limit}");
    }
    // A row that ranks before the cursor, added mid-walk, is not seen; one that ranks
    // after it is found once.
    let query = SearchQuery::new("report").limit(10);
    let first = SearchRepo::search(&mut conn, user.id, &query).unwrap();
    let cursor = first.next_cursor.expect("a second page");
    let behind = habit(&mut conn, &user, "report report report report", None);
    let ahead = habit(&mut conn, &user, "draft", Some("report"));
    let rest: Vec<(char, Uuid)> = {
        let mut rest = Vec::new();
        let mut page =
            SearchRepo::search(&mut conn, user.id, &query.clone().after(&cursor)).unwrap();
        loop {
            rest.extend(page.items.iter().map(key));
            let Some(c) = page.next_cursor.take() else {
                break;
            };
            page = SearchRepo::search(&mut conn, user.id, &query.clone().after(&c)).unwrap();
        }
        rest
    };
    let seen: HashSet<(char, Uuid)> = first.items.iter().map(key).collect();
    assert!(rest.iter().all(|k| !seen.contains(k)), "a row seen twice");
    assert!(!rest.contains(&('h', behind)));
    assert_eq!(rest.iter().filter(|k| **k == ('h', ahead)).count(), 1);
    assert_eq!(rest.len() + seen.len(), whole.len() + 1);
}

#[test]
fn another_users_rows_never_appear() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let mine: HashSet<Uuid> = {
        let tasks = TaskRepo::list(&mut conn, fx.user.id, &TaskQuery::new()).unwrap();
        let habits = HabitRepo::list(&mut conn, fx.user.id).unwrap();
        tasks
            .items
            .iter()
            .map(|t| Uuid::from(t.id))
            .chain(habits.iter().map(|h| Uuid::from(h.id)))
            .collect()
    };
    for terms in [
        "run",
        "morning run",
        "evening",
        "swim or cook or pool",
        "-xylophone",
    ] {
        for found in walk(&mut conn, fx.user.id, terms, 2) {
            assert!(mine.contains(&key(&found).1), "{terms}: {found:?}");
        }
        for habit in HabitRepo::search(&mut conn, fx.user.id, terms).unwrap() {
            assert_eq!(habit.user_id, fx.user.id, "{terms}");
        }
    }
    assert!(walk(&mut conn, fx.user.id, "evening", 5).is_empty());
    assert_eq!(walk(&mut conn, fx.other.id, "evening", 5).len(), 1);
    // An unknown user finds nothing.
    let nobody = UserId::from(Uuid::now_v7());
    assert!(walk(&mut conn, nobody, "run", 5).is_empty());
    // One user's cursor is refused for another.
    let page =
        SearchRepo::search(&mut conn, fx.user.id, &SearchQuery::new("run").limit(1)).unwrap();
    let cursor = page.next_cursor.unwrap();
    assert_invalid(
        "cursor",
        SearchRepo::search(
            &mut conn,
            fx.other.id,
            &SearchQuery::new("run").after(&cursor),
        ),
    );
}

#[test]
fn odd_input_is_a_validation_error_and_hostile_text_never_a_database_error() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let user = fx.user.id;
    for blank in ["", " ", "\t\n", "\0", " \0 \0 "] {
        assert_invalid(
            "search",
            SearchRepo::search(&mut conn, user, &SearchQuery::new(blank)),
        );
        assert_invalid("search", HabitRepo::search(&mut conn, user, blank));
    }
    let max = "é".repeat(SearchQuery::MAX_SEARCH_CHARS);
    assert!(SearchRepo::search(&mut conn, user, &SearchQuery::new(max.as_str())).is_ok());
    assert!(HabitRepo::search(&mut conn, user, &max).is_ok());
    let too_long = format!("{max}é");
    assert_invalid(
        "search",
        SearchRepo::search(&mut conn, user, &SearchQuery::new(too_long.as_str())),
    );
    assert_invalid("search", HabitRepo::search(&mut conn, user, &too_long));
    for limit in [0, -1, SearchQuery::MAX_LIMIT + 1] {
        assert_invalid(
            "limit",
            SearchRepo::search(&mut conn, user, &SearchQuery::new("run").limit(limit)),
        );
    }
    // Cursors: garbage, damaged, of another search, of a task list.
    let page = SearchRepo::search(&mut conn, user, &SearchQuery::new("run").limit(1)).unwrap();
    let cursor = page.next_cursor.unwrap();
    let mut damaged = cursor.clone().into_bytes();
    damaged[5] = if damaged[5] == b'A' { b'B' } else { b'A' };
    let damaged = String::from_utf8(damaged).unwrap();
    let task_cursor = TaskRepo::list(
        &mut conn,
        user,
        &TaskQuery::new()
            .search("run")
            .sort(TaskSort::Relevance, todo_store::Direction::Desc)
            .limit(1),
    )
    .unwrap()
    .next_cursor
    .unwrap();
    for bad in [
        "",
        "garbage",
        "!!!!",
        damaged.as_str(),
        &cursor[..cursor.len() - 2],
        task_cursor.as_str(),
    ] {
        assert_invalid(
            "cursor",
            SearchRepo::search(&mut conn, user, &SearchQuery::new("run").after(bad)),
        );
    }
    assert_invalid(
        "cursor",
        SearchRepo::search(&mut conn, user, &SearchQuery::new("swim").after(&cursor)),
    );
    // Any text is safe: the task search's hostile strings, on both searches.
    for terms in crate::queries::search::hostile_strings() {
        let blank = terms.replace('\0', " ").trim().is_empty();
        for result in [
            SearchRepo::search(&mut conn, user, &SearchQuery::new(terms.as_str()).limit(2))
                .map(|_| ()),
            HabitRepo::search(&mut conn, user, &terms).map(|_| ()),
        ] {
            match result {
                Ok(()) => assert!(!blank, "{terms:?}"),
                Err(Error::Validation { field, .. }) if field == "search" && blank => {}
                Err(e) => panic!("{terms:?}: {e:?}"),
            }
        }
        if !blank {
            walk(&mut conn, user, &terms, 2);
        }
    }
    // Everything is still there.
    assert_eq!(walk(&mut conn, user, "run or swim or cook", 50).len(), 9);
}

#[test]
fn habits_are_searched_by_name_and_description_best_first() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let search = |conn: &mut PgConnection, terms: &str| -> Vec<String> {
        HabitRepo::search(conn, fx.user.id, terms)
            .unwrap()
            .into_iter()
            .map(|h: Habit| h.name)
            .collect()
    };
    // A name match ranks above a description match; stems match.
    assert_eq!(search(&mut conn, "running"), ["Morning run", "Stretch"]);
    assert_eq!(search(&mut conn, "lake"), ["Morning run", "Swim"]);
    assert_eq!(search(&mut conn, "\"around the lake\""), ["Morning run"]);
    assert_eq!(search(&mut conn, "lake -pool"), ["Morning run"]);
    assert_eq!(
        search(&mut conn, "stretch or cook"),
        ["Stretch", "Cook at home"]
    );
    assert!(search(&mut conn, "the").is_empty());
    assert!(
        search(&mut conn, "dinner").is_empty(),
        "tasks are not habits"
    );
    // Renamed, it is found by its new words only.
    let stretch = HabitRepo::list(&mut conn, fx.user.id)
        .unwrap()
        .into_iter()
        .find(|h| h.name == "Stretch")
        .unwrap();
    HabitRepo::update(
        &mut conn,
        fx.user.id,
        stretch.id,
        &todo_store::HabitPatch {
            name: Some("Yoga".into()),
            description: Some(None),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(search(&mut conn, "running"), ["Morning run"]);
    assert_eq!(search(&mut conn, "yoga"), ["Yoga"]);
}
