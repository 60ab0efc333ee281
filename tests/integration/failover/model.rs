//! The workload of the failover tests, checked against a model: writers create, update
//! and complete their own user's tasks through `retry_transaction` (each `NewTask`
//! built once, before the call), readers list them through it. Each writer remembers
//! what it was told; a write that failed may or may not have applied, one that was
//! acknowledged must be on the new primary, and nothing may be there twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use todo_store::retry::{retry_transaction, RetryPolicy};
use todo_store::{Error, NewTask, PgPool, TaskId, TaskPatch, TaskQuery, TaskRepo, UserId};

use crate::support::rng::Rng;
use crate::support::workload::{completed_as, task_rows};
pub use crate::support::workload::{Call, State};

/// What kind of error a caller saw, in a few words (the server's message for the rest).
pub fn kind(err: &Error) -> String {
    let text = match err {
        Error::PoolTimeout { .. } => "pool timeout".to_owned(),
        Error::ReadOnly { .. } => "read-only (a standby)".to_owned(),
        Error::Connection { .. } => "could not connect".to_owned(),
        e if e.is_connection_lost_before_send() => "connection lost before sending".to_owned(),
        e if e.is_connection_lost() => "connection lost".to_owned(),
        other => other.to_string(),
    };
    text.lines().next().unwrap_or_default().to_owned()
}

/// The policy of every call: the crate's default.
fn policy() -> RetryPolicy {
    RetryPolicy::default()
}

/// One writer thread: its user, the model of its tasks, its calls.
pub struct Writer<'a> {
    pub thread: usize,
    pool: &'a PgPool,
    pub user_id: UserId,
    rng: Rng,
    counter: u64,
    /// Each task's possible states: one when known, two after a failed write.
    pub tasks: BTreeMap<TaskId, Vec<State>>,
    /// Titles of creates that failed: each may be there once, or not at all.
    pub failed_creates: Vec<String>,
    /// Acknowledged creates, for the readers' check.
    pub creates_acknowledged: &'a AtomicU64,
    pub calls: Vec<Call>,
}

impl<'a> Writer<'a> {
    pub fn new(
        thread: usize,
        pool: &'a PgPool,
        user_id: UserId,
        creates_acknowledged: &'a AtomicU64,
    ) -> Self {
        Writer {
            thread,
            pool,
            user_id,
            rng: Rng::new(thread as u64 + 1),
            counter: 0,
            tasks: BTreeMap::new(),
            failed_creates: Vec::new(),
            creates_acknowledged,
            calls: Vec::new(),
        }
    }

    /// Writes until `stop` is set.
    pub fn run_until(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            self.step();
        }
    }

    fn step(&mut self) {
        let known: Vec<(TaskId, State)> = self
            .tasks
            .iter()
            .filter(|(_, states)| states.len() == 1)
            .map(|(id, states)| (*id, states[0].clone()))
            .collect();
        let roll = self.rng.below(100);
        if known.is_empty() || roll < 30 {
            return self.create();
        }
        let (id, state) = known[self.rng.below(known.len())].clone();
        if roll < 65 {
            self.update(id, state);
        } else {
            self.set_completed(id, state);
        }
    }

    /// Runs `f` through `retry_transaction` on the pool, timed and recorded.
    fn call<T>(
        &mut self,
        op: &'static str,
        f: impl FnMut(&mut PgConnection) -> todo_store::Result<T>,
    ) -> todo_store::Result<T> {
        let started = Instant::now();
        let result = retry_transaction(self.pool, &policy(), f);
        self.calls.push(Call {
            op,
            started,
            took: started.elapsed(),
            error: result.as_ref().err().map(kind),
        });
        result
    }

    fn create(&mut self) {
        self.counter += 1;
        let title = format!("w{}-{}", self.thread, self.counter);
        let new = NewTask::new(title.clone());
        let uid = self.user_id;
        match self.call("create", |c| TaskRepo::create(c, uid, &new)) {
            Ok(task) => {
                self.tasks.insert(task.id, vec![(title, 1, false)]);
                self.creates_acknowledged.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => self.failed_creates.push(title),
        }
    }

    /// Title and completed change together, guarded by the version.
    fn update(&mut self, id: TaskId, before: State) {
        self.counter += 1;
        let created_as = before.0.split("-u").next().unwrap_or_default();
        let title = format!("{created_as}-u{}", self.counter);
        let after = (title.clone(), before.1 + 1, !before.2);
        let patch = TaskPatch {
            title: Some(title),
            completed: Some(!before.2),
            expected_version: Some(before.1),
            ..Default::default()
        };
        let uid = self.user_id;
        let result = self.call("update", |c| TaskRepo::update(c, uid, id, &patch));
        self.written(
            id,
            result.map(|t| (t.title, t.version, t.completed)),
            before,
            after,
        );
    }

    fn set_completed(&mut self, id: TaskId, before: State) {
        let done = self.rng.below(2) == 0;
        let after = completed_as(&before, done);
        let uid = self.user_id;
        let result = self.call("set_completed", |c| {
            TaskRepo::set_completed(c, uid, id, done)
        });
        self.written(
            id,
            result.map(|t| (t.title, t.version, t.completed)),
            before,
            after,
        );
    }

    fn written(
        &mut self,
        id: TaskId,
        result: todo_store::Result<State>,
        before: State,
        after: State,
    ) {
        match result {
            // A different answer than `after` is caught by the final check.
            Ok(got) => self.tasks.insert(id, vec![got]),
            Err(_) => self.tasks.insert(id, vec![before, after]),
        };
    }
}

