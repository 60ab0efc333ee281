//! Load: many threads on one pool, with the database compared to a model afterwards.
//!
//! - Shared tasks, optimistic concurrency: 8 threads read tasks of a few users and
//!   update them with the version they read. Every acknowledged write gets a version
//!   of its own, so a lost update (two writes acknowledged on the same version) or a
//!   phantom one (a version nobody wrote) shows; every rejected write must be a
//!   `StaleVersion` conflict that another write explains.
//! - Isolation: threads own users and hammer them with reads, lists, searches, counts
//!   and writes, also aimed at other users' task ids: never a foreign row.
//!
//! `LOAD_OPS_PER_THREAD` (default 10,000) and `ISOLATION_ROUNDS_PER_THREAD` (default
//! 1,000) scale the two tests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Barrier, Mutex};
use std::time::Instant;

use chrono::{SubsecRound, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer, Text, Uuid as SqlUuid};
use todo_store::pool::checkout;
use todo_store::testing::TestDb;
use todo_store::{
    ConflictKind, Direction, Error, NewTask, NewUser, PgPool, Priority, Task, TaskPatch, TaskQuery,
    TaskRepo, TaskSort, UserRepo,
};
use uuid::Uuid;

use crate::support::fixtures;
use crate::support::rng::Rng;

const THREADS: usize = 8;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(QueryableByName, Debug)]
struct TaskRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    user_id: Uuid,
    #[diesel(sql_type = Text)]
    title: String,
    #[diesel(sql_type = Integer)]
    version: i32,
    #[diesel(sql_type = Bool)]
    completed: bool,
}

