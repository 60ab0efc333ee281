//! The crate's error type, and the one place where database errors are mapped to it.
//!
//! A caller never has to inspect a raw database error for something it could have
//! avoided: unique violations become [`Error::Conflict`], a missing parent row becomes
//! [`Error::NotFound`], a CHECK constraint becomes [`Error::Validation`].

use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a repository call, the pool or the migrations can fail with.
///
/// Messages never contain a database password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The row does not exist, or belongs to another user (the two are indistinguishable).
    #[error("{entity} {key} not found")]
    NotFound {
        /// What was looked for: `"user"`, `"task"`, `"session"` or `"habit"`.
        entity: &'static str,
        /// The id (or other key) that was looked for.
        key: String,
    },

    /// The write conflicts with the current state of the database; nothing was changed.
    #[error("conflict: {kind}")]
    Conflict {
        /// Which conflict: the email is taken, the version is stale, ...
        kind: ConflictKind,
    },

    /// An input broke a rule; nothing was written.
    #[error("invalid {field}: {reason}")]
    Validation {
        /// The offending field, e.g. `title`, or `tasks[3].title` in a batch.
        field: String,
        /// Why it was rejected.
        reason: String,
    },

    /// No pooled connection became free within the pool's connection timeout.
    #[error("{}", pool_timeout_message(*max_size, *timeout, last_error.as_deref()))]
    PoolTimeout {
        /// The pool's maximum number of connections (0 when unknown: a bare `r2d2::Error`).
        max_size: u32,
        /// How long the checkout waited (zero when unknown).
        timeout: Duration,
        /// The last error seen while opening a connection, if any (password removed).
        last_error: Option<String>,
    },

    /// The server cancelled the statement because it ran longer than `statement_timeout`.
    #[error(
        "the statement ran longer than the statement timeout and was cancelled: \
         make the query cheaper or raise DATABASE_STATEMENT_TIMEOUT_MS"
    )]
    StatementTimeout,

    /// A connection to the server could not be opened.
    #[error("could not connect to {target}: {message}")]
    Connection {
        /// Where it tried to connect (the URL with its password removed).
        target: String,
        /// What went wrong (password removed).
        message: String,
    },

    /// Any other database error. Its message comes from the server.
    #[error("database error: {0}")]
    Database(#[source] DieselError),

    /// Running or reverting the embedded migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),

    /// The configuration is missing or malformed.
    #[error("configuration error: {0}")]
    Config(String),

    /// A write was sent to a read-only connection (a hot-standby replica, or a
    /// read-only transaction): send writes to the primary
    /// ([`crate::replica::ReplicaRouter::write`]).
    #[error("the connection is read-only (a replica?): send writes to the primary: {message}")]
    ReadOnly {
        /// The server's message.
        message: String,
    },
}

/// The kinds of [`Error::Conflict`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConflictKind {
    /// Another user already has this email address (compared as
    /// [`crate::UserRepo::create`] says: case and compatibility forms ignored).
    #[error("the email address is already taken")]
    EmailTaken,
    /// `expected_version` did not match the row's current version.
    #[error("the row was changed by someone else (expected version {expected}, found {actual}): reload it and retry")]
    StaleVersion {
        /// The version the caller expected.
        expected: i32,
        /// The version the row has now.
        actual: i32,
    },
    /// Another unique constraint was violated.
    #[error("a row with the same {constraint} already exists")]
    Duplicate {
        /// The name of the violated constraint.
        constraint: String,
    },
}

fn pool_timeout_message(max_size: u32, timeout: Duration, last_error: Option<&str>) -> String {
    let mut msg = String::from("timed out");
    if !timeout.is_zero() {
        msg.push_str(&format!(" after {timeout:?}"));
    }
    msg.push_str(" waiting for a database connection");
    if max_size > 0 {
        msg.push_str(&format!(" (pool size {max_size})"));
    }
    if let Some(e) = last_error.filter(|e| !e.is_empty()) {
        msg.push_str(&format!("; last connection error: {e}"));
    }
    msg.push_str(
        ": raise DATABASE_POOL_SIZE or DATABASE_CONNECT_TIMEOUT_MS, hold connections for less \
         time, or check that the server is reachable",
    );
    msg
}

