//! What a pool does, counted: [`PoolMetrics`] reads r2d2's state and the counters that
//! r2d2's events feed ([`PoolStats`]).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::PgPool;

/// A handle on a pool's counters; cheap to clone, readable from any thread.
#[derive(Clone)]
pub struct PoolMetrics {
    pub(super) pool: PgPool,
    pub(super) counters: Arc<Counters>,
}

impl std::fmt::Debug for PoolMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PoolMetrics")
            .field(&self.snapshot())
            .finish()
    }
}

/// The state and counters of a pool at one moment (counters since the pool was built).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Maximum connections.
    pub max_size: u32,
    /// Connections open now (in use or idle).
    pub connections: u32,
    /// Idle connections now.
    pub idle_connections: u32,
    /// Successful checkouts.
    pub checkouts: u64,
    /// Checkouts that waited 1 ms or more for a connection.
    pub waits: u64,
    /// Total time checkouts waited.
    pub wait_time: Duration,
    /// Longest wait of a checkout.
    pub max_wait: Duration,
    /// Checkouts that gave up ([`Error::PoolTimeout`](crate::Error::PoolTimeout)).
    pub timeouts: u64,
    /// Connections opened.
    pub connections_opened: u64,
    /// Connections closed (broken, or reaped).
    pub connections_closed: u64,
    /// Connections rolled back when they came back to the pool, because the caller
    /// may have left a transaction open with plain SQL (a `BEGIN` sent through
    /// `sql_query` or `batch_execute`, which diesel does not track); see
    /// [`PgConnectionManager`](super::PgConnectionManager).
    pub rolled_back_on_return: u64,
    /// Connections retired because their server is no longer a primary that takes
    /// writes, as after a failover: a write refused as read-only (SQLSTATE 25006) on a
    /// server that turned out to be a standby or read-only, or a session ended by a
    /// server shutting down, restarting after a crash or in recovery (57P01-57P03;
    /// `pg_terminate_backend` sends 57P01 too, and counts). Each is also in
    /// `connections_closed`. See the [`crate::pool`] docs.
    pub retired_not_primary: u64,
    /// Statements the pool's connections sent, the connections' own setup and checks
    /// included: each is one round trip to the server (a statement's first run on a
    /// connection also prepares it, in a trip of its own).
    pub statements: u64,
}

impl PoolMetrics {
    /// The pool's state and counters now.
    pub fn snapshot(&self) -> PoolStats {
        let state = self.pool.state();
        let c = &self.counters;
        PoolStats {
            max_size: self.pool.max_size(),
            connections: state.connections,
            idle_connections: state.idle_connections,
            checkouts: c.checkouts.load(Ordering::Relaxed),
            waits: c.waits.load(Ordering::Relaxed),
            wait_time: Duration::from_nanos(c.wait_nanos.load(Ordering::Relaxed)),
            max_wait: Duration::from_nanos(c.max_wait_nanos.load(Ordering::Relaxed)),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            connections_opened: c.opened.load(Ordering::Relaxed),
            connections_closed: c.closed.load(Ordering::Relaxed),
            rolled_back_on_return: c.rolled_back_on_return.load(Ordering::Relaxed),
            retired_not_primary: c.retired_not_primary.load(Ordering::Relaxed),
            statements: c.statements.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug)]
pub(super) struct Counters {
    /// The pool's size, named by a checkout timeout.
    max_size: AtomicU32,
    checkouts: AtomicU64,
    waits: AtomicU64,
    wait_nanos: AtomicU64,
    max_wait_nanos: AtomicU64,
    timeouts: AtomicU64,
    opened: AtomicU64,
    closed: AtomicU64,
    /// Shared with the pool's [`PgConnectionManager`](super::PgConnectionManager),
    /// which counts.
    pub(super) rolled_back_on_return: Arc<AtomicU64>,
    /// Shared with the pool's [`PgConnectionManager`](super::PgConnectionManager),
    /// which counts.
    pub(super) retired_not_primary: Arc<AtomicU64>,
    /// Shared with the pool's connections, which count.
    pub(super) statements: Arc<AtomicU64>,
}

impl Counters {
    /// Counters at zero, for a pool of `max_size` connections.
    pub(super) fn new(max_size: u32) -> Self {
        Counters {
            max_size: AtomicU32::new(max_size),
            checkouts: AtomicU64::default(),
            waits: AtomicU64::default(),
            wait_nanos: AtomicU64::default(),
            max_wait_nanos: AtomicU64::default(),
            timeouts: AtomicU64::default(),
            opened: AtomicU64::default(),
            closed: AtomicU64::default(),
            rolled_back_on_return: Arc::default(),
            retired_not_primary: Arc::default(),
            statements: Arc::default(),
        }
    }

    /// The pool's size as built (the r2d2 adjustments of [`super::PoolOptions`] may
    /// have changed the configured one).
    pub(super) fn set_max_size(&self, max_size: u32) {
        self.max_size.store(max_size, Ordering::Relaxed);
    }
}

/// Feeds r2d2's events into [`Counters`], and tells a checkout timeout which pool it
/// was.
#[derive(Debug)]
pub(super) struct PoolEvents {
    pub(super) counters: Arc<Counters>,
}

impl r2d2::HandleEvent for PoolEvents {
    fn handle_acquire(&self, _: r2d2::event::AcquireEvent) {
        self.counters.opened.fetch_add(1, Ordering::Relaxed);
    }

    fn handle_release(&self, _: r2d2::event::ReleaseEvent) {
        self.counters.closed.fetch_add(1, Ordering::Relaxed);
    }

    fn handle_checkout(&self, event: r2d2::event::CheckoutEvent) {
        let waited = event.duration();
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        let c = &self.counters;
        c.checkouts.fetch_add(1, Ordering::Relaxed);
        c.wait_nanos.fetch_add(nanos, Ordering::Relaxed);
        c.max_wait_nanos.fetch_max(nanos, Ordering::Relaxed);
        if waited >= Duration::from_millis(1) {
            c.waits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// r2d2 calls this on the thread whose `pool.get()` timed out, just before that
    /// call returns its `r2d2::Error`: the conversion of that error into
    /// [`Error::PoolTimeout`](crate::Error::PoolTimeout) (`pool.get()?`) then names
    /// this pool's size and timeout.
    fn handle_timeout(&self, event: r2d2::event::TimeoutEvent) {
        self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
        crate::error::note_pool_timeout(
            self.counters.max_size.load(Ordering::Relaxed),
            event.timeout(),
        );
    }
}
