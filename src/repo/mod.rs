//! The repositories: every query of the crate lives here.
//!
//! Functions take `conn: &mut PgConnection` first, so they compose inside a caller's
//! transaction (`conn.transaction(|conn| ...)`). Every task and habit query is scoped
//! by `user_id`: another user's task or habit is indistinguishable from a missing one.
//!
//! # Writing SQL in this crate: which form, when
//!
//! Every statement a repository runs on a request is prepared once per connection and
//! reused from diesel's statement cache: parsing and planning it again costs about as
//! much as a round trip. Diesel caches a statement that has a static query id, or whose
//! SQL it may key the cache by; it refuses (`unsafe_to_cache_prepared`) for
//! `diesel::sql_query`, `dsl::sql` literals, its own UPDATE, multi-row INSERTs and
//! `ON CONFLICT`. So, in this order of preference:
//!
//! 1. **Diesel's DSL** (`tasks_of(user_id).filter(..)`, `insert_into(..).values(..)`,
//!    `delete(..)`): for every SELECT, one-row INSERT and DELETE it can say. Checked
//!    against `schema.rs` by the compiler, and cached.
//! 2. **A `Fragment`** (`repo/fragment.rs`) inside a DSL query, for an expression the
//!    DSL cannot say: a full-text match, a row comparison for a cursor, `count(*)
//!    FILTER (..)`. It names its table, `Fragment<'_, tasks::table, Bool>`, and appears
//!    only in a query on that table, as the table's columns do (a task fragment in a
//!    users query does not compile); `NoTable` for one that reads no column (`now()`).
//!    Cached under its SQL text.
//! 3. **A fixed statement of our own**: a type with a static query id that writes the
//!    same SQL on every call, for an UPDATE (diesel never caches its own) or a write
//!    that returns rows. The versioned UPDATE of rows a user owns is written once
//!    (`repo/owned.rs`): a new table implements `OwnedTable` with its name, its row and
//!    its columns' assignments, nothing more. A short hand-written statement that needs
//!    no type of its own is a `fragment::Statement`, cached under its SQL text (the
//!    sessions' UPDATE and DELETE, the habits' check-in CTEs).
//! 4. **A `.sql` file** next to its module, read with `include_str!` through
//!    `fragment::SqlFile`, for a statement of more than about twenty lines (the streak,
//!    `habit_streak.sql`): the SQL reads as SQL, and its type is its static query id.
//!    Its parameters `$1`, `$2`, ... stand once each, in order.
//!
//! Not on a request path: `diesel::sql_query` and `dsl::sql` (parsed and planned on every
//! call). They are fine where a statement runs once: migrations, a connection's setup,
//! the seed, tests.
//!
//! ## What keeps the cached forms safe
//!
//! - **Values are always bound** (`Bind`, `push_bind_param`), never formatted into the
//!   SQL text.
//! - **The SQL text is fixed, or one of a small set the code chooses**: a list query's
//!   sort column and direction pick one of a few texts (`list.rs`), a page's inner
//!   limit is one of ten powers of two (`page_limit.rs`), a patch's unchanged
//!   columns keep their value through `COALESCE` or a flag so every patch of a table
//!   sends one text. Never text derived from input: that would be injection, and every
//!   distinct text is one more prepared statement on every connection.
//! - **A static query id names exactly one text**: it is a type per statement
//!   (`owned::VersionedUpdateId<T>`, a `SqlFile` type), and the text is built from
//!   constants of that type only; two texts under one id would run the wrong one.
//! - **Checked by tests**: `tests/integration/prepared.rs` (the hot statements are
//!   prepared once and reused), the unit tests of `owned` (one text per table for every
//!   patch) and of `fragment` (a fragment appears on its own table only; a `.sql` file's
//!   parameters are in order), `tests/integration/query_plans.rs` (each shape is served
//!   by an index under the generic plan, and a list page's prepared statement settles
//!   on that plan instead of being planned again on every call).
//!
//! ## A prepared statement is planned once only if its generic plan looks cheap
//!
//! PostgreSQL plans the first five executions of a prepared statement with their
//! values, then keeps the generic plan only if it is estimated to cost no more. A
//! parameter that the estimate hinges on can keep that from happening, and then every
//! call pays a planning (about 100 µs of server CPU here). Two found so far: a
//! bound `LIMIT $n`, which the generic plan takes for a tenth of the matching rows (a
//! page query cuts its rows with a `page_limit::PageLimit` instead); and a bound
//! `metadata @> $n`, whose custom plans count the few rows a rare document matches,
//! fewer than the generic plan's guess (the metadata filters bind their value in a
//! sub-SELECT, `metadata @> (SELECT $n::jsonb)`, an InitPlan that custom and generic
//! plans estimate alike, and the GIN index still serves).

#[cfg(feature = "better-auth")]
pub(crate) mod better_auth_session;
pub(crate) mod bulk;
pub(crate) mod cursor;
pub(crate) mod fragment;
pub(crate) mod habit;
mod habit_sql;
pub(crate) mod list;
mod owned;
mod page_limit;
mod query;
pub(crate) mod search;
pub(crate) mod session;
pub(crate) mod sql_functions;
pub(crate) mod task;
mod task_update;
pub(crate) mod user;
pub(crate) mod user_query;

pub use habit::HabitRepo;
pub use query::{Direction, Page, TaskQuery, TaskSort};
pub use search::{Found, SearchQuery, SearchRepo};
pub use session::{SessionRepo, PURGE_BATCH};
pub use task::TaskRepo;
pub use user::UserRepo;
pub use user_query::{UserQuery, UserSort};

/// Runs the repository call `op` of `user_id` on `conn`: in its tracing span, and with
/// a database error of unclear cause checked against the connection's state, so that
/// a lost connection is reported as one whatever statement surfaced it
/// ([`crate::pool::has_lost_server`]).
#[inline]
pub(crate) fn call<T: crate::telemetry::RowCount>(
    op: &'static str,
    user_id: Option<crate::models::UserId>,
    conn: &mut diesel::PgConnection,
    f: impl FnOnce(&mut diesel::PgConnection) -> crate::Result<T>,
) -> crate::Result<T> {
    crate::telemetry::traced(op, user_id.map(uuid::Uuid::from), || {
        let result = crate::pool::crate_call(conn, f);
        crate::pool::settle(conn, result)
    })
}

/// A foreign-key violation on insert means the parent row (`entity` `key`: the user of
/// a task or habit, the habit of a check-in) does not exist.
pub(crate) fn missing_as_not_found(
    err: diesel::result::Error,
    entity: &'static str,
    key: impl std::fmt::Display,
) -> crate::Error {
    match crate::Error::from(err) {
        crate::Error::NotFound { entity: e, .. } if e == entity => {
            crate::Error::not_found(entity, key)
        }
        other => other,
    }
}
