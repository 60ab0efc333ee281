//! Login sessions: the row, the input for creating one, and the token a client holds.
//!
//! The token is shown once, when the session is created, and never stored: the table
//! keeps its SHA-256 hash. [`Session`] holds neither, so no `Debug`, log line or error
//! can show one.

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::ids::{SessionId, UserId};
use super::validate;
use crate::error::{Error, Result};
use crate::schema::sessions;

/// Random bytes in a session token: 256 bits from the operating system's CSPRNG.
pub const TOKEN_BYTES: usize = 32;
/// Length of a token's text: [`TOKEN_BYTES`] in URL-safe base64 without padding.
pub const TOKEN_CHARS: usize = 43;
/// Longest user agent kept with a session, in characters.
pub const USER_AGENT_MAX_CHARS: usize = 512;

/// A login session of a user, as stored: never its token, nor the token's hash.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct Session {
    /// UUIDv7, drawn when the [`NewSession`] was built (or set with
    /// [`NewSession::id`]).
    pub id: SessionId,
    /// The user who signed in.
    pub user_id: UserId,
    /// When the session stops being accepted (moved later by
    /// [`crate::SessionRepo::touch`], never earlier).
    pub expires_at: DateTime<Utc>,
    /// When the session was created.
    pub created_at: DateTime<Utc>,
    /// When the session was last touched.
    pub last_seen_at: DateTime<Utc>,
    /// The client's IP address at sign-in, in canonical form.
    pub ip_address: Option<String>,
    /// The client's user agent at sign-in.
    pub user_agent: Option<String>,
    /// When the session was revoked (signed out), if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Session {
    /// Whether the session is accepted at `now`: not revoked and not expired.
    pub fn is_active_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// The input for [`crate::SessionRepo::create`].
///
/// Its id and its token are drawn when it is built ([`NewSession::new`]), not by the
/// call: a repeat of `create` with the same `NewSession` (a retry after a lost
/// connection, say) recognises the session the first call created and returns it with
/// the same token, instead of starting a second one. Build it once per sign-in, before
/// the call, and drop it after: never reuse one for another sign-in, of the same user
/// or another (it would carry the same token). Its `Debug` never shows the token.
///
/// ```
/// use chrono::{Duration, Utc};
/// use todo_store::NewSession;
///
/// let new = NewSession::new(Utc::now() + Duration::days(30))
///     .ip_address("203.0.113.7")
///     .user_agent("Mozilla/5.0");
/// assert!(new.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// The session's id: a fresh UUIDv7 unless set ([`NewSession::id`]).
    pub id: SessionId,
    /// When the session expires: in the future by the database server's clock, which
    /// [`crate::SessionRepo::create`] checks in its INSERT (this machine's clock may
    /// be off the server's).
    pub expires_at: DateTime<Utc>,
    /// The client's IP address (IPv4 or IPv6 text), kept in canonical form.
    pub ip_address: Option<String>,
    /// The client's user agent, at most 512 characters.
    pub user_agent: Option<String>,
    /// The token's random bytes, drawn when the value is built.
    secret: TokenSecret,
}

/// The random bytes of a session's token, or `None` when the operating system gave
/// none (then [`crate::SessionRepo::create`] fails with [`Error::Config`]). Its `Debug`
/// shows neither.
#[derive(Clone, PartialEq, Eq)]
struct TokenSecret(Option<[u8; TOKEN_BYTES]>);

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(..)")
    }
}

impl TokenSecret {
    /// [`TOKEN_BYTES`] from the operating system's CSPRNG.
    fn draw() -> TokenSecret {
        let mut bytes = [0u8; TOKEN_BYTES];
        TokenSecret(getrandom::fill(&mut bytes).ok().map(|()| bytes))
    }
}

impl NewSession {
    /// A session that expires at `expires_at`, without IP address or user agent, with
    /// a fresh id and a fresh token.
    pub fn new(expires_at: DateTime<Utc>) -> Self {
        NewSession {
            id: Uuid::now_v7().into(),
            expires_at,
            ip_address: None,
            user_agent: None,
            secret: TokenSecret::draw(),
        }
    }

    /// Sets the session's id (a fresh UUIDv7 by default).
    pub fn id(mut self, id: SessionId) -> Self {
        self.id = id;
        self
    }

    /// Keeps the client's IP address: an [`IpAddr`], or its text (`"203.0.113.7"`,
    /// `"2001:db8::1"`).
    pub fn ip_address(mut self, ip: impl std::fmt::Display) -> Self {
        self.ip_address = Some(ip.to_string());
        self
    }

    /// Keeps the client's user agent.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Checks every field against the rules of [`crate::SessionRepo::create`].
    ///
    /// Whether the expiry is in the future is not checked here: only the database
    /// server's clock decides that, when [`crate::SessionRepo::create`] writes the row.
    ///
    /// # Errors
    /// [`Error::Validation`] for an expiry that PostgreSQL cannot store, an IP address
    /// that is not one, or a user agent longer than 512 characters or holding NUL.
    pub fn validate(&self) -> Result<()> {
        self.to_row(Uuid::nil().into(), Uuid::nil().into(), [0; 32])
            .map(drop)
    }

    /// The token of this session (shown to the client once) and its hash (stored).
    ///
    /// # Errors
    /// [`Error::Config`] when the operating system gave no random bytes when the value
    /// was built (nothing else could make a token safe).
    pub(crate) fn token(&self) -> Result<(String, [u8; 32])> {
        let bytes = self.secret.0.ok_or_else(|| {
            Error::Config("the operating system's random number generator failed".into())
        })?;
        Ok((URL_SAFE_NO_PAD.encode(bytes), token_hash_of_bytes(&bytes)))
    }

