//! Proof that indexes serve every task query shape: 200,000 tasks over 200 users (1,000
//! each, the product's heavy user), ANALYZE, then `EXPLAIN (FORMAT JSON)` of the crate's
//! own SQL for one user must touch `tasks` only through an index (no Seq Scan on tasks).
//! Each shape is checked twice: with the custom plan of its parameter values, and with
//! the generic plan PostgreSQL may keep for a prepared statement after five executions
//! (the one a long-lived pooled connection runs), where in addition no function of the
//! parameters alone may sit in a row filter, a recheck or a sort key: evaluated per row
//! what could run once.

use std::time::Instant;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::sql_types::BigInt;
use diesel::{Connection, RunQueryDsl};
use todo_store::testing::{plans, TestDb};
use todo_store::UserId;
use todo_store::{
    Direction, Error, NewTask, NewUser, PgConnection, Priority, TaskQuery, TaskRepo, TaskSort,
    UserRepo,
};

use crate::support::rng::Rng;

const USERS: usize = 200;
const TASKS_PER_USER: usize = 1_000;
/// Tasks per create_many call: each call has its own created_at.
const BATCH: usize = 25;

const WORDS: [&str; 24] = [
    "alpha",
    "report",
    "invoice",
    "meeting",
    "groceries",
    "garden",
    "call",
    "email",
    "review",
    "budget",
    "doctor",
    "flight",
    "hotel",
    "birthday",
    "laundry",
    "car",
    "taxes",
    "plan",
    "draft",
    "slides",
    "kitchen",
    "paint",
    "book",
    "train",
];

fn new_task(rng: &mut Rng, now: DateTime<Utc>) -> NewTask {
    let words: Vec<&str> = (0..1 + rng.below(4))
        .map(|_| WORDS[rng.below(WORDS.len())])
        .collect();
    let mut task = NewTask::new(words.join(" "))
        .priority(Priority::ALL[rng.below(3)])
        .completed(rng.below(10) < 3);
    if rng.below(2) == 0 {
        let words: Vec<&str> = (0..rng.below(8))
            .map(|_| WORDS[rng.below(WORDS.len())])
            .collect();
        task = task.description(words.join(" "));
    }
    if rng.below(10) >= 3 {
        task = task.due_date(now + Duration::hours(rng.below(24 * 120) as i64 - 24 * 60));
    }
    // Metadata on 40% of tasks, as the seed makes it: a source, often labels, half the
    // time an estimate.
    if rng.below(10) < 4 {
        let mut metadata = serde_json::Map::new();
        metadata.insert("source".into(), SOURCES[rng.below(SOURCES.len())].into());
        if rng.below(10) < 6 {
            let labels = vec![serde_json::Value::from(LABELS[rng.below(LABELS.len())])];
            metadata.insert("labels".into(), labels.into());
        }
        if rng.below(2) == 0 {
            metadata.insert("estimate_minutes".into(), (15 * (1 + rng.below(8))).into());
        }
        task = task.metadata(metadata);
    }
    task
}

const SOURCES: [&str; 4] = ["web", "mobile", "email", "slack"];
const LABELS: [&str; 6] = ["work", "home", "errand", "finance", "health", "urgent"];

