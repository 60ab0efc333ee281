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
//! closure included. It retries:
//!
//! - a serialization failure or a deadlock ([`Error::is_serialization_failure`],
//!   [`Error::is_deadlock`]), wherever it happens, `COMMIT` included: the server
//!   reports them only for a transaction it did not commit. At most
//!   [`RetryPolicy::max_attempts`] attempts in all;
//! - a lost connection ([`Error::is_connection_lost`]) **before `COMMIT` was sent**: at
//!   `BEGIN`, or while the closure ran. PostgreSQL commits nothing of a transaction whose
//!   connection goes away before `COMMIT`, so nothing of the attempt remains. The next
//!   attempt runs on a fresh connection, which only a pool can give: with a single
//!   connection, a lost connection is returned as the error. Retried within
//!   [`RetryPolicy::failover_budget`], as the other failures of a failover below;
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
//! makes), not-found, statement timeouts, a pool timeout while every connection of the
//! pool is in use (the pool is overloaded, not failing over: waiting again would only
//! add load).
//!
//! ## Through a failover
//!
//! While a cluster replaces its primary (Patroni, a managed service's failover), an
//! attempt fails in one of these ways, each of which ran nothing of the transaction
//! and ends when the new primary is up:
//!
//! - the connection is lost before `COMMIT` (the old primary crashed or was stopped;
//!   `terminating connection due to administrator command`, SQLSTATE 57P01; 57P02;
//!   57P03 `the database system is shutting down / starting up / in recovery mode`);
//! - a write is refused as read-only (SQLSTATE 25006, [`Error::ReadOnly`]) by a server
//!   that, asked at once (one round trip), says it is in recovery or read-only by
//!   default: a standby, the old primary demoted. The crate's pool retires that
//!   connection (see [`crate::pool`]), and the next attempt's new connection finds the
//!   primary through `target_session_attrs=read-write` (see *Several hosts* in
//!   [`crate::config`]). A write refused because the transaction itself was read-only
//!   (`SET TRANSACTION READ ONLY` in the closure) is not retried;
//! - no connection within the pool's connection timeout while the pool has fewer
//!   connections than its size: it could not open any (no node accepts, or none is
//!   primary yet; libpq's `could not connect`, SQLSTATE class 08), so
//!   [`Error::PoolTimeout`]. Not when the last connection error says, for every host
//!   tried, that no waiting will let the pool in (a wrong password, a missing database
//!   or role, no `pg_hba.conf` entry, a TLS certificate refused): that is returned
//!   once two checkouts in a row end so (one may be a pooler's passing refusal).
//!
//! These are retried, with the backoff of [`RetryPolicy`] (capped at `max_delay`),
//! any number of times while the call has run less than
//! [`RetryPolicy::failover_budget`] (45 s by default, sized for Patroni's defaults:
//! see [`RetryPolicy::DEFAULT_FAILOVER_BUDGET`]); then the last error is returned. A
//! call through a failover that ends within the budget returns what the transaction
//! returned, with nothing applied twice; a call never takes longer than the budget plus
//! `max_delay` plus one more attempt (whose checkout may wait the pool's connection
//! timeout). Only a pool gives each attempt a fresh connection: with a single
//! connection none of these is retried.
//!
//! A `COMMIT` lost on its way is retried only for an exactly-once attempt (below);
//! for a blind one its outcome stays unknown, and a failover can still report it
//! ([`Error::is_connection_lost`] without
//! [`Error::is_connection_lost_before_send`]).
//!
//! A pool that is not the crate's (diesel's own `r2d2::ConnectionManager`) does not
//! retire a connection to a standby: the next attempt may get the same connection
//! back, and the refused writes are retried until the budget is spent.
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
//!   [`UserRepo::create_many`], [`HabitRepo::create`], [`SessionRepo::create`]: the
//!   input's id is fixed when it is built (`NewTask::new`, ...), so a repeat finds its
//!   own row (same id, owner and content) and returns it. A `NewSession` also carries
//!   its token from when it is built, so a repeat returns the same token. **Build the
//!   input once, before the call**: an input built inside the closure has a new id on
//!   every attempt.
//! - [`TaskRepo::update`] with an expected version: the patch's
//!   [`write_id`](crate::TaskPatch::write_id) is fixed when the `TaskPatch` is built and
//!   stored in the task by the update (its write mark); a repeat that finds the task at
//!   exactly `expected_version + 1` with its own mark returns it (no other write came
//!   between: every write of a task bumps its version). **Build the patch once, before
//!   the call**, as an input above.
//! - [`TaskRepo::set_completed`]: it puts the task in a state and writes only when the
//!   task is not in it, so a repeat returns the task as the first attempt left it. (If
//!   another writer changed the state back in between, the repeat sets it again, as if
//!   the call had run once, after that writer.)
//! - [`HabitRepo::check_in`] and [`HabitRepo::undo_check_in`]: they too put a day in a
//!   state (checked in or not), so a repeat leaves it as the first attempt did; its
//!   `bool` then says `false` (nothing left to change).
//!
//! Each of these recognises its write only while no later write changed the row: an
//! attempt that writes the same task twice (a create then an update, two updates,
//! an update then `set_completed`) is not recognised by its repeat, which fails
//! (`IdInUse`, `StaleVersion`) instead of writing again; the caller then gets the first
//! attempt's lost connection, the outcome unknown. Write each task once per attempt.
//!
//! An attempt is *blind* when any other statement ran in it: an update without an
//! expected version, a habit's update, a delete, a session call other than `create`,
//! any statement of your own (even a `SELECT`: it may call a function that writes).
//! The crate's own reads (`get`, `list`, `count`, ...) do not make it blind. A blind attempt whose `COMMIT`'s outcome is unknown is not run again.
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
//! - [`TaskRepo::update`] without an expected version: last-writer-wins. Once another
//!   write followed its own, a repeat cannot tell whether its write was applied, and
//!   it would apply again over the other writer's.
//! - [`HabitRepo::update`]: habits keep no write mark; a repeat with an expected
//!   version finds the version moved on (`StaleVersion`) and cannot tell its own write
//!   from another writer's.
//! - [`TaskRepo::set_completed_many`]: it bumps the version of every listed task, in
//!   that state or not.
//! - deletes: a repeat answers `NotFound` for the row the first attempt deleted.
//! - the other session calls ([`SessionRepo::touch`], `revoke`, `revoke_all`): a repeat
//!   cannot tell its own write from another's.
//!
//! [`TaskRepo::create`]: crate::TaskRepo::create
//! [`TaskRepo::create_many`]: crate::TaskRepo::create_many
//! [`TaskRepo::update`]: crate::TaskRepo::update
//! [`TaskRepo::set_completed`]: crate::TaskRepo::set_completed
//! [`TaskRepo::set_completed_many`]: crate::TaskRepo::set_completed_many
//! [`UserRepo::create`]: crate::UserRepo::create
//! [`UserRepo::create_many`]: crate::UserRepo::create_many
//! [`HabitRepo::create`]: crate::HabitRepo::create
//! [`HabitRepo::update`]: crate::HabitRepo::update
//! [`HabitRepo::check_in`]: crate::HabitRepo::check_in
//! [`HabitRepo::undo_check_in`]: crate::HabitRepo::undo_check_in
//! [`SessionRepo::create`]: crate::SessionRepo::create
//! [`SessionRepo::touch`]: crate::SessionRepo::touch
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
//! [`Error::ReadOnly`]: crate::Error::ReadOnly
//! [`Error::PoolTimeout`]: crate::Error::PoolTimeout
//!
//! A statement whose connection dropped outside this helper may still apply after the
//! error: the [`crate::error`] docs, *A lost connection's write may apply after the
//! error*.

