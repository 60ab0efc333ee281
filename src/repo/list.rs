//! SQL for [`TaskQuery`]: filters, order and keyset seek, shared by `TaskRepo::list`,
//! `TaskRepo::count_matching` and the query-plan checks of the tests.

use diesel::dsl::{self, count_star};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Float};

use super::cursor::{Cursor, SortKey, TitleNonce};
use super::fragment::{self, Bind};
use super::page_limit::PageLimit;
use super::query::{Direction, TaskQuery, TaskSort};
use super::sql_functions::statement_timestamp;
use crate::error::Result;
use crate::models::{JsonObject, Task, UserId};
use crate::schema::tasks;

/// The search's tsquery, computed once per execution (an InitPlan): opened by this,
/// then the terms as a bind, then [`TSQUERY_CLOSE`].
macro_rules! TSQUERY_OPEN {
    () => {
        "(SELECT websearch_to_tsquery('english', "
    };
}

/// Closes [`TSQUERY_OPEN`].
const TSQUERY_CLOSE: &str = "))";

/// A boxed SELECT over tasks with row type `ST`.
pub(crate) type TasksQuery<'a, ST> = tasks::BoxedQuery<'a, Pg, ST>;

/// The SQL type of a page's rows: the task and its relevance.
pub(crate) type TaskAndRank = (dsl::SqlTypeOf<dsl::AsSelect<Task, Pg>>, Float);

/// A [`TaskQuery`], checked and ready to become SQL.
pub(crate) struct ListPlan<'q> {
    pub user_id: UserId,
    pub query: &'q TaskQuery,
    pub limit: i64,
    pub search: Option<String>,
    pub cursor: Option<Cursor>,
}

impl<'q> ListPlan<'q> {
    /// Checks `query` for `user_id`: limit, search, sort and cursor.
    pub(crate) fn new(user_id: UserId, query: &'q TaskQuery) -> Result<Self> {
        let limit = query.checked_limit()?;
        query.check()?;
        query.check_metadata()?;
        for (field, at) in [
            ("due_before", query.due_before),
            ("due_after", query.due_after),
            ("created_before", query.created_before),
            ("created_after", query.created_after),
        ] {
            if let Some(at) = at {
                crate::models::validate::timestamp(field, at)?;
            }
        }
        let search = query.checked_search()?;
        let cursor = query
            .after
            .as_deref()
            .map(|c| {
                Cursor::decode(
                    c,
                    query.sort,
                    query.direction,
                    query.fingerprint(user_id),
                    user_id,
                )
            })
            .transpose()?;
        Ok(ListPlan {
            user_id,
            query,
            limit,
            search,
            cursor,
        })
    }

