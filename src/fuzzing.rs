//! Hooks for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`): thin pass-throughs
//! to the crate-private code of [`crate::TaskRepo::list`] and [`crate::SearchRepo::search`]
//! that runs before the SQL (cursor decoding, search normalisation), reachable without
//! a database. The checks
//! of what that code promises live with the targets, in `fuzz/src/lib.rs`.
//!
//! Not an API: hidden from the docs, and free to change. Queries are planned for the
//! nil user.

use diesel::pg::Pg;
use uuid::Uuid;

use crate::error::Result;
use crate::models::UserId;
use crate::repo::list::ListPlan;
use crate::repo::search::{SearchPlan, RELEVANCE_NUMBER};
use crate::repo::{cursor, Direction, SearchQuery, TaskQuery, TaskSort};

/// The first page of `query` as `TaskRepo::list` plans it, without running it.
#[derive(Debug)]
pub struct PlannedPage {
    /// The decoded cursor of `query`, encoded again (`None`: no cursor was given).
    pub cursor: Option<String>,
    /// The page's SQL with its bind parameters (`diesel::debug_query`).
    pub sql: String,
}

/// Plans the page of `query` as `TaskRepo::list` does: validation, search
/// normalisation, cursor decoding, and the SQL with its seek condition.
///
/// # Errors
/// Those of `TaskRepo::list` before it reaches the database.
pub fn plan_page(query: &TaskQuery) -> Result<PlannedPage> {
    let plan = ListPlan::new(nobody(), query)?;
    let sql = diesel::debug_query::<Pg, _>(&plan.page_query()).to_string();
    Ok(PlannedPage {
        cursor: plan.cursor.as_ref().map(|c| c.encode(nobody())),
        sql,
    })
}

/// Plans the page of `query` as `SearchRepo::search` does: validation, search
/// normalisation, cursor decoding, and the statement. Its `cursor` is where the page
/// starts, encoded again, when `query` has one.
///
/// # Errors
/// Those of `SearchRepo::search` before it reaches the database.
pub fn plan_search(query: &SearchQuery) -> Result<PlannedPage> {
    let plan = SearchPlan::new(nobody(), query)?;
    let sql = diesel::debug_query::<Pg, _>(&plan.statement()).to_string();
    Ok(PlannedPage {
        cursor: query.after.is_some().then(|| plan.start_cursor()),
        sql,
    })
}

/// The fingerprint that the cursors of `query`'s search carry.
///
/// # Errors
/// Those of [`plan_search`] for `query` without its cursor.
pub fn search_fingerprint(query: &SearchQuery) -> Result<u64> {
    let mut first_page = query.clone();
    first_page.after = None;
    Ok(SearchPlan::new(nobody(), &first_page)?.fingerprint())
}

/// The number of a search's one order (by relevance) in cursors, for [`seal_cursor`].
pub fn search_sort_number() -> u8 {
    RELEVANCE_NUMBER
}

/// The fingerprint of `query` that its cursors carry.
pub fn fingerprint(query: &TaskQuery) -> u64 {
    query.fingerprint(nobody())
}

/// The text of a cursor with this header (sort and direction by their numbers in the
/// format, any number allowed) and `body` (sort key and task id), with a valid
/// checksum: lets a fuzzer past the checksum to the parsing of keys.
pub fn seal_cursor(sort: u8, direction: u8, fingerprint: u64, body: &[u8]) -> String {
    cursor::seal(sort, direction, fingerprint, body)
}

/// The sort numbered `n` in cursors (`None`: no sort has that number).
pub fn sort_numbered(n: u8) -> Option<TaskSort> {
    TaskSort::from_u8(n)
}

/// The direction numbered `n` in cursors (`None`: no direction has that number).
pub fn direction_numbered(n: u8) -> Option<Direction> {
    Direction::from_u8(n)
}

/// The search text of `query` as `TaskRepo::list` sends it to PostgreSQL (`None`: no
/// search).
///
/// # Errors
/// [`crate::Error::Validation`] of `search` for a search that is too long.
pub fn normalized_search(query: &TaskQuery) -> Result<Option<String>> {
    query.checked_search()
}

/// The sort key of a title-sorted cursor of [`plan_page`]'s queries (whose user is the
/// nil id) with `fingerprint`: a fresh nonce, the title's length, the title masked.
pub fn title_key(title: &str, fingerprint: u64) -> Vec<u8> {
    cursor::title_key(title, cursor::TitleNonce::fresh(), nobody(), fingerprint)
}

/// The nil user, whom the hooks plan every query for.
fn nobody() -> UserId {
    UserId::from(Uuid::nil())
}
