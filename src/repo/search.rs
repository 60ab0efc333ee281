//! [`SearchRepo`]: one search over a user's tasks and habits together, for a search
//! box; [`SearchQuery`], what it searches for; [`Found`], what it finds.
//!
//! Tasks and habits are searched the same way: a generated `tsvector` column of each
//! table (English stemming; a task's title and a habit's name weigh more than their
//! descriptions), a GIN index on `(user_id, search_vector)` of each, the same
//! web-search syntax and the same normalisation of the text
//! (`normalize_search` in `query.rs`). Both are ranked by the same `ts_rank_cd`, so
//! that ranks compare across the two tables.

use std::sync::OnceLock;

use diesel::dsl;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Float, Integer, Nullable, Text, Uuid as SqlUuid};
use uuid::Uuid;

use super::cursor::{fnv1a, Cursor, CursorSort, KeyKind, SortKey};
use super::query::{normalize_search, Direction, Page, TaskQuery};
use crate::error::{Error, Result};
use crate::models::{Habit, Task, UserId};

/// What [`SearchRepo::search`] looks for, and how many at a time.
///
/// ```
/// use todo_store::SearchQuery;
///
/// // Tasks and habits about running, but not the ones about shoes; 20 per page.
/// let query = SearchQuery::new("running -shoes").limit(20);
/// assert_eq!(query.terms(), "running -shoes");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    terms: String,
    limit: Option<i64>,
    pub(crate) after: Option<String>,
}

impl SearchQuery {
    /// Page size when [`SearchQuery::limit`] is not called.
    pub const DEFAULT_LIMIT: i64 = TaskQuery::DEFAULT_LIMIT;
    /// Largest page size [`SearchQuery::limit`] accepts.
    pub const MAX_LIMIT: i64 = TaskQuery::MAX_LIMIT;
    /// Longest text a search accepts, in characters (as for [`TaskQuery::search`]).
    pub const MAX_SEARCH_CHARS: usize = TaskQuery::MAX_SEARCH_CHARS;

    /// A search for `terms`, in web-search syntax: words (all must match, stemmed, in
    /// English), `"quoted phrases"`, `or`, and `-word` to exclude. Any text is safe:
    /// what is not syntax is taken as words. Text of stop words only (`the`) matches
    /// nothing; blank text, or text longer than [`SearchQuery::MAX_SEARCH_CHARS`]
    /// characters, makes [`SearchRepo::search`] fail with [`Error::Validation`].
    pub fn new(terms: impl Into<String>) -> Self {
        SearchQuery {
            terms: terms.into(),
            limit: Some(Self::DEFAULT_LIMIT),
            after: None,
        }
    }

    /// The text searched for, as given.
    pub fn terms(&self) -> &str {
        &self.terms
    }

    /// At most `n` results per page: 1 to [`SearchQuery::MAX_LIMIT`] (500; default
    /// [`SearchQuery::DEFAULT_LIMIT`], 50). Other values make [`SearchRepo::search`]
    /// fail with [`Error::Validation`].
    pub fn limit<N: TryInto<i64>>(mut self, n: N) -> Self {
        self.limit = n.try_into().ok();
        self
    }

    /// Continue after the page whose [`Page::next_cursor`] this is. The cursor must
    /// come from a search of the same text by the same user (the limit may change).
    pub fn after(mut self, cursor: &str) -> Self {
        self.after = Some(cursor.to_owned());
        self
    }
}

/// One result of [`SearchRepo::search`]: a task or a habit, whole.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Found {
    /// A task whose title or description matches.
    Task(Task),
    /// A habit whose name or description matches.
    Habit(Habit),
}

impl Found {
    /// The task's title or the habit's name.
    pub fn name(&self) -> &str {
        match self {
            Found::Task(task) => &task.title,
            Found::Habit(habit) => &habit.name,
        }
    }

    /// The description of the task or habit.
    pub fn description(&self) -> Option<&str> {
        match self {
            Found::Task(task) => task.description.as_deref(),
            Found::Habit(habit) => habit.description.as_deref(),
        }
    }
}