/// One reader thread: lists a writer's tasks, and checks that every create that writer
/// had acknowledged before the call is counted.
pub struct Reader<'a> {
    pool: &'a PgPool,
    pub calls: Vec<Call>,
    pub violations: Vec<String>,
}

impl<'a> Reader<'a> {
    pub fn new(pool: &'a PgPool) -> Self {
        Reader {
            pool,
            calls: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// Reads `user_id`'s tasks until `stop` is set.
    pub fn run_until(&mut self, stop: &AtomicBool, user_id: UserId, acknowledged: &AtomicU64) {
        let query = TaskQuery::new().limit(20);
        while !stop.load(Ordering::Relaxed) {
            let floor = acknowledged.load(Ordering::SeqCst);
            let started = Instant::now();
            let result = retry_transaction(self.pool, &policy(), |c| {
                let page = TaskRepo::list(c, user_id, &query)?;
                Ok((page, TaskRepo::count(c, user_id)?))
            });
            self.calls.push(Call {
                op: "list",
                started,
                took: started.elapsed(),
                error: result.as_ref().err().map(kind),
            });
            if let Ok((page, count)) = result {
                if (count as u64) < floor {
                    let what = format!("{count} tasks listed, {floor} creates acknowledged before");
                    self.violations.push(what);
                }
                if page.items.iter().any(|t| t.user_id != user_id) {
                    self.violations
                        .push("another user's task listed".to_owned());
                }
            }
        }
    }
}

/// The rows compared with the writers' models.
#[derive(Debug, Default)]
pub struct Check {
    /// Writes acknowledged to callers (creates, updates, completions).
    pub acknowledged: usize,
    /// Acknowledged tasks missing, or in a state older than acknowledged.
    pub lost: Vec<String>,
    /// Titles present more than once.
    pub duplicated: Vec<String>,
    /// Rows in a state no call could have left.
    pub wrong: Vec<String>,
    /// Creates that failed for their caller.
    pub failed_creates: usize,
    /// Of those, the ones that had committed.
    pub failed_creates_committed: usize,
}

/// Compares the rows of each writer's user, read through `pool`, with its model.
pub fn check(pool: &PgPool, writers: &[Writer<'_>]) -> Check {
    let mut conn = pool.get().expect("a connection to the primary");
    let mut check = Check::default();
    for w in writers {
        check.acknowledged += w.calls.iter().filter(|c| c.error.is_none()).count();
        check.failed_creates += w.failed_creates.len();
        let rows = task_rows(&mut conn, w.user_id);
        let mut by_title: HashMap<&str, usize> = HashMap::new();
        for row in &rows {
            // An updated title starts with the created one: the same start twice is a
            // create applied twice.
            let created_as = row.title.split("-u").next().unwrap_or_default();
            *by_title.entry(created_as).or_default() += 1;
        }
        check.duplicated.extend(
            by_title
                .iter()
                .filter(|(_, n)| **n > 1)
                .map(|(title, n)| format!("{title} x{n}")),
        );
        let mut by_id: HashMap<TaskId, State> = rows
            .iter()
            .map(|r| (r.id, (r.title.clone(), r.version, r.completed)))
            .collect();
        for (id, possible) in &w.tasks {
            match by_id.remove(id) {
                Some(actual) if possible.contains(&actual) => {}
                Some(actual) if actual.1 < possible.iter().map(|s| s.1).min().unwrap() => {
                    check.lost.push(format!(
                        "task {id} is {actual:?}, acknowledged {possible:?}"
                    ))
                }
                Some(actual) => check.wrong.push(format!(
                    "task {id} is {actual:?}, expected one of {possible:?}"
                )),
                None => check
                    .lost
                    .push(format!("task {id} ({possible:?}) is missing")),
            }
        }
        // What is left must come from creates that failed, as created.
        for (id, state) in by_id {
            if w.failed_creates.contains(&state.0) && state.1 == 1 && !state.2 {
                check.failed_creates_committed += 1;
            } else {
                check.wrong.push(format!("unexpected row {id} {state:?}"));
            }
        }
    }
    check
}

/// Errors callers saw, by operation and kind, with their counts.
pub fn errors_by_kind<'c>(calls: impl Iterator<Item = &'c Call>) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for call in calls {
        if let Some(kind) = &call.error {
            *kinds.entry(format!("{}: {kind}", call.op)).or_default() += 1;
        }
    }
    kinds
}

/// The longest call, and what it was.
pub fn longest<'c>(calls: impl Iterator<Item = &'c Call>) -> Option<&'c Call> {
    calls.max_by_key(|c| c.took)
}

/// Between `event` and `until`: the longest stretch without an acknowledged write
/// that ends in it, and when writes were back (the end of that stretch, from the event).
pub fn outage<'c>(
    writes: impl Iterator<Item = &'c Call>,
    event: Instant,
    until: Instant,
) -> Option<(Duration, Duration)> {
    let mut acks: Vec<Instant> = writes
        .filter(|c| c.error.is_none())
        .map(Call::ended)
        .collect();
    acks.sort();
    acks.windows(2)
        .filter(|w| w[1] > event && w[1] <= until)
        .map(|w| (w[1] - w[0], w[1]))
        .max_by_key(|(gap, _)| *gap)
        .map(|(gap, back)| (gap, back - event))
}
