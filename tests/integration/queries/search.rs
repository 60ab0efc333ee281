//! Full-text search: words, stems, phrases, `or`, negation, stop words, hostile
//! strings (listed and random), the length limit, and search with filters and sorts.

use std::cell::RefCell;
use std::collections::HashSet;

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use todo_store::testing::TestDb;

use super::*;

/// `terms` select exactly the tasks `keep` selects (default order), and count agrees.
#[track_caller]
fn assert_search(conn: &mut PgConnection, fx: &Fixture, terms: &str, keep: impl Fn(&Task) -> bool) {
    let expected = fx.expected(keep, TaskSort::CreatedAt, Direction::Desc);
    assert_selects(conn, fx, TaskQuery::new().search(terms), &expected);
}

#[test]
fn search_finds_words_in_title_and_description() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    // In titles (any case) and in descriptions.
    assert_search(&mut conn, &fx, "alpha", |t| has_word(t, "alpha"));
    assert_search(&mut conn, &fx, "ALPHA", |t| has_word(t, "alpha"));
    let expected_titles = ["Alpha", "bravo", "ALPHA", "Alpha", "alpha report"];
    let got = walk(&mut conn, fx.user.id, &TaskQuery::new().search("alpha"), 50);
    assert_eq!(
        got.iter().map(|t| t.title.as_str()).collect::<Vec<_>>(),
        expected_titles
    );
    // Only in a description.
    assert_search(&mut conn, &fx, "litres", |t| t.title == "Buy milk");
    assert_search(&mut conn, &fx, "striped", |t| {
        t.title == "Zebra crossing" && t.description.is_some()
    });
    // Several words: all must match, in title or description.
    assert_search(&mut conn, &fx, "bravo charlie", |t| t.title == "bravo");
    assert_search(&mut conn, &fx, "milk skimmed", |t| t.title == "Buy milk");
    // Non-ASCII words.
    // (Exact case: whether PostgreSQL folds the case of non-ASCII letters depends on the
    // database's LC_CTYPE; under C it does not.)
    assert_search(&mut conn, &fx, "Écrire", |t| t.title.starts_with("Écrire"));
    assert_search(&mut conn, &fx, "rapport", |t| t.title.starts_with("Écrire"));
    assert_search(&mut conn, &fx, "日本", |t| t.title.starts_with("日本"));
    // No match.
    assert_selects(&mut conn, &fx, TaskQuery::new().search("xylophone"), &[]);
    // Other users' words never match.
    assert_selects(&mut conn, &fx, TaskQuery::new().search("undated"), &[]);
}

#[test]
fn search_stems_words() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let run = |t: &Task| t.title == "run the tests";
    for terms in ["running", "run", "runs", "RUNNING", "test", "testing"] {
        assert_search(&mut conn, &fx, terms, run);
    }
    assert_search(&mut conn, &fx, "calling", |t| t.title == "Call mom");
    assert_search(&mut conn, &fx, "parties", |t| t.title.contains("party"));
}

#[test]
fn search_quoted_phrases_need_adjacent_words_in_order() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    assert_search(&mut conn, &fx, "\"two litres\"", |t| t.title == "Buy milk");
    assert_search(&mut conn, &fx, "\"alpha numbers\"", |t| {
        t.title == "alpha report"
    });
    assert_search(&mut conn, &fx, "\"zebra crossing\"", |t| {
        t.title == "Zebra crossing"
    });
    // Both words present but not adjacent, or not in this order: no match.
    assert_search(&mut conn, &fx, "alpha charlie", |t| t.title == "bravo");
    assert_selects(
        &mut conn,
        &fx,
        TaskQuery::new().search("\"alpha charlie\""),
        &[],
    );
    assert_selects(
        &mut conn,
        &fx,
        TaskQuery::new().search("\"numbers alpha\""),
        &[],
    );
    assert_selects(
        &mut conn,
        &fx,
        TaskQuery::new().search("\"crossing zebra\""),
        &[],
    );
}

#[test]
fn search_or_matches_either_word() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    assert_search(&mut conn, &fx, "zebra or milk", |t| {
        has_word(t, "zebra") || has_word(t, "milk")
    });
    assert_search(&mut conn, &fx, "zebra OR milk", |t| {
        has_word(t, "zebra") || has_word(t, "milk")
    });
    assert_selects(&mut conn, &fx, TaskQuery::new().search("zebra milk"), &[]);
    assert_search(&mut conn, &fx, "eggs or mom or party", |t| {
        ["eggs", "mom", "party"].iter().any(|w| has_word(t, w))
    });
}