    /// The rows of the page plus one (to tell whether another page follows), with
    /// their relevance when sorting by it. The limit is a [`PageLimit`]: bound as a
    /// bare `LIMIT $n`, it would have the statement planned again on every call.
    pub(crate) fn page_query(&self) -> PageLimit<TasksQuery<'_, TaskAndRank>> {
        let mut query = self.filtered(
            tasks::table
                .select((Task::as_select(), self.rank()))
                .into_boxed(),
        );
        query = self.seek(query);
        query = self.order(query);
        PageLimit::new(query, self.limit + 1)
    }

    /// `SELECT count(*)` of the filtered rows.
    pub(crate) fn count_query(&self) -> TasksQuery<'_, diesel::sql_types::BigInt> {
        self.filtered(tasks::table.select(count_star()).into_boxed())
    }

    /// The cursor that continues after `last`.
    pub(crate) fn cursor_after(&self, last: &Task, rank: f32) -> String {
        let key = match self.query.sort {
            TaskSort::CreatedAt => SortKey::Timestamp(last.created_at),
            TaskSort::UpdatedAt => SortKey::Timestamp(last.updated_at),
            TaskSort::DueDate => SortKey::OptionalTimestamp(last.due_date),
            TaskSort::Priority => SortKey::Priority(last.priority),
            TaskSort::Title => SortKey::Title(last.title.clone(), TitleNonce::fresh()),
            TaskSort::Relevance => SortKey::Rank(rank),
        };
        Cursor {
            sort: self.query.sort,
            direction: self.query.direction,
            fingerprint: self.query.fingerprint(self.user_id),
            key,
            id: last.id.into(),
        }
        .encode(self.user_id)
    }

    fn filtered<'a, ST: 'a>(&'a self, mut query: TasksQuery<'a, ST>) -> TasksQuery<'a, ST> {
        let q = self.query;
        query = query.filter(tasks::user_id.eq(self.user_id));
        if let Some(completed) = q.completed {
            query = query.filter(tasks::completed.eq(completed));
        }
        match q.priorities.as_slice() {
            [] => {}
            [one] => query = query.filter(tasks::priority.eq(*one)),
            several => query = query.filter(tasks::priority.eq_any(several)),
        }
        let bounds = q.time_bounds();
        if let Some(at) = bounds.due_before {
            query = query.filter(tasks::due_date.lt(at));
        }
        if let Some(at) = bounds.due_after {
            query = query.filter(tasks::due_date.gt(at));
        }
        if q.overdue {
            query = query
                .filter(tasks::due_date.lt(statement_timestamp().nullable()))
                .filter(tasks::completed.eq(false));
        }
        if let Some(at) = bounds.created_before {
            query = query.filter(tasks::created_at.lt(at));
        }
        if let Some(at) = bounds.created_after {
            query = query.filter(tasks::created_at.gt(at));
        }
        // Every metadata contains `{}`: no filter (a GIN index would read all of the
        // user's entries for it).
        //
        // The document and the keys are sub-SELECTs (InitPlans, typed so that the SQL
        // reads alone): the custom plans then estimate their rows as the generic plan
        // does, without the value, so the statement settles on its generic plan. Bare,
        // a document that matches few of the user's tasks made every custom plan look
        // cheaper than the generic one, and PostgreSQL planned the page again on every
        // call (100 users x 1,000 tasks, a document no task contains: 8 custom plans of
        // 8).
        if let Some(document) = q.metadata_contains.as_ref().filter(|d| !d.is_empty()) {
            query = query.filter(
                fragment::sql::<tasks::table, Bool>("metadata @> (SELECT ")
                    .bind(Bind::Jsonb(JsonObject(document)))
                    .sql("::jsonb)"),
            );
        }
        if !q.metadata_keys.is_empty() {
            // ?& of an array: one statement for any number of keys.
            query = query.filter(
                fragment::sql::<tasks::table, Bool>("metadata ?& (SELECT ")
                    .bind(Bind::TextArray(&q.metadata_keys))
                    .sql("::text[])"),
            );
        }
        if let Some(terms) = &self.search {
            // websearch_to_tsquery never raises a syntax error, whatever the text; the
            // configuration must be the one of tasks.search_vector (see the migration).
            // As a sub-SELECT it is an InitPlan, evaluated once per execution: in the
            // generic plan of the prepared statement, a bare call of a parameter would
            // be evaluated again for every row the filter reads.
            query = query.filter(
                fragment::sql::<tasks::table, Bool>(concat!("search_vector @@ ", TSQUERY_OPEN!()))
                    .bind(Bind::Text(terms))
                    .sql(TSQUERY_CLOSE),
            );
        }
        query
    }

    /// Relevance of each row to the search (0 unless sorting by relevance, which
    /// needs a search).
    fn rank(&self) -> RankExpr<'_> {
        match (&self.search, self.query.sort) {
            (Some(terms), TaskSort::Relevance) => Box::new(
                fragment::sql::<tasks::table, Float>(concat!(
                    "ts_rank_cd(search_vector, ",
                    TSQUERY_OPEN!()
                ))
                .bind(Bind::Text(terms))
                .sql(concat!("))", ")")),
            ),
            _ => Box::new(fragment::sql::<tasks::table, Float>("0::real")),
        }
    }

    /// `ORDER BY key dir, id dir`, tasks without a due date last.
    fn order<'a, ST: 'a>(&'a self, query: TasksQuery<'a, ST>) -> TasksQuery<'a, ST> {
        let dir = match self.query.direction {
            Direction::Asc => "ASC",
            Direction::Desc => "DESC",
        };
        if self.query.sort == TaskSort::Relevance {
            return match self.query.direction {
                Direction::Asc => query
                    .order_by(self.rank().asc())
                    .then_order_by(tasks::id.asc()),
                Direction::Desc => query
                    .order_by(self.rank().desc())
                    .then_order_by(tasks::id.desc()),
            };
        }
        let key = sort_column(self.query.sort);
        let nulls = if self.query.sort == TaskSort::DueDate {
            " NULLS LAST"
        } else {
            ""
        };
        query.order_by(fragment::sql::<tasks::table, Bool>(format!(
            "{key} {dir}{nulls}, id {dir}"
        )))
    }

    /// Rows after the cursor in the query's order.
    fn seek<'a, ST: 'a>(&'a self, query: TasksQuery<'a, ST>) -> TasksQuery<'a, ST> {
        let Some(cursor) = &self.cursor else {
            return query;
        };
        let op = match self.query.direction {
            Direction::Asc => ">",
            Direction::Desc => "<",
        };
        let key = sort_column(self.query.sort);
        let id = Bind::Uuid(cursor.id);
        // (key, id) op ($1, $2): a row comparison, which PostgreSQL turns into an index
        // range when an index has the same columns.
        let row = |key_value: Bind<'a>| {
            fragment::sql::<tasks::table, Bool>(format!("({key}, id) {op} ("))
                .bind(key_value)
                .sql(", ")
                .bind(id.clone())
                .sql(")")
        };
        match &cursor.key {
            SortKey::Timestamp(t) => query.filter(row(Bind::Timestamp(*t))),
            SortKey::Priority(p) => query.filter(row(Bind::Priority(*p))),
            SortKey::Title(title, _) => query.filter(row(Bind::Text(title))),
            // NULLS LAST in both directions: after a dated row come later-in-order dated
            // rows, then every undated row; after an undated row, undated rows by id.
            // The OR is parenthesized: diesel joins filters with AND without grouping the
            // SQL of a fragment, so a bare OR would escape the user and the other filters.
            SortKey::OptionalTimestamp(Some(due)) => query.filter(
                fragment::sql::<tasks::table, Bool>(format!("(({key}, id) {op} ("))
                    .bind(Bind::Timestamp(*due))
                    .sql(", ")
                    .bind(id)
                    .sql(") OR due_date IS NULL)"),
            ),
            SortKey::OptionalTimestamp(None) => query.filter(
                fragment::sql::<tasks::table, Bool>(format!("due_date IS NULL AND id {op} "))
                    .bind(id),
            ),
            // (A task sort's cursor never holds a kind: TaskSort::key_kind has none.)
            SortKey::Rank(rank) | SortKey::KindRank(rank, _) => query.filter(
                fragment::sql::<tasks::table, Bool>(concat!(
                    "(ts_rank_cd(search_vector, ",
                    TSQUERY_OPEN!()
                ))
                .bind(Bind::Text(self.search.as_deref().unwrap_or_default()))
                .sql(format!("))), id) {op} ("))
                .bind(Bind::Float(*rank))
                .sql(", ")
                .bind(id)
                .sql(")"),
            ),
        }
    }
}

/// The SQL of a sort's key column.
fn sort_column(sort: TaskSort) -> &'static str {
    match sort {
        TaskSort::CreatedAt => "created_at",
        TaskSort::UpdatedAt => "updated_at",
        TaskSort::DueDate => "due_date",
        TaskSort::Priority => "priority",
        TaskSort::Title => "title COLLATE \"C\"",
        TaskSort::Relevance => "search_vector",
    }
}

/// The relevance rank as a boxed expression (a literal 0 when not sorting by it).
type RankExpr<'a> = Box<dyn BoxableExpression<tasks::table, Pg, SqlType = Float> + 'a>;
