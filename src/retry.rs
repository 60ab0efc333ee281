//! Running a transaction again after a transient failure, with bounded exponential
//! backoff and jitter.
//!
//! Some failures say nothing about the transaction itself, only about its timing: the
//! server aborted it to keep `SERIALIZABLE` serializable (SQLSTATE 40001) or to break a
//! deadlock (40P01), or the connection had died before the work reached the server.
//! Running the same transaction again, from the start, is then both safe and likely to
//! succeed. [`retry_transaction`] does exactly that, and nothing more:
//!
//! ```no_run
//! use todo_store::retry::{retry_transaction, RetryPolicy};
//! use todo_store::{TaskPatch, TaskRepo};
//! # fn main() -> todo_store::Result<()> {
//! # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
//! # let (user_id, a, b) = (uuid::Uuid::nil(), uuid::Uuid::nil(), uuid::Uuid::nil());
//! // Move "urgent" from task a to task b, atomically; retried if it deadlocks with a
//! // transaction that locks the two tasks in the other order.
//! retry_transaction(&pool, &RetryPolicy::default(), |conn| {
//!     let retitle = |title: String| TaskPatch { title: Some(title), ..Default::default() };
//!     let from = TaskRepo::get(conn, user_id, a)?;
//!     TaskRepo::update(conn, user_id, a, &retitle(from.title.replace(" (urgent)", "")))?;
//!     let to = TaskRepo::get(conn, user_id, b)?;
//!     TaskRepo::update(conn, user_id, b, &retitle(format!("{} (urgent)", to.title)))?;
//!     Ok(())
//! })?;
//! # Ok(())
//! # }
//! ```
//!
//! ## When it retries
//!
//! The closure runs in a transaction (`BEGIN` ... `COMMIT`); on failure the transaction
//! is rolled back, the thread sleeps (see [`RetryPolicy`]) and everything runs again,
//! closure included, at most [`RetryPolicy::max_attempts`] times in all. It retries:
//!
//! - a serialization failure or a deadlock ([`Error::is_serialization_failure`],
//!   [`Error::is_deadlock`]), wherever it happens, `COMMIT` included: the server
//!   reports them only for a transaction it did not commit;
//! - a lost connection ([`Error::is_connection_lost`]) **before `COMMIT` was sent**: at
//!   `BEGIN`, or while the closure ran. PostgreSQL commits nothing of a transaction whose
//!   connection goes away before `COMMIT`, so nothing of the attempt remains. The next
//!   attempt runs on a fresh connection, which only a pool can give: with a single
//!   connection, a lost connection is returned as the error;
//! - at `COMMIT`, a connection lost before `COMMIT` could be sent
//!   ([`Error::is_connection_lost_before_send`]).
//!
//! It never retries a failure whose outcome is unknown, a connection lost **while
//! `COMMIT` was on its way** (the transaction may have committed: the caller must
//! check, e.g. by reading the rows back), nor anything else: validation errors,
//! conflicts (an [`crate::ConflictKind::StaleVersion`] needs a decision the caller
//! makes), not-found, statement timeouts, pool timeouts (the checkout already waited
//! for the pool's connection timeout).
//!
//! The closure may run several times: keep side effects other than the database's
//! (emails, messages) out of it, or make them idempotent.
//!
//! ## Inside a caller's transaction
//!
//! Given a connection that is already in a transaction, the closure runs once, in a
//! savepoint, and is never retried: a serialization failure or a deadlock dooms the
//! whole outer transaction, so only its owner can run it again. (The isolation level
//! is then the outer transaction's.)

