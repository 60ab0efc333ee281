//! A model-checked workload: each [`Worker`] writes and reads the tasks of its own
//! user through a pool and keeps a model of what it was told; [`check_rows`] then
//! compares the rows with the models. A write that failed may or may not have applied
//! (the model keeps both states until a read settles it, once the server process of
//! the lost connection has ended: until then a statement it received may still
//! apply, after the caller saw the error and even after another connection read the
//! old state); a write that was
//! acknowledged must be there, and nothing may be there twice or in half. Used by the
//! fault tests (server restarts and crashes, connections reset under load).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer, Text, Uuid as SqlUuid};
use r2d2::PooledConnection;
use todo_store::pool::{checkout, PooledConn};
use todo_store::retry::{retry_transaction, RetryPolicy};
use todo_store::{Error, NewTask, PgPool, TaskId, TaskPatch, TaskQuery, TaskRepo, UserId};

use super::rng::Rng;

/// What a task looks like: title, version, completed.
pub type State = (String, i32, bool);

/// One call through the pool, as the caller saw it.
#[derive(Debug, Clone)]
pub struct Call {
    /// What was called.
    pub op: &'static str,
    /// When.
    pub started: Instant,
    /// How long it took, the checkout included.
    pub took: Duration,
    /// The error, if any, in words (the workload's own: `Debug` of it).
    pub error: Option<String>,
}

impl Call {
    /// When the call returned.
    pub fn ended(&self) -> Instant {
        self.started + self.took
    }
}

/// The state `set_completed(done)` leaves a task in: unchanged, its version too, when
/// it is already in that state.
pub fn completed_as(before: &State, done: bool) -> State {
    if before.2 == done {
        before.clone()
    } else {
        (before.0.clone(), before.1 + 1, done)
    }
}

/// An error a fault may cause: the connection went away, or none could be had.
pub fn is_fault(err: &Error) -> bool {
    err.is_connection_lost() || matches!(err, Error::PoolTimeout { .. } | Error::Connection { .. })
}

/// One worker: its user, the model of its tasks, its calls and what went wrong.
pub struct Worker<'a> {
    /// The worker's number (its tasks' titles carry it).
    pub thread: usize,
    pool: &'a PgPool,
    /// The worker's user: every task it writes is this user's.
    pub user_id: UserId,
    rng: Rng,
    counter: u64,
    /// For each task: the states it may be in. One state: known (every write on it was
    /// answered). Several: a write failed and it is not known whether it applied.
    pub tasks: BTreeMap<TaskId, Vec<Option<State>>>,
    /// Titles of creates that failed, by batch: each batch is wholly there or absent.
    pub uncertain_creates: Vec<Vec<String>>,
    /// Every call, as the caller saw it.
    pub calls: Vec<Call>,
    /// What broke the model.
    pub violations: Vec<String>,
    /// Whether some steps are transactions run by [`retry_transaction`].
    retried_transactions: bool,
    /// The server processes of connections lost during a call: until they have ended,
    /// a statement they received may still apply, so no read settles anything.
    orphans: Vec<Backend>,
    /// Retried transactions that committed.
    pub transactions_committed: u64,
    /// Of those, the ones that committed on a second or later attempt.
    pub transactions_retried: u64,
    /// Retried transactions whose connection was lost while `COMMIT` was on its way:
    /// not retried, their outcome unknown (the model allows both).
    pub transactions_unknown: u64,
}

impl<'a> Worker<'a> {
    /// A worker for `user_id`'s tasks, through `pool`.
    pub fn new(thread: usize, pool: &'a PgPool, user_id: UserId) -> Self {
        Worker {
            thread,
            pool,
            user_id,
            rng: Rng::new(thread as u64 + 1),
            counter: 0,
            tasks: BTreeMap::new(),
            uncertain_creates: Vec::new(),
            calls: Vec::new(),
            violations: Vec::new(),
            retried_transactions: false,
            orphans: Vec::new(),
            transactions_committed: 0,
            transactions_retried: 0,
            transactions_unknown: 0,
        }
    }

