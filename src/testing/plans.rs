//! Query plans of the crate's own SQL, for tests that prove an index serves each query
//! shape. Each function returns PostgreSQL's `EXPLAIN (FORMAT JSON)` output.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::Text;

use crate::error::Result;
use crate::repo::list::ListPlan;
use crate::{HabitId, TaskQuery, UserId};

/// The plan of [`crate::TaskRepo::list`] for `query`.
///
/// # Errors
/// As [`crate::TaskRepo::list`].
pub fn list(conn: &mut PgConnection, user_id: UserId, query: &TaskQuery) -> Result<String> {
    let plan = ListPlan::new(user_id, query)?;
    Ok(Explain(plan.page_query()).get_result(conn)?)
}

/// The plan of [`crate::TaskRepo::count_matching`] for `query`.
///
/// # Errors
/// As [`crate::TaskRepo::count_matching`].
pub fn count_matching(
    conn: &mut PgConnection,
    user_id: UserId,
    query: &TaskQuery,
) -> Result<String> {
    let unpaged = query.unpaged();
    let plan = ListPlan::new(user_id, &unpaged)?;
    Ok(Explain(plan.count_query()).get_result(conn)?)
}

/// The plan of [`crate::UserRepo::find_by_email`] for `email`.
///
/// # Errors
/// Only database errors.
pub fn find_by_email(conn: &mut PgConnection, email: &str) -> Result<String> {
    Ok(Explain(crate::repo::user::find_by_email_query(email.trim())).get_result(conn)?)
}

/// The plan of [`crate::TaskRepo::stats`].
///
/// # Errors
/// Only database errors.
pub fn stats(conn: &mut PgConnection, user_id: UserId) -> Result<String> {
    Ok(Explain(crate::repo::task::stats_query(user_id, chrono_tz::Tz::UTC)).get_result(conn)?)
}

/// `EXPLAIN (ANALYZE, FORMAT JSON)` of [`crate::HabitRepo::streak`]: the statement
/// runs, and the plan holds each node's actual rows and time, and the whole
/// statement's `Execution Time` in milliseconds.
///
/// # Errors
/// Only database errors.
pub fn streak_analyzed(
    conn: &mut PgConnection,
    user_id: UserId,
    habit_id: HabitId,
    today: chrono::NaiveDate,
) -> Result<String> {
    let query = crate::repo::habit::streak_query(user_id, habit_id, today);
    Ok(ExplainAnalyze(query).get_result(conn)?)
}

/// The plan of [`crate::UserRepo::list_page`] for `query`.
///
/// # Errors
/// As [`crate::UserRepo::list_page`].
pub fn user_list_page(conn: &mut PgConnection, query: &crate::UserQuery) -> Result<String> {
    let plan = crate::repo::user_query::UserPagePlan::new(query)?;
    Ok(Explain(plan.page_query()).get_result(conn)?)
}

/// The generic plan of [`crate::UserRepo::list_page`] for `query`.
///
/// # Errors
/// As [`crate::UserRepo::list_page`].
pub fn user_list_page_generic(conn: &mut PgConnection, query: &crate::UserQuery) -> Result<String> {
    let plan = crate::repo::user_query::UserPagePlan::new(query)?;
    let sql = plan.page_query();
    generic_plan(conn, &sql)
}

/// The *generic* plan of [`crate::TaskRepo::list`] for `query`: the plan PostgreSQL
/// may keep for the prepared statement after five executions, built without the
/// parameters' values (see [`generic_plan`]).
///
/// # Errors
/// As [`crate::TaskRepo::list`].
pub fn list_generic(conn: &mut PgConnection, user_id: UserId, query: &TaskQuery) -> Result<String> {
    let plan = ListPlan::new(user_id, query)?;
    let sql = plan.page_query();
    generic_plan(conn, &sql)
}

/// The generic plan of [`crate::TaskRepo::count_matching`] for `query`.
///
/// # Errors
/// As [`crate::TaskRepo::count_matching`].
pub fn count_matching_generic(
    conn: &mut PgConnection,
    user_id: UserId,
    query: &TaskQuery,
) -> Result<String> {
    let unpaged = query.unpaged();
    let plan = ListPlan::new(user_id, &unpaged)?;
    let sql = plan.count_query();
    generic_plan(conn, &sql)
}

/// The generic plan of [`crate::TaskRepo::stats`].
///
/// # Errors
/// Only database errors.
pub fn stats_generic(conn: &mut PgConnection, user_id: UserId) -> Result<String> {
    generic_plan(
        conn,
        &crate::repo::task::stats_query(user_id, chrono_tz::Tz::UTC),
    )
}