use std::hash::{BuildHasher, Hash, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::result::Error as DieselError;
use diesel::{Connection, PgConnection};

use crate::error::{Error, Result};

/// How many times [`retry_transaction`] runs a transaction, and how long it waits in
/// between.
///
/// The wait before retry `n` (1 for the first retry) is drawn uniformly from
/// `[c / 2, c]`, where `c = min(max_delay, base_delay * 2^(n-1))` ("equal jitter"):
/// it grows exponentially, never exceeds `max_delay`, and the random part keeps
/// transactions that failed together from retrying in lockstep. With the defaults
/// (5 attempts, 20 ms, 1 s) a transaction that keeps failing gives up after at most
/// 20 + 40 + 80 + 160 ms = 300 ms of waiting.
///
/// ```
/// use std::time::Duration;
/// use todo_store::retry::RetryPolicy;
///
/// let policy = RetryPolicy { max_attempts: 10, ..RetryPolicy::default() };
/// assert_eq!(policy.backoff_ceiling(1), Duration::from_millis(20));
/// assert_eq!(policy.backoff_ceiling(3), Duration::from_millis(80));
/// assert_eq!(policy.backoff_ceiling(9), Duration::from_secs(1)); // capped
/// let wait = policy.backoff(3);
/// assert!(wait >= Duration::from_millis(40) && wait <= Duration::from_millis(80));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 counts as 1: the transaction always runs
    /// once).
    pub max_attempts: u32,
    /// The ceiling of the first wait; each further retry doubles it.
    pub base_delay: Duration,
    /// No wait is longer than this.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, waits from 20 ms doubling up to at most 1 s.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub const fn no_retries() -> Self {
        RetryPolicy {
            max_attempts: 1,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }
    }

    /// The most [`RetryPolicy::backoff`] waits before retry `retry` (1 for the first
    /// retry): `min(max_delay, base_delay * 2^(retry-1))`; zero for `retry` 0.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        if retry == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(retry - 1).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max_delay)
    }

    /// The wait before retry `retry` (1 for the first retry): random, between half of
    /// [`RetryPolicy::backoff_ceiling`] and all of it.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.backoff_ceiling(retry);
        let floor = ceiling / 2;
        floor + (ceiling - floor).mul_f64(unit_random())
    }

    fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }
}

/// Where [`retry_transaction`] gets its connection: an r2d2 pool of `PgConnection`s,
/// the crate's [`PgPool`](crate::PgPool) or your own (`&pool`: a connection per
/// attempt, so a lost connection can be retried on a fresh one), or one connection
/// (`&mut PgConnection`, `&mut` a pooled connection, or the connection of a
/// deadpool-diesel `interact` closure: every attempt on it, and a lost connection is
/// not retried). Sealed: implemented for these types only.
pub trait ConnectionSource: sealed::Sealed {
    /// Runs `attempt` on a connection; fails only when none can be had.
    #[doc(hidden)]
    fn with_connection<R>(&mut self, attempt: &mut dyn FnMut(&mut PgConnection) -> R) -> Result<R>;

    /// Whether each attempt gets a connection of its own.
    #[doc(hidden)]
    fn fresh_connection_per_attempt(&self) -> bool;
}

mod sealed {
    pub trait Sealed {}
    impl<M> Sealed for &r2d2::Pool<M> where M: r2d2::ManageConnection<Connection = diesel::PgConnection> {}
    impl Sealed for &mut diesel::PgConnection {}
    impl<M> Sealed for &mut r2d2::PooledConnection<M> where
        M: r2d2::ManageConnection<Connection = diesel::PgConnection>
    {
    }
}

/// Any r2d2 pool of `PgConnection`s: the crate's [`PgPool`](crate::PgPool), or one of your own (with
/// diesel's `ConnectionManager`, say).
impl<M> ConnectionSource for &r2d2::Pool<M>
where
    M: r2d2::ManageConnection<Connection = PgConnection>,
{
    fn with_connection<R>(&mut self, attempt: &mut dyn FnMut(&mut PgConnection) -> R) -> Result<R> {
        // A connection that failed with a lost-connection error is discarded when this
        // checkout is dropped (the crate's pool marks it; another pool pings it at the
        // next checkout), so the next attempt gets another.
        let mut conn = self.get().map_err(|e| {
            let _ = crate::error::take_pool_timeout();
            Error::PoolTimeout {
                max_size: self.max_size(),
                timeout: self.connection_timeout(),
                last_error: crate::error::last_connection_error(&e.to_string(), None),
            }
        })?;
        Ok(attempt(&mut conn))
    }

    fn fresh_connection_per_attempt(&self) -> bool {
        true
    }
}

