//! The crate's error type, and the one place where database errors are mapped to it.
//!
//! A caller never has to inspect a raw database error for something it could have
//! avoided: unique violations become [`Error::Conflict`], a missing parent row becomes
//! [`Error::NotFound`], a CHECK constraint becomes [`Error::Validation`].
//!
//! ## A failed write inside your own transaction aborts it
//!
//! That is PostgreSQL's rule: after any statement fails (a `Conflict`, say, from a unique
//! violation), every later statement of that transaction fails with "current transaction
//! is aborted" until `ROLLBACK`, or `ROLLBACK TO SAVEPOINT` to a savepoint taken before
//! it. A repo call that fails on the server inside `conn.transaction(|conn| ..)` (a
//! `Conflict`, the `NotFound` of `TaskRepo::create` for a missing user, which is a
//! foreign-key violation, a `StatementTimeout`, any `Database` error) therefore ends that
//! transaction's useful life. Errors the crate finds before sending anything leave it
//! intact: bad input (`Validation`), and a `NotFound` from a read, update or delete that
//! matched no row. To carry on after a write that may fail, run it in a nested
//! `conn.transaction(..)`, which diesel makes a savepoint and rolls back to on error, as
//! `create_many` does inside a caller's transaction:
//!
//! ```rust,no_run
//! use diesel::Connection;
//! use todo_store::{Error, NewUser, UserRepo};
//!
//! # fn main() -> todo_store::Result<()> {
//! # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
//! # let mut pooled = pool.get()?;
//! # let conn: &mut todo_store::PgConnection = &mut pooled;
//! conn.transaction::<_, Error, _>(|conn| {
//!     let new = NewUser::new("ada@example.com", "Ada");
//!     // A savepoint: a conflict rolls back to it, and the outer transaction goes on.
//!     let user = match conn.transaction(|conn| UserRepo::create(conn, &new)) {
//!         Ok(user) => user,
//!         Err(e) if e.is_conflict() => UserRepo::find_by_email(conn, &new.email)?.expect("taken"),
//!         Err(e) => return Err(e),
//!     };
//!     println!("{}", user.id);
//!     Ok(())
//! })?;
//! # Ok(())
//! # }
//! ```
//!
//! ## A lost connection's write may apply after the error
//!
//! When the connection drops while a statement is on its way or running (a reset, a
//! network fault), the server goes on with what it received until it notices the client
//! is gone, which it does only when it next talks to it: the statement may commit after
//! the caller got the error ([`Error::is_connection_lost`]), and even after another
//! connection read the old row. A read settles the outcome only once the server is done
//! with the old connection: within milliseconds usually, within the statement timeout
//! (30 s by default) at worst. `retry::retry_transaction` is not affected (a transaction
//! whose `COMMIT` was not sent never commits).

// This module holds `Error`, `ConflictKind` and the questions a caller asks of an
// error (`is_*`). The rest has a file each: `detail` is the message-and-source of a
// configuration or migration error; `database` maps diesel's errors (the constraint
// table, lost connections); `pool_timeout` turns a timed-out checkout into
// `Error::PoolTimeout`.
mod database;
mod detail;
mod pool_timeout;

// Hidden: one test of this crate (tests/integration/migrations.rs) checks that every
// constraint the mapping names exists in the schema; `pub` only so it can reach the
// table. Not an API.
#[doc(hidden)]
pub use database::constraint_names;
use database::is_protocol_limit;
pub(crate) use database::{is_lost_connection, is_read_only_refusal, is_server_leaving};
pub use detail::Detail;
use pool_timeout::pool_timeout_message;
pub(crate) use pool_timeout::{last_connection_error, note_pool_timeout, take_pool_timeout};