    /// Makes one step in ten a transaction through [`retry_transaction`] (see
    /// [`Worker::transaction`]).
    pub fn with_retried_transactions(mut self) -> Self {
        self.retried_transactions = true;
        self
    }

    /// Checks out a connection and runs `f` on it: one call, timed and recorded.
    fn call<T>(
        &mut self,
        op: &'static str,
        f: impl FnOnce(&mut PgConnection) -> todo_store::Result<T>,
    ) -> todo_store::Result<T> {
        let started = Instant::now();
        let mut backend = None;
        let result = checkout(self.pool).and_then(|mut conn| {
            backend = Some(Backend::of(&mut conn)?);
            f(&mut conn)
        });
        let took = started.elapsed();
        if let (Err(e), Some(backend)) = (&result, backend) {
            if e.is_connection_lost() {
                self.orphans.push(backend);
            }
        }
        self.calls.push(Call {
            op,
            started,
            took,
            error: result.as_ref().err().map(|e| format!("{e:?}")),
        });
        result
    }

    fn title(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("t{}-{what}-{}", self.thread, self.counter)
    }

    fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    /// An error where the model allows only a fault.
    fn unexpected(&mut self, op: &str, err: &Error) {
        if !is_fault(err) {
            self.violation(format!("{op}: unexpected error {err:?}"));
        }
    }

