//! Shared tasks, optimistic concurrency: no lost or phantom update, every conflict explained.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use todo_store::pool::checkout;
use todo_store::testing::TestDb;
use todo_store::{ConflictKind, Error, NewTask, PgPool, TaskPatch, TaskRepo};

use crate::support::fixtures;
use crate::support::rng::Rng;

use super::*;

/// What one call observed or did, for the check at the end.
#[derive(Debug, Clone)]
enum Event {
    /// A write was acknowledged: the task is now at `version` with this title and flag.
    Wrote {
        task: TaskId,
        version: i32,
        title: String,
        completed: bool,
        how: Write,
    },
    /// A read saw the task at `version`.
    Read {
        task: TaskId,
        version: i32,
        title: String,
        completed: bool,
    },
    /// An update with `expected` was rejected: the task was at `actual`.
    Stale {
        task: TaskId,
        expected: i32,
        actual: i32,
    },
    /// The task was not found (by a read or a write).
    NotFound { task: TaskId },
    /// The delete was acknowledged.
    Deleted { task: TaskId },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Create,
    /// A new title and the opposite of the completed flag read at the version before.
    Update,
    /// Only the flag; the title stays.
    SetCompleted,
}

struct SharedTasks {
    users: Vec<UserId>,
    /// (owner, task) of every task created so far; the first `hot` are never deleted.
    tasks: Mutex<Vec<(UserId, TaskId)>>,
    hot: usize,
}

impl SharedTasks {
    /// Mostly one of the few hot tasks, so that threads contend.
    fn pick(&self, rng: &mut Rng) -> (UserId, TaskId) {
        let tasks = self.tasks.lock().unwrap();
        if rng.chance(75) {
            *rng.pick(&tasks[..self.hot])
        } else {
            *rng.pick(&tasks)
        }
    }

    /// One of the tasks created during the run, if any.
    fn pick_cold(&self, rng: &mut Rng) -> Option<(UserId, TaskId)> {
        let tasks = self.tasks.lock().unwrap();
        (tasks.len() > self.hot).then(|| *rng.pick(&tasks[self.hot..]))
    }
}

/// One thread's share of the load; returns its events and any unexpected outcome.
fn versioned_worker(
    thread: usize,
    pool: &PgPool,
    shared: &SharedTasks,
    ops: usize,
) -> (Vec<Event>, Vec<String>) {
    let mut rng = Rng::new(1000 + thread as u64);
    let mut events = Vec::with_capacity(ops * 2);
    let mut failures = Vec::new();
    let mut fail = |what: String| failures.push(format!("thread {thread}: {what}"));
    for n in 0..ops {
        let mut conn = checkout(pool).expect("checkout");
        let conn = &mut *conn;
        let roll = rng.below(100);
        if roll < 5 {
            let user = *rng.pick(&shared.users);
            let title = format!("{thread}:{n}:new");
            match TaskRepo::create(conn, user, &NewTask::new(&title)) {
                Ok(task) => {
                    events.push(Event::Wrote {
                        task: task.id,
                        version: task.version,
                        title: task.title.clone(),
                        completed: task.completed,
                        how: Write::Create,
                    });
                    if (task.title.as_str(), task.version) != (title.as_str(), 1) {
                        fail(format!("create returned {task:?}"));
                    }
                    shared.tasks.lock().unwrap().push((user, task.id));
                }
                Err(e) => fail(format!("create: {e:?}")),
            }
            continue;
        }
        let (user, id) = match roll {
            93.. => match shared.pick_cold(&mut rng) {
                Some(cold) => cold,
                None => continue,
            },
            _ => shared.pick(&mut rng),
        };
        match roll {
            // Read, then update with the version read.
            5..=59 => {
                let read = match TaskRepo::get(conn, user, id) {
                    Ok(task) => task,
                    Err(e) if e.is_not_found() => {
                        events.push(Event::NotFound { task: id });
                        continue;
                    }
                    Err(e) => {
                        fail(format!("get: {e:?}"));
                        continue;
                    }
                };
                events.push(Event::Read {
                    task: id,
                    version: read.version,
                    title: read.title.clone(),
                    completed: read.completed,
                });
                let title = format!("{thread}:{n}:v{}", read.version + 1);
                let patch = TaskPatch {
                    title: Some(title.clone()),
                    completed: Some(!read.completed),
                    expected_version: Some(read.version),
                    ..Default::default()
                };
                match TaskRepo::update(conn, user, id, &patch) {
                    Ok(task) => {
                        if (task.title.as_str(), task.version, task.completed)
                            != (title.as_str(), read.version + 1, !read.completed)
                        {
                            fail(format!("update returned {task:?} for {patch:?}"));
                        }
                        events.push(Event::Wrote {
                            task: id,
                            version: task.version,
                            title: task.title,
                            completed: task.completed,
                            how: Write::Update,
                        });
                    }
                    Err(Error::Conflict {
                        kind: ConflictKind::StaleVersion { expected, actual },
                    }) => {
                        if expected != read.version || actual <= expected {
                            fail(format!(
                                "stale: expected {expected}, actual {actual}, read {}",
                                read.version
                            ));
                        }
                        events.push(Event::Stale {
                            task: id,
                            expected,
                            actual,
                        })
                    }
                    Err(e) if e.is_not_found() => events.push(Event::NotFound { task: id }),
                    Err(e) => fail(format!("update: {e:?}")),
                }
            }
            60..=74 => {
                let done = rng.chance(50);
                match TaskRepo::set_completed(conn, user, id, done) {
                    Ok(task) => {
                        if task.completed != done {
                            fail(format!("set_completed returned {task:?}"));
                        }
                        events.push(Event::Wrote {
                            task: id,
                            version: task.version,
                            title: task.title,
                            completed: task.completed,
                            how: Write::SetCompleted,
                        });
                    }
                    Err(e) if e.is_not_found() => events.push(Event::NotFound { task: id }),
                    Err(e) => fail(format!("set_completed: {e:?}")),
                }
            }
            75..=92 => match TaskRepo::get(conn, user, id) {
                Ok(task) => events.push(Event::Read {
                    task: id,
                    version: task.version,
                    title: task.title,
                    completed: task.completed,
                }),
                Err(e) if e.is_not_found() => events.push(Event::NotFound { task: id }),
                Err(e) => fail(format!("get: {e:?}")),
            },
            _ => match TaskRepo::delete(conn, user, id) {
                Ok(()) => events.push(Event::Deleted { task: id }),
                Err(e) if e.is_not_found() => events.push(Event::NotFound { task: id }),
                Err(e) => fail(format!("delete: {e:?}")),
            },
        }
    }
    (events, failures)
}