/// Search across the tasks and habits of one user, for a search box.
///
/// ```no_run
/// # fn main() -> todo_store::Result<()> {
/// # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
/// # let mut conn = pool.get()?;
/// # let user_id = todo_store::UserId::from(uuid::Uuid::nil());
/// use todo_store::{Found, SearchQuery, SearchRepo};
///
/// let query = SearchQuery::new("\"morning run\" or swim -pool").limit(20);
/// let mut page = SearchRepo::search(&mut conn, user_id, &query)?;
/// loop {
///     for found in &page.items {
///         match found {
///             Found::Task(task) => println!("task  {}", task.title),
///             Found::Habit(habit) => println!("habit {}", habit.name),
///             _ => {}
///         }
///     }
///     let Some(cursor) = page.next_cursor.take() else { break };
///     page = SearchRepo::search(&mut conn, user_id, &query.clone().after(&cursor))?;
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Ranking and paging
///
/// Results come best match first: by `ts_rank_cd` of the row's words against the
/// search, the rank [`crate::TaskSort::Relevance`] sorts tasks by, computed the same
/// way for both tables (title or name words weigh more than description words). At
/// equal rank habits come before tasks, and rows of one kind the newest id first: the
/// order is total, and pages follow it by keyset on (rank, kind, id), never OFFSET.
/// Paging is stable while other rows are inserted, changed or deleted; a row whose
/// words change mid-walk shows at its new rank. Cursors are opaque, made for one
/// search text and one user; any other cursor, a damaged one or garbage is
/// [`Error::Validation`].
///
/// # Cost
///
/// One statement, one round trip: the matches of each table are read through its GIN
/// index on `(user_id, search_vector)`, ranked together in one union, and cut to the
/// page. The search text becomes a `tsquery` once per execution (a CTE read by
/// InitPlans), never once per row, also under the generic plan a pooled connection
/// keeps; `tests/integration/query_plans.rs` checks both plans.
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchRepo;

impl SearchRepo {
    /// The page of `query`'s matches among the tasks and habits of `user_id`, best
    /// first (see [`SearchRepo`]); only that user's rows, in one round trip. An
    /// unknown user finds nothing.
    ///
    /// # Errors
    /// [`Error::Validation`] of `search` for blank or too long text, of `limit` for a
    /// page size outside 1 to [`SearchQuery::MAX_LIMIT`], of `cursor` for a cursor
    /// this search did not make.
    pub fn search(
        conn: &mut PgConnection,
        user_id: UserId,
        query: &SearchQuery,
    ) -> Result<Page<Found>> {
        super::call("search.search", Some(user_id), conn, |conn| {
            let plan = SearchPlan::new(user_id, query)?;
            let rows: Vec<SearchRow> = plan.statement().load(conn)?;
            Ok(plan.page(rows))
        })
    }
}

/// Search text that must not be blank, normalised as every search of the crate.
///
/// # Errors
/// [`Error::Validation`] of `search` for blank or too long text.
pub(crate) fn required_terms(terms: &str) -> Result<String> {
    normalize_search(terms)?
        .ok_or_else(|| Error::validation("search", "must contain something to search for"))
}

/// The kind of a row in the search's SQL (`0 AS kind`, `1 AS kind`): at equal rank,
/// the higher number comes first.
const TASK_KIND: u8 = 0;
const HABIT_KIND: u8 = 1;

/// The one order of a search, best match first, as a cursor names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Relevance;

/// The number of [`Relevance`] in a cursor's header: no task or user sort has it, so
/// their cursors are refused here, and this one there.
pub(crate) const RELEVANCE_NUMBER: u8 = 0x80;

impl CursorSort for Relevance {
    fn number(self) -> u8 {
        RELEVANCE_NUMBER
    }

    fn from_number(n: u8) -> Option<Self> {
        (n == RELEVANCE_NUMBER).then_some(Relevance)
    }

    fn key_kind(self) -> KeyKind {
        KeyKind::KindRank
    }
}

/// Where a page starts: after the row with this rank, kind and id.
#[derive(Debug, Clone, Copy, PartialEq)]
struct After {
    rank: f32,
    kind: i32,
    id: Uuid,
}

impl After {
    /// Before every row: ranks are finite, so `(rank, kind, id) < (+inf, ..)` holds for
    /// all, and the first page runs the same statement as the next ones.
    const START: After = After {
        rank: f32::INFINITY,
        kind: 0,
        id: Uuid::nil(),
    };
}

/// A [`SearchQuery`], checked and ready to become SQL.
#[derive(Debug)]
pub(crate) struct SearchPlan {
    user_id: UserId,
    terms: String,
    limit: i64,
    after: After,
    fingerprint: u64,
}

