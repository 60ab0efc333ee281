//! [`TaskQuery`]: which tasks [`crate::TaskRepo::list`] returns, in which order, how
//! many at a time; and [`Page`]: one page of them.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::cursor::fnv1a;
use crate::error::{Error, Result};
use crate::models::Priority;

/// One page of results, and the cursor for the next one.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page<T> {
    /// The rows of this page, in the query's order.
    pub items: Vec<T>,
    /// Opaque cursor for the next page (pass it to [`TaskQuery::after`]); `None` on the
    /// last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page of `items` followed by `next_cursor`.
    pub fn new(items: Vec<T>, next_cursor: Option<String>) -> Self {
        Page { items, next_cursor }
    }
}

/// A page's span records how many rows it holds.
impl<T> crate::telemetry::RowCount for Page<T> {
    fn row_count(&self) -> u64 {
        self.items.len() as u64
    }
}

/// What to sort tasks by. Every sort breaks ties on the task id, so the order is total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum TaskSort {
    /// When the task was created (the default).
    #[default]
    CreatedAt = 0,
    /// When the task last changed.
    UpdatedAt = 1,
    /// When the task is due; tasks without a due date come last in either direction.
    DueDate = 2,
    /// Low < Medium < High.
    Priority = 3,
    /// Title in byte order of its UTF-8 (code point order), the same in every locale.
    Title = 4,
    /// How well the task matches [`TaskQuery::search`]; `Desc` puts the best first.
    /// Needs a search.
    Relevance = 5,
}

impl TaskSort {
    /// Every sort, in the order of their numbers (as [`crate::Priority::ALL`] lists the
    /// priorities).
    pub const ALL: [TaskSort; 6] = [
        TaskSort::CreatedAt,
        TaskSort::UpdatedAt,
        TaskSort::DueDate,
        TaskSort::Priority,
        TaskSort::Title,
        TaskSort::Relevance,
    ];