/// A containment document for the plans.
fn document(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// [`USERS`] users and their tasks.
fn seed(conn: &mut PgConnection) -> Vec<UserId> {
    seed_users(conn, USERS)
}

/// `count` users and their tasks, through the crate's bulk path, in one transaction.
fn seed_users(conn: &mut PgConnection, count: usize) -> Vec<UserId> {
    let now = Utc::now().trunc_subsecs(6);
    let mut rng = Rng::new(0x5eed_1234_abcd_ef01);
    conn.transaction::<_, Error, _>(|conn| {
        let news: Vec<NewUser> = (0..count)
            .map(|i| NewUser::new(format!("plan-user-{i}@example.com"), format!("User {i}")))
            .collect();
        let users: Vec<UserId> = UserRepo::create_many(conn, &news)?
            .iter()
            .map(|u| u.id)
            .collect();
        for &user in &users {
            for _ in 0..TASKS_PER_USER / BATCH {
                let batch: Vec<NewTask> = (0..BATCH).map(|_| new_task(&mut rng, now)).collect();
                TaskRepo::create_many(conn, user, &batch)?;
            }
        }
        Ok(users)
    })
    .expect("seeding")
}

// ---------------------------------------------------------------------------------------
// A minimal JSON reader for EXPLAIN's output (no JSON crate among the dependencies)
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
enum Json {
    /// null, true, false or a number: nothing the checks read.
    Scalar,
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn parse(text: &str) -> Json {
        let mut reader = Reader {
            text: text.as_bytes(),
            at: 0,
        };
        let value = reader.value();
        reader.space();
        assert_eq!(
            reader.at,
            reader.text.len(),
            "trailing text after the JSON plan"
        );
        value
    }

    fn space(&mut self) {
        while self
            .text
            .get(self.at)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> u8 {
        self.space();
        *self
            .text
            .get(self.at)
            .expect("unexpected end of the JSON plan")
    }

    fn expect(&mut self, byte: u8) {
        assert_eq!(self.peek(), byte, "malformed JSON plan at byte {}", self.at);
        self.at += 1;
    }

    fn literal(&mut self, word: &str) {
        assert!(
            self.text[self.at..].starts_with(word.as_bytes()),
            "malformed JSON plan at byte {}",
            self.at
        );
        self.at += word.len();
    }

    fn value(&mut self) -> Json {
        match self.peek() {
            b'{' => {
                self.at += 1;
                let mut members = Vec::new();
                if self.peek() == b'}' {
                    self.at += 1;
                    return Json::Object(members);
                }
                loop {
                    let key = self.string();
                    self.expect(b':');
                    members.push((key, self.value()));
                    match self.peek() {
                        b',' => self.at += 1,
                        _ => {
                            self.expect(b'}');
                            return Json::Object(members);
                        }
                    }
                }
            }
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                if self.peek() == b']' {
                    self.at += 1;
                    return Json::Array(items);
                }
                loop {
                    items.push(self.value());
                    match self.peek() {
                        b',' => self.at += 1,
                        _ => {
                            self.expect(b']');
                            return Json::Array(items);
                        }
                    }
                }
            }
            b'"' => Json::String(self.string()),
            b't' => {
                self.literal("true");
                Json::Scalar
            }
            b'f' => {
                self.literal("false");
                Json::Scalar
            }
            b'n' => {
                self.literal("null");
                Json::Scalar
            }
            _ => {
                let start = self.at;
                while self
                    .text
                    .get(self.at)
                    .is_some_and(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
                {
                    self.at += 1;
                }
                assert!(self.at > start, "malformed JSON plan at byte {start}");
                Json::Scalar
            }
        }
    }

    fn string(&mut self) -> String {
        self.expect(b'"');
        let mut out = Vec::new();
        loop {
            let b = self.text[self.at];
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let escaped = self.text[self.at];
                    self.at += 1;
                    match escaped {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex =
                                std::str::from_utf8(&self.text[self.at..self.at + 4]).unwrap();
                            self.at += 4;
                            let c = u32::from_str_radix(hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .unwrap_or('?');
                            out.extend_from_slice(c.to_string().as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Json::String(s)) => Some(s),
            _ => None,
        }
    }

    /// Every object in the tree (plan nodes among them), depth first.
    fn objects<'a>(&'a self, out: &mut Vec<&'a Json>) {
        match self {
            Json::Object(members) => {
                out.push(self);
                members.iter().for_each(|(_, v)| v.objects(out));
            }
            Json::Array(items) => items.iter().for_each(|v| v.objects(out)),
            Json::Scalar | Json::String(_) => {}
        }
    }
}

/// The plan nodes of an `EXPLAIN (FORMAT JSON)` output.
fn plan_nodes(plan: &Json) -> Vec<&Json> {
    let mut objects = Vec::new();
    plan.objects(&mut objects);
    objects
        .into_iter()
        .filter(|o| o.get("Node Type").is_some())
        .collect()
}

/// Functions of the parameters alone that the crate's SQL computes: each must run once
/// per execution (a constant or an InitPlan), never once per row.
const PARAMETER_FUNCTIONS: [&str; 3] = ["websearch_to_tsquery", "to_tsquery", "plainto_tsquery"];

/// The fields of a plan node whose expressions run once per row.
const PER_ROW_FIELDS: [&str; 4] = ["Filter", "Recheck Cond", "Join Filter", "Sort Key"];

/// Checks one plan: no Seq Scan on tasks, tasks is read at all (through an index), and
/// no function of the parameters is evaluated per row. Returns a failure message, or
/// None.
fn check_plan(label: &str, plan_text: &str) -> Option<String> {
    let plan = Reader::parse(plan_text);
    let nodes = plan_nodes(&plan);
    assert!(!nodes.is_empty(), "{label}: no plan nodes in\n{plan_text}");
    if let Some(failure) = per_row_parameter_function(label, &nodes, plan_text) {
        return Some(failure);
    }
    reads_through_an_index(label, &nodes, plan_text, "tasks")
}

/// A function of the parameters alone evaluated per row in one of `nodes`, if any.
fn per_row_parameter_function(label: &str, nodes: &[&Json], plan_text: &str) -> Option<String> {
    for node in nodes {
        for field in PER_ROW_FIELDS {
            let texts: Vec<&str> = match node.get(field) {
                Some(Json::String(s)) => vec![s.as_str()],
                Some(Json::Array(items)) => items
                    .iter()
                    .filter_map(|i| match i {
                        Json::String(s) => Some(s.as_str()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for text in texts {
                if let Some(f) = PARAMETER_FUNCTIONS.iter().find(|f| text.contains(*f)) {
                    return Some(format!(
                        "{label}: {f} evaluated per row in the {field} of a {}:\n{plan_text}",
                        node.str("Node Type").unwrap_or("?")
                    ));
                }
            }
        }
    }
    None
}

/// Whether `nodes` read `relation`, and never by a Seq Scan.
fn reads_through_an_index(
    label: &str,
    nodes: &[&Json],
    plan_text: &str,
    relation: &str,
) -> Option<String> {
    let on_relation: Vec<&str> = nodes
        .iter()
        .filter(|n| n.str("Relation Name") == Some(relation))
        .map(|n| n.str("Node Type").unwrap_or("?"))
        .collect();
    if on_relation.contains(&"Seq Scan") {
        return Some(format!("{label}: Seq Scan on {relation}:\n{plan_text}"));
    }
    if on_relation.is_empty() {
        return Some(format!(
            "{label}: the plan never reads {relation}?\n{plan_text}"
        ));
    }
    None
}

#[test]
fn the_reader_finds_seq_scans_in_a_plan() {
    let seq = r#"[{"Plan": {"Node Type": "Limit", "Plans": [{"Node Type": "Sort", "Plans": [
        {"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "tasks",
         "Alias": "tasks", "Filter": "(title = 'a \"b\" \\u00e9')", "Total Cost": 1.5e3}]}]}}]"#;
    assert!(check_plan("seq", seq).is_some());
    let index = r#"[{"Plan": {"Node Type": "Bitmap Heap Scan", "Relation Name": "tasks", "Plans": [
        {"Node Type": "Bitmap Index Scan", "Index Name": "tasks_user_created_idx"}]}}]"#;
    assert!(check_plan("index", index).is_none());
    let elsewhere = r#"[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "users"}}]"#;
    assert!(
        check_plan("elsewhere", elsewhere).is_some(),
        "tasks is never read"
    );
    // The generic plan of a bare websearch_to_tsquery($2): rechecked per row.
    let per_row = r#"[{"Plan": {"Node Type": "Bitmap Heap Scan", "Relation Name": "tasks",
        "Recheck Cond": "((user_id = $1) AND (search_vector @@ websearch_to_tsquery('english'::regconfig, $2)))",
        "Plans": [{"Node Type": "Bitmap Index Scan", "Index Name": "tasks_user_search_idx"}]}}]"#;
    assert!(check_plan("per row", per_row).is_some());
    let sorted = r#"[{"Plan": {"Node Type": "Sort", "Sort Key": ["(ts_rank_cd(search_vector, websearch_to_tsquery('english'::regconfig, $2))) DESC"],
        "Plans": [{"Node Type": "Index Scan", "Relation Name": "tasks"}]}}]"#;
    assert!(check_plan("sort key", sorted).is_some());
    let once = r#"[{"Plan": {"Node Type": "Bitmap Heap Scan", "Relation Name": "tasks",
        "Recheck Cond": "((user_id = $1) AND (search_vector @@ $3))",
        "Plans": [{"Node Type": "Result", "Parent Relationship": "InitPlan", "Subplan Name": "InitPlan 1 (returns $3)"},
                  {"Node Type": "Bitmap Index Scan", "Index Name": "tasks_user_search_idx"}]}}]"#;
    assert!(check_plan("init plan", once).is_none());
}

