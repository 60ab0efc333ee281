//! [`SessionRepo`]: login sessions of users, checked on every request.
//!
//! Data access only: the crate stores sessions and checks tokens; signing in (checking
//! a password, an OAuth flow) is the caller's. Every call but [`SessionRepo::authenticate`]
//! and [`SessionRepo::purge_expired`] is scoped by `user_id`: another user's session
//! behaves exactly like a missing one.
//!
//! # One clock: the server's, at each statement
//!
//! Whether a session is alive is decided by the database server's
//! `statement_timestamp()`, the time the statement began, in every call: never by
//! `now()` (the start of the transaction, which stands still while a caller's
//! transaction is open, so a session that expired during it would still be accepted
//! and could be extended) and never by this machine's clock (which may be minutes off
//! the server's). `clock_timestamp()` would move too, but it is `VOLATILE`: evaluated
//! per row, unusable in an index condition, and one statement could judge two rows
//! at two instants. The same clock decides [`SessionRepo::purge_expired`], so a purge
//! deletes only sessions that [`SessionRepo::authenticate`] already refuses, and it
//! stamps `revoked_at`.

use diesel::dsl;
use diesel::prelude::*;
use diesel::sql_types::{Bytea, Nullable, Text, Timestamptz, Uuid as SqlUuid};

use super::fragment::{self, Bind, Statement};
use super::sql_functions::statement_timestamp;
use crate::error::{Error, Result};
use crate::models::session::{token_hash, SessionRow};
use crate::models::{NewSession, Session, SessionId, User, UserId};
use crate::schema::{sessions, users};

/// Rows deleted by one statement of [`SessionRepo::purge_expired`]: small enough that
/// each batch holds its row locks for milliseconds.
pub const PURGE_BATCH: usize = 1000;

/// Queries on login sessions.
///
/// Signing in (a password, an OAuth flow) is the caller's; the crate starts a session once
/// the caller knows who the user is, and tells on every later request whose token it is.
/// (With Better Auth as the auth server, its own sessions and cookie take this place: see
/// the `todo_store::better_auth` module docs, feature `better-auth`.)
///
/// ```rust,no_run
/// use chrono::{Duration, Utc};
/// use todo_store::{NewSession, SessionRepo, TaskQuery, TaskRepo};
///
/// # fn main() -> todo_store::Result<()> {
/// # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
/// # let mut conn = pool.get()?;
/// # let user_id: todo_store::UserId = uuid::Uuid::nil().into();
/// // At sign-in: the token goes to the client (a Secure, HttpOnly cookie), once.
/// let new = NewSession::new(Utc::now() + Duration::days(30))
///     .ip_address("203.0.113.7")
///     .user_agent("Mozilla/5.0");
/// let (session, token) = SessionRepo::create(&mut conn, user_id, &new)?;
///
/// // On every request: one indexed lookup joined to users; None means 401.
/// let Some((session, user)) = SessionRepo::authenticate(&mut conn, &token)? else {
///     return Ok(()); // 401 Unauthorized
/// };
/// let page = TaskRepo::list(&mut conn, user.id, &TaskQuery::new())?;
///
/// // Now and then (not on every request: it is a write): slide the expiry.
/// SessionRepo::touch(&mut conn, user.id, session.id, Utc::now() + Duration::days(30))?;
///
/// // Sign out, here or everywhere.
/// SessionRepo::revoke(&mut conn, user.id, session.id)?;
/// SessionRepo::revoke_all(&mut conn, user.id)?;
/// # Ok(())
/// # }
/// ```
///
/// - **Only hashes are stored.** A token is 256 bits from the operating system's CSPRNG,
///   43 characters of URL-safe base64, drawn when the `NewSession` is built and
///   returned by `create`; the crate keeps it nowhere else (the `NewSession` holds it
///   until the caller drops it), and the table holds its SHA-256. A copy of the database (a backup, a replica, a dump) lets no one
///   sign in, and a token with 256 bits of entropy needs no salt or slow hash. Neither
///   `Session` nor its `Debug`, any error or any log line holds a token or its hash.
/// - **`authenticate` never fails for what a client sends.** Text that cannot be a token
///   (wrong length, not canonical base64, NUL, a megabyte of anything) is `None` before any
///   query; an unknown, expired or revoked token is `None` after one. Errors are the
///   database's only.
/// - **Expiry slides, never shrinks.** `touch` moves `expires_at` to the later of the two
///   and records `last_seen_at`; an expired or revoked session is `NotFound`, not revived.
///   `authenticate` itself writes nothing, so a request costs one read.
/// - **One clock: the server's, at each statement.** Every check of time (a session or a
///   Better Auth cookie alive or expired, `create`'s and `touch`'s "expiry in the future",
///   `revoke_all`, `purge_expired`, a task `overdue` or due today) compares with the
///   server's `statement_timestamp()`: never `now()`, the start of the transaction, which
///   stands still while a caller's transaction is open (a session that expired during a
///   request's transaction would still authenticate, and `touch` could revive it), and
///   never this machine's clock, which may be minutes off the server's.
///   `statement_timestamp()` rather than `clock_timestamp()`: it is one instant for the
///   whole statement and `STABLE`, so the planner can use it in an index condition and
///   evaluates it once, where `clock_timestamp()` is evaluated per row.
/// - **Purging.** Expired and revoked sessions stay until `purge_expired(limit)` deletes
///   them, in statements of at most 1,000 rows that skip rows other transactions hold
///   (`FOR UPDATE SKIP LOCKED`): run it from a periodic job, outside a transaction, until
///   it returns less than `limit`. Requests keep authenticating while it runs.
/// - Another user's session is `NotFound` for `touch` and `revoke`; deleting a user
///   deletes their sessions.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionRepo;

