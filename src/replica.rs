//! Read replicas: [`ReplicaRouter`] hands out a primary connection for writes and a
//! replica connection for reads, falls back to the primary when no replica is
//! reachable, and offers read-your-writes for callers that must see their own write.
//!
//! ```no_run
//! use todo_store::replica::ReplicaRouter;
//! use todo_store::{DbConfig, NewTask, TaskQuery, TaskRepo};
//!
//! # fn main() -> todo_store::Result<()> {
//! # let user_id: todo_store::UserId = uuid::Uuid::nil().into();
//! // DATABASE_URL is the primary, DATABASE_REPLICA_URLS the replicas.
//! let router = ReplicaRouter::connect(&DbConfig::from_env()?)?;
//!
//! let mut primary = router.write()?;
//! TaskRepo::create(&mut primary, user_id, &NewTask::new("Ship it"))?;
//! let mark = router.mark(&mut primary)?; // where the primary's log is now
//! drop(primary);
//!
//! // Eventually consistent: any replica (or the primary if none is reachable).
//! let page = TaskRepo::list(&mut *router.read()?, user_id, &TaskQuery::new())?;
//! // Read-your-writes: a replica that has replayed the write, else the primary.
//! let page = TaskRepo::list(&mut *router.read_after(&mark)?, user_id, &TaskQuery::new())?;
//! # Ok(())
//! # }
//! ```
//!
//! Replicas are hot standbys fed by streaming replication, Neon read replicas, and
//! similar. Give them as a comma-separated list, or add them in code
//! (`DbConfig::replica_url(..)`):
//!
//! ```sh
//! DATABASE_URL=postgres://app:secret@primary.internal/todo
//! DATABASE_REPLICA_URLS=postgres://app:secret@replica-1.internal/todo,postgres://app:secret@replica-2.internal/todo
//! ```
//!
//! - `connect` connects to the primary and runs the migrations there. Replicas get the
//!   schema by replication and are never migrated. Each replica gets its own pool with
//!   the same settings, including `DATABASE_PGBOUNCER`. These pools connect lazily, so a
//!   replica that is down at startup doesn't make `connect` fail.
//! - `read()` falls back to the primary when no replica answers within 500 ms. A replica
//!   that failed is skipped for `REPLICA_RETRY_AFTER` (5 s) and then tried again, so after
//!   it comes back, reads return to it within about 5 s.
//! - Replicas lag. A plain `read()` right after a write may not see the write, so use
//!   `mark` + `read_after` when the caller must see it. `read_after` costs one extra
//!   round trip on the replica, and it uses the primary when no replica has caught up.
//! - A write sent to a replica connection fails with `Error::ReadOnly` ("send writes to
//!   the primary"). Nothing is written.
//!
//! The tests run all of this against a real hot standby: a second local cluster made with
//! `pg_basebackup -R -X stream`, which streams from the primary on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};

use crate::config::DbConfig;
use crate::error::Result;
use crate::pool::{self, PgPool, PoolOptions, PooledConn};
use crate::repo::fragment::{self, Bind, NoTable};

/// How long a replica that failed is skipped before it is tried again.
pub const REPLICA_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Longest wait for a replica connection before falling back to the primary.
const REPLICA_CHECKOUT_TIMEOUT: Duration = Duration::from_millis(500);

/// Routes writes to the primary and reads to replicas.
pub struct ReplicaRouter {
    primary: PgPool,
    replicas: Vec<Replica>,
    next: AtomicUsize,
}

struct Replica {
    pool: PgPool,
    down_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for ReplicaRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaRouter")
            .field("replicas", &self.replicas.len())
            .finish()
    }
}

/// A position in the primary's write-ahead log, taken after a write with
/// [`ReplicaRouter::mark`]: a replica that has replayed up to it has the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteMark(String);

