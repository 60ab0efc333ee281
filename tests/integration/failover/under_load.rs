//! Switchover and failover while 8 writers and 8 readers work through
//! `retry_transaction` on the multi-host read-write URL: nothing acknowledged is lost,
//! nothing is written twice, and the old primary comes back as a replica that a
//! `ReplicaRouter` reads from.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer};
use todo_store::replica::ReplicaRouter;
use todo_store::{connect, DbConfig, TaskRepo};

use super::model::{self, Call, Check, Reader, Writer};
use super::{cluster, OwnCluster};
use crate::support::fixtures;
use crate::support::patroni::{Cluster, Timings, DB};
use crate::support::standby::REPLICATION_DEADLINE;
use crate::support::wait::wait_until;

/// Writer threads, and as many readers.
pub const THREADS: usize = 8;

/// What happens to the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Patroni's planned switchover.
    Switchover,
    /// kill -9 of the leader's postmaster.
    Kill,
    /// kill -9 of the leader's Patroni and postmaster: the node lost whole. It is
    /// started again once another node leads.
    NodeLoss,
}

/// An action as it happened: the leader before it, when, and how the writes fared.
#[derive(Debug)]
pub struct Happened {
    pub action: Action,
    pub old_leader: String,
    pub new_leader: String,
    pub at: Instant,
    /// The longest stretch without an acknowledged write around it, and when writes
    /// were back (from the action).
    pub outage: Option<(Duration, Duration)>,
}

/// What a run saw.
pub struct Outcome {
    pub check: Check,
    pub happened: Vec<Happened>,
    pub writes: Vec<Call>,
    pub reads: Vec<Call>,
    pub reader_violations: Vec<String>,
    pub ran: Duration,
}

impl Outcome {
    /// Errors callers saw, by operation and kind.
    pub fn errors(&self) -> BTreeMap<String, usize> {
        model::errors_by_kind(self.writes.iter().chain(&self.reads))
    }

    /// The longest call.
    pub fn longest(&self) -> Option<&Call> {
        model::longest(self.writes.iter().chain(&self.reads))
    }

    /// The figures, for the test's output.
    pub fn report(&self) -> String {
        let mut out = format!(
            "ran {:?}: {} writes ({} acknowledged), {} reads; lost {}, duplicated {}, \
             wrong {}; failed creates {} (of which committed {})\n",
            self.ran,
            self.writes.len(),
            self.check.acknowledged,
            self.reads.len(),
            self.check.lost.len(),
            self.check.duplicated.len(),
            self.check.wrong.len(),
            self.check.failed_creates,
            self.check.failed_creates_committed,
        );
        for h in &self.happened {
            out += &format!(
                "{:?} of {} -> {}: longest stretch without an acknowledged write {:?}, \
                 writes back {:?} after it\n",
                h.action,
                h.old_leader,
                h.new_leader,
                h.outage.map(|o| o.0),
                h.outage.map(|o| o.1)
            );
        }
        out += &format!("errors callers saw: {:#?}\n", self.errors());
        if let Some(call) = self.longest() {
            out += &format!("longest call: {} took {:?}\n", call.op, call.took);
        }
        out
    }
}

