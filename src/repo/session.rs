//! [`SessionRepo`]: login sessions of users, checked on every request.
//!
//! Data access only: the crate stores sessions and checks tokens; signing in (checking
//! a password, an OAuth flow) is the caller's. Every call but [`SessionRepo::authenticate`]
//! and [`SessionRepo::purge_expired`] is scoped by `user_id`: another user's session
//! behaves exactly like a missing one.

use diesel::dsl;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::fragment::{self, Bind, Statement};
use crate::error::{Error, Result};
use crate::models::session::{new_token, token_hash};
use crate::models::{NewSession, Session, User};
use crate::schema::{sessions, users};

/// Rows deleted by one statement of [`SessionRepo::purge_expired`]: small enough that
/// each batch holds its row locks for milliseconds.
pub const PURGE_BATCH: usize = 1000;

/// Queries on login sessions.
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

/// The sessions of `user_id` that are accepted now.
#[dsl::auto_type]
fn active_sessions_of(user_id: Uuid) -> _ {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(dsl::now))
}

impl SessionRepo {
    /// Starts a session for `user_id` and returns it with its token, in one round trip.
    ///
    /// The token (the `String`) is shown this once: 256 bits from the operating
    /// system's CSPRNG as 43 characters of URL-safe base64, fit for a cookie or an
    /// `Authorization` header. Only its SHA-256 hash is stored, so a copy of the
    /// database (a backup, a replica) lets no one sign in.
    ///
    /// ```no_run
    /// use chrono::{Duration, Utc};
    /// use todo_store::{NewSession, SessionRepo};
    /// # fn main() -> todo_store::Result<()> {
    /// # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
    /// # let mut conn = pool.get()?;
    /// # let user_id = uuid::Uuid::nil();
    /// let new = NewSession::new(Utc::now() + Duration::days(30)).user_agent("Mozilla/5.0");
    /// let (session, token) = SessionRepo::create(&mut conn, user_id, &new)?;
    /// // Hand `token` to the client (e.g. Set-Cookie); keep `session.id` to revoke it.
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Validation`] for an expiry that is not in the future, a malformed IP
    /// address or an overlong user agent (nothing written); [`Error::NotFound`] when
    /// the user does not exist.
    pub fn create(
        conn: &mut PgConnection,
        user_id: Uuid,
        new: &NewSession,
    ) -> Result<(Session, String)> {
        super::call("session.create", Some(user_id), conn, |conn| {
            let (token, hash) = new_token()?;
            let row = new.to_row(super::new_id(), user_id, hash)?;
            let session = diesel::insert_into(sessions::table)
                .values(&row)
                .returning(Session::as_returning())
                .get_result(conn)
                .map_err(|e| match Error::from(e) {
                    Error::NotFound { entity: "user", .. } => Error::not_found("user", user_id),
                    other => other,
                })?;
            Ok((session, token))
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
                .filter(sessions::expires_at.gt(dsl::now))
                .select((Session::as_select(), User::as_select()))
                .get_result(conn)
                .optional()?)
        })
    }

    /// Slides the expiry of an active session of `user_id` to `new_expires_at` (never
    /// earlier than it is: a later expiry stays) and records the time as its
    /// `last_seen_at`; returns the session. One round trip.
    ///
    /// # Errors
    /// [`Error::Validation`] when `new_expires_at` is not in the future;
    /// [`Error::NotFound`] when the session does not exist, belongs to another user, or
    /// is no longer active (expired or revoked: it cannot be revived).
    pub fn touch(
        conn: &mut PgConnection,
        user_id: Uuid,
        session_id: Uuid,
        new_expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Session> {
        super::call("session.touch", Some(user_id), conn, |conn| {
            let expires_at = crate::models::validate::timestamp("expires_at", new_expires_at)?;
            if expires_at <= chrono::Utc::now() {
                return Err(Error::validation("expires_at", "must be in the future"));
            }
            let touched: Statement<SessionSql> =
                fragment::statement("UPDATE sessions SET expires_at = greatest(expires_at, ")
                    .bind(Bind::Timestamp(expires_at))
                    .sql("), last_seen_at = clock_timestamp() WHERE id = ")
                    .bind(Bind::Uuid(session_id))
                    .sql(" AND user_id = ")
                    .bind(Bind::Uuid(user_id))
                    .sql(" AND revoked_at IS NULL AND expires_at > now() RETURNING ")
                    .sql(SESSION_COLUMNS);
            touched
                .get_result::<Session>(conn)
                .optional()?
                .ok_or_else(|| Error::not_found("session", session_id))
        })
    }

    /// Ends the session `session_id` of `user_id` (signs it out): its token is refused
    /// from now on. Revoking a session that is already revoked or expired is not an
    /// error.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the session does not exist or belongs to another user.
    pub fn revoke(conn: &mut PgConnection, user_id: Uuid, session_id: Uuid) -> Result<()> {
        super::call("session.revoke", Some(user_id), conn, |conn| {
            let revoked: Statement<Text> = fragment::statement(
                "UPDATE sessions SET revoked_at = coalesce(revoked_at, now()) WHERE id = ",
            )
            .bind(Bind::Uuid(session_id))
            .sql(" AND user_id = ")
            .bind(Bind::Uuid(user_id));
            match revoked.execute(conn)? {
                0 => Err(Error::not_found("session", session_id)),
                _ => Ok(()),
            }
        })
    }

    /// Ends every active session of `user_id` ("sign out everywhere") and returns how
    /// many it ended (sessions already expired or revoked are not counted).
    ///
    /// # Errors
    /// Only database errors.
    pub fn revoke_all(conn: &mut PgConnection, user_id: Uuid) -> Result<usize> {
        super::call("session.revoke_all", Some(user_id), conn, |conn| {
            let revoked: Statement<Text> =
                fragment::statement("UPDATE sessions SET revoked_at = now() WHERE user_id = ")
                    .bind(Bind::Uuid(user_id))
                    .sql(" AND revoked_at IS NULL AND expires_at > now()");
            Ok(revoked.execute(conn)?)
        })
    }

    /// The active sessions of `user_id` (not expired, not revoked), newest first.
    ///
    /// # Errors
    /// Only database errors.
    pub fn list(conn: &mut PgConnection, user_id: Uuid) -> Result<Vec<Session>> {
        super::call("session.list", Some(user_id), conn, |conn| {
            Ok(active_sessions_of(user_id)
                .order((sessions::created_at.desc(), sessions::id.desc()))
                .select(Session::as_select())
                .load(conn)?)
        })
    }

    /// Deletes up to `limit` sessions that can never be used again (expired or
    /// revoked), in statements of at most [`PURGE_BATCH`] rows each, and returns how
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
                     WHERE expires_at <= now() OR revoked_at IS NOT NULL LIMIT ",
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