    pub(crate) fn from_u8(n: u8) -> Option<Self> {
        Self::ALL.get(n as usize).copied()
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Direction {
    /// Smallest first.
    Asc = 0,
    /// Largest first (the default).
    #[default]
    Desc = 1,
}

impl Direction {
    pub(crate) fn from_u8(n: u8) -> Option<Self> {
        match n {
            0 => Some(Direction::Asc),
            1 => Some(Direction::Desc),
            _ => None,
        }
    }
}

/// Which tasks [`crate::TaskRepo::list`] returns, in which order, how many at a time.
///
/// The default is every task, newest first, 50 per page. All builder methods take and
/// return `self` and combine freely:
///
/// ```
/// use chrono::{Duration, Utc};
/// use todo_store::{Direction, Priority, TaskQuery, TaskSort};
///
/// // Open, important tasks due within a week, soonest first, 20 per page.
/// let query = TaskQuery::new()
///     .completed(false)
///     .priority(Priority::High)
///     .priority(Priority::Medium)
///     .due_before(Utc::now() + Duration::days(7))
///     .sort(TaskSort::DueDate, Direction::Asc)
///     .limit(20);
///
/// // The tasks that mention "invoice" but not "paid", best matches first.
/// let search = TaskQuery::new()
///     .search("invoice -paid")
///     .sort(TaskSort::Relevance, Direction::Desc);
/// ```
///
/// Pages continue with [`TaskQuery::after`] and the previous page's
/// [`Page::next_cursor`] (keyset pagination: stable while other rows are inserted,
/// changed or deleted; a row whose sort key changes mid-walk shows at its new place).
///
/// # List views: filters, sorting, pages, search
///
/// `TaskRepo::list(conn, user_id, &TaskQuery)` returns a `Page { items, next_cursor }`.
/// The builder methods:
///
/// | | |
/// |---|---|
/// | filters | `.completed(bool)`, `.priority(p)` (again for several), `.due_before(t)`, `.due_after(t)`, `.overdue()` (past due and open), `.created_before(t)`, `.created_after(t)`, `.search(text)`, `.metadata_contains(object)` (`metadata @> object`), `.metadata_has_key(key)` (again for several) |
/// | sort | `.sort(TaskSort::{CreatedAt, UpdatedAt, DueDate, Priority, Title, Relevance}, Direction::{Asc, Desc})`; default newest first; ties broken by id; undated tasks last in both directions; `Relevance` needs a search |
/// | paging | `.limit(n)` (1 to 500, default 50), `.after(&cursor)` with the previous page's `next_cursor` |
///
/// ```rust,no_run
/// use chrono::{Duration, Utc};
/// use todo_store::{Direction, PgConnection, Priority, TaskQuery, TaskRepo, TaskSort};
///
/// fn due_this_week(conn: &mut PgConnection, user_id: todo_store::UserId) -> todo_store::Result<()> {
///     // Open, important tasks due within a week, soonest first, 20 per page.
///     let query = TaskQuery::new()
///         .completed(false)
///         .priority(Priority::High)
///         .priority(Priority::Medium)
///         .due_before(Utc::now() + Duration::days(7))
///         .sort(TaskSort::DueDate, Direction::Asc)
///         .limit(20);
///     let mut page = TaskRepo::list(conn, user_id, &query)?;
///     loop {
///         for task in &page.items {
///             println!("{} {:?} {}", task.priority, task.due_date, task.title);
///         }
///         let Some(cursor) = page.next_cursor.take() else { break };
///         page = TaskRepo::list(conn, user_id, &query.clone().after(&cursor))?;
///     }
///
///     // Web-search syntax over title and description: words, "phrases", or, -exclusion.
///     let hits = TaskQuery::new().search("\"tax return\" or invoice -paid").sort(TaskSort::Relevance, Direction::Desc);
///     println!("{} matches", TaskRepo::count_matching(conn, user_id, &hits)?);
///
///     let stats = TaskRepo::stats(conn, user_id)?; // total, completed, open, overdue, due_today, by_priority
///     println!("{} open, {} overdue", stats.open, stats.overdue);
///     // "Due today" as the user means it: the calendar day of their own time zone.
///     let local = TaskRepo::stats_in_time_zone(conn, user_id, "America/New_York")?;
///     println!("{} due today in New York", local.due_today);
///     Ok(())
/// }
/// ```
///
/// - **Keyset pagination**, never OFFSET: a page costs the same deep in the list as at its
///   start, and paging is stable while other rows are inserted, changed or deleted (a row
///   whose sort key changes mid-walk shows at its new place). Cursors are opaque; a cursor of
///   another query, a damaged one or garbage is an `Error::Validation`. A cursor carries a
///   fingerprint of its query's filters and user, every field tagged and the search
///   length-prefixed, so no two filter sets share one. It is checksummed against damage,
///   not signed: a forged cursor can only move the starting point of a page within the
///   caller's own tasks of the same query (every query is scoped by `user_id` in SQL, not
///   by the cursor), so a keyed MAC would protect nothing more. A title-sorted cursor
///   carries its title masked under a random nonce of its own (no two cursors share a
///   keystream); this hides titles from casual log readers and is not encryption. Title
///   cursors made before the nonce are `Error::Validation`: start again without a cursor.
/// - **Time filters are exact at any precision.** PostgreSQL keeps whole microseconds;
///   `due_before(t)`/`created_before(t)` are rounded up and `due_after(t)`/`created_after(t)`
///   down to one, so a bound between two microseconds (`Utc::now()` has nanoseconds) stays
///   strict on both sides of PostgreSQL's 2000-01-01 epoch.
/// - **Search** uses a generated `tsvector` column (English stemming; title words weigh
///   more) and a GIN index that leads with `user_id`. Any text is safe: PostgreSQL's
///   `websearch_to_tsquery` takes what is not syntax as words.
/// - **Counts and bulk**: `count_matching(&query)`, `stats()` (one query; "due today" is
///   the UTC calendar day, whatever the session's `TimeZone`), `stats_in_time_zone(zone)`
///   (the same query, prepared once; the day runs from local midnight to local midnight,
///   23 or 25 hours across a daylight-saving change),
///   `create_many(&[NewTask])` (validated first, then one `COPY`, all or nothing),
///   `set_completed_many(&ids, bool)` and `delete_many(&ids)` (other users' ids are skipped
///   and not counted).
/// - **Indexes**: every query shape reads `tasks` through an index led by `user_id`;
///   `tests/integration/query_plans.rs` checks the plans with `EXPLAIN` on 200 users x 1,000 tasks,
///   each shape twice: its custom plan, and the generic plan PostgreSQL may keep for the
///   prepared statement after five executions (the plan a long-lived pooled connection
///   runs). The search's `websearch_to_tsquery` is written as a sub-`SELECT`, an InitPlan
///   computed once per execution; as a bare call of a parameter, the generic plan would
///   evaluate it again for every row it rechecks. The page's size is bound outside a
///   constant inner limit (`SELECT * FROM (... LIMIT 64) AS page LIMIT $n`): with a bare
///   `LIMIT $n`, the generic plan looked dearer than the custom ones for users with many
///   tasks, and PostgreSQL planned the page again on every call (at 10M tasks, the
///   open-tasks page took 1.6x a hand-written query). The same test checks that the main
///   pages settle on their generic plan.
/// - **Metadata filters** (`metadata @> $n`, `metadata ?& $n`) are served by a GIN index
///   on `(user_id, metadata)` (btree_gin): the index intersects the user's entries with
///   the document's keys and values, so only matching rows are read. Measured at 1,000
///   users x 1,000 tasks (40% with metadata, each user's tasks on a thousand pages), a
///   page of `{"source": "email"}` read about 170 buffers with it against about 1,000
///   through the user's btree (every task of the user, filtered); a GIN on `metadata`
///   alone (`jsonb_ops`, or `jsonb_path_ops`, which serves `@>` only) returned the
///   40,000 matching rows of all users for the same page. Custom and generic plans
///   alike. The document and the keys are bound inside a sub-`SELECT` (`metadata @>
///   (SELECT $n::jsonb)`): bare, the custom plans of a document that few tasks contain
///   looked cheaper than the generic plan, and the page was planned again on every call.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskQuery {
    pub(crate) completed: Option<bool>,
    pub(crate) priorities: Vec<Priority>,
    pub(crate) due_before: Option<DateTime<Utc>>,
    pub(crate) due_after: Option<DateTime<Utc>>,
    pub(crate) overdue: bool,
    pub(crate) created_before: Option<DateTime<Utc>>,
    pub(crate) created_after: Option<DateTime<Utc>>,
    pub(crate) search: Option<String>,
    pub(crate) metadata_contains: Option<Map<String, Value>>,
    pub(crate) metadata_keys: Vec<String>,
    pub(crate) sort: TaskSort,
    pub(crate) direction: Direction,
    pub(crate) limit: Option<i64>,
    pub(crate) after: Option<String>,
}

impl Default for TaskQuery {
    fn default() -> Self {
        TaskQuery {
            completed: None,
            priorities: Vec::new(),
            due_before: None,
            due_after: None,
            overdue: false,
            created_before: None,
            created_after: None,
            search: None,
            metadata_contains: None,
            metadata_keys: Vec::new(),
            sort: TaskSort::CreatedAt,
            direction: Direction::Desc,
            limit: Some(Self::DEFAULT_LIMIT),
            after: None,
        }
    }
}

impl TaskQuery {
    /// Page size when [`TaskQuery::limit`] is not called.
    pub const DEFAULT_LIMIT: i64 = 50;
    /// Largest page size [`TaskQuery::limit`] accepts.
    pub const MAX_LIMIT: i64 = 500;
    /// Longest text [`TaskQuery::search`] accepts, in characters.
    pub const MAX_SEARCH_CHARS: usize = 1000;