/// Runs the workload against `url` for at least `at_least`, doing each action at its
/// offset (or, when the cluster is still recovering from the previous one, as soon as
/// it is healthy again); stops once the cluster is healthy after the last.
pub fn run(
    cluster: &Cluster,
    url: &str,
    schedule: &[(Duration, Action)],
    at_least: Duration,
) -> Outcome {
    let pool = connect(&DbConfig::new(url).pool_size(2 * THREADS as u32)).unwrap();
    let users: Vec<_> = (0..THREADS)
        .map(|_| fixtures::user(&mut pool.get().unwrap()).id)
        .collect();
    let acknowledged: Vec<AtomicU64> = (0..THREADS).map(|_| AtomicU64::new(0)).collect();
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut happened = Vec::new();

    let (writers, readers) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..THREADS)
            .map(|i| {
                let (pool, stop, user, ack) = (&pool, &stop, users[i], &acknowledged[i]);
                s.spawn(move || {
                    let mut writer = Writer::new(i, pool, user, ack);
                    writer.run_until(stop);
                    writer
                })
            })
            .collect();
        let readers: Vec<_> = (0..THREADS)
            .map(|i| {
                let (pool, stop, user, ack) = (&pool, &stop, users[i], &acknowledged[i]);
                s.spawn(move || {
                    let mut reader = Reader::new(pool);
                    reader.run_until(stop, user, ack);
                    reader
                })
            })
            .collect();

        for &(offset, action) in schedule {
            let wait = (started + offset).saturating_duration_since(Instant::now());
            std::thread::sleep(wait);
            cluster.wait_until_healthy(cluster.timings().failover_deadline());
            let event = match action {
                Action::Switchover => cluster.switchover(),
                Action::Kill => cluster.kill_leader(),
                Action::NodeLoss => cluster.kill_leader_node(),
            };
            let new_leader = cluster.wait_for_new_leader(&event.old_leader).name.clone();
            if action == Action::NodeLoss {
                cluster.revive(&event.old_leader);
            }
            happened.push(Happened {
                action,
                old_leader: event.old_leader,
                new_leader,
                at: event.at,
                outage: None,
            });
        }
        std::thread::sleep(at_least.saturating_sub(started.elapsed()));
        cluster.wait_until_healthy(cluster.timings().failover_deadline());
        stop.store(true, Ordering::Relaxed);
        let writers: Vec<Writer> = writers.into_iter().map(|h| h.join().unwrap()).collect();
        let readers: Vec<Reader> = readers.into_iter().map(|h| h.join().unwrap()).collect();
        (writers, readers)
    });
    let ran = started.elapsed();

    let check = model::check(&pool, &writers);
    let writes: Vec<Call> = writers.iter().flat_map(|w| w.calls.clone()).collect();
    let ends: Vec<Instant> = happened
        .iter()
        .skip(1)
        .map(|h| h.at)
        .chain([started + ran])
        .collect();
    for (h, until) in happened.iter_mut().zip(ends) {
        h.outage = model::outage(writes.iter(), h.at, until);
    }
    Outcome {
        check,
        happened,
        writes,
        reads: readers.iter().flat_map(|r| r.calls.clone()).collect(),
        reader_violations: readers.into_iter().flat_map(|r| r.violations).collect(),
        ran,
    }
}

/// The scenario: a switchover after 3 s, a kill -9 of the new leader once the
/// cluster is healthy again, 20 s in all.
pub fn switchover_then_kill(cluster: &Cluster, url: &str) -> Outcome {
    let schedule = [
        (Duration::from_secs(3), Action::Switchover),
        (Duration::from_secs(8), Action::Kill),
    ];
    run(cluster, url, &schedule, Duration::from_secs(20))
}

/// The promises that hold today: nothing acknowledged lost or changed, nothing twice,
/// every read saw every create acknowledged before it.
pub fn assert_safe(outcome: &Outcome) {
    let check = &outcome.check;
    assert!(check.acknowledged > 0, "{}", outcome.report());
    assert_eq!(
        check.lost,
        Vec::<String>::new(),
        "lost:\n{}",
        outcome.report()
    );
    assert_eq!(
        check.duplicated,
        Vec::<String>::new(),
        "duplicated:\n{}",
        outcome.report()
    );
    assert_eq!(
        check.wrong,
        Vec::<String>::new(),
        "wrong:\n{}",
        outcome.report()
    );
    assert_eq!(
        outcome.reader_violations,
        Vec::<String>::new(),
        "{}",
        outcome.report()
    );
}

/// No call may take longer than this (the target once failovers are ridden through).
pub fn call_bound(timings: Timings) -> Duration {
    Duration::from_secs(u64::from(timings.ttl + timings.loop_wait + 5))
}