/// Every task row, read with plain SQL (not through the repos under test).
fn all_task_rows(conn: &mut PgConnection) -> HashMap<Uuid, TaskRow> {
    diesel::sql_query("SELECT id, user_id, title, version, completed FROM tasks")
        .load::<TaskRow>(conn)
        .expect("rows")
        .into_iter()
        .map(|r| (r.id, r))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Shared tasks, expected_version

/// What one call observed or did, for the check at the end.
#[derive(Debug, Clone)]
enum Event {
    /// A write was acknowledged: the task is now at `version` with this title and flag.
    Wrote {
        task: Uuid,
        version: i32,
        title: String,
        completed: bool,
        how: Write,
    },
    /// A read saw the task at `version`.
    Read {
        task: Uuid,
        version: i32,
        title: String,
        completed: bool,
    },
    /// An update with `expected` was rejected: the task was at `actual`.
    Stale {
        task: Uuid,
        expected: i32,
        actual: i32,
    },
    /// The task was not found (by a read or a write).
    NotFound { task: Uuid },
    /// The delete was acknowledged.
    Deleted { task: Uuid },
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
    users: Vec<Uuid>,
    /// (owner, task) of every task created so far; the first `hot` are never deleted.
    tasks: Mutex<Vec<(Uuid, Uuid)>>,
    hot: usize,
}

impl SharedTasks {
    /// Mostly one of the few hot tasks, so that threads contend.
    fn pick(&self, rng: &mut Rng) -> (Uuid, Uuid) {
        let tasks = self.tasks.lock().unwrap();
        if rng.chance(75) {
            *rng.pick(&tasks[..self.hot])
        } else {
            *rng.pick(&tasks)
        }
    }

    /// One of the tasks created during the run, if any.
    fn pick_cold(&self, rng: &mut Rng) -> Option<(Uuid, Uuid)> {
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
    rows: &HashMap<Uuid, TaskRow>,
    tasks: &[(Uuid, Uuid)],
) -> Vec<String> {
    let mut problems = Vec::new();
    // task -> version -> (title, completed, how), with duplicates reported.
    let mut writes: HashMap<Uuid, BTreeMap<i32, (String, bool, Write)>> = HashMap::new();
    let mut deletes: HashMap<Uuid, usize> = HashMap::new();
    for e in events {
        match e {
            Event::Wrote {
                task,
                version,
                title,
                completed,
                how,
            } => {
                let previous = writes
                    .entry(*task)
                    .or_default()
                    .insert(*version, (title.clone(), *completed, *how));
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
    let known: HashSet<Uuid> = tasks.iter().map(|(_, id)| *id).collect();
    assert!(rows.keys().all(|id| known.contains(id)));
}

// ---------------------------------------------------------------------------------------
// Isolation: never another user's row

const WORDS: [&str; 6] = ["report", "invoice", "garden", "milk", "taxes", "meeting"];

/// The tasks of one user, as its owning thread knows them (only that thread writes them).
struct Owned {
    user: Uuid,
    tasks: BTreeMap<Uuid, Task>,
}

fn new_task(rng: &mut Rng, label: &str) -> NewTask {
    let title = format!("{} {} {label}", rng.pick(&WORDS), rng.pick(&WORDS));
    let mut task = NewTask::new(title)
        .priority(*rng.pick(&Priority::ALL))
        .completed(rng.chance(30));
    if rng.chance(60) {
        // Microseconds, as stored. (create_many returns the due date as given, finer
        // than what the row holds: not what this test is about.)
        let due = Utc::now() + chrono::Duration::hours(rng.below(240) as i64 - 120);
        task = task.due_date(due.trunc_subsecs(6));
    }
    task
}

fn random_query(rng: &mut Rng) -> (TaskQuery, Option<bool>, Vec<Priority>, bool) {
    let mut query = TaskQuery::new();
    let completed = rng.chance(40).then(|| rng.chance(50));
    if let Some(c) = completed {
        query = query.completed(c);
    }
    let mut priorities = Vec::new();
    if rng.chance(30) {
        for p in Priority::ALL {
            if rng.chance(50) {
                priorities.push(p);
                query = query.priority(p);
            }
        }
    }
    let searched = rng.chance(35);
    if searched {
        query = query.search(WORDS[rng.below(WORDS.len())]);
    }
    let sorts = [
        TaskSort::CreatedAt,
        TaskSort::UpdatedAt,
        TaskSort::DueDate,
        TaskSort::Priority,
        TaskSort::Title,
    ];
    let sort = if searched && rng.chance(50) {
        TaskSort::Relevance
    } else {
        *rng.pick(&sorts)
    };
    let direction = *rng.pick(&[Direction::Asc, Direction::Desc]);
    let query = query.sort(sort, direction).limit(1 + rng.below(12));
    (query, completed, priorities, searched)
}

/// One thread: owns `owned`, knows every task id in `everyone`.
fn isolation_worker(
    thread: usize,
    pool: &PgPool,
    owned: &mut [Owned],
    everyone: &HashMap<Uuid, Uuid>,
    rounds: usize,
) -> Vec<String> {
    let mut rng = Rng::new(7000 + thread as u64);
    let mut problems = Vec::new();
    let mine: HashSet<Uuid> = owned.iter().map(|o| o.user).collect();
    let foreign: Vec<Uuid> = everyone
        .iter()
        .filter(|(_, owner)| !mine.contains(owner))
        .map(|(id, _)| *id)
        .collect();
    let mut bad = |what: String| problems.push(format!("thread {thread}: {what}"));
    for round in 0..rounds {
        let mut conn = checkout(pool).expect("checkout");
        let conn = &mut *conn;
        let o = rng.below(owned.len());
        let uid = owned[o].user;
        let theirs = *rng.pick(&foreign);
        match rng.below(12) {
            // Another user's task, by id: not found, whatever the call.
            0 => match TaskRepo::get(conn, uid, theirs) {
                Err(e) if e.is_not_found() => {}
                other => bad(format!("get of a foreign task: {other:?}")),
            },
            1 => {
                let patch = TaskPatch {
                    title: Some(format!("hijacked by {uid}")),
                    ..Default::default()
                };
                match TaskRepo::update(conn, uid, theirs, &patch) {
                    Err(e) if e.is_not_found() => {}
                    other => bad(format!("update of a foreign task: {other:?}")),
                }
                match TaskRepo::set_completed(conn, uid, theirs, true) {
                    Err(e) if e.is_not_found() => {}
                    other => bad(format!("set_completed of a foreign task: {other:?}")),
                }
                match TaskRepo::delete(conn, uid, theirs) {
                    Err(e) if e.is_not_found() => {}
                    other => bad(format!("delete of a foreign task: {other:?}")),
                }
            }
            // Bulk calls with own and foreign ids: only own ones count.
            2 => {
                let own: Vec<Uuid> = owned[o].tasks.keys().take(2).copied().collect();
                let ids: Vec<Uuid> = own
                    .iter()
                    .copied()
                    .chain([theirs, Uuid::now_v7()])
                    .collect();
                let done = rng.chance(50);
                match TaskRepo::set_completed_many(conn, uid, &ids, done) {
                    Ok(n) if n == own.len() => {
                        for id in &own {
                            match TaskRepo::get(conn, uid, *id) {
                                Ok(task) => {
                                    owned[o].tasks.insert(*id, task);
                                }
                                Err(e) => bad(format!("get after set_completed_many: {e:?}")),
                            }
                        }
                    }
                    other => bad(format!(
                        "set_completed_many of {} own: {other:?}",
                        own.len()
                    )),
                }
                match TaskRepo::delete_many(conn, uid, &[theirs]) {
                    Ok(0) => {}
                    other => bad(format!("delete_many of a foreign task: {other:?}")),
                }
            }
            // Own task: exactly as the owner left it.
            3 => {
                if let Some(id) = owned[o]
                    .tasks
                    .keys()
                    .nth(rng.below(owned[o].tasks.len().max(1)))
                {
                    match TaskRepo::get(conn, uid, *id) {
                        Ok(task) if task == owned[o].tasks[id] => {}
                        other => bad(format!("get own task {id}: {other:?}")),
                    }
                }
            }
            // Own writes keep the model current.
            4 => {
                let label = format!("r{round}");
                match TaskRepo::create(conn, uid, &new_task(&mut rng, &label)) {
                    Ok(task) => {
                        owned[o].tasks.insert(task.id, task);
                    }
                    Err(e) => bad(format!("create: {e:?}")),
                }
            }
            5 => {
                if let Some(task) = owned[o].tasks.values().next().cloned() {
                    let patch = TaskPatch {
                        title: Some(format!("{} edited {round}", rng.pick(&WORDS))),
                        priority: Some(*rng.pick(&Priority::ALL)),
                        expected_version: Some(task.version),
                        ..Default::default()
                    };
                    match TaskRepo::update(conn, uid, task.id, &patch) {
                        Ok(updated) => {
                            owned[o].tasks.insert(task.id, updated);
                        }
                        Err(e) => bad(format!("update own task: {e:?}")),
                    }
                }
            }
            6 if owned[o].tasks.len() > 8 => {
                let id = *owned[o].tasks.keys().next().unwrap();
                match TaskRepo::delete(conn, uid, id) {
                    Ok(()) => {
                        owned[o].tasks.remove(&id);
                    }
                    Err(e) => bad(format!("delete own task: {e:?}")),
                }
            }
            // Counts and stats are of own tasks only.
            7 => {
                let model = &owned[o].tasks;
                match TaskRepo::count(conn, uid) {
                    Ok(n) if n == model.len() as i64 => {}
                    other => bad(format!("count {other:?}, owns {}", model.len())),
                }
                match TaskRepo::stats(conn, uid) {
                    Ok(stats)
                        if stats.total == model.len() as i64
                            && stats.completed
                                == model.values().filter(|t| t.completed).count() as i64 => {}
                    other => bad(format!("stats {other:?}")),
                }
            }
            // Lists and searches, paged to the end: own rows only, as the owner left
            // them; without a search, exactly the ones the filters select.
            _ => {
                let (query, completed, priorities, searched) = random_query(&mut rng);
                let model = &owned[o].tasks;
                let expected: HashSet<Uuid> = model
                    .values()
                    .filter(|t| completed.is_none_or(|c| t.completed == c))
                    .filter(|t| priorities.is_empty() || priorities.contains(&t.priority))
                    .map(|t| t.id)
                    .collect();
                let mut seen = HashSet::new();
                let mut page_query = query.clone();
                for _page in 0..100 {
                    let page = match TaskRepo::list(conn, uid, &page_query) {
                        Ok(page) => page,
                        Err(e) => {
                            bad(format!("list {page_query:?}: {e:?}"));
                            break;
                        }
                    };
                    for task in &page.items {
                        if task.user_id != uid || model.get(&task.id) != Some(task) {
                            bad(format!(
                                "list for {uid} returned {task:?}, model {:?}",
                                model.get(&task.id)
                            ));
                        }
                        seen.insert(task.id);
                    }
                    // The cursor, tried by another user: still only that user's rows.
                    if let (Some(cursor), Some(other)) = (&page.next_cursor, owned.get(o ^ 1)) {
                        if rng.chance(20) {
                            let other_uid = other.user;
                            match TaskRepo::list(conn, other_uid, &query.clone().after(cursor)) {
                                Ok(p) => {
                                    for t in p.items {
                                        if t.user_id != other_uid
                                            || other.tasks.get(&t.id) != Some(&t)
                                        {
                                            bad(format!("foreign cursor gave {t:?}"));
                                        }
                                    }
                                }
                                Err(e) if e.is_validation() => {}
                                Err(e) => bad(format!("foreign cursor: {e:?}")),
                            }
                        }
                    }
                    match page.next_cursor {
                        Some(cursor) => page_query = query.clone().after(&cursor),
                        None => break,
                    }
                }
                let model = &owned[o].tasks;
                if searched {
                    if !seen.is_subset(&expected) {
                        bad(format!(
                            "search {query:?} returned rows the filters exclude"
                        ));
                    }
                } else if seen != expected {
                    bad(format!(
                        "list {query:?}: {} rows, expected {} of {}",
                        seen.len(),
                        expected.len(),
                        model.len()
                    ));
                }
                let counted = TaskRepo::count_matching(conn, uid, &query);
                match counted {
                    Ok(n) if searched && n as usize == seen.len() => {}
                    Ok(n) if !searched && n as usize == expected.len() => {}
                    other => bad(format!(
                        "count_matching {query:?}: {other:?}, listed {}",
                        seen.len()
                    )),
                }
            }
        }
    }
    problems
}

#[test]
fn many_users_at_once_never_see_another_users_row() {
    let rounds = env_or("ISOLATION_ROUNDS_PER_THREAD", 1000);
    let db = TestDb::new();
    let users_per_thread = 4;
    let mut setup_rng = Rng::new(42);
    let mut owned: Vec<Vec<Owned>> = (0..THREADS)
        .map(|t| {
            let mut conn = db.conn();
            (0..users_per_thread)
                .map(|u| {
                    let new =
                        NewUser::new(format!("iso-{t}-{u}-{}@example.com", Uuid::now_v7()), "I");
                    let user = UserRepo::create(&mut conn, &new).unwrap().id;
                    let batch: Vec<NewTask> = (0..12)
                        .map(|i| new_task(&mut setup_rng, &format!("u{t}.{u} #{i}")))
                        .collect();
                    let tasks = TaskRepo::create_many(&mut conn, user, &batch)
                        .unwrap()
                        .into_iter()
                        .map(|task| (task.id, task))
                        .collect();
                    Owned { user, tasks }
                })
                .collect()
        })
        .collect();
    let everyone: HashMap<Uuid, Uuid> = owned
        .iter()
        .flatten()
        .flat_map(|o| o.tasks.values().map(|t| (t.id, t.user_id)))
        .collect();

    let started = Instant::now();
    let barrier = Barrier::new(THREADS);
    let problems: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = owned
            .iter_mut()
            .enumerate()
            .map(|(t, mine)| {
                let (pool, everyone, barrier) = (db.pool(), &everyone, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    isolation_worker(t, pool, mine, everyone, rounds)
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("no panic"))
            .collect()
    });
    eprintln!(
        "{THREADS} threads x {rounds} rounds over {} users in {:?}",
        THREADS * users_per_thread,
        started.elapsed()
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems[..problems.len().min(50)].join("\n")
    );

    // No write reached a foreign row: the table is exactly the owners' models.
    let rows = all_task_rows(&mut db.conn());
    let model: HashMap<Uuid, &Task> = owned
        .iter()
        .flatten()
        .flat_map(|o| o.tasks.values().map(|t| (t.id, t)))
        .collect();
    assert_eq!(rows.len(), model.len());
    for (id, task) in model {
        let row = &rows[&id];
        assert_eq!(
            (row.user_id, &row.title, row.version, row.completed),
            (task.user_id, &task.title, task.version, task.completed),
            "task {id}"
        );
    }
}