/// Replays the events of all threads against the rows: see the module docs.
fn check_versioned(
    events: &[Event],
    rows: &HashMap<TaskId, TaskRow>,
    tasks: &[(UserId, TaskId)],
) -> Vec<String> {
    let mut problems = Vec::new();
    // task -> version -> (title, completed, how), with duplicates reported.
    let mut writes: HashMap<TaskId, BTreeMap<i32, (String, bool, Write)>> = HashMap::new();
    let mut deletes: HashMap<TaskId, usize> = HashMap::new();
    for e in events {
        match e {
            Event::Wrote {
                task,
                version,
                title,
                completed,
                how,
            } => {
                let chain = writes.entry(*task).or_default();
                // set_completed returns a task already in that state unchanged: the
                // version some write made, acknowledged again with the same content.
                if let Some(seen) = chain.get_mut(version) {
                    if (&seen.0, seen.1) == (title, *completed)
                        && (seen.2 == Write::SetCompleted || *how == Write::SetCompleted)
                    {
                        if seen.2 == Write::SetCompleted {
                            seen.2 = *how;
                        }
                        continue;
                    }
                }
                let previous = chain.insert(*version, (title.clone(), *completed, *how));
                if let Some(previous) = previous {
                    problems.push(format!(
                        "lost update: task {task} version {version} acknowledged twice: \
                         {previous:?} and {:?}",
                        (title, completed, how)
                    ));
                }
            }
            Event::Deleted { task } => *deletes.entry(*task).or_default() += 1,
            _ => {}
        }
    }
    for (owner, id) in tasks {
        let Some(chain) = writes.get(id) else {
            problems.push(format!("task {id}: no acknowledged create"));
            continue;
        };
        let max = *chain.keys().last().unwrap();
        // Every version from 1 up was acknowledged to exactly one writer, in order.
        if chain.keys().copied().ne(1..=max) {
            problems.push(format!(
                "task {id}: versions {:?} are not 1..={max}",
                chain.keys().collect::<Vec<_>>()
            ));
        }
        for (version, (title, completed, how)) in chain {
            let before = chain.get(&(version - 1));
            match (how, before) {
                (Write::Create, _) if *version != 1 => {
                    problems.push(format!("task {id}: created at version {version}"))
                }
                (Write::Update, Some((_, was_completed, _))) if completed == was_completed => {
                    problems.push(format!(
                        "task {id}: update to v{version} was not applied on v{}",
                        version - 1
                    ))
                }
                (Write::SetCompleted, Some((was_title, _, _))) if title != was_title => problems
                    .push(format!(
                        "task {id}: set_completed at v{version} changed the title from \
                         {was_title:?} to {title:?}"
                    )),
                _ => {}
            }
        }
        let deleted = deletes.get(id).copied().unwrap_or(0);
        if deleted > 1 {
            problems.push(format!("task {id}: deleted {deleted} times"));
        }
        match (rows.get(id), deleted) {
            (Some(row), 0) => {
                let (title, completed, _) = &chain[&max];
                if (row.version, &row.title, row.completed, row.user_id)
                    != (max, title, *completed, *owner)
                {
                    problems.push(format!(
                        "task {id}: row {row:?}, the last acknowledged write is v{max} \
                         {title:?} completed={completed}"
                    ));
                }
            }
            (None, 1) => {}
            (row, deleted) => problems.push(format!(
                "task {id}: row {row:?} after {deleted} acknowledged deletes"
            )),
        }
    }
    // Reads saw only states some write produced; rejections and misses are explained.
    for e in events {
        match e {
            Event::Read {
                task,
                version,
                title,
                completed,
            } => match writes.get(task).and_then(|c| c.get(version)) {
                Some((t, c, _)) if (t, c) == (title, completed) => {}
                other => problems.push(format!(
                    "task {task}: read v{version} {title:?} {completed}, written {other:?}"
                )),
            },
            Event::Stale {
                task,
                expected,
                actual,
            } => {
                let chain = writes.get(task);
                if !chain.is_some_and(|c| c.contains_key(&(expected + 1)) && c.contains_key(actual))
                {
                    problems.push(format!(
                        "task {task}: rejected as stale (expected {expected}, actual {actual}) \
                         but no write explains it"
                    ));
                }
            }
            Event::NotFound { task } if !deletes.contains_key(task) => {
                problems.push(format!("task {task}: not found, but never deleted"))
            }
            _ => {}
        }
    }
    problems
}

