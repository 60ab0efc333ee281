//! Better Auth's sessions (table `auth_sessions`), as the crate reads them.
//!
//! Better Auth writes this table; the crate only reads it (to authenticate Better
//! Auth's cookie, [`crate::better_auth::authenticate_cookie`]). The row holds no token:
//! no `Debug`, log line or error can show one.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::ids::UserId;
use crate::schema::auth_sessions;

/// A signed-in session of Better Auth, without its token.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = auth_sessions, check_for_backend(diesel::pg::Pg))]
pub struct BetterAuthSession {
    /// UUIDv7, made by the database (`uuid_v7()`): Better Auth leaves ids to it. A
    /// bare [`Uuid`]: Better Auth's to manage, and no function of this crate takes it.
    pub id: Uuid,
    /// The user who signed in: the id of a [`crate::User`].
    pub user_id: UserId,
    /// When Better Auth stops accepting the session (it moves it later as the session
    /// is used, by its `session.updateAge`).
    pub expires_at: DateTime<Utc>,
    /// When the user signed in.
    pub created_at: DateTime<Utc>,
    /// When Better Auth last changed the session.
    pub updated_at: DateTime<Utc>,
    /// The client's IP address at sign-in, as Better Auth recorded it.
    pub ip_address: Option<String>,
    /// The client's user agent at sign-in.
    pub user_agent: Option<String>,
}

impl BetterAuthSession {
    /// Whether the session is accepted at `now`: it has not expired.
    pub fn is_active_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }
}