impl Error {
    /// A [`Error::Validation`] for `field`.
    pub fn validation(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Validation {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A [`Error::NotFound`] for a row of `entity` with `key`.
    pub fn not_found(entity: &'static str, key: impl ToString) -> Self {
        Error::NotFound {
            entity,
            key: key.to_string(),
        }
    }

    /// A lost connection, found from the connection's state after `err` (whose own
    /// shape did not say so: a failed type lookup, say): [`Error::is_connection_lost`]
    /// is true, and whether the statement ran is unknown.
    pub(crate) fn connection_lost(err: DieselError) -> Self {
        Error::Database(DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection,
            Box::new(format!(
                "the connection to the server was lost (the call failed with: {err})"
            )),
        ))
    }

    /// The same error about item `index` of a batch: a validation error on `title`
    /// becomes one on `tasks[3].title`.
    pub(crate) fn in_batch(self, batch: &str, index: usize) -> Self {
        match self {
            Error::Validation { field, reason } => Error::Validation {
                field: format!("{batch}[{index}].{field}"),
                reason,
            },
            other => other,
        }
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True for [`Error::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    /// True for [`Error::Validation`].
    pub fn is_validation(&self) -> bool {
        matches!(self, Error::Validation { .. })
    }

    /// True when the server aborted the transaction because it could not be serialized
    /// with concurrent ones (SQLSTATE 40001: `SERIALIZABLE` or `REPEATABLE READ`). The
    /// transaction changed nothing; running it again from the start may succeed.
    pub fn is_serialization_failure(&self) -> bool {
        matches!(
            self.commit_or_only_error(),
            Some(DieselError::DatabaseError(
                DatabaseErrorKind::SerializationFailure,
                _
            ))
        )
    }

    /// True when the server broke a deadlock by aborting this transaction (SQLSTATE
    /// 40P01, "deadlock detected"). The transaction changed nothing; running it again
    /// from the start may succeed.
    pub fn is_deadlock(&self) -> bool {
        // Diesel has no kind for 40P01 and does not expose the SQLSTATE; the message is
        // fixed server text (lc_messages is English on the servers we support, as for
        // the statement timeout above).
        matches!(
            self.commit_or_only_error(),
            Some(DieselError::DatabaseError(DatabaseErrorKind::Unknown, info))
                if info.message().starts_with("deadlock detected")
        )
    }

    /// True when the connection to the server is gone (the server restarted, crashed or
    /// terminated the session, the network dropped): this connection cannot be used
    /// again.
    ///
    /// Whether the statement ran is **unknown** unless
    /// [`Error::is_connection_lost_before_send`] is also true: a connection lost during
    /// `COMMIT`, or during a statement outside a transaction, may have lost the answer
    /// to a write that happened.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            Error::Database(DieselError::RollbackErrorOnCommit {
                rollback_error,
                commit_error,
            }) => is_lost_connection(commit_error) || is_lost_connection(rollback_error),
            Error::Database(err) => is_lost_connection(err),
            _ => false,
        }
    }

    /// True when the connection was already lost before the statement could be sent
    /// (libpq: "no connection to the server"): the statement certainly did not run, so
    /// running it again on another connection is safe.
    pub fn is_connection_lost_before_send(&self) -> bool {
        matches!(
            self.commit_or_only_error(),
            Some(DieselError::DatabaseError(
                DatabaseErrorKind::UnableToSendCommand,
                info
            )) if !is_protocol_limit(info.message())
        )
    }

    /// True for the failures after which running the whole transaction again is safe
    /// and may succeed: a serialization failure ([`Error::is_serialization_failure`]),
    /// a deadlock ([`Error::is_deadlock`]), or a connection lost before the statement
    /// was sent ([`Error::is_connection_lost_before_send`], retry on another
    /// connection). Everything else is false: constraint violations, validation,
    /// timeouts, and a connection lost after the statement was sent, whose outcome is
    /// unknown. [`crate::retry`] retries exactly these (plus lost connections it can
    /// prove harmless from where they happened).
    pub fn is_transient(&self) -> bool {
        self.is_serialization_failure()
            || self.is_deadlock()
            || self.is_connection_lost_before_send()
    }

    /// The diesel error that decides what happened: for a failed `COMMIT` whose
    /// rollback failed too, the `COMMIT`'s error.
    fn commit_or_only_error(&self) -> Option<&DieselError> {
        match self {
            Error::Database(DieselError::RollbackErrorOnCommit { commit_error, .. }) => {
                Some(commit_error)
            }
            Error::Database(err) => Some(err),
            _ => None,
        }
    }
}

/// The server's `time zone "..." not recognized` (`AT TIME ZONE` with a name it does
/// not know).
fn is_unknown_time_zone(message: &str) -> bool {
    message.starts_with("time zone \"") && message.ends_with("\" not recognized")
}

/// libpq refuses to send a statement with more bind parameters than the protocol
/// allows with the same error kind as a lost connection; that is no lost connection.
fn is_protocol_limit(message: &str) -> bool {
    message.contains("number of parameters")
}

/// Whether `err` means the connection to the server is gone.
///
/// Diesel tags most of these `ClosedConnection` or `UnableToSendCommand`, but not all:
/// it says `ClosedConnection` only when libpq has already marked the connection bad.
/// With libpq 15, the first statement on a connection whose server crashed fails with
/// kind `Unknown` and libpq's own "server closed the connection unexpectedly"; only the
/// next one is refused outright (tests/faults.rs shows it). The messages
/// below are libpq's (not translated unless the client's locale asks) and the server's
/// FATAL ones (SQLSTATE 57P01-57P05, 25P03), each of which ends the session.
pub(crate) fn is_lost_connection(err: &DieselError) -> bool {
    const LOST: &[&str] = &[
        "server closed the connection unexpectedly",
        "no connection to the server",
        "could not receive data from server",
        "could not send data to server",
        "connection to server was lost",
        "lost synchronization with server",
        "SSL connection has been closed unexpectedly",
        "SSL SYSCALL error: EOF detected",
        "terminating connection",
    ];
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
        | DieselError::BrokenTransactionManager => true,
        DieselError::DatabaseError(DatabaseErrorKind::UnableToSendCommand, info) => {
            !is_protocol_limit(info.message())
        }
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            LOST.iter().any(|m| info.message().starts_with(m))
        }
        _ => false,
    }
}

/// What a constraint of the schema means to a caller. The constraint names are those
/// of the migrations; keep the two in step (a test checks every name exists).
pub(crate) const CONSTRAINTS: &[(&str, Meaning)] = &[
    (
        "users_email_ci_key",
        Meaning::Conflict(ConflictKind::EmailTaken),
    ),
    (
        "users_email_valid",
        Meaning::Invalid(
            "email",
            "must be an address like name@example.com (one @, no spaces or invisible \
             characters) of at most 254 characters",
        ),
    ),
    (
        "users_name_valid",
        Meaning::Invalid(
            "name",
            "must be at most 100 characters and contain a visible character (not only \
             spaces or invisible characters such as zero-width spaces)",
        ),
    ),
    (
        "users_image_valid",
        Meaning::Invalid("image", "must be at most 2048 characters"),
    ),
    ("tasks_user_id_fkey", Meaning::Missing("user")),
    ("sessions_user_id_fkey", Meaning::Missing("user")),
    (
        "sessions_expiry_after_creation",
        Meaning::Invalid("expires_at", "must be in the future"),
    ),
    (
        "sessions_ip_address_valid",
        Meaning::Invalid("ip_address", "must be an IPv4 or IPv6 address"),
    ),
    (
        "sessions_user_agent_valid",
        Meaning::Invalid("user_agent", "must be at most 512 characters"),
    ),
    (
        "tasks_title_valid",
        Meaning::Invalid("title", crate::models::validate::NOTHING_VISIBLE),
    ),
    (
        "tasks_description_valid",
        Meaning::Invalid("description", "must be at most 10000 characters"),
    ),
    (
        "tasks_version_positive",
        Meaning::Invalid("version", "must be at least 1"),
    ),
    ("habits_user_id_fkey", Meaning::Missing("user")),
    (
        "habits_name_valid",
        Meaning::Invalid(
            "name",
            "must be at most 100 characters and contain a visible character (not only \
             spaces or invisible characters such as zero-width spaces)",
        ),
    ),
    (
        "habits_description_valid",
        Meaning::Invalid("description", "must be at most 10000 characters"),
    ),
    (
        "habits_schedule_valid",
        Meaning::Invalid(
            "schedule",
            "must be a schedule of the documented JSON shape (version 1: daily, weekly or \
             every_n_days; see todo_store::Schedule)",
        ),
    ),
    (
        "habits_version_positive",
        Meaning::Invalid("version", "must be at least 1"),
    ),
    ("habit_check_ins_habit_id_fkey", Meaning::Missing("habit")),
];

/// The names of the constraints (and unique indexes) this module gives a meaning to.
pub fn constraint_names() -> impl Iterator<Item = &'static str> {
    CONSTRAINTS.iter().map(|(name, _)| *name)
}

/// The meaning of a violated constraint.
#[derive(Debug, Clone)]
pub(crate) enum Meaning {
    Conflict(ConflictKind),
    Invalid(&'static str, &'static str),
    Missing(&'static str),
}

impl From<DieselError> for Error {
    fn from(err: DieselError) -> Self {
        if let DieselError::DatabaseError(kind, info) = &err {
            let known = info
                .constraint_name()
                .and_then(|name| CONSTRAINTS.iter().find(|(n, _)| *n == name));
            match (kind, known) {
                (_, Some((_, Meaning::Conflict(kind)))) => {
                    return Error::Conflict { kind: kind.clone() }
                }
                (_, Some((_, Meaning::Invalid(field, reason)))) => {
                    return Error::validation(*field, *reason)
                }
                (_, Some((_, Meaning::Missing(entity)))) => {
                    return Error::NotFound {
                        entity,
                        key: "referenced by this row".into(),
                    }
                }
                (DatabaseErrorKind::ReadOnlyTransaction, _) => {
                    return Error::ReadOnly {
                        message: info.message().to_owned(),
                    }
                }
                (DatabaseErrorKind::UniqueViolation, None) => {
                    return Error::Conflict {
                        kind: ConflictKind::Duplicate {
                            constraint: info.constraint_name().unwrap_or("unknown").to_owned(),
                        },
                    }
                }
                // SQLSTATE 22023 for a time zone name the server's time zone database
                // does not have: the name was checked before the query
                // (`TaskRepo::stats_in_time_zone`), so only a server with older tzdata
                // than the crate gets here. Fixed server text, as below.
                (DatabaseErrorKind::Unknown, None) if is_unknown_time_zone(info.message()) => {
                    return Error::validation(
                        "time_zone",
                        "is not in the database server's time zone database",
                    )
                }
                // SQLSTATE 57014 carries no kind of its own in diesel; the message is fixed
                // server text (lc_messages is English on the servers we support).
                (DatabaseErrorKind::Unknown, None)
                    if info.message().contains("statement timeout") =>
                {
                    return Error::StatementTimeout
                }
                _ => {}
            }
        }
        Error::Database(err)
    }
}

impl From<r2d2::Error> for Error {
    /// A checkout (`pool.get()?`) that timed out. r2d2's error holds neither the pool's
    /// size nor its timeout; a pool built by the crate notes both on the calling thread
    /// as the checkout times out, and the conversion takes them from there. (An error
    /// converted on another thread, or from a pool built elsewhere, gives 0 for both.)
    fn from(err: r2d2::Error) -> Self {
        let (max_size, timeout) = take_pool_timeout().unwrap_or((0, Duration::ZERO));
        Error::PoolTimeout {
            max_size,
            timeout,
            last_error: last_connection_error(&err.to_string(), None),
        }
    }
}

/// The last connection error of an r2d2 error message (`timed out waiting for
/// connection: <last error>`), with the secrets of `info` (and anything that looks like
/// a password) removed.
pub(crate) fn last_connection_error(
    r2d2_message: &str,
    info: Option<&crate::conninfo::Conninfo>,
) -> Option<String> {
    r2d2_message
        .split_once(": ")
        .map(|(_, last)| crate::conninfo::scrub(last.trim(), info))
}

thread_local! {
    /// The size and timeout of the pool whose checkout last timed out on this thread,
    /// until the checkout's error is converted.
    static POOL_TIMEOUT: std::cell::Cell<Option<(u32, Duration)>> =
        const { std::cell::Cell::new(None) };
}

/// Notes, on the calling thread, that a checkout of a pool of `max_size` connections
/// timed out after `timeout` (called by the pool as it gives up).
pub(crate) fn note_pool_timeout(max_size: u32, timeout: Duration) {
    POOL_TIMEOUT.with(|slot| slot.set(Some((max_size, timeout))));
}

/// What [`note_pool_timeout`] noted last on this thread, once.
pub(crate) fn take_pool_timeout() -> Option<(u32, Duration)> {
    POOL_TIMEOUT.with(std::cell::Cell::take)
}
