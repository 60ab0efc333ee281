//! Property: random pages concatenate to the filtered, sorted set.

use std::cell::RefCell;

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use todo_store::testing::TestDb;

use super::*;

/// Words whose English stems are distinct, none a stop word: a search for one matches
/// exactly the tasks that contain it.
const WORDS: [&str; 6] = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];

/// `word` as typed: 0 lower case, 1 Capitalised, 2 UPPER CASE.
fn spell(word: &str, spelling: u8) -> String {
    match spelling {
        0 => word.to_owned(),
        1 => word[..1].to_uppercase() + &word[1..],
        _ => word.to_uppercase(),
    }
}

/// Due dates and filter bounds: slots 0..=4 lie far in the past, 5 is the start of the
/// property, 6..=10 lie far in the future, an hour apart. Data uses 0..=3 and 6..=9, so
/// bounds hit data exactly (strictness) or lie beyond all of it.
fn slot_instant(base: DateTime<Utc>, slot: u8) -> DateTime<Utc> {
    match slot {
        0..=4 => base - Duration::days(1000) + Duration::hours(slot.into()),
        5 => base,
        _ => base + Duration::days(1000) + Duration::hours(i64::from(slot) - 6),
    }
}

#[derive(Debug, Clone)]
struct GenTask {
    title: Vec<(usize, u8)>,
    description: Option<Vec<usize>>,
    priority: Priority,
    completed: bool,
    due: Option<u8>,
}

impl GenTask {
    fn new_task(&self, base: DateTime<Utc>) -> NewTask {
        let title: Vec<String> = self
            .title
            .iter()
            .map(|&(w, s)| spell(WORDS[w], s))
            .collect();
        let mut new = NewTask::new(title.join(" "))
            .priority(self.priority)
            .completed(self.completed);
        new.description = self.description.as_ref().map(|words| {
            words
                .iter()
                .map(|&w| WORDS[w])
                .collect::<Vec<_>>()
                .join(" ")
        });
        new.due_date = self.due.map(|slot| slot_instant(base, slot));
        new
    }
}

fn gen_task() -> impl Strategy<Value = GenTask> {
    (
        prop::collection::vec((0..WORDS.len(), 0..3u8), 1..=3),
        prop::option::of(prop::collection::vec(0..WORDS.len(), 0..=3)),
        prop::sample::select(Priority::ALL.to_vec()),
        any::<bool>(),
        prop::option::of(prop_oneof![0..=3u8, 6..=9u8]),
    )
        .prop_map(|(title, description, priority, completed, due)| GenTask {
            title,
            description,
            priority,
            completed,
            due,
        })
}

/// A search in web-search syntax, and what it matches.
#[derive(Debug, Clone)]
enum GenSearch {
    Word(usize, u8),
    All(usize, usize),
    Either(usize, usize),
    Not(usize),
    Without(usize, usize),
    Phrase(usize, usize),
}

impl GenSearch {
    fn text(&self) -> String {
        match *self {
            GenSearch::Word(w, s) => format!("  {} ", spell(WORDS[w], s)),
            GenSearch::All(a, b) => format!("{} {}", WORDS[a], WORDS[b]),
            GenSearch::Either(a, b) => format!("{} or {}", WORDS[a], WORDS[b]),
            GenSearch::Not(a) => format!("-{}", WORDS[a]),
            GenSearch::Without(a, b) => format!("{} -{}", WORDS[a], WORDS[b]),
            GenSearch::Phrase(a, b) => format!("\"{} {}\"", WORDS[a], WORDS[b]),
        }
    }

    /// Whether a task whose title and description are `tokens` (lowercase, in order)
    /// matches. The search vector is the title's words followed by the description's,
    /// so a phrase may span the two.
    fn matches(&self, tokens: &[String]) -> bool {
        let has = |w: usize| tokens.iter().any(|t| t == WORDS[w]);
        match *self {
            GenSearch::Word(w, _) => has(w),
            GenSearch::All(a, b) => has(a) && has(b),
            GenSearch::Either(a, b) => has(a) || has(b),
            GenSearch::Not(a) => !has(a),
            GenSearch::Without(a, b) => has(a) && !has(b),
            GenSearch::Phrase(a, b) => tokens
                .windows(2)
                .any(|p| p[0] == WORDS[a] && p[1] == WORDS[b]),
        }
    }
}

