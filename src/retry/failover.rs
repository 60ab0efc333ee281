//! The failures a failover causes, and how the retry loop tells them: they are retried
//! for as long as [`RetryPolicy::failover_budget`](super::RetryPolicy::failover_budget)
//! allows, counted in time rather than in attempts.
//!
//! While a cluster replaces its primary, every attempt fails in one of a few ways: the
//! connection is lost (the old primary crashed, or shut down: SQLSTATE 57P01), the
//! server refuses new sessions (57P03, "the database system is shutting down / starting
//! up / in recovery mode"), a connection reaches a node that is a standby now and
//! refuses the write (25006), or the pool cannot open a connection at all while no node
//! is primary yet (a `PoolTimeout` with room in the pool). None of these ran anything
//! of the transaction's, and each ends once a new primary is up, in seconds to tens of
//! seconds; so each is retried, on a fresh connection, until the budget is spent.

use super::attempt::Stage;
use crate::error::{Error, Result};

/// What the connection, or the pool, showed after an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sign {
    /// Nothing beyond the error itself.
    None,
    /// The server refused a write as read-only, and asked, said it is a standby or
    /// read-only by default: not the primary (any more).
    NotPrimary,
    /// No connection could be had, and the pool has room for more: it could not open
    /// one (the server is down or refusing), rather than all being in use.
    NoConnection,
    /// The attempt failed with a lost connection, but its own connection is alive: the
    /// connection lost was another's (a `retry_transaction` nested in the closure,
    /// whose outcome may be unknown), so running the attempt again is never safe.
    LostElsewhere,
}

/// One attempt of the retry loop: its result, how far it got, and what was seen.
pub(super) struct Tried<T> {
    pub(super) result: Result<T>,
    pub(super) stage: Stage,
    pub(super) sign: Sign,
}

impl<T> From<(Result<T>, Stage)> for Tried<T> {
    fn from((result, stage): (Result<T>, Stage)) -> Self {
        Tried {
            result,
            stage,
            sign: Sign::None,
        }
    }
}

/// Whether `err`, at `stage`, is a failure of a failover, which a fresh connection
/// (`fresh_connections`) may not meet again once a new primary is up: a lost
/// connection before `COMMIT` was sent (57P01-57P03 included), a write refused by a
/// server that is no longer the primary, or no connection while the pool could not
/// open one. A `COMMIT` whose fate is unknown is not one of them.
pub(super) fn is_failover(err: &Error, stage: Stage, sign: Sign, fresh_connections: bool) -> bool {
    if !fresh_connections {
        return false;
    }
    match stage {
        // A COMMIT lost on its way is a failover's too when every write of the attempt
        // recognises its own earlier commit.
        Stage::Begin | Stage::Body | Stage::CommitOfExactlyOnce => {
            err.is_connection_lost()
                || (sign == Sign::NotPrimary && matches!(err, Error::ReadOnly { .. }))
                || (sign == Sign::NoConnection && matches!(err, Error::PoolTimeout { .. }))
        }
        Stage::Commit | Stage::Nested | Stage::Diverged => false,
    }
}

/// Whether a checkout that timed out failed for a reason no failover ends: the last
/// connection error (libpq's, or the server's refusal of the session) says the
/// password, the user, the database or the connection's settings are wrong, for every
/// host libpq tried (during a failover one host may refuse for good, a node left
/// without the database, while another is merely not primary yet). Names in the
/// message (hosts, users, databases, in double quotes) are not read.
///
/// Everything else (refused, reset, timed out, "the database system is starting up",
/// a standby where `target_session_attrs` wants a primary, too many clients, or no
/// error noted) is what a failover looks like from a client, and is retried. The retry
/// loop gives up only when checkouts in a row are refused for good (see
/// `attempt::REFUSALS_FOR_GOOD`).
pub(super) fn is_refused_for_good(err: &Error) -> bool {
    /// Fragments of libpq's and the server's messages for a connection that no
    /// waiting will let in (PostgreSQL 15's English texts, lower case).
    const FOR_GOOD: &[&str] = &[
        "authentication failed",       // password, SCRAM, ident, peer, ...
        "no password supplied",        // fe_sendauth
        "does not exist",              // database, role
        "no pg_hba.conf entry",        // the server does not let this client in
        "permission denied",           // CONNECT privilege
        "is not permitted to log in",  // NOLOGIN role
        "certificate",                 // TLS certificate verification
        "invalid connection option",   // a bad key in the conninfo
        "invalid sslmode",             // a bad value
        "server does not support ssl", // sslmode=require against a plain server
    ];
    let Error::PoolTimeout {
        last_error: Some(last),
        ..
    } = err
    else {
        return false;
    };
    let last = last.to_ascii_lowercase();
    // libpq reports each host it tried, each part starting so.
    let mut hosts = last
        .split("connection to server")
        .filter(|part| !part.trim().is_empty())
        .peekable();
    hosts.peek().is_some()
        && hosts.all(|part| {
            let unquoted: String = part.split('"').step_by(2).collect();
            FOR_GOOD.iter().any(|fragment| unquoted.contains(fragment))
        })
}