    /// Every task, newest first, 50 per page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only done (`true`) or only open (`false`) tasks.
    pub fn completed(mut self, completed: bool) -> Self {
        self.completed = Some(completed);
        self
    }

    /// Only tasks of this priority; call again to allow several.
    pub fn priority(mut self, priority: Priority) -> Self {
        if !self.priorities.contains(&priority) {
            self.priorities.push(priority);
            self.priorities.sort();
        }
        self
    }

    /// Only tasks due strictly before `at` (tasks without a due date are left out).
    pub fn due_before(mut self, at: DateTime<Utc>) -> Self {
        self.due_before = Some(at);
        self
    }

    /// Only tasks due strictly after `at` (tasks without a due date are left out).
    pub fn due_after(mut self, at: DateTime<Utc>) -> Self {
        self.due_after = Some(at);
        self
    }

    /// Only open tasks whose due date has passed, by the database server's clock at the
    /// statement (`statement_timestamp()`, as every time check of the crate: it moves
    /// within a caller's transaction, and this machine's clock plays no part).
    pub fn overdue(mut self) -> Self {
        self.overdue = true;
        self
    }

    /// Only tasks created strictly before `at`.
    pub fn created_before(mut self, at: DateTime<Utc>) -> Self {
        self.created_before = Some(at);
        self
    }