impl ConnectionSource for &mut PgConnection {
    fn with_connection<R>(&mut self, attempt: &mut dyn FnMut(&mut PgConnection) -> R) -> Result<R> {
        Ok(attempt(self))
    }

    fn fresh_connection_per_attempt(&self) -> bool {
        false
    }
}

impl<M> ConnectionSource for &mut r2d2::PooledConnection<M>
where
    M: r2d2::ManageConnection<Connection = PgConnection>,
{
    fn with_connection<R>(&mut self, attempt: &mut dyn FnMut(&mut PgConnection) -> R) -> Result<R> {
        Ok(attempt(self))
    }

    fn fresh_connection_per_attempt(&self) -> bool {
        false
    }
}

/// Runs `f` in a transaction at the server's default isolation level (normally
/// `READ COMMITTED`), and runs it again after a transient failure, as the
/// [module docs](self) describe. Returns what the last attempt returned.
///
/// For `REPEATABLE READ`, make `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ` the
/// closure's first statement; for `SERIALIZABLE`, use [`retry_serializable`].
///
/// # Errors
/// The error of the last attempt: the first one that is not retried, or the last one
/// when all [`RetryPolicy::max_attempts`] failed. [`Error::PoolTimeout`] when no
/// connection could be checked out of the pool.
pub fn retry_transaction<S, T, F>(source: S, policy: &RetryPolicy, f: F) -> Result<T>
where
    S: ConnectionSource,
    F: FnMut(&mut PgConnection) -> Result<T>,
{
    run(source, policy, false, f)
}

/// As [`retry_transaction`], in a `SERIALIZABLE` transaction: the result is as if the
/// transactions that committed had run one at a time, and serialization failures
/// (expected under contention) are retried.
///
/// # Errors
/// As [`retry_transaction`].
pub fn retry_serializable<S, T, F>(source: S, policy: &RetryPolicy, f: F) -> Result<T>
where
    S: ConnectionSource,
    F: FnMut(&mut PgConnection) -> Result<T>,
{
    run(source, policy, true, f)
}

/// How far an attempt got before it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `BEGIN` failed: nothing of the transaction ran.
    Begin,
    /// The closure failed (or the rollback after it): `COMMIT` was never sent.
    Body,
    /// The closure succeeded and `COMMIT` failed.
    Commit,
    /// The connection was already in a transaction: the closure ran in a savepoint.
    Nested,
}

fn run<S, T, F>(mut source: S, policy: &RetryPolicy, serializable: bool, mut f: F) -> Result<T>
where
    S: ConnectionSource,
    F: FnMut(&mut PgConnection) -> Result<T>,
{
    let fresh_connections = source.fresh_connection_per_attempt();
    run_attempts(policy, fresh_connections, std::thread::sleep, || {
        source.with_connection(&mut |conn| attempt(conn, serializable, &mut f))
    })
}

