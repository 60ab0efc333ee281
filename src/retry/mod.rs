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
//! # let nil = uuid::Uuid::nil();
//! # let (user_id, a, b): (todo_store::UserId, todo_store::TaskId, todo_store::TaskId) = (nil.into(), nil.into(), nil.into());
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
//! - at `COMMIT`, a connection lost **while `COMMIT` was on its way**, only when every
//!   write of the attempt was *exactly-once* (below): running it again returns what the
//!   first attempt committed, or writes it now if it did not.
//!
//! It never retries a blind attempt whose `COMMIT`'s outcome is unknown (the
//! transaction may have committed: the caller gets the lost connection and must check,
//! e.g. by reading the rows back), nor anything else: validation errors,
//! conflicts (an [`crate::ConflictKind::StaleVersion`] needs a decision the caller
//! makes), not-found, statement timeouts, pool timeouts (the checkout already waited
//! for the pool's connection timeout).
//!
//! The closure may run several times: keep side effects other than the database's
//! (emails, messages) out of it, or make them idempotent.
//!
//! ## Exactly-once writes, and a `COMMIT` of unknown outcome
//!
//! A connection can drop after the server received `COMMIT` and before its answer came
//! back (a failover, a restart, a network fault): the client cannot tell whether the
//! transaction committed. Running it again is safe only if each of its writes, run
//! again, recognises what it wrote the first time. These calls do:
//!
//! - [`TaskRepo::create`], [`TaskRepo::create_many`], [`UserRepo::create`],
//!   [`UserRepo::create_many`], [`HabitRepo::create`]: the input's id is fixed when it
//!   is built (`NewTask::new`, ...), so a repeat finds its own row (same id, owner and
//!   content) and returns it. **Build the input once, before the call**: an input built
//!   inside the closure has a new id on every attempt.
//!
//! An attempt is *blind* when any other statement ran in it: an update, a delete, a
//! check-in, a session call, any statement of your own (even a `SELECT`: it may call
//! a function that writes). The crate's own reads (`get`, `list`, `count`, ...) do not
//! make it blind. A blind attempt whose `COMMIT`'s outcome is unknown is not run again.
//!
//! How it knows: each connection of the crate's pools sees every statement it sends
//! (its instrumentation), and the exactly-once calls mark theirs. An attempt on a
//! connection without the crate's instrumentation (another pool's, without
//! [`crate::pool::setup_connection`], or one whose instrumentation was replaced) is
//! blind. A retry after an unknown outcome must write exactly the rows the attempt it
//! repeats wrote (the same ids); if it writes others (an input built in the closure, a
//! branch taken on what it read), it is rolled back and the caller gets the first
//! attempt's lost connection: the outcome stays unknown. So is it when no later
//! attempt succeeds.
//!
//! Not exactly-once, and why:
//!
//! - [`TaskRepo::update`] and [`HabitRepo::update`] with an expected version: a repeat
//!   finds the version moved on (`StaleVersion`) and cannot tell its own write from
//!   another writer's same change: a row keeps no mark of who wrote it.
//! - [`TaskRepo::set_completed`]: repeated, it would return the task done, but bump
//!   its version (and `updated_at`) a second time: the write would apply twice.
//! - deletes: a repeat answers `NotFound` for the row the first attempt deleted.
//! - [`SessionRepo::create`]: the session's token is made by the call, and only its
//!   hash is stored, so a repeat cannot give back the token of the first.
//!
//! [`TaskRepo::create`]: crate::TaskRepo::create
//! [`TaskRepo::create_many`]: crate::TaskRepo::create_many
//! [`TaskRepo::update`]: crate::TaskRepo::update
//! [`TaskRepo::set_completed`]: crate::TaskRepo::set_completed
//! [`UserRepo::create`]: crate::UserRepo::create
//! [`UserRepo::create_many`]: crate::UserRepo::create_many
//! [`HabitRepo::create`]: crate::HabitRepo::create
//! [`HabitRepo::update`]: crate::HabitRepo::update
//! [`SessionRepo::create`]: crate::SessionRepo::create
//!
//! ## Inside a caller's transaction
//!
//! Given a connection that is already in a transaction, the closure runs once, in a
//! savepoint, and is never retried: a serialization failure or a deadlock dooms the
//! whole outer transaction, so only its owner can run it again. (The isolation level
//! is then the outer transaction's.)
//!
//! [`Error::is_serialization_failure`]: crate::Error::is_serialization_failure
//! [`Error::is_deadlock`]: crate::Error::is_deadlock
//! [`Error::is_connection_lost`]: crate::Error::is_connection_lost
//! [`Error::is_connection_lost_before_send`]: crate::Error::is_connection_lost_before_send
//!
//! A statement whose connection dropped outside this helper may still apply after the
//! error: the [`crate::error`] docs, *A lost connection's write may apply after the
//! error*.

// This module holds the API and `RetryPolicy`; where the connection of each
// attempt comes from is `sources` (`ConnectionSource`), and the loop that runs the
// attempts and decides which failures to retry is `attempt`.
mod attempt;
mod ledger;
mod sources;

pub(crate) use ledger::{exactly_once, note_statement};

pub use sources::ConnectionSource;

use std::hash::{BuildHasher, Hash, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::PgConnection;

use crate::error::Result;

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
///
/// [`Error::PoolTimeout`]: crate::Error::PoolTimeout
pub fn retry_transaction<S, T, F>(source: S, policy: &RetryPolicy, f: F) -> Result<T>
where
    S: ConnectionSource,
    F: FnMut(&mut PgConnection) -> Result<T>,
{
    attempt::run(source, policy, false, f)
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
    attempt::run(source, policy, true, f)
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
}