/// The columns of [`Session`], in its field order, as the hand-written statements
/// return them.
const SESSION_COLUMNS: &str =
    "id, user_id, expires_at, created_at, last_seen_at, ip_address, user_agent, revoked_at";

/// The row type of [`SESSION_COLUMNS`].
type SessionSql = (
    SqlUuid,
    SqlUuid,
    Timestamptz,
    Timestamptz,
    Timestamptz,
    Nullable<Text>,
    Nullable<Text>,
    Nullable<Timestamptz>,
);

/// The sessions of `user_id` that are accepted at the statement's time.
#[dsl::auto_type]
fn active_sessions_of(user_id: UserId) -> _ {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(statement_timestamp()))
}

/// Inserts `row` unless its expiry is past by the server's clock or a session with its
/// id or its token exists (`None` then), in one statement: `INSERT ... SELECT ...
/// WHERE expires_at > statement_timestamp() ON CONFLICT DO NOTHING`. The check and the
/// write are judged by one clock, which also stamps the creation (so the table's
/// CHECK, expiry after creation, agrees).
fn insert_session(conn: &mut PgConnection, row: &SessionRow) -> Result<Option<Session>> {
    let expires_at = row.expires_at.into_sql::<Timestamptz>();
    let values = diesel::select((
        row.id.into_sql::<SqlUuid>(),
        row.user_id.into_sql::<SqlUuid>(),
        row.token_hash.as_slice().into_sql::<Bytea>(),
        expires_at,
        row.ip_address.as_deref().into_sql::<Nullable<Text>>(),
        row.user_agent.as_deref().into_sql::<Nullable<Text>>(),
        statement_timestamp(),
        statement_timestamp(),
    ))
    .filter(expires_at.gt(statement_timestamp()));
    diesel::insert_into(sessions::table)
        .values(values)
        .into_columns((
            sessions::id,
            sessions::user_id,
            sessions::token_hash,
            sessions::expires_at,
            sessions::ip_address,
            sessions::user_agent,
            sessions::created_at,
            sessions::last_seen_at,
        ))
        // Any unique index: two identical creates racing meet on the token's too.
        .on_conflict_do_nothing()
        .returning(Session::as_returning())
        .get_result(conn)
        .optional()
        .map_err(|e| match Error::from(e) {
            Error::NotFound { entity: "user", .. } => Error::not_found("user", row.user_id),
            other => other,
        })
}

/// The message of the expiry check, made by the server's clock.
const EXPIRY_IN_THE_PAST: &str = "must be in the future (by the database server's clock)";