impl SearchPlan {
    /// Checks `query` for `user_id`: text, limit and cursor.
    pub(crate) fn new(user_id: UserId, query: &SearchQuery) -> Result<Self> {
        let terms = required_terms(&query.terms)?;
        let limit = match query.limit {
            Some(n) if (1..=SearchQuery::MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(Error::validation(
                    "limit",
                    format!("must be between 1 and {}", SearchQuery::MAX_LIMIT),
                ))
            }
        };
        let fingerprint = fingerprint(user_id, &terms);
        let after = match query.after.as_deref() {
            None => After::START,
            Some(text) => {
                let cursor =
                    Cursor::decode(text, Relevance, Direction::Desc, fingerprint, user_id)?;
                match cursor.key {
                    SortKey::KindRank(rank, kind) => After {
                        rank,
                        kind: i32::from(kind),
                        id: cursor.id,
                    },
                    _ => return Err(Error::validation("cursor", "is malformed")),
                }
            }
        };
        Ok(SearchPlan {
            user_id,
            terms,
            limit,
            after,
            fingerprint,
        })
    }

    /// The statement of the page (its rows plus one, to tell whether another follows).
    pub(crate) fn statement(&self) -> SearchStatement<'_> {
        SearchStatement {
            plan: self,
            fetch: self.limit + 1,
            tasks: <Task as Selectable<Pg>>::construct_selection(),
            habits: <Habit as Selectable<Pg>>::construct_selection(),
        }
    }

    /// The page of `rows` (the statement's, in its order), with the cursor after it.
    pub(crate) fn page(&self, rows: Vec<SearchRow>) -> Page<Found> {
        let more = rows.len() as i64 > self.limit;
        let mut items = Vec::with_capacity(rows.len());
        let mut last = None;
        for (rank, _, _, task, habit) in rows.into_iter().take(self.limit as usize) {
            // Each row of the page is joined back to exactly one of the two tables.
            let (found, kind, id) = match (task, habit) {
                (Some(task), _) => {
                    let id: Uuid = task.id.into();
                    (Found::Task(task), TASK_KIND, id)
                }
                (None, Some(habit)) => {
                    let id: Uuid = habit.id.into();
                    (Found::Habit(habit), HABIT_KIND, id)
                }
                (None, None) => continue,
            };
            items.push(found);
            last = Some((rank, kind, id));
        }
        let next_cursor = match (more, last) {
            (true, Some((rank, kind, id))) => Some(self.cursor_after(rank, kind, id)),
            _ => None,
        };
        Page::new(items, next_cursor)
    }

    /// The cursor this page starts after, encoded again (the first page's start
    /// included, which no cursor of the crate names).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn start_cursor(&self) -> String {
        let kind = u8::try_from(self.after.kind).unwrap_or(u8::MAX);
        self.cursor_after(self.after.rank, kind, self.after.id)
    }

    /// The search's fingerprint, which its cursors carry.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The cursor that continues after the row `id` of `kind` ranked `rank`.
    fn cursor_after(&self, rank: f32, kind: u8, id: Uuid) -> String {
        Cursor {
            sort: Relevance,
            direction: Direction::Desc,
            fingerprint: self.fingerprint,
            key: SortKey::KindRank(rank, kind),
            id,
        }
        .encode(self.user_id)
    }
}

/// The search's fingerprint, which its cursors carry: the user and the text as it is
/// searched for, length-prefixed after a tag of its own.
fn fingerprint(user_id: UserId, terms: &str) -> u64 {
    // White space around the text changes nothing websearch_to_tsquery reads.
    let terms = terms.trim();
    let mut bytes = Vec::with_capacity(32 + terms.len());
    bytes.extend_from_slice(b"search v1");
    bytes.extend_from_slice(user_id.as_uuid().as_bytes());
    bytes.extend_from_slice(&(terms.len() as u64).to_be_bytes());
    bytes.extend_from_slice(terms.as_bytes());
    fnv1a(&bytes)
}

/// A row of [`SearchStatement`]: rank, kind, id, and the task or the habit.
pub(crate) type SearchRow = (f32, i32, Uuid, Option<Task>, Option<Habit>);

/// The SQL types of a task's and a habit's columns, as [`Task`] and [`Habit`] select
/// them.
type TaskColumns = dsl::SqlTypeOf<<Task as Selectable<Pg>>::SelectExpression>;
type HabitColumns = dsl::SqlTypeOf<<Habit as Selectable<Pg>>::SelectExpression>;