#[test]
fn search_minus_excludes_a_word() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    assert_search(&mut conn, &fx, "alpha -report", |t| {
        has_word(t, "alpha") && !has_word(t, "report")
    });
    assert_search(&mut conn, &fx, "alpha -bravo -report", |t| {
        has_word(t, "alpha") && !has_word(t, "bravo") && !has_word(t, "report")
    });
    assert_search(&mut conn, &fx, "-alpha", |t| !has_word(t, "alpha"));
    assert_search(&mut conn, &fx, "buy -\"two litres\"", |t| {
        t.title == "buy eggs"
    });
}

#[test]
fn repeated_negations_cancel_by_parity() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let alpha = |t: &Task| has_word(t, "alpha");
    let no_alpha = |t: &Task| !has_word(t, "alpha");
    for n in [2, 4, 32, 34, 100, 496] {
        assert_search(&mut conn, &fx, &format!("{}alpha", "-".repeat(n)), alpha);
        assert_search(&mut conn, &fx, &format!("{}alpha", "- ".repeat(n)), alpha);
        assert_search(
            &mut conn,
            &fx,
            &format!("{}alpha", "-".repeat(n + 1)),
            no_alpha,
        );
        assert_search(
            &mut conn,
            &fx,
            &format!("{}alpha", "-(".repeat(n + 1)),
            no_alpha,
        );
    }
    assert_search(
        &mut conn,
        &fx,
        &format!("alpha {}report", "-".repeat(33)),
        |t| has_word(t, "alpha") && !has_word(t, "report"),
    );
    // Dashes inside words are no negations.
    assert_search(&mut conn, &fx, "semi-skimmed", |t| t.title == "Buy milk");
    assert_search(&mut conn, &fx, "semi--skimmed", |t| t.title == "Buy milk");
}

#[test]
fn blank_search_is_no_filter() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let all = fx.expected(|_| true, TaskSort::CreatedAt, Direction::Desc);
    for blank in ["", " ", "   \t\n ", "\0", " \0 \0 "] {
        assert_selects(&mut conn, &fx, TaskQuery::new().search(blank), &all);
    }
}

#[test]
fn a_search_of_stop_words_only_matches_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    for terms in ["the", "the and of", "\"the\"", "-the"] {
        let q = TaskQuery::new().search(terms);
        let page = TaskRepo::list(&mut conn, fx.user.id, &q).unwrap();
        assert!(page.items.is_empty(), "{terms:?}: {}", show(&page.items));
        assert_eq!(
            TaskRepo::count_matching(&mut conn, fx.user.id, &q).unwrap(),
            0
        );
        let by_rank = q.sort(TaskSort::Relevance, Direction::Desc);
        assert!(TaskRepo::list(&mut conn, fx.user.id, &by_rank)
            .unwrap()
            .items
            .is_empty());
    }
}