    /// Works until `stop` is set.
    pub fn run_until(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            self.step();
        }
    }

    fn step(&mut self) {
        // A task whose state is uncertain is read back before anything else is done.
        if let Some(id) = self
            .tasks
            .iter()
            .find(|(_, states)| states.len() > 1)
            .map(|(id, _)| *id)
        {
            return self.resync(id);
        }
        let live: Vec<(TaskId, State)> = self
            .tasks
            .iter()
            .filter_map(|(id, states)| states[0].clone().map(|s| (*id, s)))
            .collect();
        let roll = self.rng.below(100);
        if live.is_empty() || roll < 20 {
            return self.create();
        }
        let (id, state) = live[self.rng.below(live.len())].clone();
        if self.retried_transactions && roll >= 90 {
            return self.transaction(id, state);
        }
        match roll {
            20..=24 => self.create_many(),
            25..=49 => self.update(id, state),
            50..=64 => self.set_completed(id, state),
            65..=74 => self.delete(id, state),
            75..=87 => self.get(id, state),
            _ => self.list(),
        }
    }

    fn create(&mut self) {
        let title = self.title("c");
        let uid = self.user_id;
        match self.call("create", |c| {
            TaskRepo::create(c, uid, &NewTask::new(title.clone()))
        }) {
            Ok(task) => {
                if (task.title.as_str(), task.version, task.completed) != (&title, 1, false) {
                    self.violation(format!("create returned {task:?} for {title}"));
                }
                self.tasks.insert(task.id, vec![Some((title, 1, false))]);
            }
            Err(e) => {
                self.unexpected("create", &e);
                self.uncertain_creates.push(vec![title]);
            }
        }
    }

    fn create_many(&mut self) {
        let titles: Vec<String> = (0..3).map(|_| self.title("m")).collect();
        let uid = self.user_id;
        let new: Vec<NewTask> = titles.iter().map(NewTask::new).collect();
        match self.call("create_many", |c| TaskRepo::create_many(c, uid, &new)) {
            Ok(tasks) => {
                for (task, title) in tasks.iter().zip(&titles) {
                    if &task.title != title {
                        self.violation(format!("create_many returned {task:?} for {title}"));
                    }
                    self.tasks
                        .insert(task.id, vec![Some((title.clone(), 1, false))]);
                }
            }
            Err(e) => {
                self.unexpected("create_many", &e);
                self.uncertain_creates.push(titles);
            }
        }
    }

    /// Title and completed change together, guarded by the version read: a write
    /// applied in half would show.
    fn update(&mut self, id: TaskId, (title, version, completed): State) {
        let new_title = self.title("u");
        let after = (new_title.clone(), version + 1, !completed);
        let patch = TaskPatch {
            title: Some(new_title),
            completed: Some(!completed),
            expected_version: Some(version),
            ..Default::default()
        };
        let uid = self.user_id;
        let result = self.call("update", |c| TaskRepo::update(c, uid, id, &patch));
        self.written(id, "update", result, (title, version, completed), after);
    }

    fn set_completed(&mut self, id: TaskId, before: State) {
        let done = self.rng.below(2) == 0;
        let after = completed_as(&before, done);
        let uid = self.user_id;
        let result = self.call("set_completed", |c| {
            TaskRepo::set_completed(c, uid, id, done)
        });
        self.written(id, "set_completed", result, before, after);
    }

    fn written(
        &mut self,
        id: TaskId,
        op: &str,
        result: todo_store::Result<todo_store::Task>,
        before: State,
        after: State,
    ) {
        match result {
            Ok(task) => {
                let got = (task.title.clone(), task.version, task.completed);
                if got != after {
                    self.violation(format!("{op} returned {got:?}, expected {after:?}"));
                }
                self.tasks.insert(id, vec![Some(got)]);
            }
            Err(e) => {
                self.unexpected(op, &e);
                self.tasks.insert(id, vec![Some(before), Some(after)]);
            }
        }
    }

    fn delete(&mut self, id: TaskId, before: State) {
        let uid = self.user_id;
        match self.call("delete", |c| TaskRepo::delete(c, uid, id)) {
            Ok(()) => {
                self.tasks.insert(id, vec![None]);
            }
            Err(e) => {
                self.unexpected("delete", &e);
                self.tasks.insert(id, vec![Some(before), None]);
            }
        }
    }

    fn get(&mut self, id: TaskId, expected: State) {
        let uid = self.user_id;
        match self.call("get", |c| TaskRepo::get(c, uid, id)) {
            Ok(task) => {
                let got = (task.title, task.version, task.completed);
                if got != expected {
                    self.violation(format!("get {id}: {got:?}, acknowledged {expected:?}"));
                }
            }
            Err(e) => self.unexpected("get", &e),
        }
    }

    fn list(&mut self) {
        let uid = self.user_id;
        let query = match self.rng.below(3) {
            0 => TaskQuery::new().limit(100),
            1 => TaskQuery::new().completed(true).limit(100),
            _ => TaskQuery::new().completed(false).limit(100),
        };
        match self.call("list", |c| TaskRepo::list(c, uid, &query)) {
            Ok(page) => {
                for task in page.items {
                    if task.user_id != uid {
                        self.violation(format!("list returned another user's task {task:?}"));
                    }
                    if let Some([Some(known)]) = self.tasks.get(&task.id).map(Vec::as_slice) {
                        let got = (task.title.clone(), task.version, task.completed);
                        if &got != known {
                            self.violation(format!("list: {got:?}, acknowledged {known:?}"));
                        }
                    }
                }
            }
            Err(e) => self.unexpected("list", &e),
        }
    }

    /// One transaction through [`retry_transaction`] on the pool: a new task, and the
    /// retitling of another guarded by its version. Applied twice, it would show as a
    /// second new task or a version two ahead; applied in half, as one without the
    /// other. Every failure it retries must end in a commit; the only error allowed
    /// is a connection lost while `COMMIT` was on its way (outcome unknown).
    fn transaction(&mut self, id: TaskId, (title, version, completed): State) {
        let created = self.title("x");
        let renamed = self.title("r");
        let after = (renamed.clone(), version + 1, completed);
        let uid = self.user_id;
        let policy = RetryPolicy::default().max_attempts(10);
        let pool = self.pool;
        let started = Instant::now();
        let mut attempts = 0;
        let result = retry_transaction(pool, &policy, |c| {
            attempts += 1;
            let task = TaskRepo::create(c, uid, &NewTask::new(created.clone()))?;
            let patch = TaskPatch {
                title: Some(renamed.clone()),
                expected_version: Some(version),
                ..Default::default()
            };
            let updated = TaskRepo::update(c, uid, id, &patch)?;
            Ok((task, updated))
        });
        self.calls.push(Call {
            op: "transaction",
            started,
            took: started.elapsed(),
            error: result.as_ref().err().map(|e| format!("{e:?}")),
        });
        match result {
            Ok((task, updated)) => {
                self.transactions_committed += 1;
                if attempts > 1 {
                    self.transactions_retried += 1;
                }
                let got = (updated.title.clone(), updated.version, updated.completed);
                if got != after {
                    self.violation(format!("transaction returned {got:?}, expected {after:?}"));
                }
                self.tasks.insert(task.id, vec![Some((created, 1, false))]);
                self.tasks.insert(id, vec![Some(got)]);
            }
            Err(e) if e.is_connection_lost() && !e.is_connection_lost_before_send() => {
                self.transactions_unknown += 1;
                self.uncertain_creates.push(vec![created]);
                self.tasks
                    .insert(id, vec![Some((title, version, completed)), Some(after)]);
            }
            Err(e) => {
                self.violation(format!("a retried transaction failed: {e:?}"));
                self.uncertain_creates.push(vec![created]);
                self.tasks
                    .insert(id, vec![Some((title, version, completed)), Some(after)]);
            }
        }
    }

    /// Reads back a task after a failed write: it must be in one of the states the
    /// write could have left (before, or wholly after).
    fn resync(&mut self, id: TaskId) {
        if !self.orphans.is_empty() {
            match checkout(self.pool) {
                Ok(mut conn) => match Backend::wait_until_gone(&mut conn, &self.orphans) {
                    Settled::Gone => self.orphans.clear(),
                    Settled::LivesOn(what) => return self.violation(what),
                    // The server went away again (a fault test): settle later.
                    Settled::Unknown(_) => return,
                },
                // The server is unreachable: settle later.
                Err(_) => return,
            }
        }
        let uid = self.user_id;
        let found = match self.call("get (resync)", |c| TaskRepo::get(c, uid, id)) {
            Ok(task) => Some((task.title, task.version, task.completed)),
            Err(e) if e.is_not_found() => None,
            Err(e) => return self.unexpected("get (resync)", &e),
        };
        let possible = &self.tasks[&id];
        if !possible.contains(&found) {
            let what = format!("task {id} is {found:?}, expected one of {possible:?}");
            self.violation(what);
        }
        self.tasks.insert(id, vec![found]);
    }
}