/// The statement of a search page: one text for every search (the first page seeks
/// after [`After::START`]), with a static query id, so prepared once per connection.
///
/// ```sql
/// WITH q AS (SELECT websearch_to_tsquery('english', $1) AS query)
/// SELECT ts_rank_cd(search_vector, (SELECT query FROM q)) AS rank, 0 AS kind,
///        id AS row_id, <Task's columns>, NULL, ... (one per Habit's column)
///   FROM tasks WHERE user_id = $2 AND search_vector @@ (SELECT query FROM q)
///    AND (ts_rank_cd(search_vector, (SELECT query FROM q)), 0, id) < ($3, $4, $5)
/// UNION ALL
/// SELECT ts_rank_cd(search_vector, (SELECT query FROM q)), 1, id,
///        NULL, ... (one per Task's column), <Habit's columns>
///   FROM habits WHERE user_id = $6 AND search_vector @@ (SELECT query FROM q)
///    AND (ts_rank_cd(search_vector, (SELECT query FROM q)), 1, id) < ($7, $8, $9)
/// ORDER BY rank DESC, kind DESC, row_id DESC LIMIT $10
/// ```
///
/// The tsquery is made once (the CTE `q`, read by InitPlans), the configuration the
/// one of both `search_vector` columns (see the migrations). Each branch reads its
/// matches whole from the heap pages its index scan visits anyway (an earlier shape
/// ranked ids first and joined the page back by id: 1.5x slower under pgbench); the
/// other kind's columns are NULLs, typed by the other branch.
pub(crate) struct SearchStatement<'a> {
    plan: &'a SearchPlan,
    fetch: i64,
    tasks: <Task as Selectable<Pg>>::SelectExpression,
    habits: <Habit as Selectable<Pg>>::SelectExpression,
}

impl QueryFragment<Pg> for SearchStatement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        static TASK_NULLS: OnceLock<String> = OnceLock::new();
        static HABIT_NULLS: OnceLock<String> = OnceLock::new();
        let task_nulls = TASK_NULLS.get_or_init(|| nulls(&self.tasks));
        let habit_nulls = HABIT_NULLS.get_or_init(|| nulls(&self.habits));
        let plan = self.plan;
        out.push_sql("WITH q AS (SELECT websearch_to_tsquery('english', ");
        out.push_bind_param::<Text, _>(&plan.terms)?;
        out.push_sql(
            ") AS query) \
             SELECT ts_rank_cd(search_vector, (SELECT query FROM q)) AS rank, 0 AS kind, \
             id AS row_id, ",
        );
        self.tasks.walk_ast(out.reborrow())?;
        out.push_sql(", ");
        out.push_sql(habit_nulls);
        out.push_sql(" FROM tasks WHERE user_id = ");
        out.push_bind_param::<SqlUuid, _>(&plan.user_id)?;
        out.push_sql(
            " AND search_vector @@ (SELECT query FROM q) \
             AND (ts_rank_cd(search_vector, (SELECT query FROM q)), 0, id) < (",
        );
        self.push_after(&mut out)?;
        out.push_sql(
            ") UNION ALL \
             SELECT ts_rank_cd(search_vector, (SELECT query FROM q)), 1, id, ",
        );
        out.push_sql(task_nulls);
        out.push_sql(", ");
        self.habits.walk_ast(out.reborrow())?;
        out.push_sql(" FROM habits WHERE user_id = ");
        out.push_bind_param::<SqlUuid, _>(&plan.user_id)?;
        out.push_sql(
            " AND search_vector @@ (SELECT query FROM q) \
             AND (ts_rank_cd(search_vector, (SELECT query FROM q)), 1, id) < (",
        );
        self.push_after(&mut out)?;
        out.push_sql(") ORDER BY rank DESC, kind DESC, row_id DESC LIMIT ");
        out.push_bind_param::<BigInt, _>(&self.fetch)?;
        Ok(())
    }
}

impl SearchStatement<'_> {
    /// `$rank, $kind, $id`: where the page starts.
    fn push_after<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let after = &self.plan.after;
        out.push_bind_param::<Float, _>(&after.rank)?;
        out.push_sql(", ");
        out.push_bind_param::<Integer, _>(&after.kind)?;
        out.push_sql(", ");
        out.push_bind_param::<SqlUuid, _>(&after.id)
    }
}

/// `NULL, NULL, ...`, one for each of `columns` (a row type's columns, which diesel
/// writes `"table"."column"`, separated by commas): the other kind's columns in a
/// branch of the union, typed by the other branch.
fn nulls(columns: &impl QueryFragment<Pg>) -> String {
    let sql = diesel::debug_query::<Pg, _>(columns).to_string();
    let list = sql.split(" -- binds:").next().unwrap_or_default();
    vec!["NULL"; list.split(", ").count()].join(", ")
}