/// Strings a user might type, or an attacker might send.
pub(crate) fn hostile_strings() -> Vec<String> {
    let mut strings: Vec<String> = [
        "\"",
        "\"unbalanced",
        "unbalanced\"",
        "\"\"\"",
        "\"alpha",
        "&|!():*<->",
        "& | ! ( ) : * <-> <1> <2>",
        "alpha & bravo | !charlie",
        "(alpha",
        "alpha)",
        "alpha:*",
        "alpha:A",
        "<->",
        "!!",
        "!",
        "-",
        "--",
        "---alpha",
        "- -",
        "-\"",
        "or",
        "or or or",
        "alpha or",
        "or alpha",
        "\"or\"",
        "alpha -",
        "'",
        "''",
        "'alpha'",
        "'; DROP TABLE tasks; --",
        "\"; DROP TABLE tasks; --",
        "alpha'); DELETE FROM tasks; --",
        "$1",
        "$$",
        "%_",
        "\\",
        "\\\\",
        "alpha\\",
        "\\\"alpha\\\"",
        "back\\slash\\",
        "\0",
        "alpha\0bravo",
        "\0alpha\0",
        "😀",
        "🔥 alpha 🔥",
        "👨‍👩‍👧‍👦",
        "\u{202e}alpha",
        "\u{feff}",
        "\u{1}\u{2}\u{7f}",
        "\t\r\n",
        "ｆｕｌｌｗｉｄｔｈ",
        "עברית",
        "null",
        "NULL",
        "true",
        "1=1",
        "* FROM users",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    strings.push("a".repeat(1000));
    strings.push("é".repeat(1000));
    strings.push("😀".repeat(1000));
    strings.push("alpha ".repeat(166));
    strings.push("\"".repeat(1000));
    strings.push("-".repeat(1000));
    strings.push("or ".repeat(333));
    strings.push("!(".repeat(500));
    strings.push(format!("\"{}\"", "alpha bravo ".repeat(80).trim_end()));
    strings.push("\\".repeat(1000));
    strings.push("\0".repeat(1000));
    // websearch_to_tsquery fails ("tsquery stack too small") on 33 negations in a row.
    for n in [31, 32, 33, 34, 64, 999] {
        let dashes = "-".repeat(n);
        strings.push(dashes.clone());
        strings.push(format!("{dashes}alpha"));
        strings.push(format!("alpha {dashes}bravo"));
        strings.push(format!("alpha or {dashes} bravo"));
        strings.push(format!("\"alpha\"{dashes}bravo"));
        strings.push(format!("alpha!{dashes}bravo"));
        strings.push(format!("\"{dashes} alpha\""));
    }
    strings.push("- ".repeat(500));
    strings.push(format!("{}alpha", "- ".repeat(497)));
    strings.push("-(".repeat(500));
    strings.push("-!".repeat(500));
    strings.push("-<".repeat(500));
    strings.push("-&-|-)".repeat(166));
    strings.push("-\t-\n-\u{3000}".repeat(200));
    strings.push("-\u{a0}".repeat(500));
    strings.push("-😀".repeat(500));
    strings.push("\"-\"".repeat(333));
    strings.push("-\"".repeat(500));
    strings.push("-'".repeat(500));
    strings.push("-\\".repeat(500));
    strings.push("-,".repeat(500));
    strings.push("-the ".repeat(200));
    strings.push("-alpha ".repeat(142));
    // At most 1000 characters, the longest search there is.
    strings
        .into_iter()
        .map(|s| s.chars().take(1000).collect())
        .collect()
}

#[test]
fn hostile_search_strings_never_produce_a_database_error() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    for terms in hostile_strings() {
        assert!(terms.chars().count() <= 1000);
        let q = TaskQuery::new().search(&terms);
        for (sort, dir) in [
            (TaskSort::CreatedAt, Direction::Desc),
            (TaskSort::Title, Direction::Asc),
            (TaskSort::DueDate, Direction::Desc),
        ] {
            let q = q.clone().sort(sort, dir);
            let got = walk(&mut conn, fx.user.id, &q, 2);
            let count = TaskRepo::count_matching(&mut conn, fx.user.id, &q)
                .unwrap_or_else(|e| panic!("count_matching {terms:?}: {e:?}"));
            assert_eq!(count, got.len() as i64, "{terms:?}");
        }
        if !terms.replace('\0', " ").trim().is_empty() {
            let by_rank = q.clone().sort(TaskSort::Relevance, Direction::Desc);
            walk(&mut conn, fx.user.id, &by_rank, 2);
        }
    }
    // The table is intact.
    assert_eq!(
        TaskRepo::count(&mut conn, fx.user.id).unwrap(),
        fx.tasks.len() as i64
    );
    // NUL separates words like a space.
    let got = walk(
        &mut conn,
        fx.user.id,
        &TaskQuery::new().search("alpha\0bravo"),
        10,
    );
    assert_eq!(
        got.iter().map(|t| t.title.as_str()).collect::<Vec<_>>(),
        ["bravo"]
    );
}

