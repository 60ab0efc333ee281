//! Better Auth on the same database (feature `better-auth`): who is calling, from
//! Better Auth's session cookie.
//!
//! When sign-up and sign-in run in [Better Auth](https://www.better-auth.com) (the
//! TypeScript auth server) configured as docs/better-auth.md shows, Better Auth writes
//! the crate's `users` and its own `auth_sessions`, and the browser holds its signed
//! session cookie. A Rust back end on the same database answers the same browser with
//! [`authenticate_cookie`]: the cookie's value and the shared `BETTER_AUTH_SECRET` in,
//! the session and its [`User`] out, in one round trip, or `None`.
//!
//! ```no_run
//! use todo_store::better_auth::{authenticate_cookie, BetterAuthSecret, SESSION_COOKIE};
//! use todo_store::{TaskQuery, TaskRepo};
//!
//! # fn main() -> todo_store::Result<()> {
//! # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
//! // Once, at startup: the secret the Better Auth server signs with.
//! let secret = BetterAuthSecret::from_env()?;
//!
//! // Every request: the value of the cookie named SESSION_COOKIE (or
//! // SECURE_SESSION_COOKIE when Better Auth's base URL is https).
//! # let cookie_value = "";
//! let mut conn = pool.get()?;
//! let Some((_session, user)) = authenticate_cookie(&mut conn, cookie_value, &secret)? else {
//!     // Answer 401.
//!     return Ok(());
//! };
//! let tasks = TaskRepo::list(&mut conn, user.id, &TaskQuery::new())?;
//! # Ok(())
//! # }
//! ```
//!
//! The crate's own [`crate::SessionRepo`] is the other way to know who is calling, for
//! stacks without Better Auth: *`SessionRepo` or `authenticate_cookie`?* below says
//! when to use which.
//!
//! ## Sharing the database
//!
//! Better Auth can use this crate's database as its own: docs/better-auth.md has the
//! configuration (Better Auth's models mapped onto `users` and the `auth_sessions`,
//! `auth_accounts`, `auth_verifications` tables that the crate's migrations create in
//! Better Auth's shape, ids left to the database's `uuid_v7()` default), which side owns
//! what, and why one migration history owns the whole schema. Better Auth's users are the
//! crate's `User`s; deleting one with `UserRepo::delete` deletes their Better Auth
//! sessions and accounts too, so they can no longer sign in.
//!
//! [`authenticate_cookie`] checks the cookie's signature exactly as Better Auth makes it
//! (HMAC-SHA256 under the shared `BETTER_AUTH_SECRET`, constant-time) before any query,
//! then returns the unexpired session and its `User` in one round trip, or `None` for
//! anything else. A user's sign-out or the session's expiry ends the cookie on the Rust
//! side at once. Whether the session is alive is judged by the server's clock at the
//! statement, as for `SessionRepo`.
//!
//! ## `SessionRepo` or `authenticate_cookie`?
//!
//! They answer the same question for two different stacks, and one application uses one
//! of them:
//!
//! | | `SessionRepo` (table `sessions`) | `better_auth::authenticate_cookie` (table `auth_sessions`) |
//! |---|---|---|
//! | who signs users in | your Rust code (checks the password or OAuth flow itself) | Better Auth |
//! | who creates and ends sessions | your Rust code: `create`, `revoke`, `revoke_all`, `purge_expired` | Better Auth: sign-in, sign-out, its expiry refresh and cleanup |
//! | what the client holds | the crate's token (256 random bits) | Better Auth's signed cookie |
//! | what is stored | only the token's SHA-256 | Better Auth's token, as Better Auth stores it |
//! | the Rust side | creates, checks, slides and revokes | only checks (read-only) |
//!
//! Use `SessionRepo` for a Rust-only stack; use `authenticate_cookie` when Better Auth is
//! the auth server, and leave `SessionRepo` unused then (a session it made would be
//! unknown to Better Auth, and the reverse).

mod signed_cookie;

use crate::error::{Error, Result};
pub use crate::models::BetterAuthSession;
use crate::models::User;
use crate::PgConnection;

/// The name of Better Auth's session cookie with its default `cookiePrefix`, over
/// plain HTTP (a `baseURL` of `http://`, as in development).
pub const SESSION_COOKIE: &str = "better-auth.session_token";

/// The name of Better Auth's session cookie when its `baseURL` is `https://` (or
/// `advanced.useSecureCookies` is set): [`SESSION_COOKIE`] with the `__Secure-`
/// prefix, which browsers accept only from a secure origin. Read only this one then:
/// Better Auth does, and a cookie without the prefix may have been set by someone
/// else.
pub const SECURE_SESSION_COOKIE: &str = "__Secure-better-auth.session_token";

/// The secret Better Auth signs its cookies with (`BETTER_AUTH_SECRET`), shared by the
/// Better Auth server and the Rust back end. Its `Debug` never shows it.
#[derive(Clone)]
pub struct BetterAuthSecret {
    key: Box<[u8]>,
}

impl std::fmt::Debug for BetterAuthSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BetterAuthSecret(***)")
    }
}

