//! Isolation under load: never another user's row.

use std::collections::{BTreeMap, HashSet};
use std::sync::Barrier;
use std::time::Instant;

use chrono::Utc;
use todo_store::pool::checkout;
use todo_store::testing::TestDb;
use todo_store::{
    Direction, NewTask, NewUser, PgPool, Priority, Task, TaskPatch, TaskQuery, TaskRepo, TaskSort,
    UserRepo,
};

use crate::support::rng::Rng;

use super::*;

const WORDS: [&str; 6] = ["report", "invoice", "garden", "milk", "taxes", "meeting"];

/// The tasks of one user, as its owning thread knows them (only that thread writes them).
struct Owned {
    user: UserId,
    tasks: BTreeMap<TaskId, Task>,
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
    everyone: &HashMap<TaskId, UserId>,
    rounds: usize,
) -> Vec<String> {
    let mut rng = Rng::new(7000 + thread as u64);
    let mut problems = Vec::new();
    let mine: HashSet<UserId> = owned.iter().map(|o| o.user).collect();
    let foreign: Vec<TaskId> = everyone
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
                let own: Vec<TaskId> = owned[o].tasks.keys().take(2).copied().collect();
                let ids: Vec<TaskId> = own
                    .iter()
                    .copied()
                    .chain([theirs, Uuid::now_v7().into()])
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
                let expected: HashSet<TaskId> = model
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
    let everyone: HashMap<TaskId, UserId> = owned
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
    let model: HashMap<TaskId, &Task> = owned
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