fn gen_search() -> impl Strategy<Value = GenSearch> {
    let w = 0..WORDS.len();
    prop_oneof![
        (w.clone(), 0..3u8).prop_map(|(w, s)| GenSearch::Word(w, s)),
        (w.clone(), w.clone()).prop_map(|(a, b)| GenSearch::All(a, b)),
        (w.clone(), w.clone()).prop_map(|(a, b)| GenSearch::Either(a, b)),
        w.clone().prop_map(GenSearch::Not),
        (w.clone(), w.clone()).prop_map(|(a, b)| GenSearch::Without(a, b)),
        (w.clone(), w).prop_map(|(a, b)| GenSearch::Phrase(a, b)),
    ]
}

#[derive(Debug, Clone)]
struct GenQuery {
    completed: Option<bool>,
    priorities: Vec<Priority>,
    due_before: Option<u8>,
    due_after: Option<u8>,
    overdue: bool,
    /// (batch, offset in microseconds) of created_at bounds.
    created_before: Option<(usize, i64)>,
    created_after: Option<(usize, i64)>,
    search: Option<GenSearch>,
    sort: TaskSort,
    direction: Direction,
    page: usize,
}

fn gen_query() -> impl Strategy<Value = GenQuery> {
    // Each filter is rare enough that combinations still select rows.
    let bound = || prop::option::weighted(0.2, 0..=10u8);
    let created = || prop::option::weighted(0.15, (0..4usize, -1..=1i64));
    (
        prop::option::weighted(0.3, any::<bool>()),
        prop::option::weighted(
            0.3,
            prop::collection::vec(prop::sample::select(Priority::ALL.to_vec()), 1..=2),
        )
        .prop_map(Option::unwrap_or_default),
        bound(),
        bound(),
        prop::bool::weighted(0.1),
        created(),
        created(),
        prop::option::weighted(0.3, gen_search()),
        prop::sample::select(SORTS.to_vec()),
        prop::sample::select(DIRECTIONS.to_vec()),
        1..=12usize,
    )
        .prop_map(
            |(
                completed,
                priorities,
                due_before,
                due_after,
                overdue,
                created_before,
                created_after,
                search,
                sort,
                direction,
                page,
            )| {
                GenQuery {
                    completed,
                    priorities,
                    due_before,
                    due_after,
                    overdue,
                    created_before,
                    created_after,
                    search,
                    sort,
                    direction,
                    page,
                }
            },
        )
}