impl SessionRepo {
    /// Starts a session for `user_id` and returns it with its token, in one round trip
    /// (two for a repeat, below).
    ///
    /// The token (the `String`) is for the client: 256 bits from the operating
    /// system's CSPRNG, drawn when `new` was built, as 43 characters of URL-safe
    /// base64, fit for a cookie or an `Authorization` header. Only its SHA-256 hash is
    /// stored, so a copy of the database (a backup, a replica) lets no one sign in.
    ///
    /// Exactly once: called again with the same `new` (a retry after a lost
    /// connection), it returns the session the first call created, with the same
    /// token (one more round trip, to read it), as it is stored now: revoked or expired
    /// if it has been since. A new sign-in needs a new `NewSession`: never reuse one,
    /// for the same user or another.
    ///
    /// ```no_run
    /// use chrono::{Duration, Utc};
    /// use todo_store::{NewSession, SessionRepo};
    /// # fn main() -> todo_store::Result<()> {
    /// # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
    /// # let mut conn = pool.get()?;
    /// # let user_id = todo_store::UserId::from(uuid::Uuid::nil());
    /// let new = NewSession::new(Utc::now() + Duration::days(30)).user_agent("Mozilla/5.0");
    /// let (session, token) = SessionRepo::create(&mut conn, user_id, &new)?;
    /// // Hand `token` to the client (e.g. Set-Cookie); keep `session.id` to revoke it.
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Validation`] for an expiry that is not in the future by the database
    /// server's clock (`statement_timestamp()`, see [`SessionRepo`]'s docs), a malformed
    /// IP address or an overlong user agent (nothing written); [`Error::NotFound`]
    /// when the user does not exist; [`Error::Conflict`] with
    /// [`crate::ConflictKind::IdInUse`] when a session with this id or this token
    /// exists with another token, id, user or fields.
    pub fn create(
        conn: &mut PgConnection,
        user_id: UserId,
        new: &NewSession,
    ) -> Result<(Session, String)> {
        super::call("session.create", Some(user_id), conn, |conn| {
            let (token, hash) = new.token()?;
            let row = new.to_row(new.id, user_id, hash)?;
            crate::retry::exactly_once([crate::retry::RowKey::row("sessions", row.id)], || {
                // Twice at most: a row in the way that is gone when looked for (purged,
                // its user deleted) leaves the INSERT to say what holds now.
                for _ in 0..2 {
                    if let Some(session) = insert_session(conn, &row)? {
                        return Ok((session, token.clone()));
                    }
                    // Nothing written: the expiry is past, or the id or the token is
                    // taken, by this very session created before (its token's hash
                    // proves it) or by another.
                    let stored = sessions::table
                        .filter(
                            sessions::id
                                .eq(row.id)
                                .or(sessions::token_hash.eq(&row.token_hash)),
                        )
                        .select((Session::as_select(), sessions::token_hash))
                        .load::<(Session, Vec<u8>)>(conn)?;
                    if let Some((session, _)) = stored
                        .iter()
                        .find(|(session, hash)| row.is_stored_as(session, hash))
                    {
                        return Ok((session.clone(), token.clone()));
                    }
                    if !stored.is_empty() {
                        return Err(Error::id_in_use("session"));
                    }
                }
                Err(Error::validation("expires_at", EXPIRY_IN_THE_PAST))
            })
        })
    }

    /// The session of `token` and its user, in one round trip (an indexed lookup of the
    /// token's hash joined to users); `None` when the token is unknown, expired or
    /// revoked, and for any text that cannot be a token of this crate (checked before
    /// any query: garbage costs no round trip). Never an error for what the client
    /// sent; errors are the database's (a lost connection, say).
    ///
    /// This is the call of every request of a web back end: look the session up from
    /// the request's cookie or header, answer 401 on `None`, and scope every repository
    /// call by the returned user's id.
    ///
    /// # Errors
    /// Only database errors.
    pub fn authenticate(conn: &mut PgConnection, token: &str) -> Result<Option<(Session, User)>> {
        super::call("session.authenticate", None, conn, |conn| {
            let Some(hash) = token_hash(token) else {
                return Ok(None);
            };
            Ok(sessions::table
                .inner_join(users::table)
                .filter(sessions::token_hash.eq(&hash[..]))
                .filter(sessions::revoked_at.is_null())
                .filter(sessions::expires_at.gt(statement_timestamp()))
                .select((Session::as_select(), User::as_select()))
                .get_result(conn)
                .optional()?)
        })
    }

    /// Slides the expiry of an active session of `user_id` to `new_expires_at` (never
    /// earlier than it is: a later expiry stays) and records the time as its
    /// `last_seen_at`; returns the session. One round trip.
    ///
    /// Both checks (the session is alive, the new expiry is ahead) are made by the
    /// server's clock at this statement, so a session that expired while the caller's
    /// transaction was open is not revived.
    ///
    /// # Errors
    /// [`Error::Validation`] when `new_expires_at` is not in the future by the database
    /// server's clock; [`Error::NotFound`] when the session does not exist, belongs to
    /// another user, or is no longer active (expired or revoked: it cannot be revived).
    pub fn touch(
        conn: &mut PgConnection,
        user_id: UserId,
        session_id: SessionId,
        new_expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Session> {
        super::call("session.touch", Some(user_id), conn, |conn| {
            let expires_at = crate::models::validate::timestamp("expires_at", new_expires_at)?;
            let touched: Statement<SessionSql> =
                fragment::statement("UPDATE sessions SET expires_at = greatest(expires_at, ")
                    .bind(Bind::Timestamp(expires_at))
                    .sql("), last_seen_at = clock_timestamp() WHERE id = ")
                    .bind(Bind::Uuid(session_id.into()))
                    .sql(" AND user_id = ")
                    .bind(Bind::Uuid(user_id.into()))
                    .sql(" AND revoked_at IS NULL AND expires_at > statement_timestamp() AND ")
                    .bind(Bind::Timestamp(expires_at))
                    .sql(" > statement_timestamp() RETURNING ")
                    .sql(SESSION_COLUMNS);
            if let Some(session) = touched.get_result::<Session>(conn).optional()? {
                return Ok(session);
            }
            // Nothing changed: say why (a second round trip, on this path only).
            let in_the_future: bool = diesel::select(
                expires_at
                    .into_sql::<Timestamptz>()
                    .gt(statement_timestamp()),
            )
            .get_result(conn)?;
            if in_the_future {
                Err(Error::not_found("session", session_id))
            } else {
                Err(Error::validation("expires_at", EXPIRY_IN_THE_PAST))
            }
        })
    }

    /// Ends the session `session_id` of `user_id` (signs it out): its token is refused
    /// from now on, and `revoked_at` is the server's time of this statement (a session
    /// revoked before keeps its first `revoked_at`). Revoking a session that is already
    /// revoked or expired is not an error.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the session does not exist or belongs to another user.
    pub fn revoke(conn: &mut PgConnection, user_id: UserId, session_id: SessionId) -> Result<()> {
        super::call("session.revoke", Some(user_id), conn, |conn| {
            let revoked: Statement<Text> = fragment::statement(
                "UPDATE sessions SET revoked_at = coalesce(revoked_at, statement_timestamp()) WHERE id = ",
            )
            .bind(Bind::Uuid(session_id.into()))
            .sql(" AND user_id = ")
            .bind(Bind::Uuid(user_id.into()));
            match revoked.execute(conn)? {
                0 => Err(Error::not_found("session", session_id)),
                _ => Ok(()),
            }
        })
    }

    /// Ends every active session of `user_id` ("sign out everywhere") and returns how
    /// many it ended: those alive by the server's clock at this statement (sessions
    /// already expired or revoked are not counted, nor stamped).
    ///
    /// # Errors
    /// Only database errors.
    pub fn revoke_all(conn: &mut PgConnection, user_id: UserId) -> Result<usize> {
        super::call("session.revoke_all", Some(user_id), conn, |conn| {
            let revoked: Statement<Text> = fragment::statement(
                "UPDATE sessions SET revoked_at = statement_timestamp() WHERE user_id = ",
            )
            .bind(Bind::Uuid(user_id.into()))
            .sql(" AND revoked_at IS NULL AND expires_at > statement_timestamp()");
            Ok(revoked.execute(conn)?)
        })
    }

    /// The active sessions of `user_id` (not expired by the server's clock at this
    /// statement, not revoked), newest first.
    ///
    /// # Errors
    /// Only database errors.
    pub fn list(conn: &mut PgConnection, user_id: UserId) -> Result<Vec<Session>> {
        super::call("session.list", Some(user_id), conn, |conn| {
            Ok(active_sessions_of(user_id)
                .order((sessions::created_at.desc(), sessions::id.desc()))
                .select(Session::as_select())
                .load(conn)?)
        })
    }

    /// Deletes up to `limit` sessions that can never be used again (expired by the
    /// server's clock at each batch's statement, or revoked), in statements of at most [`PURGE_BATCH`] rows each, and returns how
    /// many it deleted. Rows another transaction has locked are skipped (`SKIP
    /// LOCKED`) and left for the next run, so a purge never waits on, nor holds up,
    /// the requests of the day. Call it outside a transaction, from a periodic job,
    /// until it returns less than `limit`; inside the caller's transaction every batch
    /// would keep its locks until that transaction ends.
    ///
    /// # Errors
    /// Only database errors; the batches before a failed one stay deleted.
    pub fn purge_expired(conn: &mut PgConnection, limit: usize) -> Result<usize> {
        super::call("session.purge_expired", None, conn, |conn| {
            let mut purged = 0;
            while purged < limit {
                let batch = (limit - purged).min(PURGE_BATCH);
                let deleted = fragment::statement::<Text>(
                    "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
                     WHERE expires_at <= statement_timestamp() OR revoked_at IS NOT NULL LIMIT ",
                )
                .bind(Bind::BigInt(batch as i64))
                .sql(" FOR UPDATE SKIP LOCKED)")
                .execute(conn)?;
                purged += deleted;
                if deleted < batch {
                    break;
                }
            }
            Ok(purged)
        })
    }
}