/// What `conn` shows after an attempt that ended with `result`: after a write refused
/// as read-only, whether its server is still a writable primary (asked in one round
/// trip; the crate's pool then retires the connection, see
/// [`crate::pool::retire_if_not_primary`]).
pub(super) fn sign_of<T>(conn: &mut diesel::PgConnection, result: &Result<T>) -> Sign {
    match result {
        Err(Error::ReadOnly { .. }) if crate::pool::retire_if_not_primary(conn) => Sign::NotPrimary,
        Err(err) if err.is_connection_lost() && !crate::pool::has_lost_server(conn) => {
            Sign::LostElsewhere
        }
        _ => Sign::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn timed_out(last: &str) -> Error {
        Error::PoolTimeout {
            max_size: 4,
            timeout: Duration::from_secs(5),
            last_error: Some(last.into()),
        }
    }

    #[test]
    fn only_refusals_no_failover_ends_are_for_good() {
        for last in [
            "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  password authentication failed for user \"app\"",
            "FATAL:  database \"nope\" does not exist",
            "FATAL:  role \"ghost\" does not exist",
            "FATAL:  no pg_hba.conf entry for host \"10.0.0.1\", user \"app\", database \"app\", no encryption",
            "fe_sendauth: no password supplied",
            "FATAL:  permission denied for database \"app\"",
            "FATAL:  role \"app\" is not permitted to log in",
            "SSL error: certificate verify failed",
            "server does not support SSL, but SSL was required",
            "connection to server at \"h1\" (10.0.0.1), port 5432 failed: FATAL:  database \"app\" does not exist\nconnection to server at \"h2\" (10.0.0.2), port 5432 failed: FATAL:  password authentication failed for user \"app\"",
        ] {
            assert!(is_refused_for_good(&timed_out(last)), "{last}");
        }
        for last in [
            "connection to server at \"127.0.0.1\", port 5432 failed: Connection refused",
            "FATAL:  the database system is starting up",
            "FATAL:  the database system is shutting down",
            "FATAL:  the database system is in recovery mode",
            "connection to server at \"127.0.0.1\", port 5433 failed: session is read-only",
            "connection to server at \"127.0.0.1\", port 5433 failed: server is in hot standby mode",
            "FATAL:  sorry, too many clients already",
            "server closed the connection unexpectedly",
            "timeout expired",
            // One host refusing for good while another is not primary yet: a failover.
            "connection to server at \"h1\" (10.0.0.1), port 5432 failed: FATAL:  database \"app\" does not exist\nconnection to server at \"h2\" (10.0.0.2), port 5432 failed: session is read-only",
            // Names are not read.
            "connection to server at \"pg-certificate-store\" (10.0.0.1), port 5432 failed: Connection refused",
            "FATAL:  the database system is starting up (user \"permission denied\")",
        ] {
            assert!(!is_refused_for_good(&timed_out(last)), "{last}");
        }
        let no_error_noted = Error::PoolTimeout {
            max_size: 4,
            timeout: Duration::from_secs(5),
            last_error: None,
        };
        assert!(!is_refused_for_good(&no_error_noted));
        assert!(!is_refused_for_good(&Error::ReadOnly {
            message: "cannot execute INSERT in a read-only transaction".into()
        }));
    }
}