#[test]
fn random_pages_concatenate_to_the_filtered_sorted_set() {
    let db = TestDb::new();
    // The property is `Fn`: it borrows the connection for each case.
    let conn = RefCell::new(db.conn());
    let base = now_micros();
    let config = ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let strategy = (
        prop::collection::vec(gen_task(), 0..60),
        prop::collection::vec(0..=60usize, 0..=3),
        gen_query(),
    );
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |(gen_tasks, mut cuts, gq)| {
        let mut guard = conn.borrow_mut();
        let conn: &mut PgConnection = &mut guard;
        let user = fixtures::user(conn);
        // 1 to 4 create_many calls: created_at ties within each, not across.
        let news: Vec<NewTask> = gen_tasks.iter().map(|g| g.new_task(base)).collect();
        cuts.iter_mut().for_each(|c| *c = (*c).min(news.len()));
        cuts.sort_unstable();
        let mut tasks = Vec::new();
        let mut batches = Vec::new();
        let mut start = 0;
        for end in cuts.into_iter().chain([news.len()]) {
            let created = TaskRepo::create_many(conn, user.id, &news[start..end]).unwrap();
            if let Some(first) = created.first() {
                batches.push(first.created_at);
            }
            tasks.extend(created);
            start = end;
        }
        let created_bound = |b: Option<(usize, i64)>| {
            b.map(|(batch, offset)| {
                let at = batches
                    .get(batch % batches.len().max(1))
                    .copied()
                    .unwrap_or(base);
                at + Duration::microseconds(offset)
            })
        };
        let created_before = created_bound(gq.created_before);
        let created_after = created_bound(gq.created_after);
        let due_before = gq.due_before.map(|s| slot_instant(base, s));
        let due_after = gq.due_after.map(|s| slot_instant(base, s));

        let mut query = TaskQuery::new().sort(gq.sort, gq.direction);
        if let Some(c) = gq.completed {
            query = query.completed(c);
        }
        for &p in &gq.priorities {
            query = query.priority(p);
        }
        if let Some(at) = due_before {
            query = query.due_before(at);
        }
        if let Some(at) = due_after {
            query = query.due_after(at);
        }
        if gq.overdue {
            query = query.overdue();
        }
        if let Some(at) = created_before {
            query = query.created_before(at);
        }
        if let Some(at) = created_after {
            query = query.created_after(at);
        }
        if let Some(s) = &gq.search {
            query = query.search(&s.text());
        }

        let now = Utc::now();
        let keep = |t: &Task| {
            let tokens: Vec<String> = t
                .title
                .split_whitespace()
                .chain(t.description.as_deref().unwrap_or("").split_whitespace())
                .map(str::to_lowercase)
                .collect();
            gq.completed.is_none_or(|c| t.completed == c)
                && (gq.priorities.is_empty() || gq.priorities.contains(&t.priority))
                && due_before.is_none_or(|at| t.due_date.is_some_and(|d| d < at))
                && due_after.is_none_or(|at| t.due_date.is_some_and(|d| d > at))
                && (!gq.overdue || (!t.completed && t.due_date.is_some_and(|d| d < now)))
                && created_before.is_none_or(|at| t.created_at < at)
                && created_after.is_none_or(|at| t.created_at > at)
                && gq.search.as_ref().is_none_or(|s| s.matches(&tokens))
        };
        let expected = sorted(
            tasks.iter().filter(|t| keep(t)).cloned(),
            gq.sort,
            gq.direction,
        );
        let got = walk(conn, user.id, &query, gq.page);
        prop_assert!(
            got == expected,
            "{query:?} with pages of {}: got\n{}expected\n{}",
            gq.page,
            show(&got),
            show(&expected)
        );
        let count = TaskRepo::count_matching(conn, user.id, &query).unwrap();
        prop_assert_eq!(count, expected.len() as i64);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn relevance_pages_concatenate_to_one_big_page() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    // 120 tasks from the vocabulary, deterministic: many rank ties, many distinct ranks.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let news: Vec<NewTask> = (0..120)
        .map(|_| {
            let title: Vec<&str> = (0..1 + next(4)).map(|_| WORDS[next(WORDS.len())]).collect();
            let description: Vec<&str> = (0..next(6)).map(|_| WORDS[next(WORDS.len())]).collect();
            NewTask::new(title.join(" ")).description(description.join(" "))
        })
        .collect();
    for chunk in news.chunks(40) {
        TaskRepo::create_many(&mut conn, user.id, chunk).unwrap();
    }
    for terms in [
        "alpha",
        "alpha bravo",
        "alpha or bravo",
        "charlie -delta",
        "\"echo foxtrot\"",
        "-alpha",
    ] {
        let asc = TaskQuery::new()
            .search(terms)
            .sort(TaskSort::Relevance, Direction::Asc);
        let desc = TaskQuery::new()
            .search(terms)
            .sort(TaskSort::Relevance, Direction::Desc);
        let one_page_desc = TaskRepo::list(&mut conn, user.id, &desc.clone().limit(500)).unwrap();
        assert_eq!(one_page_desc.next_cursor, None);
        assert!(
            one_page_desc.items.len() > 1,
            "{terms:?} should match several tasks"
        );
        assert_eq!(
            one_page_desc.items.len() as i64,
            TaskRepo::count_matching(&mut conn, user.id, &desc).unwrap()
        );
        let mut one_page_asc = TaskRepo::list(&mut conn, user.id, &asc.clone().limit(500))
            .unwrap()
            .items;
        one_page_asc.reverse();
        assert_same(
            &one_page_asc,
            &one_page_desc.items,
            &format!("{terms:?}: Asc is Desc reversed"),
        );
        for limit in [1, 2, 5, 12] {
            assert_same(
                &walk(&mut conn, user.id, &desc, limit),
                &one_page_desc.items,
                &format!("{terms:?} Desc at limit {limit}"),
            );
            let mut walked_asc = walk(&mut conn, user.id, &asc, limit);
            walked_asc.reverse();
            assert_same(
                &walked_asc,
                &one_page_desc.items,
                &format!("{terms:?} Asc at limit {limit}"),
            );
        }
    }
}