    /// Only tasks created strictly after `at`.
    pub fn created_after(mut self, at: DateTime<Utc>) -> Self {
        self.created_after = Some(at);
        self
    }

    /// Only tasks whose title or description match `terms`, in web-search syntax:
    /// words (all must match, stemmed, in English), `"quoted phrases"`, `or`, and
    /// `-word` to exclude. Any text is safe: what is not syntax is taken as words.
    /// Blank text means no search; text of stop words only (`the`) matches nothing.
    /// Longer than [`TaskQuery::MAX_SEARCH_CHARS`] characters, it makes
    /// [`crate::TaskRepo::list`] fail with [`Error::Validation`].
    pub fn search(mut self, terms: &str) -> Self {
        self.search = Some(terms.to_owned());
        self
    }

    /// Only tasks whose metadata contains `document` (`metadata @> document`): every key
    /// of it, with a value that contains the document's value in turn (objects key by
    /// key, arrays element by element in any order, scalars equal). `{"source":
    /// "email", "labels": ["work"]}` selects the tasks from email that carry the label
    /// `work` among others. Called again, the new document replaces the previous one:
    /// put everything a task must contain in one document. The document follows the
    /// rules of [`crate::Task::metadata`] (else [`crate::TaskRepo::list`] fails with
    /// [`Error::Validation`] on `metadata_contains`).
    ///
    /// ```
    /// use serde_json::json;
    /// use todo_store::TaskQuery;
    ///
    /// let from_email = TaskQuery::new()
    ///     .metadata_contains(json!({"source": "email"}).as_object().cloned().unwrap_or_default())
    ///     .metadata_has_key("estimate_minutes");
    /// ```
    pub fn metadata_contains(mut self, document: Map<String, Value>) -> Self {
        self.metadata_contains = Some(document);
        self
    }

    /// Only tasks whose metadata has the top-level key `key` (`metadata ? key`), whatever
    /// its value; call again to require several (`metadata ?& keys`). An empty key, or
    /// one with a NUL character, makes [`crate::TaskRepo::list`] fail with
    /// [`Error::Validation`] on `metadata_has_key`.
    pub fn metadata_has_key(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        if let Err(at) = self.metadata_keys.binary_search(&key) {
            self.metadata_keys.insert(at, key);
        }
        self
    }

    /// Sort by `sort` in `direction` (default: [`TaskSort::CreatedAt`], [`Direction::Desc`]).
    pub fn sort(mut self, sort: TaskSort, direction: Direction) -> Self {
        self.sort = sort;
        self.direction = direction;
        self
    }

    /// At most `n` tasks per page: 1 to [`TaskQuery::MAX_LIMIT`] (500; default
    /// [`TaskQuery::DEFAULT_LIMIT`], 50). Other values make [`crate::TaskRepo::list`]
    /// fail with [`Error::Validation`].
    pub fn limit<N: TryInto<i64>>(mut self, n: N) -> Self {
        self.limit = n.try_into().ok();
        self
    }

    /// Continue after the page whose [`Page::next_cursor`] this is. The cursor must
    /// come from the same query (filters and sort; the limit may change).
    pub fn after(mut self, cursor: &str) -> Self {
        self.after = Some(cursor.to_owned());
        self
    }