#[test]
fn concurrent_versioned_updates_lose_nothing_and_conflicts_are_reported() {
    let ops = env_or("LOAD_OPS_PER_THREAD", 10_000);
    let db = TestDb::new();
    let mut conn = db.conn();
    let users: Vec<_> = (0..3).map(|_| fixtures::user(&mut conn)).collect();
    let mut tasks = Vec::new();
    for user in &users {
        for i in 0..4 {
            let task = fixtures::task(&mut conn, user, &format!("seed {i}"));
            tasks.push((user.id, task.id));
        }
    }
    let seed_events: Vec<Event> = tasks
        .iter()
        .map(|(user, id)| {
            let task = TaskRepo::get(&mut conn, *user, *id).unwrap();
            Event::Wrote {
                task: task.id,
                version: 1,
                title: task.title,
                completed: false,
                how: Write::Create,
            }
        })
        .collect();
    drop(conn);
    let shared = SharedTasks {
        users: users.iter().map(|u| u.id).collect(),
        hot: tasks.len(),
        tasks: Mutex::new(tasks),
    };

    let started = Instant::now();
    let results: Vec<(Vec<Event>, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (pool, shared) = (db.pool(), &shared);
                s.spawn(move || versioned_worker(t, pool, shared, ops))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    let took = started.elapsed();

    let mut events = seed_events;
    let mut failures = Vec::new();
    for (e, f) in results {
        events.extend(e);
        failures.extend(f);
    }
    let count = |pred: fn(&Event) -> bool| events.iter().filter(|e| pred(e)).count();
    let updates = count(|e| {
        matches!(
            e,
            Event::Wrote {
                how: Write::Update,
                ..
            }
        )
    });
    let stale = count(|e| matches!(e, Event::Stale { .. }));
    let deleted = count(|e| matches!(e, Event::Deleted { .. }));
    eprintln!(
        "{THREADS} threads x {ops} ops in {took:?}: {updates} versioned updates, {stale} \
         rejected as stale, {deleted} deletes, {} tasks",
        shared.tasks.lock().unwrap().len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The load did contend: some writes were rejected, and many got through.
    assert!(
        stale > 0 && updates > stale / 4,
        "updates {updates}, stale {stale}"
    );

    let rows = all_task_rows(&mut db.conn());
    let tasks = shared.tasks.into_inner().unwrap();
    let problems = check_versioned(&events, &rows, &tasks);
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems[..problems.len().min(50)].join("\n")
    );
    // And nothing else is in the table.
    let known: HashSet<TaskId> = tasks.iter().map(|(_, id)| *id).collect();
    assert!(rows.keys().all(|id| known.contains(id)));
}