// This module holds the API and `RetryPolicy`; where the connection of each
// attempt comes from is `sources` (`ConnectionSource`), and the loop that runs the
// attempts and decides which failures to retry is `attempt`.
mod attempt;
mod failover;
mod ledger;
mod sources;

pub(crate) use ledger::{exactly_once, note_statement, RowKey};

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
/// The failures of a failover (see [*Through a failover*](self#through-a-failover)) are
/// bounded by time instead: they are retried, with the same backoff, for as long as
/// the call has run less than [`RetryPolicy::failover_budget`] (45 s by default).
///
/// Build one from the default with its setters (the fields can be read, and more may
/// be added):
///
/// ```
/// use std::time::Duration;
/// use todo_store::retry::RetryPolicy;
///
/// let policy = RetryPolicy::default().max_attempts(10);
/// assert_eq!(policy.backoff_ceiling(1), Duration::from_millis(20));
/// assert_eq!(policy.backoff_ceiling(3), Duration::from_millis(80));
/// assert_eq!(policy.backoff_ceiling(9), Duration::from_secs(1)); // capped
/// let wait = policy.backoff(3);
/// assert!(wait >= Duration::from_millis(40) && wait <= Duration::from_millis(80));
/// // A cluster with Patroni's default timings: a failover within 45 s is ridden through.
/// let patient = RetryPolicy::default().failover_budget(Duration::from_secs(45));
/// assert_eq!(patient.failover_budget, Duration::from_secs(45));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 counts as 1: the transaction always runs
    /// once), for the failures that are not a failover's (serialization failures,
    /// deadlocks).
    pub max_attempts: u32,
    /// The ceiling of the first wait; each further retry doubles it.
    pub base_delay: Duration,
    /// No wait is longer than this.
    pub max_delay: Duration,
    /// How long after the call began a failure of a failover is still retried (see
    /// [*Through a failover*](self#through-a-failover)); zero retries none.
    pub failover_budget: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, waits from 20 ms doubling up to at most 1 s, and a failover budget
    /// of [`RetryPolicy::DEFAULT_FAILOVER_BUDGET`].
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(1),
            failover_budget: Self::DEFAULT_FAILOVER_BUDGET,
        }
    }
}