use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a repository call, the pool or the migrations can fail with.
///
/// Messages never contain a database password.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The row does not exist, or belongs to another user (the two are indistinguishable).
    NotFound {
        /// What was looked for: `"user"`, `"task"`, `"session"`, `"habit"`, or
        /// `"migration"` (a version given to [`crate::migrate::revert_to`] that neither
        /// the binary embeds nor the database lists).
        entity: &'static str,
        /// The id (or other key) that was looked for.
        key: String,
    },

    /// The write conflicts with the current state of the database; nothing was changed.
    Conflict {
        /// Which conflict: the email is taken, the version is stale, ...
        kind: ConflictKind,
    },

    /// An input broke a rule; nothing was written.
    Validation {
        /// The offending field, e.g. `title`, or `tasks[3].title` in a batch.
        field: String,
        /// Why it was rejected.
        reason: String,
    },

    /// No pooled connection became free within the pool's connection timeout.
    PoolTimeout {
        /// The pool's maximum number of connections (0 when unknown: a bare `r2d2::Error`).
        max_size: u32,
        /// How long the checkout waited (zero when unknown).
        timeout: Duration,
        /// The last error seen while opening a connection, if any (password removed).
        last_error: Option<String>,
    },

    /// The server cancelled the statement because it ran longer than `statement_timeout`.
    StatementTimeout,

    /// A connection to the server could not be opened.
    Connection {
        /// Where it tried to connect (the URL with its password removed).
        target: String,
        /// What went wrong (password removed).
        message: String,
    },

    /// Any other database error. Its message includes the server's (or diesel's); its
    /// source is what lies under that, so an error reporter prints each text once.
    Database(DieselError),

    /// Running or reverting the embedded migrations failed; the error underneath
    /// (diesel's or the migration's SQL) is the source.
    Migration(Detail),

    /// The configuration is missing or malformed; what could not be parsed, if
    /// anything, is the source.
    Config(Detail),

    /// A write was sent to a read-only connection (a hot-standby replica, or a
    /// read-only transaction): send writes to the primary
    /// ([`crate::replica::ReplicaRouter::write`]).
    ReadOnly {
        /// The server's message.
        message: String,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NotFound { entity, key } => write!(f, "{entity} {key} not found"),
            Error::Conflict { kind } => write!(f, "conflict: {kind}"),
            Error::Validation { field, reason } => write!(f, "invalid {field}: {reason}"),
            Error::PoolTimeout {
                max_size,
                timeout,
                last_error,
            } => f.write_str(&pool_timeout_message(
                *max_size,
                *timeout,
                last_error.as_deref(),
            )),
            Error::StatementTimeout => f.write_str(
                "the statement ran longer than the statement timeout and was cancelled: \
                 make the query cheaper or raise DATABASE_STATEMENT_TIMEOUT_MS",
            ),
            Error::Connection { target, message } => {
                write!(f, "could not connect to {target}: {message}")
            }
            Error::Database(err) => write!(f, "database error: {err}"),
            Error::Migration(detail) => write!(f, "migration failed: {detail}"),
            Error::Config(detail) => write!(f, "configuration error: {detail}"),
            Error::ReadOnly { message } => write!(
                f,
                "the connection is read-only (a replica?): send writes to the primary: {message}"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Its text is in this one's message: the chain goes on below it.
            Error::Database(err) => std::error::Error::source(err),
            Error::Migration(detail) | Error::Config(detail) => detail.source(),
            _ => None,
        }
    }
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
    /// A row with this id already exists with other content, or belongs to another
    /// user (nothing more is told of it): a create given an id already used for
    /// something else. A create repeated with the same input (a retry whose first
    /// attempt committed) is not a conflict: it returns the row.
    #[error("a {entity} with this id already exists with other content: build a new input for a new {entity}")]
    IdInUse {
        /// What the id names: `"task"`, `"user"`, `"habit"` or `"session"`.
        entity: &'static str,
    },
    /// Another unique constraint was violated.
    #[error("a row with the same {constraint} already exists")]
    Duplicate {
        /// The name of the violated constraint.
        constraint: String,
    },
}

impl Error {
    /// A [`Error::Validation`] for `field`.
    pub fn validation(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Validation {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A [`Error::Conflict`] with [`ConflictKind::IdInUse`] for `entity`.
    pub(crate) fn id_in_use(entity: &'static str) -> Self {
        Error::Conflict {
            kind: ConflictKind::IdInUse { entity },
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// Every line an error-chain reporter prints: the error, then each source.
    fn chain(err: &Error) -> Vec<String> {
        let mut lines = vec![err.to_string()];
        let mut source = err.source();
        while let Some(e) = source {
            lines.push(e.to_string());
            source = e.source();
        }
        lines
    }

    #[test]
    fn a_database_error_says_its_servers_text_once() {
        let err = Error::from(DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("division by zero".to_owned()),
        ));
        assert_eq!(chain(&err), ["database error: division by zero"]);
        // diesel's own text includes what it wraps: said once too.
        let parse = "x".parse::<i32>().unwrap_err();
        let err = Error::Database(DieselError::DeserializationError(Box::new(parse)));
        assert_eq!(
            chain(&err),
            ["database error: invalid digit found in string"]
        );
    }

    #[test]
    fn config_and_migration_errors_keep_their_source() {
        let parse = "many".parse::<u32>().unwrap_err();
        let err = Error::Config(Detail::with_source(
            "DATABASE_POOL_SIZE=\"many\" is not a number",
            parse,
        ));
        assert_eq!(
            chain(&err),
            [
                "configuration error: DATABASE_POOL_SIZE=\"many\" is not a number",
                "invalid digit found in string"
            ]
        );
        assert!(matches!(&err, Error::Config(m) if m.contains("DATABASE_POOL_SIZE")));
        let err = Error::Config("plain".into());
        assert_eq!(chain(&err), ["configuration error: plain"]);
        let lock = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("canceling statement".to_owned()),
        );
        let err = Error::Migration(Detail::with_source(
            "could not take the migration lock",
            lock,
        ));
        assert_eq!(
            chain(&err),
            [
                "migration failed: could not take the migration lock",
                "canceling statement"
            ]
        );
        let failed = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("relation \"users\" already exists".to_owned()),
        );
        let err = Error::Migration(Detail::from_error(failed));
        assert_eq!(
            chain(&err),
            ["migration failed: relation \"users\" already exists"]
        );
        assert!(matches!(&err, Error::Migration(d) if d.error().is_some()));
    }
}