/// The retry loop: `attempt` runs one attempt (an `Err` means no connection could be
/// had, which is not retried) and says how far it got; `sleep` waits.
fn run_attempts<T>(
    policy: &RetryPolicy,
    fresh_connections: bool,
    mut sleep: impl FnMut(Duration),
    mut attempt: impl FnMut() -> Result<(Result<T>, Stage)>,
) -> Result<T> {
    let mut retry = 0;
    loop {
        let (result, stage) = attempt()?;
        let err = match result {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        retry += 1;
        if retry >= policy.attempts() || !is_retryable(&err, stage, fresh_connections) {
            return Err(err);
        }
        sleep(policy.backoff(retry));
    }
}

/// One attempt: `f` in a transaction, and how far it got.
fn attempt<T, F>(conn: &mut PgConnection, serializable: bool, f: &mut F) -> (Result<T>, Stage)
where
    F: FnMut(&mut PgConnection) -> Result<T>,
{
    let mut stage = Stage::Begin;
    let mut builder = conn.build_transaction();
    if serializable {
        builder = builder.serializable();
    }
    let result = builder.run(|conn| {
        stage = Stage::Body;
        let result = f(conn);
        if result.is_ok() {
            stage = Stage::Commit;
        }
        result
    });
    match result {
        Err(Error::Database(DieselError::AlreadyInTransaction)) if stage == Stage::Begin => {
            (conn.transaction(|conn| f(conn)), Stage::Nested)
        }
        // Whether the connection was lost is the connection's to say, whatever the
        // closure's own statements made of the error.
        result => (crate::pool::settle(conn, result), stage),
    }
}

/// Whether an attempt that failed with `err` at `stage` may run again (see the
/// [module docs](self)).
fn is_retryable(err: &Error, stage: Stage, fresh_connections: bool) -> bool {
    let aborted_by_server = err.is_serialization_failure() || err.is_deadlock();
    match stage {
        Stage::Nested => false,
        // Nothing of the transaction ran; a lost connection needs another one.
        Stage::Begin => err.is_connection_lost() && fresh_connections,
        // COMMIT was never sent: a lost connection took the open transaction with it.
        Stage::Body => aborted_by_server || (err.is_connection_lost() && fresh_connections),
        // A server error on COMMIT means it did not commit; a connection lost while
        // COMMIT was on its way leaves the outcome unknown.
        Stage::Commit => {
            aborted_by_server || (err.is_connection_lost_before_send() && fresh_connections)
        }
    }
}

/// A number in `[0, 1)`, different on every call: std's randomly keyed hasher over the
/// clock and the thread. Good enough to spread retries; not for anything secret.
fn unit_random() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    std::thread::current().id().hash(&mut hasher);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::DatabaseErrorKind;

    fn db_error(kind: DatabaseErrorKind, message: &str) -> Error {
        Error::Database(DieselError::DatabaseError(
            kind,
            Box::new(message.to_owned()),
        ))
    }

    fn serialization_failure() -> Error {
        db_error(
            DatabaseErrorKind::SerializationFailure,
            "could not serialize access due to read/write dependencies among transactions",
        )
    }

    fn deadlock() -> Error {
        db_error(DatabaseErrorKind::Unknown, "deadlock detected")
    }

    fn closed() -> Error {
        db_error(
            DatabaseErrorKind::ClosedConnection,
            "server closed the connection unexpectedly",
        )
    }

    fn unsent() -> Error {
        db_error(
            DatabaseErrorKind::UnableToSendCommand,
            "no connection to the server\n",
        )
    }

    fn commit_lost_and_rollback_unsent() -> Error {
        Error::Database(DieselError::RollbackErrorOnCommit {
            rollback_error: Box::new(DieselError::DatabaseError(
                DatabaseErrorKind::UnableToSendCommand,
                Box::new("no connection to the server\n".to_owned()),
            )),
            commit_error: Box::new(DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection,
                Box::new("server closed the connection unexpectedly".to_owned()),
            )),
        })
    }

    #[test]
    fn retry_classifies_errors() {
        assert!(serialization_failure().is_serialization_failure());
        assert!(serialization_failure().is_transient());
        assert!(deadlock().is_deadlock() && deadlock().is_transient());
        assert!(closed().is_connection_lost());
        assert!(!closed().is_connection_lost_before_send() && !closed().is_transient());
        assert!(unsent().is_connection_lost() && unsent().is_connection_lost_before_send());
        assert!(unsent().is_transient());
        // Lost connections diesel does not tag as such (libpq 15 after a crash).
        for message in [
            "server closed the connection unexpectedly\n\tThis probably means ...",
            "terminating connection due to administrator command",
        ] {
            let lost = db_error(DatabaseErrorKind::Unknown, message);
            assert!(lost.is_connection_lost(), "{lost:?}");
            assert!(!lost.is_connection_lost_before_send() && !lost.is_transient());
        }
        let too_many_binds = db_error(
            DatabaseErrorKind::UnableToSendCommand,
            "number of parameters must be between 0 and 65535\n",
        );
        assert!(!too_many_binds.is_transient());
        // A COMMIT lost on its way is not made transient by its failed rollback.
        let commit = commit_lost_and_rollback_unsent();
        assert!(commit.is_connection_lost());
        assert!(!commit.is_connection_lost_before_send() && !commit.is_transient());
        for other in [
            Error::validation("title", "must not be blank"),
            Error::Conflict {
                kind: crate::ConflictKind::EmailTaken,
            },
            Error::not_found("task", 1),
            Error::StatementTimeout,
            Error::PoolTimeout {
                max_size: 1,
                timeout: Duration::from_secs(1),
                last_error: None,
            },
            db_error(DatabaseErrorKind::UniqueViolation, "duplicate key"),
            db_error(DatabaseErrorKind::Unknown, "syntax error"),
        ] {
            assert!(!other.is_transient(), "{other:?}");
            assert!(!other.is_connection_lost(), "{other:?}");
            assert!(!other.is_deadlock() && !other.is_serialization_failure());
        }
    }

    #[test]
    fn retry_decides_by_error_and_stage() {
        use Stage::*;
        for stage in [Begin, Body, Commit, Nested] {
            let validation = Error::validation("title", "x");
            assert!(!is_retryable(&validation, stage, true), "{stage:?}");
        }
        assert!(is_retryable(&serialization_failure(), Body, false));
        assert!(is_retryable(&serialization_failure(), Commit, false));
        assert!(is_retryable(&deadlock(), Body, false));
        assert!(!is_retryable(&deadlock(), Nested, true));
        // Lost connections: only with a fresh connection to retry on, never when the
        // COMMIT may have reached the server.
        assert!(is_retryable(&closed(), Begin, true));
        assert!(!is_retryable(&closed(), Begin, false));
        assert!(is_retryable(&closed(), Body, true));
        assert!(!is_retryable(&closed(), Body, false));
        assert!(!is_retryable(&closed(), Commit, true));
        assert!(!is_retryable(
            &commit_lost_and_rollback_unsent(),
            Commit,
            true
        ));
        assert!(is_retryable(&unsent(), Commit, true));
        assert!(!is_retryable(&unsent(), Commit, false));
    }

    #[test]
    fn retry_backoff_grows_exponentially_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 100,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(300),
        };
        let ceilings: Vec<_> = (0..8).map(|n| policy.backoff_ceiling(n)).collect();
        let ms = Duration::from_millis;
        assert_eq!(
            ceilings,
            [
                ms(0),
                ms(10),
                ms(20),
                ms(40),
                ms(80),
                ms(160),
                ms(300),
                ms(300)
            ]
        );
        // No overflow however many retries.
        for retry in [31, 32, 33, 64, u32::MAX] {
            assert_eq!(policy.backoff_ceiling(retry), ms(300));
        }
        let huge = RetryPolicy {
            base_delay: Duration::MAX,
            max_delay: Duration::MAX,
            ..policy
        };
        assert_eq!(huge.backoff_ceiling(40), Duration::MAX);
        // A base above the cap is capped from the first retry on.
        let inverted = RetryPolicy {
            base_delay: ms(500),
            ..policy
        };
        assert_eq!(inverted.backoff_ceiling(1), ms(300));
    }

    #[test]
    fn retry_backoff_is_jittered_within_bounds() {
        let policy = RetryPolicy {
            max_attempts: 100,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(300),
        };
        for retry in 1..=12 {
            let ceiling = policy.backoff_ceiling(retry);
            let samples: Vec<_> = (0..200).map(|_| policy.backoff(retry)).collect();
            for wait in &samples {
                assert!(
                    *wait >= ceiling / 2 && *wait <= ceiling,
                    "retry {retry}: {wait:?} outside [{:?}, {ceiling:?}]",
                    ceiling / 2
                );
            }
            let distinct: std::collections::HashSet<_> = samples.iter().collect();
            assert!(
                distinct.len() > 150,
                "retry {retry}: little jitter: {distinct:?}"
            );
            // The jitter uses the whole range, not one end of it.
            let low = samples.iter().filter(|w| **w < ceiling * 3 / 4).count();
            assert!((40..=160).contains(&low), "retry {retry}: {low} of 200 low");
        }
        assert_eq!(RetryPolicy::no_retries().backoff(1), Duration::ZERO);
    }

    #[test]
    fn retry_stops_after_max_attempts_with_waits_within_bounds() {
        let policy = RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(4),
            max_delay: Duration::from_millis(20),
        };
        let mut waits = Vec::new();
        let mut attempts = 0;
        let result: Result<()> = run_attempts(
            &policy,
            true,
            |wait| waits.push(wait),
            || {
                attempts += 1;
                Ok((Err(serialization_failure()), Stage::Body))
            },
        );
        assert!(result.unwrap_err().is_serialization_failure());
        assert_eq!(attempts, 6);
        assert_eq!(waits.len(), 5);
        for (i, wait) in waits.iter().enumerate() {
            let ceiling = policy.backoff_ceiling(i as u32 + 1);
            assert!(*wait >= ceiling / 2 && *wait <= ceiling, "{i}: {wait:?}");
        }
        assert!(waits.iter().all(|w| *w <= policy.max_delay));
    }

    #[test]
    fn retry_returns_the_first_success_or_non_retryable_error() {
        let policy = RetryPolicy::default();
        let mut attempts = 0;
        let ok = run_attempts(
            &policy,
            true,
            |_| {},
            || {
                attempts += 1;
                Ok(match attempts {
                    1 => (Err(deadlock()), Stage::Body),
                    2 => (Err(closed()), Stage::Begin),
                    _ => (Ok(attempts), Stage::Commit),
                })
            },
        );
        assert_eq!(ok.unwrap(), 3);

        for (err, stage) in [
            (Error::validation("title", "x"), Stage::Body),
            (closed(), Stage::Commit),
            (deadlock(), Stage::Nested),
        ] {
            let mut attempts = 0;
            let result: Result<()> = run_attempts(
                &policy,
                true,
                |_| panic!("no wait without a retry"),
                || {
                    attempts += 1;
                    Ok((Err(clone(&err)), stage))
                },
            );
            assert!(result.is_err());
            assert_eq!(attempts, 1, "{err:?} at {stage:?}");
        }

        // No connection: returned at once.
        let mut attempts = 0;
        let result: Result<()> = run_attempts(
            &policy,
            true,
            |_| {},
            || {
                attempts += 1;
                Err(Error::PoolTimeout {
                    max_size: 1,
                    timeout: Duration::ZERO,
                    last_error: None,
                })
            },
        );
        assert!(matches!(result, Err(Error::PoolTimeout { .. })));
        assert_eq!(attempts, 1);

        // max_attempts 0 still runs once.
        let mut attempts = 0;
        let none = RetryPolicy {
            max_attempts: 0,
            ..policy
        };
        let result: Result<()> = run_attempts(
            &none,
            true,
            |_| {},
            || {
                attempts += 1;
                Ok((Err(deadlock()), Stage::Body))
            },
        );
        assert!(result.unwrap_err().is_deadlock());
        assert_eq!(attempts, 1);
    }

    /// The test errors again (Error is not Clone).
    fn clone(err: &Error) -> Error {
        match err {
            Error::Validation { field, reason } => Error::validation(field.clone(), reason.clone()),
            e if e.is_deadlock() => deadlock(),
            e if e.is_connection_lost() => closed(),
            other => panic!("cannot clone {other:?}"),
        }
    }
}