impl ReplicaRouter {
    /// Connects to the primary (running pending migrations, as [`crate::connect`]) and
    /// prepares a pool per replica URL of `config`. Replicas are connected lazily: one
    /// that is down at startup is skipped until it comes back.
    ///
    /// # Errors
    /// As [`crate::connect`] for the primary; replica URLs never fail here.
    pub fn connect(config: &DbConfig) -> Result<Self> {
        let primary = pool::connect(config)?;
        let replicas = config
            .get_replica_urls()
            .iter()
            .map(|url| {
                let replica = config.with_url(url.clone()).min_idle(Some(0));
                PoolOptions::new(&replica)
                    .for_reads()
                    .lazy(true)
                    .connect()
                    .map(|pool| Replica {
                        pool,
                        down_until: Mutex::new(None),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ReplicaRouter {
            primary,
            replicas,
            next: AtomicUsize::new(0),
        })
    }

    /// The primary's pool.
    pub fn primary(&self) -> &PgPool {
        &self.primary
    }

    /// A connection to the primary, for writes (and reads that must be current).
    ///
    /// # Errors
    /// [`crate::Error::PoolTimeout`].
    pub fn write(&self) -> Result<PooledConn> {
        pool::checkout(&self.primary)
    }

    /// A connection for reads: the next reachable replica in turn, or the primary when
    /// none is reachable (or none is configured). Data may lag the primary.
    ///
    /// The replica connection is pinged first (one round trip), so a replica that just
    /// went away is skipped at once instead of failing the caller's first statement.
    ///
    /// # Errors
    /// [`crate::Error::PoolTimeout`] when the primary cannot be reached either.
    pub fn read(&self) -> Result<PooledConn> {
        self.read_where(|conn| {
            diesel::r2d2::R2D2Connection::ping(conn)?;
            Ok(true)
        })
    }

    /// Where the primary's write-ahead log is now, on `primary` (a connection from
    /// [`ReplicaRouter::write`]), after a write whose effect later reads must see.
    ///
    /// # Errors
    /// Database errors.
    pub fn mark(&self, primary: &mut PgConnection) -> Result<WriteMark> {
        // The insert position, not pg_current_wal_lsn(): under asynchronous commit the
        // commit record may not be written out yet, and the mark must lie beyond it.
        let lsn: String = diesel::select(fragment::sql::<NoTable, Text>(
            "pg_current_wal_insert_lsn()::text",
        ))
        .get_result(primary)?;
        Ok(WriteMark(lsn))
    }

    /// A connection for reads that sees everything written up to `mark`: a replica
    /// that has replayed that far, else the primary. Costs one more round trip on the
    /// replica to check.
    ///
    /// # Errors
    /// [`crate::Error::PoolTimeout`] when the primary cannot be reached either.
    pub fn read_after(&self, mark: &WriteMark) -> Result<PooledConn> {
        self.read_where(|conn| {
            Ok(diesel::select(
                fragment::sql::<NoTable, Bool>("coalesce(pg_last_wal_replay_lsn() >= ")
                    .bind(Bind::Text(&mark.0))
                    .sql("::pg_lsn, true)"),
            )
            .get_result::<bool>(conn)?)
        })
    }

    fn read_where(&self, usable: impl Fn(&mut PgConnection) -> Result<bool>) -> Result<PooledConn> {
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let replica = &self.replicas[(start + i) % n];
            if replica.is_down() {
                continue;
            }
            match replica.pool.get_timeout(REPLICA_CHECKOUT_TIMEOUT) {
                Ok(mut conn) => match usable(&mut conn) {
                    Ok(true) => return Ok(conn),
                    Ok(false) => continue,
                    Err(_) => replica.mark_down(),
                },
                Err(_) => replica.mark_down(),
            }
        }
        self.write()
    }
}

impl Replica {
    fn is_down(&self) -> bool {
        let down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        down.is_some_and(|until| Instant::now() < until)
    }

    fn mark_down(&self) {
        let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        *down = Some(Instant::now() + REPLICA_RETRY_AFTER);
    }
}

impl From<&WriteMark> for String {
    fn from(mark: &WriteMark) -> String {
        mark.0.clone()
    }
}