    /// The row to insert for `user_id`, with the token's hash.
    pub(crate) fn to_row(
        &self,
        id: SessionId,
        user_id: UserId,
        token_hash: [u8; 32],
    ) -> Result<SessionRow> {
        let expires_at = validate::timestamp("expires_at", self.expires_at)?;
        let ip_address = self
            .ip_address
            .as_deref()
            .map(|ip| {
                ip.trim()
                    .parse::<IpAddr>()
                    .map(|ip| ip.to_string())
                    .map_err(|_| Error::validation("ip_address", "must be an IPv4 or IPv6 address"))
            })
            .transpose()?;
        let user_agent = validate::optional_text(
            "user_agent",
            self.user_agent.as_deref(),
            USER_AGENT_MAX_CHARS,
        )?
        .map(str::to_owned);
        Ok(SessionRow {
            id,
            user_id,
            token_hash: token_hash.to_vec(),
            expires_at,
            ip_address,
            user_agent,
        })
    }
}

/// The columns [`crate::SessionRepo::create`] writes. `None` is written as NULL, not
/// as DEFAULT, so the INSERT's SQL is the same for every session and diesel prepares
/// it once per connection.
#[derive(Debug, Insertable)]
#[diesel(table_name = sessions, treat_none_as_default_value = false)]
pub(crate) struct SessionRow {
    pub id: SessionId,
    pub user_id: UserId,
    pub token_hash: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

impl SessionRow {
    /// Whether `session`, stored with `token_hash`, is this row as written: the same
    /// id, user, token and fields.
    pub(crate) fn is_stored_as(&self, session: &Session, token_hash: &[u8]) -> bool {
        session.id == self.id
            && session.user_id == self.user_id
            && token_hash == self.token_hash.as_slice()
            && session.expires_at == self.expires_at
            && session.ip_address == self.ip_address
            && session.user_agent == self.user_agent
    }
}

/// The hash stored for the token `text`, or `None` when `text` cannot be a token of
/// this crate (wrong length, not URL-safe base64): such text is never looked up.
pub(crate) fn token_hash(text: &str) -> Option<[u8; 32]> {
    if text.len() != TOKEN_CHARS {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let bytes: [u8; TOKEN_BYTES] = bytes.try_into().ok()?;
    // One token, one text: base64 without padding can spell the same bytes with other
    // trailing bits; only the canonical spelling (the one handed out) is accepted.
    (URL_SAFE_NO_PAD.encode(bytes) == text).then(|| token_hash_of_bytes(&bytes))
}

fn token_hash_of_bytes(bytes: &[u8; TOKEN_BYTES]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_url_safe_and_hash_to_themselves() {
        let future = Utc::now() + chrono::Duration::hours(1);
        let (a, hash_a) = NewSession::new(future).token().unwrap();
        let (b, _) = NewSession::new(future).token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_CHARS);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(token_hash(&a), Some(hash_a));
        assert_ne!(token_hash(&b), Some(hash_a));
    }

    #[test]
    fn text_that_cannot_be_a_token_has_no_hash() {
        let (token, _) = NewSession::new(Utc::now()).token().unwrap();
        let mut other_trailing_bits = token.clone().into_bytes();
        let last = other_trailing_bits.last_mut().unwrap();
        // The last character carries 2 unused bits: flip one of them.
        *last = match *last {
            b'A' => b'B',
            b'B' => b'A',
            c => c ^ 1,
        };
        let altered = String::from_utf8(other_trailing_bits).unwrap();
        for text in [
            "",
            "short",
            &token[1..],
            &format!("{token}A"),
            &format!("{}=", &token[..42]),
            &token.replace(|c: char| c.is_ascii_alphabetic(), "+"),
            &"é".repeat(22),
            "\0".repeat(43).as_str(),
        ] {
            assert_eq!(token_hash(text), None, "{text:?}");
        }
        assert!(token_hash(&altered).is_none() || altered == token);
    }

    #[test]
    fn a_new_session_keeps_its_id_and_token_and_never_shows_the_token() {
        let new = NewSession::new(Utc::now() + chrono::Duration::hours(1));
        let copy = new.clone();
        assert_eq!(copy.id, new.id);
        assert_eq!(copy.token().unwrap(), new.token().unwrap());
        let other = NewSession::new(new.expires_at);
        assert_ne!(other.id, new.id);
        assert_ne!(other.token().unwrap().0, new.token().unwrap().0);
        let (token, _) = new.token().unwrap();
        let shown = format!("{new:?} {new:#?}");
        assert!(!shown.contains(&token), "{shown}");
        assert!(shown.contains("TokenSecret(..)"), "{shown}");
    }

    #[test]
    fn new_sessions_are_checked() {
        let future = Utc::now() + chrono::Duration::hours(1);
        assert!(NewSession::new(future).validate().is_ok());
        // In the past by this machine's clock is the server's to judge.
        assert!(NewSession::new(Utc::now() - chrono::Duration::seconds(1))
            .validate()
            .is_ok());
        let ip = NewSession::new(future).ip_address(" 2001:DB8:0:0::1 ");
        let row = ip
            .to_row(Uuid::nil().into(), Uuid::nil().into(), [0; 32])
            .unwrap();
        assert_eq!(row.ip_address.as_deref(), Some("2001:db8::1"));
        for bad in ["", "localhost", "1.2.3.4.5", "::g", "1.2.3.4\0"] {
            assert!(NewSession::new(future).ip_address(bad).validate().is_err());
        }
        assert!(NewSession::new(future)
            .user_agent("x".repeat(513))
            .validate()
            .is_err());
        assert!(NewSession::new(future)
            .user_agent("a\0b")
            .validate()
            .is_err());
    }
}
