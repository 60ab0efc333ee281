//! The failover figures (docs), measured on a real cluster: ignored by default, each
//! prints its figures and checks that nothing acknowledged was lost. Reproduce with
//!
//! ```sh
//! cargo test --all-features --test integration failover::measure -- --ignored --nocapture --test-threads 1
//! ```

use std::time::Duration;

use super::cluster;
use super::under_load::{assert_safe, run, Action};
use crate::support::patroni::Timings;

fn measure(
    what: &str,
    timings: Timings,
    any_host: bool,
    schedule: &[(Duration, Action)],
    at_least: Duration,
) {
    let Some(cluster) = cluster(timings) else {
        return;
    };
    let url = if any_host {
        cluster.url_any_host()
    } else {
        cluster.url()
    };
    let outcome = run(&cluster, &url, schedule, at_least);
    eprintln!("== {what} ({timings:?}, {url})\n{}", outcome.report());
    assert_safe(&outcome);
}

/// A kill -9 of the leader, then a planned switchover, with the tests' fast timings.
#[test]
#[ignore = "a measurement (docs/failover figures): run with --ignored"]
fn figures_for_a_kill_and_a_switchover() {
    measure(
        "kill, then switchover",
        Timings::FAST,
        false,
        &[
            (Duration::from_secs(5), Action::Kill),
            (Duration::from_secs(25), Action::Switchover),
        ],
        Duration::from_secs(45),
    );
}

/// The same with Patroni's default timings (ttl 30 s, loop_wait 10 s).
#[test]
#[ignore = "a measurement (docs/failover figures): run with --ignored"]
fn figures_with_patronis_default_timings() {
    measure(
        "kill, then switchover, Patroni's default timings",
        Timings::PATRONI_DEFAULTS,
        false,
        &[
            (Duration::from_secs(5), Action::Kill),
            (Duration::from_secs(50), Action::Switchover),
        ],
        Duration::from_secs(80),
    );
}

/// The same with a multi-host URL that leaves `target_session_attrs` out.
#[test]
#[ignore = "a measurement (docs/failover figures): run with --ignored"]
fn figures_without_target_session_attrs() {
    measure(
        "kill, then switchover, no target_session_attrs",
        Timings::FAST,
        true,
        &[
            (Duration::from_secs(5), Action::Kill),
            (Duration::from_secs(25), Action::Switchover),
        ],
        Duration::from_secs(45),
    );
}

/// The leader's whole node lost (Patroni and postmaster), with the tests' fast
/// timings and with Patroni's defaults: the leader key must expire first.
#[test]
#[ignore = "a measurement (docs/failover figures): run with --ignored"]
fn figures_for_a_lost_node() {
    for (timings, at_least) in [
        (Timings::FAST, Duration::from_secs(40)),
        (Timings::PATRONI_DEFAULTS, Duration::from_secs(80)),
    ] {
        measure(
            "the leader's node lost",
            timings,
            false,
            &[(Duration::from_secs(5), Action::NodeLoss)],
            at_least,
        );
    }
}

/// Three minutes with a kill -9 of the leader every 30 s: nothing acknowledged lost.
#[test]
#[ignore = "a measurement (docs/failover figures), three minutes: run with --ignored"]
fn three_minutes_with_a_failover_every_30_seconds() {
    let schedule: Vec<(Duration, Action)> = (1..=5)
        .map(|i| (Duration::from_secs(30 * i), Action::Kill))
        .collect();
    measure(
        "a kill every 30 s for 3 minutes",
        Timings::FAST,
        false,
        &schedule,
        Duration::from_secs(180),
    );
}