/// The plan of [`crate::SearchRepo::search`] for `query`.
///
/// # Errors
/// As [`crate::SearchRepo::search`].
pub fn search(
    conn: &mut PgConnection,
    user_id: UserId,
    query: &crate::SearchQuery,
) -> Result<String> {
    let plan = crate::repo::search::SearchPlan::new(user_id, query)?;
    Ok(Explain(plan.statement()).get_result(conn)?)
}

/// The generic plan of [`crate::SearchRepo::search`] for `query`.
///
/// # Errors
/// As [`crate::SearchRepo::search`].
pub fn search_generic(
    conn: &mut PgConnection,
    user_id: UserId,
    query: &crate::SearchQuery,
) -> Result<String> {
    let plan = crate::repo::search::SearchPlan::new(user_id, query)?;
    generic_plan(conn, &plan.statement())
}

/// The plan of [`crate::HabitRepo::search`] for `terms`.
///
/// # Errors
/// As [`crate::HabitRepo::search`].
pub fn habit_search(conn: &mut PgConnection, user_id: UserId, terms: &str) -> Result<String> {
    let terms = crate::repo::search::required_terms(terms)?;
    Ok(Explain(crate::repo::habit::search_query(user_id, &terms)).get_result(conn)?)
}

/// The generic plan of [`crate::HabitRepo::search`] for `terms`.
///
/// # Errors
/// As [`crate::HabitRepo::search`].
pub fn habit_search_generic(
    conn: &mut PgConnection,
    user_id: UserId,
    terms: &str,
) -> Result<String> {
    let terms = crate::repo::search::required_terms(terms)?;
    let query = crate::repo::habit::search_query(user_id, &terms);
    generic_plan(conn, &query)
}

/// `EXPLAIN (FORMAT JSON)` of `query`'s generic plan: its SQL is prepared under a
/// name of its own and explained with `plan_cache_mode = force_generic_plan`, so
/// PostgreSQL plans it without looking at the parameters (which are passed as
/// NULLs: the generic plan does not depend on them). The session is left as it
/// was.
///
/// # Errors
/// Only database errors.
pub fn generic_plan<Q>(conn: &mut PgConnection, query: &Q) -> Result<String>
where
    Q: diesel::query_builder::QueryFragment<diesel::pg::Pg>,
{
    use diesel::connection::SimpleConnection;
    let debug = diesel::debug_query::<diesel::pg::Pg, _>(query).to_string();
    let sql = debug.split(" -- binds: ").next().unwrap_or_default();
    let params = max_placeholder(sql);
    conn.batch_execute(&format!(
        "SET plan_cache_mode = force_generic_plan; PREPARE todo_store_generic_plan AS {sql}"
    ))?;
    let nulls = vec!["NULL"; params].join(", ");
    let explain = diesel::sql_query(format!(
        "EXPLAIN (FORMAT JSON) EXECUTE todo_store_generic_plan({nulls})"
    ))
    .get_result::<PlanText>(conn)
    .map(|p| p.plan);
    conn.batch_execute("DEALLOCATE todo_store_generic_plan; RESET plan_cache_mode")?;
    Ok(explain?)
}

#[derive(QueryableByName)]
struct PlanText {
    #[diesel(sql_type = diesel::sql_types::Text)]
    #[diesel(column_name = "QUERY PLAN")]
    plan: String,
}

/// The highest `$n` in `sql`.
fn max_placeholder(sql: &str) -> usize {
    sql.split('$')
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// EXPLAIN of a query with its own SQL and bind parameters

/// Wraps a query in `EXPLAIN (FORMAT JSON)`.
struct Explain<Q>(Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Explain<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("EXPLAIN (FORMAT JSON) ");
        self.0.walk_ast(out.reborrow())
    }
}

impl<Q> QueryId for Explain<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q> Query for Explain<Q> {
    type SqlType = Text;
}

impl<Q> RunQueryDsl<PgConnection> for Explain<Q> {}

/// Wraps a query in `EXPLAIN (ANALYZE, FORMAT JSON)`: it runs.
struct ExplainAnalyze<Q>(Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for ExplainAnalyze<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("EXPLAIN (ANALYZE, FORMAT JSON) ");
        self.0.walk_ast(out.reborrow())
    }
}

impl<Q> QueryId for ExplainAnalyze<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q> Query for ExplainAnalyze<Q> {
    type SqlType = Text;
}

impl<Q> RunQueryDsl<PgConnection> for ExplainAnalyze<Q> {}