    /// The same filters without paging (no cursor, any valid limit): the rows
    /// [`crate::TaskRepo::count_matching`] counts.
    pub(crate) fn unpaged(&self) -> TaskQuery {
        TaskQuery {
            after: None,
            limit: Some(1),
            ..self.clone()
        }
    }

    /// The page size, checked.
    pub(crate) fn checked_limit(&self) -> Result<i64> {
        match self.limit {
            Some(n) if (1..=Self::MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(Error::validation(
                "limit",
                format!("must be between 1 and {}", Self::MAX_LIMIT),
            )),
        }
    }

    /// The search terms as they go to PostgreSQL: `None` when blank; NUL characters
    /// (which PostgreSQL text cannot hold) become spaces; runs of negations collapse
    /// (see [`collapse_negations`]).
    pub(crate) fn checked_search(&self) -> Result<Option<String>> {
        self.search.as_deref().map_or(Ok(None), normalize_search)
    }

    /// Checks the metadata filters: the containment document by the metadata's rules,
    /// the keys non-empty and without NUL.
    pub(crate) fn check_metadata(&self) -> Result<()> {
        if let Some(document) = &self.metadata_contains {
            crate::models::metadata::check("metadata_contains", document)?;
        }
        for key in &self.metadata_keys {
            if key.is_empty() || key.contains('\0') {
                return Err(Error::validation(
                    "metadata_has_key",
                    "must be a non-empty key without the NUL character",
                ));
            }
        }
        Ok(())
    }

    /// Checks the combination: relevance needs a search.
    pub(crate) fn check(&self) -> Result<()> {
        if self.sort == TaskSort::Relevance && self.checked_search()?.is_none() {
            return Err(Error::validation(
                "sort",
                "sorting by relevance needs a search (TaskQuery::search)",
            ));
        }
        Ok(())
    }

    /// The time bounds as the SQL compares them, exactly equivalent to the bounds as
    /// given: PostgreSQL stores whole microseconds, so "strictly before `t`" is
    /// "before `t` rounded up to a whole microsecond" and "strictly after `t`" is "after
    /// `t` rounded down". (Sent as given, a bound below a microsecond would be cut
    /// toward PostgreSQL's epoch, 2000-01-01, and miss the rows at the cut.)
    pub(crate) fn time_bounds(&self) -> TimeBounds {
        TimeBounds {
            due_before: self.due_before.map(ceil_micros),
            due_after: self.due_after.map(floor_micros),
            created_before: self.created_before.map(ceil_micros),
            created_after: self.created_after.map(floor_micros),
        }
    }

    /// A stable hash of everything that selects rows, plus the user: a cursor is only
    /// valid for the query and user it was made for. Each field is tagged with its
    /// presence and variable-length ones with their length, so two different filter
    /// sets never encode to the same bytes.
    pub(crate) fn fingerprint(&self, user_id: crate::models::UserId) -> u64 {
        fnv1a(&self.fingerprint_bytes(user_id))
    }

    /// The unambiguous encoding [`TaskQuery::fingerprint`] hashes.
    pub(crate) fn fingerprint_bytes(&self, user_id: crate::models::UserId) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(96);
        bytes.push(FINGERPRINT_VERSION);
        bytes.extend_from_slice(user_id.as_uuid().as_bytes());
        bytes.push(self.completed.map_or(2, u8::from));
        bytes.push(self.priorities.len() as u8);
        bytes.extend(self.priorities.iter().map(|p| *p as u8));
        let bounds = self.time_bounds();
        for t in [
            bounds.due_before,
            bounds.due_after,
            bounds.created_before,
            bounds.created_after,
        ] {
            match t {
                None => bytes.push(0),
                Some(t) => {
                    bytes.push(1);
                    bytes.extend_from_slice(&t.timestamp_micros().to_be_bytes());
                }
            }
        }
        bytes.push(u8::from(self.overdue));
        match &self.search {
            None => bytes.push(0),
            Some(search) => {
                bytes.push(1);
                bytes.extend_from_slice(&(search.len() as u64).to_be_bytes());
                bytes.extend_from_slice(search.as_bytes());
            }
        }
        // Appended only when present, so the cursors of queries without them keep
        // their bytes (and stay valid); after the length-prefixed search, nothing else
        // can spell these bytes.
        if self.metadata_contains.is_some() || !self.metadata_keys.is_empty() {
            bytes.push(METADATA_TAG);
            match &self.metadata_contains {
                None => bytes.push(0),
                Some(document) => {
                    // serde_json's Map is sorted by key: one text per document.
                    let text = Value::Object(document.clone()).to_string();
                    bytes.push(1);
                    bytes.extend_from_slice(&(text.len() as u64).to_be_bytes());
                    bytes.extend_from_slice(text.as_bytes());
                }
            }
            bytes.extend_from_slice(&(self.metadata_keys.len() as u64).to_be_bytes());
            for key in &self.metadata_keys {
                bytes.extend_from_slice(&(key.len() as u64).to_be_bytes());
                bytes.extend_from_slice(key.as_bytes());
            }
        }
        bytes
    }
}

/// The encoding of [`TaskQuery::fingerprint_bytes`]; a new layout gets a new number.
const FINGERPRINT_VERSION: u8 = 2;

/// Opens the metadata filters' part of the fingerprint's bytes.
const METADATA_TAG: u8 = 0x4d;

/// The time filters of a [`TaskQuery`] as the SQL compares them
/// ([`TaskQuery::time_bounds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeBounds {
    pub due_before: Option<DateTime<Utc>>,
    pub due_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub created_after: Option<DateTime<Utc>>,
}

