//! Failover on a real Patroni cluster (tests/support/patroni.rs: etcd and three
//! PostgreSQL 15 nodes in synchronous mode): the primary is killed (kill -9 of its
//! postmaster) or switched over while the crate's pool and `retry_transaction` run
//! against the multi-host URL, and every write that was acknowledged must be on the
//! new primary, once.
//!
//! One cluster at a time (a cluster is four servers and three Pythons on a small
//! machine); skipped, with the reason printed, where patroni or etcd-server is not
//! installed (scripts/setup installs them).

mod measure;
mod model;
mod smoke;
mod under_load;

use std::ops::Deref;
use std::sync::{Mutex, MutexGuard};

use crate::support::patroni::{Cluster, Timings};

/// Serialises the tests that start a cluster.
static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A cluster, and this test's turn: the cluster is torn down before the turn passes.
pub struct OwnCluster {
    cluster: Cluster,
    _turn: MutexGuard<'static, ()>,
}

impl Deref for OwnCluster {
    type Target = Cluster;

    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

/// A cluster with `timings` for this test alone; `None` where the packages are missing.
pub fn cluster(timings: Timings) -> Option<OwnCluster> {
    // A test that failed with its cluster poisons the lock; the next one still runs.
    let turn = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Some(OwnCluster {
        cluster: Cluster::start_with(timings)?,
        _turn: turn,
    })
}