impl RetryPolicy {
    /// The default [`RetryPolicy::failover_budget`]: 45 s, for Patroni's defaults
    /// (`ttl` 30 s, `loop_wait` 10 s). Measured on a three-node cluster with them
    /// (docs/failover.md in the repository): a crash of the primary's PostgreSQL is
    /// over in 3 to 11 s (its Patroni notices at its next loop and gives the leader
    /// key up), a planned switchover in about 3 s; the loss of the primary's whole node
    /// (its Patroni with it) lasts until the leader key expires, up to `ttl` after its
    /// last renewal: 23 s measured, about 31 s at worst. 45 s rides through that with
    /// room. A cluster with a low `ttl` needs less (10 s: a node lost in about 11 s),
    /// and a caller with a deadline of its own (an HTTP request's) may want less.
    pub const DEFAULT_FAILOVER_BUDGET: Duration = Duration::from_secs(45);

    /// One attempt, no retry (a failover budget of zero).
    pub const fn no_retries() -> Self {
        RetryPolicy {
            max_attempts: 1,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            failover_budget: Duration::ZERO,
        }
    }

    /// Sets [`RetryPolicy::max_attempts`].
    #[must_use]
    pub const fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets [`RetryPolicy::base_delay`].
    #[must_use]
    pub const fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// Sets [`RetryPolicy::max_delay`].
    #[must_use]
    pub const fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets [`RetryPolicy::failover_budget`].
    #[must_use]
    pub const fn failover_budget(mut self, budget: Duration) -> Self {
        self.failover_budget = budget;
        self
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
/// when all [`RetryPolicy::max_attempts`] failed or the
/// [`RetryPolicy::failover_budget`] was spent. [`Error::PoolTimeout`] when no
/// connection could be checked out of the pool (while it could open connections, at
/// once; else once the budget is spent).
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
        let policy = RetryPolicy::default()
            .max_attempts(100)
            .base_delay(Duration::from_millis(10))
            .max_delay(Duration::from_millis(300));
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
        let policy = RetryPolicy::default()
            .max_attempts(100)
            .base_delay(Duration::from_millis(10))
            .max_delay(Duration::from_millis(300));
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