/// `at` rounded down to a whole microsecond.
fn floor_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

/// `at` rounded up to a whole microsecond.
fn ceil_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    let floor = floor_micros(at);
    if floor == at {
        return at;
    }
    floor
        .checked_add_signed(chrono::Duration::microseconds(1))
        .unwrap_or(at)
}

/// Web-search text as it goes to PostgreSQL's `websearch_to_tsquery`, the one
/// normalisation of every search of the crate (tasks, habits, both together): `None`
/// when blank; NUL characters (which PostgreSQL text cannot hold) become spaces; runs
/// of negations collapse (see [`collapse_negations`]).
///
/// # Errors
/// [`Error::Validation`] of `search` for text longer than
/// [`TaskQuery::MAX_SEARCH_CHARS`] characters.
pub(crate) fn normalize_search(terms: &str) -> Result<Option<String>> {
    if terms.chars().nth(TaskQuery::MAX_SEARCH_CHARS).is_some() {
        return Err(Error::validation(
            "search",
            format!("must be at most {} characters", TaskQuery::MAX_SEARCH_CHARS),
        ));
    }
    let cleaned = terms.replace('\0', " ");
    if cleaned.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(collapse_negations(&cleaned)))
}

/// Collapses each run of negations in web-search text to one dash or none, by parity:
/// `--x` means `x`, `---x` means `-x`. PostgreSQL's `websearch_to_tsquery` fails with
/// "tsquery stack too small" on 33 negations in a row (`---...x`, `- - - ... x`), a
/// database error a user could type. A run is dashes with only separators between
/// them (white space and `!&|()<`, which websearch skips there); dashes inside a word
/// (`well-known`, `a--b`) or inside quotes are not negations and stay.
fn collapse_negations(terms: &str) -> String {
    // What ends a word for websearch_to_tsquery, taken broadly (a separator too many
    // only collapses a run that would have been harmless).
    let separator = |c: char| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '!' | '&' | '|' | '(' | ')' | '<')
            || (!c.is_ascii() && !c.is_alphanumeric())
    };
    let mut out = String::with_capacity(terms.len());
    let (mut in_quotes, mut in_word) = (false, false);
    let mut chars = terms.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            in_quotes = c != '"';
            out.push(c);
            continue;
        }
        match c {
            '"' => {
                in_quotes = true;
                in_word = false;
                out.push(c);
            }
            '-' if !in_word => {
                // Count the run's dashes; drop it up to its last dash.
                let mut dashes = 1;
                let mut lookahead = chars.clone();
                let mut consumed = 0;
                let mut seen = 0;
                while let Some(&d) = lookahead.peek() {
                    if d == '-' {
                        dashes += 1;
                        seen += 1;
                        consumed = seen;
                    } else if separator(d) {
                        seen += 1;
                    } else {
                        break;
                    }
                    lookahead.next();
                }
                for _ in 0..consumed {
                    chars.next();
                }
                out.push(if dashes % 2 == 1 { '-' } else { ' ' });
            }
            c => {
                in_word = !separator(c);
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_round_toward_the_rows_they_keep() {
        let whole = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let before_2000 = DateTime::from_timestamp_micros(-100_000_000_123_456).unwrap();
        for t in [whole, before_2000] {
            let plus = t + chrono::Duration::nanoseconds(1);
            let minus = t - chrono::Duration::nanoseconds(1);
            assert_eq!(ceil_micros(plus), t + chrono::Duration::microseconds(1));
            assert_eq!(floor_micros(plus), t);
            assert_eq!(floor_micros(minus), t - chrono::Duration::microseconds(1));
            assert_eq!(ceil_micros(minus), t);
            assert_eq!((ceil_micros(t), floor_micros(t)), (t, t));
        }
    }

    #[test]
    fn metadata_filters_extend_the_fingerprint_and_leave_other_cursors_valid() {
        let user = crate::models::UserId::from(uuid::Uuid::nil());
        let object = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
        let plain = TaskQuery::new().search("x");
        let keyed = plain.clone().metadata_has_key("k");
        let (plain_bytes, keyed_bytes) =
            (plain.fingerprint_bytes(user), keyed.fingerprint_bytes(user));
        // Without metadata filters, the bytes are those of before (cursors stay valid).
        assert!(keyed_bytes.starts_with(&plain_bytes) && keyed_bytes.len() > plain_bytes.len());
        let queries = [
            keyed,
            plain.clone().metadata_has_key("k").metadata_has_key("l"),
            plain
                .clone()
                .metadata_contains(object(serde_json::json!({"k": 1}))),
            plain
                .clone()
                .metadata_contains(object(serde_json::json!({"k": 2}))),
            plain
                .clone()
                .metadata_contains(object(serde_json::json!({"k": 1})))
                .metadata_has_key("k"),
            plain
                .clone()
                .metadata_contains(object(serde_json::json!({}))),
        ];
        for (i, a) in queries.iter().enumerate() {
            for b in &queries[i + 1..] {
                assert_ne!(
                    a.fingerprint_bytes(user),
                    b.fingerprint_bytes(user),
                    "{a:?} {b:?}"
                );
            }
        }
        // Keys are a set: the order of the calls does not matter.
        assert_eq!(
            TaskQuery::new()
                .metadata_has_key("b")
                .metadata_has_key("a")
                .metadata_has_key("b"),
            TaskQuery::new().metadata_has_key("a").metadata_has_key("b")
        );
    }

    #[test]
    fn different_filters_never_share_fingerprint_bytes() {
        let user = crate::models::UserId::from(uuid::Uuid::nil());
        let far = |micros: i64| DateTime::from_timestamp_micros(micros).unwrap();
        // Under a concatenation without tags, a priority byte followed by absent
        // bounds spelled the same bytes as four bounds chosen to match.
        let a = TaskQuery::new().priority(Priority::Low).search("apple");
        let b = TaskQuery::new()
            .due_before(far(0x0A80_0000_0000_0000))
            .due_after(far(0x0080_0000_0000_0000))
            .created_before(far(0x0080_0000_0000_0000))
            .created_after(far(0x0080_0000_0000_0000))
            .search("\0apple");
        assert_ne!(a.fingerprint_bytes(user), b.fingerprint_bytes(user));
        let c = TaskQuery::new().search("ab");
        let d = TaskQuery::new().search("a").completed(true);
        assert_ne!(c.fingerprint_bytes(user), d.fingerprint_bytes(user));
    }
}