#[test]
fn switchover_and_kill_under_load_lose_nothing_acknowledged_and_the_old_primary_serves_reads() {
    let Some(cluster) = cluster(Timings::FAST) else {
        return;
    };
    let outcome = switchover_then_kill(&cluster, &cluster.url());
    eprintln!("{}", outcome.report());
    assert_safe(&outcome);
    assert_eq!(outcome.happened.len(), 2, "{}", outcome.report());

    // The killed primary comes back as a replica, and a router reads from it again.
    let killed = &outcome.happened[1].old_leader;
    cluster.wait_for_replica(killed);
    let old = cluster.node(killed);
    let router = ReplicaRouter::connect(&DbConfig::new(cluster.url()).replica_url(old.url(DB)))
        .expect("a router over the new primary and the old one");
    let mut primary = router.write().unwrap();
    let user = fixtures::user(&mut primary);
    let task = fixtures::task(&mut primary, &user, "read back from the old primary");
    let mark = router.mark(&mut primary).unwrap();
    drop(primary);
    // A replica that has not replayed the mark yet sends the read to the primary.
    let mut read = None;
    wait_until(
        "a read-your-writes read on the old primary",
        REPLICATION_DEADLINE,
        || {
            let mut conn = router.read_after(&mark).unwrap();
            let (standby, port): (bool, i32) = diesel::select((
                sql::<Bool>("pg_is_in_recovery()"),
                sql::<Integer>("inet_server_port()"),
            ))
            .get_result(&mut *conn)
            .unwrap();
            let there = standby && port == i32::from(old.pg_port);
            read = there.then_some(conn);
            there
        },
    );
    let mut read = read.unwrap();
    assert_eq!(
        TaskRepo::get(&mut read, user.id, task.id).unwrap().title,
        task.title
    );
}

/// Callers see no error at all through a switchover and a failover (retried within
/// the failover budget, creates, versioned updates and completions exactly-once), and
/// no call waits longer than [`call_bound`]; as with every URL below, `url` is that of
/// a cluster started with `timings`.
fn callers_see_no_error(timings: Timings, url: impl Fn(&OwnCluster) -> String) {
    let Some(cluster) = cluster(timings) else {
        return;
    };
    let outcome = switchover_then_kill(&cluster, &url(&cluster));
    assert_no_caller_error(&outcome, call_bound(cluster.timings()));
}

/// [`assert_safe`], and no caller saw an error or waited longer than `bound`.
fn assert_no_caller_error(outcome: &Outcome, bound: Duration) {
    eprintln!("{}", outcome.report());
    assert_safe(outcome);
    assert_eq!(outcome.errors(), BTreeMap::new(), "{}", outcome.report());
    let longest = outcome.longest().unwrap();
    assert!(
        longest.took <= bound,
        "{} took {:?}\n{}",
        longest.op,
        longest.took,
        outcome.report()
    );
}

#[test]
fn switchover_and_kill_under_load_show_callers_no_error() {
    callers_see_no_error(Timings::FAST, |c| c.url());
}

/// The hosts without `target_session_attrs`, the old leader first: the pool for writes
/// asks for `read-write` itself (before, it filled with connections to a standby and
/// every write failed with `ReadOnly`).
#[test]
fn a_url_without_target_session_attrs_shows_callers_no_error() {
    callers_see_no_error(Timings::FAST, |c| c.url_any_host());
}

/// Patroni's default timings (ttl 30 s, loop_wait 10 s): the outage outlasts the
/// pool's 5 s connection timeout, and the `PoolTimeout`s while no node is primary are
/// retried within the failover budget.
#[test]
fn patronis_default_timings_show_callers_no_error() {
    callers_see_no_error(Timings::PATRONI_DEFAULTS, |c| c.url());
}

/// The leader's whole node lost (its Patroni and its postmaster killed at once): no
/// one releases the leader key, so the others wait for it to expire (`ttl`) before one
/// takes over; the outage is the longest of all. Callers still see no error (it ends
/// within the failover budget), and the node rejoins as a replica once started again.
#[test]
fn a_lost_leader_node_under_load_shows_callers_no_error() {
    let Some(cluster) = cluster(Timings::FAST) else {
        return;
    };
    let schedule = [(Duration::from_secs(3), Action::NodeLoss)];
    let outcome = run(&cluster, &cluster.url(), &schedule, Duration::from_secs(20));
    assert_no_caller_error(&outcome, node_loss_bound(cluster.timings()));
    cluster.wait_for_replica(&outcome.happened[0].old_leader);
}

/// No call may take longer than this through the loss of the leader's node: the leader
/// key may have just been renewed (`ttl`), the others notice its expiry at their next
/// loop (`loop_wait`), and one promotes itself; with room for a slow machine.
pub fn node_loss_bound(timings: Timings) -> Duration {
    Duration::from_secs(u64::from(timings.ttl + 2 * timings.loop_wait + 10))
}