/// A server process, by its pid and start time (a pid alone may be reused).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
struct Backend {
    #[diesel(sql_type = Integer)]
    pid: i32,
    #[diesel(sql_type = Text)]
    started: String,
}

impl Backend {
    /// The server process of `conn`: asked once per connection, then kept with it.
    fn of(conn: &mut PooledConn) -> todo_store::Result<Backend> {
        if let Some(known) = PooledConnection::extensions(conn).get::<Backend>() {
            return Ok(known.clone());
        }
        let backend: Backend = diesel::sql_query(
            "SELECT pid, backend_start::text AS started FROM pg_stat_activity \
             WHERE pid = pg_backend_pid()",
        )
        .get_result(&mut **conn)?;
        PooledConnection::extensions_mut(conn).insert(backend.clone());
        Ok(backend)
    }

    /// Waits until none of `backends` runs any more: a lost connection's statement that
    /// the server received is then committed or rolled back for good.
    fn wait_until_gone(conn: &mut PgConnection, backends: &[Backend]) -> Settled {
        let started = Instant::now();
        for backend in backends {
            loop {
                let alive = diesel::select(diesel::dsl::sql::<Bool>(&format!(
                    "EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = {} \
                     AND backend_start::text = '{}')",
                    backend.pid,
                    backend.started.replace('\'', "''")
                )))
                .get_result::<bool>(conn);
                match alive {
                    Ok(false) => break,
                    Ok(true) => {}
                    Err(e) => {
                        let what = format!("asking for the backend {}: {e}", backend.pid);
                        return Settled::Unknown(what);
                    }
                }
                if started.elapsed() > Duration::from_secs(30) {
                    let what = format!("the backend {backend:?} of a lost connection lives on");
                    return Settled::LivesOn(what);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Settled::Gone
    }
}

/// Whether the server processes of lost connections have ended.
enum Settled {
    Gone,
    /// One still runs after 30 s.
    LivesOn(String),
    /// The server could not be asked.
    Unknown(String),
}

/// A task as the load tests check it: what their writes change.
#[derive(QueryableByName, Debug)]
pub struct TaskRow {
    /// The task's id.
    #[diesel(sql_type = SqlUuid)]
    pub id: TaskId,
    /// Its title.
    #[diesel(sql_type = Text)]
    pub title: String,
    /// Its version.
    #[diesel(sql_type = Integer)]
    pub version: i32,
    /// Whether it is done.
    #[diesel(sql_type = Bool)]
    pub completed: bool,
}

/// Every task of `user_id`, as the load tests check it.
pub fn task_rows(conn: &mut PgConnection, user_id: UserId) -> Vec<TaskRow> {
    diesel::sql_query("SELECT id, title, version, completed FROM tasks WHERE user_id = $1")
        .bind::<SqlUuid, _>(user_id)
        .load(conn)
        .expect("the user's rows")
}

/// Compares the rows of each worker's user with its model: acknowledged writes present,
/// failed ones whole or absent, nothing else.
pub fn check_rows(pool: &PgPool, workers: &[Worker<'_>]) -> Vec<String> {
    let mut conn = checkout(pool).expect("the server is back");
    let mut violations = Vec::new();
    for w in workers {
        match Backend::wait_until_gone(&mut conn, &w.orphans) {
            Settled::Gone => {}
            Settled::LivesOn(e) | Settled::Unknown(e) => {
                violations.push(format!("thread {}: {e}", w.thread));
            }
        }
    }
    for w in workers {
        let rows = task_rows(&mut conn, w.user_id);
        let mut by_id: HashMap<TaskId, State> = rows
            .iter()
            .map(|r| (r.id, (r.title.clone(), r.version, r.completed)))
            .collect();
        for (id, possible) in &w.tasks {
            let actual = by_id.remove(id);
            if !possible.contains(&actual) {
                violations.push(format!(
                    "thread {}: task {id} is {actual:?}, expected one of {possible:?}",
                    w.thread
                ));
            }
        }
        // What is left must come from creates whose outcome is unknown: whole batches,
        // as created.
        let mut found_batches = vec![0; w.uncertain_creates.len()];
        for (id, state) in by_id {
            let batch = w
                .uncertain_creates
                .iter()
                .position(|titles| titles.contains(&state.0));
            match batch {
                Some(b) if state.1 == 1 && !state.2 => found_batches[b] += 1,
                _ => violations.push(format!(
                    "thread {}: unexpected row {id} {state:?}",
                    w.thread
                )),
            }
        }
        for (titles, found) in w.uncertain_creates.iter().zip(found_batches) {
            if found != 0 && found != titles.len() {
                violations.push(format!(
                    "thread {}: {found} of the batch {titles:?} present",
                    w.thread
                ));
            }
        }
    }
    violations
}

/// What the workers saw go wrong, each line naming its thread.
pub fn violations(workers: &[Worker<'_>]) -> Vec<String> {
    workers
        .iter()
        .flat_map(|w| {
            w.violations
                .iter()
                .map(move |v| format!("thread {}: {v}", w.thread))
        })
        .collect()
}
