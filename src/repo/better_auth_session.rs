//! The query on Better Auth's sessions: a live session by its token, with its user.

use diesel::prelude::*;

use super::sql_functions::statement_timestamp;
use crate::error::Result;
use crate::models::{BetterAuthSession, User};
use crate::schema::{auth_sessions, users};

/// The unexpired session whose token is `token`, and its user: one indexed lookup
/// (the unique index on `token`) joined to users, in one round trip. Expired means
/// by the server's clock at this statement (`statement_timestamp()`), as for the
/// crate's own sessions: a cookie that expires during a caller's transaction is
/// refused from its next statement on.
pub(crate) fn live_session_by_token(
    conn: &mut PgConnection,
    token: &str,
) -> Result<Option<(BetterAuthSession, User)>> {
    super::call("better_auth.authenticate_cookie", None, conn, |conn| {
        if token.contains('\0') {
            // No stored token can contain NUL; PostgreSQL would reject the parameter.
            return Ok(None);
        }
        Ok(auth_sessions::table
            .inner_join(users::table)
            .filter(auth_sessions::token.eq(token))
            .filter(auth_sessions::expires_at.gt(statement_timestamp()))
            .select((BetterAuthSession::as_select(), User::as_select()))
            .get_result(conn)
            .optional()?)
    })
}
