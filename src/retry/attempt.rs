//! The retry loop: one attempt is the closure in a transaction, and the stage an
//! attempt failed at (`BEGIN`, the closure, `COMMIT`) decides, with the error, whether
//! running it again is safe.

use std::time::{Duration, Instant};

use diesel::result::Error as DieselError;
use diesel::{Connection, PgConnection};

use super::failover::{self, Sign, Tried};
use super::ledger::{self, RowKey};
use super::{ConnectionSource, RetryPolicy};
use crate::error::{Error, Result};

/// How far an attempt got before it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// `BEGIN` failed: nothing of the transaction ran.
    Begin,
    /// The closure failed (or the rollback after it): `COMMIT` was never sent.
    Body,
    /// The closure succeeded and `COMMIT` failed.
    Commit,
    /// The connection was already in a transaction: the closure ran in a savepoint.
    Nested,
    /// The closure succeeded, each of its writes was exactly-once (see
    /// `retry::ledger`), and `COMMIT` failed: running it again recognises what it
    /// committed, whatever the outcome of the `COMMIT`.
    CommitOfExactlyOnce,
    /// A retry after a `COMMIT` of unknown outcome wrote other rows than the attempt it
    /// repeats: rolled back, and that outcome stays unknown.
    Diverged,
}

pub(super) fn run<S, T, F>(
    mut source: S,
    policy: &RetryPolicy,
    serializable: bool,
    mut f: F,
) -> Result<T>
where
    S: ConnectionSource,
    F: FnMut(&mut PgConnection) -> Result<T>,
{
    let fresh_connections = source.fresh_connection_per_attempt();
    let mut replay = None;
    let mut refusals = 0;
    run_attempts(policy, fresh_connections, std::thread::sleep, || {
        tried_on(
            &mut source,
            serializable,
            &mut f,
            &mut replay,
            &mut refusals,
        )
    })
}

/// Checkouts in a row refused for good ([`failover::is_refused_for_good`]) after which
/// the refusal is the answer: one may be a pooler's passing one (PgBouncer answers
/// `SASL authentication failed` while it cannot reach the server for its auth query).
const REFUSALS_FOR_GOOD: u32 = 2;

/// One attempt on a connection of `source`, with what was seen of the server: a
/// checkout that failed while the pool could not open connections is an attempt that
/// failed before `BEGIN`, unless it is the [`REFUSALS_FOR_GOOD`]th in a row refused
/// for good (counted in `refusals`).
fn tried_on<S, T, F>(
    source: &mut S,
    serializable: bool,
    f: &mut F,
    replay: &mut Option<Vec<RowKey>>,
    refusals: &mut u32,
) -> Result<Tried<T>>
where
    S: ConnectionSource,
    F: FnMut(&mut PgConnection) -> Result<T>,
{
    match source.with_connection(&mut |conn| {
        let (result, stage) = attempt(conn, serializable, f, replay);
        let sign = failover::sign_of(conn, &result);
        Tried {
            result,
            stage,
            sign,
        }
    }) {
        Err(err @ Error::PoolTimeout { .. }) if source.is_short_of_connections() => {
            *refusals = if failover::is_refused_for_good(&err) {
                *refusals + 1
            } else {
                0
            };
            if *refusals >= REFUSALS_FOR_GOOD {
                return Err(err);
            }
            Ok(Tried {
                result: Err(err),
                stage: Stage::Begin,
                sign: Sign::NoConnection,
            })
        }
        other => {
            *refusals = 0;
            other
        }
    }
}

/// The retry loop: `attempt` runs one attempt (an `Err` means no connection could be
/// had, which is not retried) and says how far it got; `sleep` waits. The failover
/// budget runs from now.
fn run_attempts<T, A: Into<Tried<T>>>(
    policy: &RetryPolicy,
    fresh_connections: bool,
    sleep: impl FnMut(Duration),
    attempt: impl FnMut() -> Result<A>,
) -> Result<T> {
    let started = Instant::now();
    run_attempts_timed(
        policy,
        fresh_connections,
        || started.elapsed(),
        sleep,
        attempt,
    )
}