#[test]
fn random_search_strings_never_produce_a_database_error() {
    let db = TestDb::new();
    let conn = RefCell::new(db.conn());
    let user = {
        let mut conn = conn.borrow_mut();
        let user = fixtures::user(&mut conn);
        let news: Vec<NewTask> = ["alpha bravo", "the alpha", "charlie - delta", "echo"]
            .iter()
            .map(|t| NewTask::new(*t).description("foxtrot -- golf"))
            .collect();
        TaskRepo::create_many(&mut conn, user.id, &news).unwrap();
        user
    };
    // Syntax characters, dashes above all, and a few words.
    let pieces = prop::sample::select(vec![
        "-",
        "-",
        "-",
        "-",
        "----------",
        "- - - - - ",
        "-(-(-(-(-(",
        " ",
        " ",
        "\"",
        "!",
        "(",
        ")",
        "&",
        "|",
        "<",
        ">",
        ":",
        "*",
        "'",
        "\\",
        "alpha",
        "the",
        "or",
        "OR",
        "😀",
        "\u{3000}",
        "\u{a0}",
        "\0",
        "é",
        ",",
    ]);
    let strategy = prop::collection::vec(pieces, 0..400)
        .prop_map(|p| p.concat().chars().take(1000).collect::<String>());
    let config = ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let result = TestRunner::new(config).run(&strategy, |terms| {
        let mut conn = conn.borrow_mut();
        for sort in [TaskSort::CreatedAt, TaskSort::Relevance] {
            let q = TaskQuery::new()
                .search(&terms)
                .sort(sort, Direction::Desc)
                .limit(2);
            match TaskRepo::list(&mut conn, user.id, &q) {
                Ok(_) => {}
                Err(Error::Validation { field, .. }) if field == "sort" => {}
                Err(e) => prop_assert!(false, "{terms:?}: {e:?}"),
            }
        }
        let count = TaskRepo::count_matching(&mut conn, user.id, &TaskQuery::new().search(&terms));
        prop_assert!(count.is_ok(), "{terms:?}: {count:?}");
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn a_search_of_1000_characters_is_accepted_and_1001_is_invalid() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    fixtures::task(&mut conn, &user, "alpha");
    for unit in ["a", "é", "😀", "alpha "] {
        let ok = unit.repeat(1000).chars().take(1000).collect::<String>();
        assert_eq!(ok.chars().count(), 1000);
        let q = TaskQuery::new().search(&ok);
        assert!(
            TaskRepo::list(&mut conn, user.id, &q).is_ok(),
            "{unit:?} x 1000"
        );
        assert!(TaskRepo::count_matching(&mut conn, user.id, &q).is_ok());
        let too_long = format!("{ok}{}", unit.chars().next().unwrap());
        let q = TaskQuery::new().search(&too_long);
        assert_invalid(TaskRepo::list(&mut conn, user.id, &q), "search");
        assert_invalid(TaskRepo::count_matching(&mut conn, user.id, &q), "search");
        let q = q.sort(TaskSort::Relevance, Direction::Desc);
        assert_invalid(TaskRepo::list(&mut conn, user.id, &q), "search");
    }
    // Characters, not bytes: 1000 four-byte characters fit.
    let q = TaskQuery::new().search(&"😀".repeat(1000));
    assert!(TaskRepo::list(&mut conn, user.id, &q).is_ok());
}

#[test]
fn search_combines_with_filters_and_every_sort() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let cases: [(TaskQuery, Keep); 4] = [
        (TaskQuery::new().search("alpha").completed(false), |t| {
            has_word(t, "alpha") && !t.completed
        }),
        (
            TaskQuery::new()
                .search("alpha or zebra")
                .priority(Priority::Low),
            |t| (has_word(t, "alpha") || has_word(t, "zebra")) && t.priority == Priority::Low,
        ),
        (
            TaskQuery::new()
                .search("alpha -bravo")
                .priority(Priority::High)
                .priority(Priority::Medium),
            |t| has_word(t, "alpha") && !has_word(t, "bravo") && t.priority != Priority::Low,
        ),
        (TaskQuery::new().search("buy or alpha").overdue(), |t| {
            (has_word(t, "buy") || has_word(t, "alpha"))
                && !t.completed
                && t.due_date.is_some_and(|d| d < Utc::now())
        }),
    ];
    for (q, keep) in &cases {
        for sort in SORTS {
            for dir in DIRECTIONS {
                let expected = fx.expected(keep, sort, dir);
                assert!(!expected.is_empty(), "{q:?}");
                for limit in [1, 2, 50] {
                    let q = q.clone().sort(sort, dir);
                    assert_same(
                        &walk(&mut conn, fx.user.id, &q, limit),
                        &expected,
                        &format!("{q:?} at {limit}"),
                    );
                }
            }
        }
        // Relevance: the same set, every row once.
        for dir in DIRECTIONS {
            let expected: HashSet<TaskId> =
                fx.tasks.iter().filter(|t| keep(t)).map(|t| t.id).collect();
            let q = q.clone().sort(TaskSort::Relevance, dir);
            let got = ids(&walk(&mut conn, fx.user.id, &q, 1));
            assert_eq!(got.len(), expected.len(), "{q:?}");
            assert_eq!(got.into_iter().collect::<HashSet<_>>(), expected, "{q:?}");
        }
        assert_eq!(
            TaskRepo::count_matching(&mut conn, fx.user.id, q).unwrap(),
            fx.tasks.iter().filter(|t| keep(t)).count() as i64
        );
    }
}