impl BetterAuthSecret {
    /// The secret `secret`, as Better Auth's `secret` option or `BETTER_AUTH_SECRET`
    /// holds it (its UTF-8 bytes are the HMAC key).
    ///
    /// # Errors
    /// [`Error::Config`] when it is empty: Better Auth refuses to start without one.
    pub fn new(secret: impl Into<String>) -> Result<Self> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(Error::Config(
                "the Better Auth secret is empty: use the BETTER_AUTH_SECRET of the Better \
                 Auth server"
                    .into(),
            ));
        }
        Ok(BetterAuthSecret {
            key: secret.into_bytes().into_boxed_slice(),
        })
    }

    /// The secret Better Auth would sign with, from the environment (after reading
    /// `.env`, whose variables do not override the environment's), chosen as Better
    /// Auth chooses: the current (first) secret of `BETTER_AUTH_SECRETS`
    /// (`version:secret,...`, for rotation), else `BETTER_AUTH_SECRET`, else
    /// `AUTH_SECRET`.
    ///
    /// # Errors
    /// [`Error::Config`] when none is set, when `.env` cannot be read, or when
    /// `BETTER_AUTH_SECRETS` is malformed; the message never shows a secret.
    pub fn from_env() -> Result<Self> {
        // Without writing .env into the process environment, as DbConfig::from_env.
        Self::from_lookup(crate::config::env_var)
    }

    /// As [`BetterAuthSecret::from_env`], from any variable source (a map in tests).
    ///
    /// # Errors
    /// As [`BetterAuthSecret::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        if let Some(secrets) = lookup("BETTER_AUTH_SECRETS").filter(|s| !s.is_empty()) {
            let current = secrets.split(',').next().unwrap_or_default().trim();
            let secret = current
                .split_once(':')
                .filter(|(version, _)| version.trim().parse::<u32>().is_ok())
                .map(|(_, secret)| secret.trim())
                .filter(|secret| !secret.is_empty())
                .ok_or_else(|| {
                    Error::Config(
                        "BETTER_AUTH_SECRETS must be `version:secret` entries separated by \
                         commas, the current one first"
                            .into(),
                    )
                })?;
            return Self::new(secret);
        }
        let secret = ["BETTER_AUTH_SECRET", "AUTH_SECRET"]
            .into_iter()
            .find_map(|name| lookup(name).filter(|s| !s.is_empty()))
            .ok_or_else(|| {
                Error::Config(
                    "BETTER_AUTH_SECRET is not set: set it to the Better Auth server's secret, \
                     in the environment or in a .env file"
                        .into(),
                )
            })?;
        Self::new(secret)
    }
}

/// The session of Better Auth's session cookie and its user, or `None`.
///
/// `cookie_value` is the cookie's value as the request carries it (URL-encoded, as
/// Better Auth sets it) or already URL-decoded; either works, as for Better Auth
/// itself. The signature is checked first, without touching the database, exactly as
/// Better Auth checks it (HMAC-SHA256 of the token under `secret`, compared in
/// constant time); then one query (the token's unique index, joined to users) returns
/// the session if it has not expired (`expires_at > statement_timestamp()`: the
/// database server's clock at this statement, not the start of the caller's
/// transaction and not this machine's clock).
///
/// `None` for a forged, tampered, truncated or garbage value (or one longer than 4 KiB,
/// more than a browser keeps, refused before any work), a value signed with
/// another secret, a session that expired, that Better Auth ended (signed out,
/// revoked) or whose user was deleted: never an error for what the client sent, and
/// never a panic. Neither the value nor the token is logged; the call's trace span
/// (`better_auth.authenticate_cookie`) holds none.
///
/// Read-only: it does not extend the session. Better Auth moves `expires_at` later
/// when its own endpoints see the session (`session.updateAge`); a back end that only
/// ever calls this sees the session end at its expiry.
///
/// # Errors
/// Only database errors (a lost connection, say).
pub fn authenticate_cookie(
    conn: &mut PgConnection,
    cookie_value: &str,
    secret: &BetterAuthSecret,
) -> Result<Option<(BetterAuthSession, User)>> {
    match signed_cookie::verified_value(cookie_value, &secret.key) {
        Some(token) => crate::repo::better_auth_session::live_session_by_token(conn, &token),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn key(secret: &BetterAuthSecret) -> &[u8] {
        &secret.key
    }

    #[test]
    fn the_secret_is_chosen_as_better_auth_chooses_it() {
        let secret = |vars| BetterAuthSecret::from_lookup(lookup(vars)).unwrap();
        assert_eq!(key(&secret(&[("BETTER_AUTH_SECRET", "s1")])), b"s1");
        assert_eq!(key(&secret(&[("AUTH_SECRET", "s2")])), b"s2");
        assert_eq!(
            key(&secret(&[
                ("BETTER_AUTH_SECRET", "s1"),
                ("AUTH_SECRET", "s2")
            ])),
            b"s1"
        );
        assert_eq!(
            key(&secret(&[
                ("BETTER_AUTH_SECRETS", " 2: new:er , 1:old"),
                ("BETTER_AUTH_SECRET", "legacy")
            ])),
            b"new:er"
        );
        for bad in ["nothing", "x:secret", "2:", ":secret"] {
            let err = BetterAuthSecret::from_lookup(lookup(&[("BETTER_AUTH_SECRETS", bad)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("BETTER_AUTH_SECRETS"), "{err}");
        }
        let err = BetterAuthSecret::from_lookup(lookup(&[])).unwrap_err();
        assert!(
            err.to_string().contains("BETTER_AUTH_SECRET is not set"),
            "{err}"
        );
        assert!(BetterAuthSecret::new("").is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = BetterAuthSecret::new("hunter2-but-longer").unwrap();
        assert_eq!(format!("{secret:?}"), "BetterAuthSecret(***)");
    }
}