/// [`run_attempts`] with the time since the call began from `elapsed`. Failures of a
/// failover ([`failover::is_failover`]) are retried while `elapsed` is within the
/// failover budget, any number of times; the others count against `max_attempts`.
/// Each kind has its own backoff, from `base_delay` up to `max_delay`.
fn run_attempts_timed<T, A: Into<Tried<T>>>(
    policy: &RetryPolicy,
    fresh_connections: bool,
    mut elapsed: impl FnMut() -> Duration,
    mut sleep: impl FnMut(Duration),
    mut attempt: impl FnMut() -> Result<A>,
) -> Result<T> {
    let mut retry = 0;
    let mut failover_retry = 0;
    let mut unknown = UnknownOutcome(None);
    loop {
        let Tried {
            result,
            stage,
            sign,
        } = attempt().map_err(|e| unknown.or(e))?.into();
        let err = match result {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        if sign == Sign::LostElsewhere {
            return Err(unknown.or(err));
        }
        if failover::is_failover(&err, stage, sign, fresh_connections) {
            if elapsed() >= policy.failover_budget {
                return Err(unknown.or(err));
            }
            failover_retry += 1;
            unknown.note(err, stage);
            sleep(policy.backoff(failover_retry));
            continue;
        }
        retry += 1;
        if retry >= policy.attempts() || !is_retryable(&err, stage, fresh_connections) {
            return Err(unknown.or(err));
        }
        unknown.note(err, stage);
        sleep(policy.backoff(retry));
    }
}

/// The first error of a `COMMIT` whose outcome is unknown that the loop retried (an
/// exactly-once attempt): while no attempt succeeds, it stays the caller's answer,
/// whatever later attempts fail with.
struct UnknownOutcome(Option<Error>);

impl UnknownOutcome {
    fn note(&mut self, err: Error, stage: Stage) {
        if stage == Stage::CommitOfExactlyOnce && err.is_connection_lost() && self.0.is_none() {
            self.0 = Some(err);
        }
    }

    fn or(&mut self, err: Error) -> Error {
        self.0.take().unwrap_or(err)
    }
}

/// One attempt: `f` in a transaction, and how far it got. `replay` holds the rows of an
/// earlier attempt whose `COMMIT`'s outcome is unknown: this one must write the same.
fn attempt<T, F>(
    conn: &mut PgConnection,
    serializable: bool,
    f: &mut F,
    replay: &mut Option<Vec<RowKey>>,
) -> (Result<T>, Stage)
where
    F: FnMut(&mut PgConnection) -> Result<T>,
{
    let watch = crate::pool::watch_attempt(conn);
    let ledger = ledger::Attempt::open(watch.is_some());
    let mut stage = Stage::Begin;
    let mut builder = conn.build_transaction();
    if serializable {
        builder = builder.serializable();
    }
    let result = builder.run(|conn| {
        stage = Stage::Body;
        let result = f(conn);
        if result.is_ok() {
            if !crate::pool::reported_every_statement(conn, watch) {
                ledger.mark_blind();
            }
            // A retry after an unknown outcome must write what the attempt it repeats
            // wrote, and nothing blind besides (a branch the first attempt never took).
            if replay
                .as_ref()
                .is_some_and(|rows| *rows != ledger.rows() || !ledger.is_exactly_once())
            {
                stage = Stage::Diverged;
                return Err(Error::Database(DieselError::RollbackTransaction));
            }
            stage = Stage::Commit;
        }
        result
    });
    match result {
        Err(Error::Database(DieselError::AlreadyInTransaction)) if stage == Stage::Begin => {
            crate::pool::end_watch(conn, watch);
            (conn.transaction(|conn| f(conn)), Stage::Nested)
        }
        // Whether the connection was lost is the connection's to say, whatever the
        // closure's own statements made of the error.
        result => {
            let result = crate::pool::settle(conn, result);
            let stage = commit_stage(conn, watch, &ledger, stage, &result, replay);
            crate::pool::end_watch(conn, watch);
            (result, stage)
        }
    }
}

/// `stage`, made [`Stage::CommitOfExactlyOnce`] for a failed `COMMIT` of an attempt
/// whose every write was exactly-once; when its outcome is unknown, its rows become
/// those every later attempt must write (`replay`).
fn commit_stage<T>(
    conn: &mut PgConnection,
    watch: Option<crate::pool::AttemptWatch>,
    ledger: &ledger::Attempt,
    stage: Stage,
    result: &Result<T>,
    replay: &mut Option<Vec<RowKey>>,
) -> Stage {
    let (Stage::Commit, Err(err)) = (stage, result) else {
        return stage;
    };
    if !crate::pool::reported_every_statement(conn, watch) {
        // A statement came from another thread, or the caller replaced the
        // connection's instrumentation: not every statement was seen.
        ledger.mark_blind();
    }
    if !ledger.is_exactly_once() {
        return stage;
    }
    if err.is_connection_lost() && replay.is_none() {
        *replay = Some(ledger.rows());
    }
    Stage::CommitOfExactlyOnce
}

/// Whether an attempt that failed with `err` at `stage` may run again (see the
/// [module docs](crate::retry)).
fn is_retryable(err: &Error, stage: Stage, fresh_connections: bool) -> bool {
    let aborted_by_server = err.is_serialization_failure() || err.is_deadlock();
    match stage {
        Stage::Nested | Stage::Diverged => false,
        // Every write recognises its own earlier commit: whether COMMIT committed or
        // not, running the attempt again is as safe as before COMMIT was sent.
        Stage::CommitOfExactlyOnce => is_retryable(err, Stage::Body, fresh_connections),
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
        for stage in [Begin, Body, Commit, Nested, CommitOfExactlyOnce, Diverged] {
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
        // Exactly-once writes: an unknown outcome is retried, on a fresh connection.
        assert!(is_retryable(&closed(), CommitOfExactlyOnce, true));
        assert!(is_retryable(
            &commit_lost_and_rollback_unsent(),
            CommitOfExactlyOnce,
            true
        ));
        assert!(!is_retryable(&closed(), CommitOfExactlyOnce, false));
        assert!(!is_retryable(&closed(), Diverged, true));
    }

    #[test]
    fn after_an_unknown_outcome_giving_up_reports_it() {
        let mut attempts = 0;
        let result: Result<()> = run_attempts(
            &RetryPolicy::default(),
            true,
            |_| {},
            || {
                attempts += 1;
                Ok(match attempts {
                    1 => (Err(closed()), Stage::CommitOfExactlyOnce),
                    _ => (Err(Error::validation("title", "x")), Stage::Body),
                })
            },
        );
        assert_eq!(attempts, 2);
        let err = result.unwrap_err();
        assert!(err.is_connection_lost(), "{err:?}");
    }

    #[test]
    fn retry_stops_after_max_attempts_with_waits_within_bounds() {
        let policy = RetryPolicy::default()
            .max_attempts(6)
            .base_delay(Duration::from_millis(4))
            .max_delay(Duration::from_millis(20));
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
            || -> Result<(Result<()>, Stage)> {
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

    fn read_only() -> Error {
        Error::from(DieselError::DatabaseError(
            DatabaseErrorKind::ReadOnlyTransaction,
            Box::new("cannot execute INSERT in a read-only transaction".to_owned()),
        ))
    }

    fn pool_timeout() -> Error {
        Error::PoolTimeout {
            max_size: 4,
            timeout: Duration::from_secs(1),
            last_error: Some("connection refused".to_owned()),
        }
    }

    #[test]
    fn a_connection_lost_elsewhere_is_never_retried() {
        // The closure returned a lost connection while its own connection is alive (a
        // nested retry_transaction's unknown outcome): retrying could apply that
        // other write twice.
        let policy = RetryPolicy::default().max_attempts(5);
        for stage in [Stage::Begin, Stage::Body, Stage::CommitOfExactlyOnce] {
            let mut attempts = 0;
            let err = run_without_clock(&policy, || {
                attempts += 1;
                Ok(tried::<()>(closed(), stage, Sign::LostElsewhere))
            })
            .unwrap_err();
            assert!(err.is_connection_lost());
            assert_eq!(attempts, 1, "{stage:?}");
        }
    }

    fn tried<T>(err: Error, stage: Stage, sign: Sign) -> Tried<T> {
        Tried {
            result: Err(err),
            stage,
            sign,
        }
    }

    /// The retry loop on fresh connections, with no time passing and no waits: the
    /// failover budget is never spent.
    fn run_without_clock<T, A: Into<Tried<T>>>(
        policy: &RetryPolicy,
        attempt: impl FnMut() -> Result<A>,
    ) -> Result<T> {
        run_attempts_timed(policy, true, || Duration::ZERO, |_| {}, attempt)
    }

    #[test]
    fn the_failures_of_a_failover_are_told_by_error_stage_and_sign() {
        use Sign::*;
        use Stage::*;
        // The server leaving: 57P01, 57P02, 57P03 end the session.
        for message in [
            "terminating connection due to administrator command",
            "terminating connection because of crash of another server process",
            "the database system is shutting down",
            "the database system is starting up",
            "the database system is in recovery mode",
        ] {
            let err = db_error(DatabaseErrorKind::Unknown, message);
            assert!(err.is_connection_lost(), "{message}");
            for stage in [Begin, Body] {
                assert!(failover::is_failover(&err, stage, None, true), "{message}");
                assert!(
                    !failover::is_failover(&err, stage, None, false),
                    "{message}"
                );
            }
            // Lost on its way, a COMMIT's outcome is unknown: not a failover's to retry.
            assert!(
                !failover::is_failover(&err, Commit, None, true),
                "{message}"
            );
            assert!(
                !failover::is_failover(&err, Nested, None, true),
                "{message}"
            );
        }
        // 25006: only from a server that says it is not the primary.
        assert!(matches!(read_only(), Error::ReadOnly { .. }));
        assert!(failover::is_failover(&read_only(), Body, NotPrimary, true));
        assert!(!failover::is_failover(&read_only(), Body, None, true));
        assert!(!failover::is_failover(
            &read_only(),
            Body,
            NotPrimary,
            false
        ));
        // No connection: only while the pool could not open one.
        assert!(failover::is_failover(
            &pool_timeout(),
            Begin,
            NoConnection,
            true
        ));
        assert!(!failover::is_failover(&pool_timeout(), Begin, None, true));
        // Nothing else is a failover's, whatever the sign.
        for sign in [None, NotPrimary, NoConnection] {
            for err in [
                serialization_failure(),
                deadlock(),
                Error::StatementTimeout,
                Error::validation("title", "x"),
                db_error(DatabaseErrorKind::UniqueViolation, "duplicate key"),
            ] {
                assert!(!failover::is_failover(&err, Body, sign, true), "{err:?}");
            }
        }
    }

    /// A clock that advances only by the waits, for the failover budget.
    struct FakeClock(std::cell::Cell<Duration>);

    #[test]
    fn failover_failures_are_retried_until_the_budget_is_spent_not_counted() {
        use Stage::*;
        let policy = RetryPolicy::default()
            .max_attempts(2)
            .base_delay(Duration::from_millis(100))
            .max_delay(Duration::from_secs(1))
            .failover_budget(Duration::from_secs(20));
        // Lost connections, standbys refusing writes and a pool that cannot connect, 15
        // times over 6 to 13 s of waiting (the jitter), then success: far beyond
        // max_attempts, within the budget.
        let clock = FakeClock(std::cell::Cell::new(Duration::ZERO));
        let mut attempts = 0;
        let result = run_attempts_timed(
            &policy,
            true,
            || clock.0.get(),
            |wait| {
                assert!(wait <= policy.max_delay);
                clock.0.set(clock.0.get() + wait);
            },
            || {
                attempts += 1;
                Ok(match attempts % 3 {
                    _ if attempts > 15 => Tried::from((Ok(attempts), Commit)),
                    0 => tried(closed(), Body, Sign::None),
                    1 => tried(read_only(), Body, Sign::NotPrimary),
                    _ => tried(pool_timeout(), Begin, Sign::NoConnection),
                })
            },
        );
        assert_eq!(result.unwrap(), 16);
        assert!(clock.0.get() < policy.failover_budget);

        // A failover that outlasts the budget: the last error, once the budget is spent.
        let clock = FakeClock(std::cell::Cell::new(Duration::ZERO));
        let mut attempts = 0;
        let err = run_attempts_timed(
            &policy,
            true,
            || clock.0.get(),
            |wait| clock.0.set(clock.0.get() + wait),
            || {
                attempts += 1;
                Ok(tried::<()>(pool_timeout(), Begin, Sign::NoConnection))
            },
        )
        .unwrap_err();
        assert!(matches!(err, Error::PoolTimeout { .. }), "{err:?}");
        let spent = clock.0.get();
        assert!(spent >= policy.failover_budget, "{spent:?}");
        assert!(
            spent < policy.failover_budget + policy.max_delay,
            "{spent:?}"
        );
        assert!(attempts > 10, "{attempts}");

        // Serialization failures still count against max_attempts meanwhile.
        let mut attempts = 0;
        let err = run_without_clock(&policy, || {
            attempts += 1;
            Ok(if attempts == 1 {
                tried::<()>(closed(), Begin, Sign::None)
            } else {
                tried(serialization_failure(), Body, Sign::None)
            })
        })
        .unwrap_err();
        assert!(err.is_serialization_failure());
        assert_eq!(attempts, 3, "one failover retry, then max_attempts (2)");

        // No budget: no failover retry; a caller's own read-only transaction: none.
        for (budget, sign) in [
            (Duration::ZERO, Sign::NotPrimary),
            (Duration::from_secs(20), Sign::None),
        ] {
            let mut attempts = 0;
            let err = run_without_clock(&policy.failover_budget(budget), || {
                attempts += 1;
                Ok(tried::<()>(read_only(), Body, sign))
            })
            .unwrap_err();
            assert!(matches!(err, Error::ReadOnly { .. }));
            assert_eq!(attempts, 1, "{budget:?} {sign:?}");
        }
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