/// The static query id of [`SearchStatement`], whose text is always the same.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SearchSql;

impl QueryId for SearchStatement<'_> {
    type QueryId = SearchSql;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for SearchStatement<'_> {
    type SqlType = (
        Float,
        Integer,
        SqlUuid,
        Nullable<TaskColumns>,
        Nullable<HabitColumns>,
    );
}

impl RunQueryDsl<PgConnection> for SearchStatement<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u128) -> UserId {
        UserId::from(Uuid::from_u128(n))
    }

    #[test]
    fn a_cursor_round_trips_and_belongs_to_its_search_and_user() {
        let plan = SearchPlan::new(user(1), &SearchQuery::new("run")).unwrap();
        let id = Uuid::now_v7();
        let cursor = plan.cursor_after(0.25, HABIT_KIND, id);
        let next = SearchPlan::new(user(1), &SearchQuery::new("run").after(&cursor)).unwrap();
        assert_eq!(
            next.after,
            After {
                rank: 0.25,
                kind: i32::from(HABIT_KIND),
                id
            }
        );
        // The same text after normalisation is the same search.
        assert!(SearchPlan::new(user(1), &SearchQuery::new("run\0").after(&cursor)).is_ok());
        for other in [
            SearchPlan::new(user(2), &SearchQuery::new("run").after(&cursor)),
            SearchPlan::new(user(1), &SearchQuery::new("walk").after(&cursor)),
        ] {
            assert!(
                matches!(other, Err(Error::Validation { ref field, .. }) if field == "cursor"),
                "{other:?}"
            );
        }
    }

    #[test]
    fn task_cursors_are_not_search_cursors() {
        let task_cursor = Cursor {
            sort: crate::TaskSort::Relevance,
            direction: Direction::Desc,
            fingerprint: fingerprint(user(1), "run"),
            key: SortKey::Rank(0.5),
            id: Uuid::now_v7(),
        }
        .encode(user(1));
        let plan = SearchPlan::new(user(1), &SearchQuery::new("run").after(&task_cursor));
        assert!(
            matches!(plan, Err(Error::Validation { ref field, .. }) if field == "cursor"),
            "{plan:?}"
        );
    }

    #[test]
    fn blank_text_bad_limits_and_long_text_are_validation_errors() {
        for blank in ["", "  ", "\0 \t\n"] {
            let plan = SearchPlan::new(user(1), &SearchQuery::new(blank));
            assert!(
                matches!(plan, Err(Error::Validation { ref field, .. }) if field == "search"),
                "{blank:?}: {plan:?}"
            );
        }
        let long = "a".repeat(SearchQuery::MAX_SEARCH_CHARS + 1);
        assert!(SearchPlan::new(user(1), &SearchQuery::new(long)).is_err());
        for limit in [0, -1, SearchQuery::MAX_LIMIT + 1, i64::MAX] {
            let plan = SearchPlan::new(user(1), &SearchQuery::new("run").limit(limit));
            assert!(
                matches!(plan, Err(Error::Validation { ref field, .. }) if field == "limit"),
                "{limit}: {plan:?}"
            );
        }
        assert!(SearchPlan::new(user(1), &SearchQuery::new("run").limit(u64::MAX)).is_err());
    }

    #[test]
    fn the_statement_has_one_text_and_binds_the_user_everywhere() {
        let first = SearchPlan::new(user(7), &SearchQuery::new("run")).unwrap();
        let cursor = first.cursor_after(0.5, TASK_KIND, Uuid::now_v7());
        let next = SearchPlan::new(user(7), &SearchQuery::new("run").after(&cursor)).unwrap();
        let text = |plan: &SearchPlan| {
            let sql = diesel::debug_query::<Pg, _>(&plan.statement()).to_string();
            sql.split(" -- binds: ").next().unwrap().to_owned()
        };
        assert_eq!(text(&first), text(&next));
        let sql = text(&first);
        for scoped in [
            "FROM tasks WHERE user_id = $2",
            "FROM habits WHERE user_id = $6",
            "LIMIT $10",
        ] {
            assert!(sql.contains(scoped), "{scoped}: {sql}");
        }
        assert!(sql.contains("\"tasks\".\"title\""), "{sql}");
        assert!(sql.contains("\"habits\".\"name\""), "{sql}");
    }
}