// ---------------------------------------------------------------------------------------
// The plans
// ---------------------------------------------------------------------------------------

#[test]
fn every_query_shape_reads_tasks_through_an_index() {
    let started = Instant::now();
    let db = TestDb::new();
    let mut conn = db.conn();
    let users = seed(&mut conn);
    conn.batch_execute("ANALYZE users; ANALYZE tasks;").unwrap();
    let total: i64 = diesel::select(sql::<BigInt>("(SELECT count(*) FROM tasks)"))
        .get_result(&mut *conn)
        .unwrap();
    assert!(total >= 200_000, "{total} tasks");
    assert!(users.len() >= USERS);
    eprintln!(
        "seeded {} users and {total} tasks, analyzed, in {:?}",
        users.len(),
        started.elapsed()
    );

    let user = users[users.len() / 2];
    let now = Utc::now();
    // A created_at inside the user's range: their second batch.
    let created = TaskRepo::list(
        &mut conn,
        user,
        &TaskQuery::new()
            .sort(TaskSort::CreatedAt, Direction::Asc)
            .limit(BATCH as i64 + 1),
    )
    .unwrap()
    .items
    .last()
    .unwrap()
    .created_at;

    let filters: Vec<(&str, TaskQuery)> = vec![
        ("no filter", TaskQuery::new()),
        ("open", TaskQuery::new().completed(false)),
        ("done", TaskQuery::new().completed(true)),
        ("high", TaskQuery::new().priority(Priority::High)),
        (
            "low or high",
            TaskQuery::new()
                .priority(Priority::Low)
                .priority(Priority::High),
        ),
        (
            "due before",
            TaskQuery::new().due_before(now + Duration::days(7)),
        ),
        ("due after", TaskQuery::new().due_after(now)),
        (
            "due window",
            TaskQuery::new()
                .due_after(now - Duration::days(7))
                .due_before(now + Duration::days(7)),
        ),
        ("overdue", TaskQuery::new().overdue()),
        ("created before", TaskQuery::new().created_before(created)),
        ("created after", TaskQuery::new().created_after(created)),
        ("search", TaskQuery::new().search("alpha")),
        (
            "metadata contains",
            TaskQuery::new().metadata_contains(document(serde_json::json!({"source": "email"}))),
        ),
        (
            "metadata contains a label",
            TaskQuery::new().metadata_contains(document(serde_json::json!({"labels": ["urgent"]}))),
        ),
        (
            "metadata has key",
            TaskQuery::new().metadata_has_key("estimate_minutes"),
        ),
        (
            "search with metadata",
            TaskQuery::new()
                .completed(false)
                .search("report")
                .metadata_has_key("source"),
        ),
        (
            "search phrase",
            TaskQuery::new().search("\"alpha report\" or invoice -taxes"),
        ),
        (
            "everything",
            TaskQuery::new()
                .completed(false)
                .priority(Priority::High)
                .priority(Priority::Medium)
                .due_after(now - Duration::days(30))
                .due_before(now + Duration::days(30))
                .created_after(created - Duration::days(1))
                .search("report"),
        ),
    ];
    let mut shapes: Vec<(&str, String, TaskQuery)> = Vec::new();
    for (name, filter) in &filters {
        for sort in TaskSort::ALL {
            if sort == TaskSort::Relevance && !name.starts_with("search") && *name != "everything" {
                continue;
            }
            for dir in [Direction::Asc, Direction::Desc] {
                shapes.push((
                    name,
                    format!("{name}, {sort:?} {dir:?}"),
                    filter.clone().sort(sort, dir),
                ));
            }
        }
    }

    let mut failures = Vec::new();
    let mut with_cursor = 0;
    for (name, label, query) in &shapes {
        let plan = plans::list(&mut conn, user, query).unwrap_or_else(|e| panic!("{label}: {e:?}"));
        failures.extend(check_plan(&format!("list: {label}"), &plan));
        let plan = plans::list_generic(&mut conn, user, query)
            .unwrap_or_else(|e| panic!("{label}, generic plan: {e:?}"));
        failures.extend(check_plan(&format!("list, generic plan: {label}"), &plan));
        // With a cursor from a real first page.
        let first = TaskRepo::list(&mut conn, user, &query.clone().limit(3)).unwrap();
        if let Some(cursor) = first.next_cursor {
            with_cursor += 1;
            let next = query.clone().after(&cursor);
            let plan = plans::list(&mut conn, user, &next)
                .unwrap_or_else(|e| panic!("{label} after a cursor: {e:?}"));
            failures.extend(check_plan(&format!("list after a cursor: {label}"), &plan));
            let plan = plans::list_generic(&mut conn, user, &next)
                .unwrap_or_else(|e| panic!("{label} after a cursor, generic plan: {e:?}"));
            failures.extend(check_plan(
                &format!("list after a cursor, generic plan: {label}"),
                &plan,
            ));
            // The plan's query is the one list runs.
            assert!(TaskRepo::list(&mut conn, user, &next).is_ok());
        } else {
            assert!(
                !matches!(*name, "no filter" | "open"),
                "{label}: a user with 1,000 tasks has a second page"
            );
        }
    }
    for (name, filter) in &filters {
        let plan = plans::count_matching(&mut conn, user, filter).unwrap();
        failures.extend(check_plan(&format!("count_matching: {name}"), &plan));
        let plan = plans::count_matching_generic(&mut conn, user, filter).unwrap();
        failures.extend(check_plan(
            &format!("count_matching, generic plan: {name}"),
            &plan,
        ));
    }
    failures.extend(check_plan("stats", &plans::stats(&mut conn, user).unwrap()));
    failures.extend(check_plan(
        "stats, generic plan",
        &plans::stats_generic(&mut conn, user).unwrap(),
    ));

    eprintln!(
        "checked {} list shapes ({with_cursor} also after a cursor), {} counts and stats in {:?} in all",
        shapes.len(),
        filters.len(),
        started.elapsed()
    );
    // The check itself can fail: without index scans, stats reads tasks sequentially.
    conn.batch_execute(
        "SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_indexonlyscan = off",
    )
    .unwrap();
    assert!(check_plan(
        "stats without indexes",
        &plans::stats(&mut conn, user).unwrap()
    )
    .is_some());
    conn.batch_execute("RESET ALL").unwrap();

    assert!(
        with_cursor >= shapes.len() * 3 / 4,
        "only {with_cursor} shapes had a second page"
    );
    assert!(
        failures.is_empty(),
        "{} plans read tasks without an index or evaluate a parameter function per row:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// How often PostgreSQL planned a prepared statement of a session: with its values
/// (custom) or once for all (generic).
#[derive(diesel::QueryableByName)]
struct PreparedPlans {
    #[diesel(sql_type = BigInt)]
    generic_plans: i64,
    #[diesel(sql_type = BigInt)]
    custom_plans: i64,
}

/// The plans of `conn`'s one prepared statement whose SQL contains `text`.
fn prepared_plans(conn: &mut PgConnection, text: &str) -> PreparedPlans {
    diesel::sql_query(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements \
         WHERE strpos(statement, $1) > 0",
    )
    .bind::<diesel::sql_types::Text, _>(text)
    .get_result(conn)
    .unwrap()
}

/// Users of [`list_pages_settle_on_their_generic_plan`]: its row estimates are set, so
/// fewer than [`USERS`] do.
const SETTLE_USERS: usize = 50;

/// The prepared statement of a list page settles on its generic plan, under the row
/// estimates of 10 million tasks and under those of this table: PostgreSQL plans it once
/// per connection, not on every call (about 100 µs of server CPU a page, as much as
/// running it). PostgreSQL plans the first five executions of a prepared statement with
/// their parameters' values (custom plans), then keeps the generic plan only if its
/// estimated cost is no higher than theirs. A `LIMIT $n` made it higher: not knowing n,
/// the generic plan counts a tenth of the rows that match, more than a page for a user
/// with over 500 open tasks. At 10,000 users x 1,000 tasks ANALYZE estimates 9,095
/// users, 1,100 tasks each, and the open-tasks page was planned anew on every call.
/// A bare `metadata @> $n` made it higher too, the other way round: the custom plans
/// of a document that few tasks contain counted fewer rows than the generic plan, which
/// cannot see the document (the filters are sub-SELECTs now, estimated alike).
#[test]
fn list_pages_settle_on_their_generic_plan() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let users = seed_users(&mut conn, SETTLE_USERS);
    let user = users[users.len() / 2];
    let pages: Vec<(&str, TaskQuery)> = vec![
        (
            "open tasks, newest first",
            TaskQuery::new().completed(false),
        ),
        (
            "open tasks, 20 a page",
            TaskQuery::new().completed(false).limit(20),
        ),
        ("every task", TaskQuery::new()),
        ("done tasks", TaskQuery::new().completed(true)),
        (
            "open tasks, soonest due first",
            TaskQuery::new()
                .completed(false)
                .sort(TaskSort::DueDate, Direction::Asc),
        ),
        (
            "by priority",
            TaskQuery::new().sort(TaskSort::Priority, Direction::Desc),
        ),
        // A document or key that few tasks have made the custom plans look cheaper
        // than the generic one while the filter was a bare parameter (seen on 100 users
        // x 1,000 tasks with a document no task contains: 8 custom plans of 8).
        (
            "metadata of the commonest source",
            TaskQuery::new().metadata_contains(document(serde_json::json!({"source": "web"}))),
        ),
        (
            "metadata no task has",
            TaskQuery::new().metadata_contains(document(serde_json::json!({"source": "fax"}))),
        ),
        (
            "a metadata key many tasks have",
            TaskQuery::new().metadata_has_key("source"),
        ),
        (
            "a metadata key no task has",
            TaskQuery::new().metadata_has_key("nowhere"),
        ),
    ];
    let at_10m = format!(
        "ALTER TABLE tasks ALTER COLUMN user_id SET (n_distinct = {})",
        SETTLE_USERS * 9_095 / 10_000
    );
    let mut failures = Vec::new();
    for (estimates, setting) in [
        ("of 10M tasks", at_10m.as_str()),
        (
            "of this table",
            "ALTER TABLE tasks ALTER COLUMN user_id RESET (n_distinct)",
        ),
    ] {
        conn.batch_execute(&format!("{setting}; ANALYZE tasks"))
            .unwrap();
        for (name, query) in &pages {
            // A connection of its own: the page is its only prepared statement on tasks.
            let mut fresh = PgConnection::establish(db.url()).unwrap();
            for _ in 0..8 {
                TaskRepo::list(&mut fresh, user, query).unwrap();
            }
            let plans = prepared_plans(&mut fresh, "FROM \"tasks\"");
            if plans.generic_plans == 0 {
                failures.push(format!(
                    "{name}, with the row estimates {estimates}: planned on every call \
                     ({} custom plans, no generic one)",
                    plans.custom_plans
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn find_by_email_reads_users_through_the_email_index() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let news: Vec<NewUser> = (0..5_000)
        .map(|i| NewUser::new(format!("Email-User-{i}@Example.com"), "User"))
        .collect();
    UserRepo::create_many(&mut conn, &news).unwrap();
    conn.batch_execute("ANALYZE users").unwrap();
    for email in [
        "email-user-77@example.com",
        "ＥＭＡＩＬ-user-77@example.com",
        "straße@x.de",
    ] {
        let plan_text = todo_store::testing::plans::find_by_email(&mut conn, email).unwrap();
        let plan = Reader::parse(&plan_text);
        let on_users: Vec<(&str, Option<&str>)> = plan_nodes(&plan)
            .into_iter()
            .filter(|n| n.str("Relation Name") == Some("users"))
            .map(|n| (n.str("Node Type").unwrap_or("?"), n.str("Index Name")))
            .collect();
        assert_eq!(
            on_users,
            [("Index Scan", Some("users_email_ci_key"))],
            "{email}:\n{plan_text}"
        );
    }
}

/// 10,000 users, analyzed; the cursor after the 9,000th.
fn seed_page_users(conn: &mut PgConnection) -> String {
    use todo_store::UserQuery;
    let news: Vec<NewUser> = (0..10_000)
        .map(|i| NewUser::new(format!("page-user-{i}@example.com"), "User"))
        .collect();
    for chunk in news.chunks(1_000) {
        UserRepo::create_many(conn, chunk).unwrap();
    }
    conn.batch_execute("ANALYZE users").unwrap();
    let mut deep = UserRepo::list_page(conn, &UserQuery::new().limit(1000)).unwrap();
    for _ in 0..8 {
        let cursor = deep.next_cursor.take().expect("more pages");
        deep = UserRepo::list_page(conn, &UserQuery::new().limit(1000).after(&cursor)).unwrap();
    }
    deep.next_cursor.expect("a tenth page")
}

/// Keyset pages of 10,000 users (the product's upper bound), with and without an email
/// prefix and a cursor, custom and generic plans: users is read through an index,
/// never scanned whole, however deep the page.
#[test]
fn user_pages_read_users_through_an_index() {
    use todo_store::UserQuery;
    let db = TestDb::new();
    let mut conn = db.conn();
    let deep_cursor = seed_page_users(&mut conn);
    let prefixed = UserRepo::list_page(
        &mut conn,
        &UserQuery::new().email_prefix("PAGE-USER-9").limit(5),
    )
    .unwrap();
    let prefix_cursor = prefixed.next_cursor.expect("more than five");
    let mut failures = Vec::new();
    for (label, query) in [
        ("first page", UserQuery::new()),
        (
            "deep page",
            UserQuery::new().limit(1000).after(&deep_cursor),
        ),
        (
            "prefix",
            UserQuery::new().email_prefix("page-user-9").limit(5),
        ),
        (
            "prefix after a cursor",
            UserQuery::new()
                .email_prefix("PAGE-USER-9")
                .limit(5)
                .after(&prefix_cursor),
        ),
    ] {
        for (kind, plan_text) in [
            (
                "custom",
                todo_store::testing::plans::user_list_page(&mut conn, &query).unwrap(),
            ),
            (
                "generic",
                todo_store::testing::plans::user_list_page_generic(&mut conn, &query).unwrap(),
            ),
        ] {
            let plan = Reader::parse(&plan_text);
            let nodes = plan_nodes(&plan);
            let seq_scan = nodes.iter().any(|n| {
                n.str("Relation Name") == Some("users") && n.str("Node Type") == Some("Seq Scan")
            });
            // A range of the (created_at, id) index: never the whole table.
            let keyset_index = nodes
                .iter()
                .any(|n| n.str("Index Name") == Some("users_created_idx"));
            if seq_scan || !keyset_index {
                failures.push(format!("{label}, {kind} plan:\n{plan_text}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A deep page of users settles on its generic plan, as the task pages do
/// ([`list_pages_settle_on_their_generic_plan`]): with `LIMIT $n` its generic plan
/// counted a tenth of the 3,333 users it estimates after any cursor, and the page was
/// planned anew on every call.
#[test]
fn user_pages_settle_on_their_generic_plan() {
    use todo_store::UserQuery;
    let db = TestDb::new();
    let mut conn = db.conn();
    let deep_cursor = seed_page_users(&mut conn);
    let mut failures = Vec::new();
    for (label, query) in [
        ("first page", UserQuery::new()),
        ("deep page", UserQuery::new().after(&deep_cursor)),
    ] {
        let mut fresh = PgConnection::establish(db.url()).unwrap();
        for _ in 0..8 {
            UserRepo::list_page(&mut fresh, &query).unwrap();
        }
        let plans = prepared_plans(&mut fresh, "FROM \"users\"");
        if plans.generic_plans == 0 {
            failures.push(format!(
                "{label}: planned on every call ({} custom plans, no generic one)",
                plans.custom_plans
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Habits per user in the search plans' data: the seeds' "few dozen".
const HABITS_PER_USER: usize = 30;

/// The searches across tasks and habits (`SearchRepo::search`) and of habits alone
/// (`HabitRepo::search`) at the seeds' scale, 1,000 tasks and 30 habits for each of
/// 200 users: custom and generic plans, first pages and pages after a cursor, read
/// both tables through indexes only, and make the tsquery once per execution.
#[test]
fn searches_read_tasks_and_habits_through_indexes() {
    use todo_store::{HabitRepo, NewHabit, Schedule, SearchQuery, SearchRepo};
    let db = TestDb::new();
    let mut conn = db.conn();
    let users = seed(&mut conn);
    let mut rng = Rng::new(0x5eed_ab17_0000_0001);
    conn.transaction::<_, Error, _>(|conn| {
        for &user in &users {
            for _ in 0..HABITS_PER_USER {
                let words: Vec<&str> = (0..1 + rng.below(3))
                    .map(|_| WORDS[rng.below(WORDS.len())])
                    .collect();
                let mut habit = NewHabit::new(words.join(" "), Schedule::Daily);
                if rng.below(2) == 0 {
                    let words: Vec<&str> = (0..rng.below(6))
                        .map(|_| WORDS[rng.below(WORDS.len())])
                        .collect();
                    habit = habit.description(words.join(" "));
                }
                HabitRepo::create(conn, user, &habit)?;
            }
        }
        Ok(())
    })
    .expect("seeding habits");
    conn.batch_execute("ANALYZE users; ANALYZE tasks; ANALYZE habits;")
        .unwrap();
    let user = users[users.len() / 2];

    let check_search = |label: &str, plan_text: &str| -> Option<String> {
        let plan = Reader::parse(plan_text);
        let nodes = plan_nodes(&plan);
        check_plan(label, plan_text)
            .or_else(|| reads_through_an_index(label, &nodes, plan_text, "habits"))
    };
    let check_habits = |label: &str, plan_text: &str| -> Option<String> {
        let plan = Reader::parse(plan_text);
        let nodes = plan_nodes(&plan);
        per_row_parameter_function(label, &nodes, plan_text)
            .or_else(|| reads_through_an_index(label, &nodes, plan_text, "habits"))
    };
    let mut failures = Vec::new();
    let mut with_cursor = 0;
    for terms in [
        "alpha",
        "report draft",
        "\"alpha report\" or invoice -taxes",
        "budget or doctor or flight or hotel",
        "-alpha",
        "xylophone",
    ] {
        let query = SearchQuery::new(terms).limit(20);
        let mut pages = vec![("first page", query.clone())];
        if let Some(cursor) = SearchRepo::search(&mut conn, user, &query)
            .unwrap()
            .next_cursor
        {
            with_cursor += 1;
            pages.push(("after a cursor", query.clone().after(&cursor)));
        }
        for (page, query) in &pages {
            let label = format!("search {terms:?}, {page}");
            let plan = plans::search(&mut conn, user, query).unwrap();
            failures.extend(check_search(&label, &plan));
            let plan = plans::search_generic(&mut conn, user, query).unwrap();
            failures.extend(check_search(&format!("{label}, generic plan"), &plan));
            // The plan's statement is the one search runs.
            assert!(SearchRepo::search(&mut conn, user, query).is_ok());
        }
        let label = format!("habit search {terms:?}");
        let plan = plans::habit_search(&mut conn, user, terms).unwrap();
        failures.extend(check_habits(&label, &plan));
        let plan = plans::habit_search_generic(&mut conn, user, terms).unwrap();
        failures.extend(check_habits(&format!("{label}, generic plan"), &plan));
        assert!(HabitRepo::search(&mut conn, user, terms).is_ok());
    }
    assert!(
        with_cursor >= 4,
        "only {with_cursor} searches had a second page"
    );
    // The check can fail: without index scans, habits are read sequentially.
    conn.batch_execute(
        "SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_indexonlyscan = off",
    )
    .unwrap();
    assert!(check_habits(
        "habit search without indexes",
        &plans::habit_search(&mut conn, user, "alpha").unwrap()
    )
    .is_some());
    conn.batch_execute("RESET ALL").unwrap();
    assert!(
        failures.is_empty(),
        "{} search plans read tasks or habits without an index or evaluate a parameter \
         function per row:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
