//! The cluster works and a killed leader is replaced: a write through
//! `retry_transaction` lands on the new leader, and what was written before is there.

use std::time::Duration;

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer};
use todo_store::retry::{retry_transaction, RetryPolicy};
use todo_store::{connect, DbConfig, NewTask, TaskQuery, TaskRepo};

use super::cluster;
use crate::support::fixtures;
use crate::support::patroni::{Timings, DB};

#[test]
fn after_the_leader_is_killed_a_retried_write_lands_on_the_new_leader() {
    let Some(cluster) = cluster(Timings::FAST) else {
        return;
    };
    let pool = connect(&DbConfig::new(cluster.url()).pool_size(4)).unwrap();
    let mut conn = pool.get().unwrap();
    let user = fixtures::user(&mut conn);
    let before = fixtures::task(&mut conn, &user, "written before the kill");
    drop(conn);

    // Writes until one lands on another node than the killed one. The first ones may
    // still reach the old leader: kill -9 of a postmaster leaves its backends running
    // until they notice, and one that commits before its walsender goes away is
    // acknowledged by the synchronous standby (which becomes the leader).
    let killed = cluster.kill_leader();
    let old_port = i32::from(cluster.node(&killed.old_leader).pg_port);
    let mut acknowledged = vec![before.title];
    let mut errors = Vec::new();
    let port = loop {
        let new = NewTask::new(format!("written after the kill, {}", acknowledged.len()));
        let result = retry_transaction(&pool, &RetryPolicy::default(), |c| {
            let task = TaskRepo::create(c, user.id, &new)?;
            let port: i32 = diesel::select(sql::<Integer>("inet_server_port()")).get_result(c)?;
            Ok((task, port))
        });
        match result {
            Ok((task, port)) => {
                acknowledged.push(task.title);
                if port != old_port {
                    break port;
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
        assert!(
            killed.at.elapsed() < cluster.timings().failover_deadline(),
            "no write reached another node within {:?}: {errors:#?}",
            cluster.timings().failover_deadline()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let back_after = killed.at.elapsed();

    let leader = cluster.wait_for_new_leader(&killed.old_leader);
    assert_eq!(i32::from(leader.pg_port), port, "{leader:?}");
    let mut on_leader = PgConnection::establish(&leader.url(DB)).unwrap();
    let primary = !diesel::select(sql::<Bool>("pg_is_in_recovery()"))
        .get_result::<bool>(&mut on_leader)
        .unwrap();
    assert!(primary, "{} is not a primary", leader.name);
    let titles: Vec<String> = TaskRepo::list(
        &mut on_leader,
        user.id,
        &TaskQuery::new().limit(TaskQuery::MAX_LIMIT),
    )
    .unwrap()
    .items
    .into_iter()
    .map(|t| t.title)
    .collect();
    for title in &acknowledged {
        assert!(titles.contains(title), "{title} is not on the new leader");
    }
    eprintln!(
        "killed {} at +0; a write reached the new leader {} after {back_after:?} \
         ({} acknowledged in all); errors seen: {errors:#?}",
        killed.old_leader,
        leader.name,
        acknowledged.len()
    );
}
