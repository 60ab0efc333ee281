//! [`PageLimit`]: the `LIMIT` of a page query, written so that PostgreSQL keeps one
//! plan for the prepared statement instead of planning it again on every call.
//!
//! PostgreSQL plans the first five executions of a prepared statement with their
//! parameters' values (custom plans), then keeps its generic plan, made once without
//! them, only if that is estimated to cost no more than the custom plans did. A bare
//! `LIMIT $n` fails that test whenever a user has many rows: the generic plan, not
//! knowing n, counts a tenth of the rows that match, while each custom plan counts the
//! page. With 1,100 tasks per user (as ANALYZE estimates 10M tasks), the open-tasks
//! page counted 55 rows generic against 51 custom, and every call paid a planning
//! (about 100 µs of server CPU, as much as running the statement).
//!
//! So the page is cut twice: inside, by a constant, the smallest power of two that
//! holds it (2 to 512 for a page of tasks, up to 1,024 for one of users: at most ten
//! statement texts per query shape);
//! outside, by the bound page size. The generic plan then counts a tenth of that
//! constant, at most a fifth of the page, and is kept; both plans are made for a
//! known number of rows. The outer query only passes the inner one's rows on, in
//! their order (no sort, join or aggregate of its own that could reorder them), and
//! stops reading at the page's end: no row past it is fetched.

use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::query_dsl::RunQueryDsl;
use diesel::sql_types::BigInt;
use diesel::QueryResult;

/// `query` (a SELECT with its ORDER BY and no LIMIT) cut to `rows` rows:
/// `SELECT * FROM (query LIMIT <power of two>) AS page LIMIT $n`.
#[derive(Debug, Clone)]
pub(crate) struct PageLimit<Q> {
    query: Q,
    rows: i64,
}

impl<Q> PageLimit<Q> {
    /// At most `rows` rows of `query` (1 or more).
    pub(crate) fn new(query: Q, rows: i64) -> Self {
        PageLimit { query, rows }
    }
}

/// The inner, constant limit for a page of `rows` rows: the smallest power of two that
/// holds it (at least 1).
pub(crate) fn inner_limit(rows: i64) -> u64 {
    u64::try_from(rows).unwrap_or(1).max(1).next_power_of_two()
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for PageLimit<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT * FROM (");
        self.query.walk_ast(out.reborrow())?;
        // A number the code chooses, one of ten: not a value of the caller's.
        out.push_sql(&format!(
            " LIMIT {}) AS page LIMIT ",
            inner_limit(self.rows)
        ));
        out.push_bind_param::<BigInt, _>(&self.rows)
    }
}

/// No static id: diesel caches the statement under its SQL text, one per inner limit.
impl<Q> QueryId for PageLimit<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for PageLimit<Q> {
    type SqlType = Q::SqlType;
}

impl<Q> RunQueryDsl<PgConnection> for PageLimit<Q> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tasks;
    use diesel::prelude::*;

    #[test]
    fn the_inner_limit_is_the_power_of_two_that_holds_the_page() {
        let cases = [
            (1, 1),
            (2, 2),
            (3, 4),
            (21, 32),
            (51, 64),
            (64, 64),
            (501, 512),
        ];
        for (rows, inner) in cases {
            assert_eq!(inner_limit(rows), inner, "{rows} rows");
        }
        // The page sizes TaskQuery and UserQuery accept, plus one: ten texts at most.
        let mut texts: Vec<u64> = (2..=1001).map(inner_limit).collect();
        texts.dedup();
        assert_eq!(texts, [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]);
        assert_eq!(inner_limit(crate::TaskQuery::MAX_LIMIT + 1), 512);
        assert_eq!(inner_limit(crate::UserQuery::MAX_LIMIT + 1), 1024);
    }

    #[test]
    fn the_page_size_is_bound_and_the_inner_limit_written() {
        let query = tasks::table
            .select(tasks::id)
            .order(tasks::created_at.desc())
            .into_boxed::<Pg>();
        let sql = diesel::debug_query::<Pg, _>(&PageLimit::new(query, 51)).to_string();
        assert!(
            sql.starts_with(
                "SELECT * FROM (SELECT \"tasks\".\"id\" FROM \"tasks\" \
                 ORDER BY \"tasks\".\"created_at\" DESC LIMIT 64) AS page LIMIT $1"
            ),
            "{sql}"
        );
        assert!(sql.ends_with("-- binds: [51]"), "{sql}");
    }
}
