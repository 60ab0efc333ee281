//! The measured repo calls: one table of operations, and the call of each.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use diesel::prelude::*;
use diesel::sql_types::Integer;
use rand::Rng;
use rand_pcg::Pcg64;
use uuid::Uuid;

use todo_store::{
    HabitRepo, MetadataChange, NewTask, NewUser, PgPool, Priority, SearchQuery, SearchRepo,
    SessionRepo, TaskId, TaskPatch, TaskQuery, TaskRepo, UserId, UserQuery, UserRepo,
};

use crate::sample::Ctx;
use crate::BoxResult;

/// Title of the tasks `TaskRepo::create` makes (and the floor's INSERT).
pub const TITLE_NEW: &str = "Benchmark: write the quarterly report";
/// Title `TaskRepo::update` sets (and the floor's UPDATE).
pub const TITLE_RENAMED: &str = "Benchmark: review the quarterly report";
/// The page size of the list operations.
pub const PAGE: i64 = 50;
/// What `Op::ListMetadata` looks for: the seed's commonest source.
pub const METADATA_FILTER: &str = r#"{"source":"web"}"#;
/// The merge patch of `Op::TaskMergeMetadata`: an estimate set, labels removed.
pub const METADATA_PATCH: &str = r#"{"estimate_minutes":45,"labels":null}"#;

/// The measured repo calls, in the order of the table (and of [`TABLE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    RoundTrip,
    UserCreate,
    UserGet,
    UserFindByEmail,
    TaskCreate,
    TaskGet,
    TaskUpdate,
    TaskSetCompleted,
    TaskDelete,
    ListFirst,
    ListNext,
    ListSearch,
    SearchAll,
    ListMetadata,
    CountMatching,
    Stats,
    UserListPage,
    SessionAuthenticate,
    HabitCheckIn,
    HabitStreak,
    HabitDueOn,
    TaskMergeMetadata,
    HeldGet,
}

/// Which inputs the floor's pgbench script fetches before the mirrored statement (the
/// SQL is in [`crate::pgbench::prefix`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Nothing: the statement binds constants only.
    Nothing,
    /// A fresh id and email for a new user.
    NewUser,
    /// A random sample user (id, email, cursor, search term).
    User,
    /// A random sample user and a fresh task id.
    NewTask,
    /// A random sample task.
    Task,
    /// A random sample task and its current version.
    TaskVersion,
    /// A random sample task and a random flag.
    TaskFlag,
    /// The next task of the floor's own deletable ones.
    NextDeletable,
    /// A random deep cursor of the users' keyset paging.
    UserCursor,
}

/// What an op is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Floor {
    /// pgbench running the op's own SQL, with these inputs.
    Own(Pick),
    /// The floor measured for another op.
    Of(Op),
}

/// One row of the table of operations.
pub struct OpSpec {
    op: Op,
    /// The op's key in results.json.
    key: &'static str,
    /// The op's name in the table and the chart.
    label: &'static str,
    /// The ratio to the floor must hold from the smallest size to the largest
    /// (index-bound, not table-bound).
    growth_target: bool,
    floor: Floor,
    /// Picks the inputs, times the repo call (only) and records its bind values.
    call: fn(&mut Call<'_>) -> BoxResult<Duration>,
}

/// Every op: one row each, in the order of [`Op`]. (Kept as a table: one op a line.)
#[rustfmt::skip]
const TABLE: [OpSpec; 23] = [
    // op, key in results.json, label, ratio holds from S to XL, floor, call
    spec(Op::RoundTrip, "round_trip", "(calibration) SELECT $1 via diesel", false, Floor::Own(Pick::Nothing), round_trip),
    spec(Op::UserCreate, "user_create", "UserRepo::create", false, Floor::Own(Pick::NewUser), user_create),
    spec(Op::UserGet, "user_get", "UserRepo::get", true, Floor::Own(Pick::User), user_get),
    spec(Op::UserFindByEmail, "user_find_by_email", "UserRepo::find_by_email", false, Floor::Own(Pick::User), user_find_by_email),
    spec(Op::TaskCreate, "task_create", "TaskRepo::create", false, Floor::Own(Pick::NewTask), task_create),
    spec(Op::TaskGet, "task_get", "TaskRepo::get", true, Floor::Own(Pick::Task), task_get),
    spec(Op::TaskUpdate, "task_update", "TaskRepo::update (title, version)", false, Floor::Own(Pick::TaskVersion), task_update),
    spec(Op::TaskSetCompleted, "task_set_completed", "TaskRepo::set_completed", false, Floor::Own(Pick::TaskFlag), task_set_completed),
    spec(Op::TaskDelete, "task_delete", "TaskRepo::delete", false, Floor::Own(Pick::NextDeletable), task_delete),
    spec(Op::ListFirst, "list_first_page", "TaskRepo::list (first page)", true, Floor::Own(Pick::User), list_first),
    spec(Op::ListNext, "list_next_page", "TaskRepo::list (next page)", true, Floor::Own(Pick::User), list_next),
    spec(Op::ListSearch, "list_search", "TaskRepo::list (search)", true, Floor::Own(Pick::User), list_search),
    spec(Op::SearchAll, "search_all", "SearchRepo::search (tasks and habits)", true, Floor::Own(Pick::User), search_all),
    spec(Op::ListMetadata, "list_metadata", "TaskRepo::list (metadata_contains)", true, Floor::Own(Pick::User), list_metadata),
    spec(Op::CountMatching, "count_matching", "TaskRepo::count_matching", true, Floor::Own(Pick::User), count_matching),
    spec(Op::Stats, "stats", "TaskRepo::stats", true, Floor::Own(Pick::User), stats),
    spec(Op::UserListPage, "user_list_page", "UserRepo::list_page (deep page)", false, Floor::Own(Pick::UserCursor), user_list_page),
    spec(Op::SessionAuthenticate, "session_authenticate", "SessionRepo::authenticate", false, Floor::Own(Pick::User), session_authenticate),
    spec(Op::HabitCheckIn, "habit_check_in", "HabitRepo::check_in", false, Floor::Own(Pick::User), habit_check_in),
    spec(Op::HabitStreak, "habit_streak", "HabitRepo::streak (5 years daily)", false, Floor::Own(Pick::User), habit_streak),
    spec(Op::HabitDueOn, "habit_due_on", "HabitRepo::due_on", false, Floor::Own(Pick::User), habit_due_on),
    spec(Op::TaskMergeMetadata, "task_merge_metadata", "TaskRepo::update (metadata merge patch)", false, Floor::Own(Pick::Task), task_merge_metadata),
    spec(Op::HeldGet, "held_get", "TaskRepo::get, connection held", false, Floor::Of(Op::TaskGet), held_get),
];

/// A row of [`TABLE`] (a function, so that each row fits on one line).
const fn spec(
    op: Op,
    key: &'static str,
    label: &'static str,
    growth_target: bool,
    floor: Floor,
    call: fn(&mut Call<'_>) -> BoxResult<Duration>,
) -> OpSpec {
    OpSpec {
        op,
        key,
        label,
        growth_target,
        floor,
        call,
    }
}

// The table's rows are in the order of the enum: `Op::spec` indexes it.
const _: () = {
    let mut i = 0;
    while i < TABLE.len() {
        assert!(TABLE[i].op as usize == i, "TABLE is out of the order of Op");
        i += 1;
    }
};

impl Op {
    /// In the order of the table.
    pub const ALL: [Op; 23] = {
        let mut all = [Op::RoundTrip; 23];
        let mut i = 0;
        while i < TABLE.len() {
            all[i] = TABLE[i].op;
            i += 1;
        }
        all
    };

    /// In the order they run: reads first, so writes' dead rows don't touch them.
    pub const RUN_ORDER: [Op; 23] = [
        Op::RoundTrip,
        Op::UserGet,
        Op::UserFindByEmail,
        Op::UserListPage,
        Op::SessionAuthenticate,
        Op::TaskGet,
        Op::HeldGet,
        Op::ListFirst,
        Op::ListNext,
        Op::ListSearch,
        Op::SearchAll,
        Op::ListMetadata,
        Op::CountMatching,
        Op::Stats,
        Op::HabitStreak,
        Op::HabitDueOn,
        Op::UserCreate,
        Op::TaskCreate,
        Op::TaskUpdate,
        Op::TaskSetCompleted,
        Op::TaskMergeMetadata,
        Op::TaskDelete,
        Op::HabitCheckIn,
    ];

    fn spec(self) -> &'static OpSpec {
        &TABLE[self as usize]
    }

    pub fn key(self) -> &'static str {
        self.spec().key
    }

    pub fn label(self) -> &'static str {
        self.spec().label
    }

    /// Whether the ratio to the floor must hold at every size.
    pub fn growth_target(self) -> bool {
        self.spec().growth_target
    }

    /// Whose pgbench floor this op is compared with.
    pub fn floor_of(self) -> Op {
        match self.spec().floor {
            Floor::Own(_) => self,
            Floor::Of(other) => other,
        }
    }

    /// The inputs the floor's script fetches (those of the op whose floor it is).
    pub fn floor_pick(self) -> Pick {
        match self.spec().floor {
            Floor::Own(pick) => pick,
            Floor::Of(other) => other.floor_pick(),
        }
    }
}

/// Bind values of a call, as diesel's debug output prints them, and the pgbench
/// variable (or constant) that stands for each in the floor.
pub type BindVars = Vec<(String, String)>;

/// Where a call's connection comes from.
pub enum Conn<'a> {
    /// A connection held for the whole loop (the capture's, instrumented).
    Held(&'a mut PgConnection),
    /// A checkout from the pool per call, inside the timed part, as a request handler
    /// does it; the held connection serves [`Op::HeldGet`].
    PerCall(&'a PgPool, &'a mut PgConnection),
}

/// One call in the making: its state, its random picks and the binds it records.
pub struct Call<'a> {
    ctx: &'a mut Ctx,
    conn: Conn<'a>,
    rng: &'a mut Pcg64,
    /// Index of the sample user picked.
    user: usize,
    /// Index of the sample task picked.
    task: usize,
    /// Whether to record the bind variables (for the floor), and them.
    record: bool,
    vars: BindVars,
}

impl Call<'_> {
    /// Records that `value` is bound as pgbench variable `token` (when recording).
    fn bind(&mut self, value: impl Debug, token: &str) {
        if self.record {
            let debug = format!("{value:?}");
            // A typed id (`TaskId(…)`) is bound as itself by diesel's DSL and as its
            // bare UUID by the crate's fixed statements: either form names the token.
            let bare = debug
                .strip_suffix(')')
                .and_then(|d| d.split_once("Id("))
                .filter(|(name, _)| name.chars().all(|c| c.is_ascii_alphabetic()))
                .map(|(_, uuid)| uuid.to_owned());
            if let Some(bare) = bare {
                self.vars.push((bare, token.to_owned()));
            }
            self.vars.push((debug, token.to_owned()));
        }
    }

    /// The sample task picked: (user_id, task_id).
    fn task(&self) -> (UserId, TaskId) {
        self.ctx.tasks[self.task]
    }

    /// Runs `f` (the repo call and nothing else) on the call's connection and how long
    /// it took, the pool checkout included when there is one.
    fn timed<T, E: Into<Box<dyn std::error::Error>>>(
        &mut self,
        f: impl FnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> BoxResult<(Duration, T)> {
        let started = Instant::now();
        let value = match &mut self.conn {
            Conn::Held(conn) => f(conn).map_err(Into::into)?,
            Conn::PerCall(pool, _) => {
                let mut pooled = pool.get()?;
                let value = f(&mut pooled).map_err(Into::into)?;
                drop(pooled);
                value
            }
        };
        Ok((started.elapsed(), value))
    }

    /// Runs `f` on the held connection, timed.
    fn timed_held<T, E: Into<Box<dyn std::error::Error>>>(
        &mut self,
        f: impl FnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> BoxResult<(Duration, T)> {
        let conn: &mut PgConnection = match &mut self.conn {
            Conn::Held(conn) => conn,
            Conn::PerCall(_, held) => held,
        };
        let started = Instant::now();
        let value = f(conn).map_err(Into::into)?;
        Ok((started.elapsed(), value))
    }
}

/// One call of `op`: picks its inputs, times the repo call (only), and with `record`
/// returns the bind variables for the floor.
pub fn call(
    op: Op,
    ctx: &mut Ctx,
    conn: Conn<'_>,
    rng: &mut Pcg64,
    record: bool,
) -> BoxResult<(Duration, BindVars)> {
    // Every call draws a user and a task, whether it uses them or not.
    let user = rng.random_range(0..ctx.users.len());
    let task = rng.random_range(0..ctx.tasks.len());
    let mut call = Call {
        ctx,
        conn,
        rng,
        user,
        task,
        record,
        vars: Vec::new(),
    };
    let elapsed = (op.spec().call)(&mut call)?;
    // Constants the crate binds.
    call.bind(false, ":f");
    call.bind(true, ":t");
    call.bind(PAGE + 1, ":lim");
    Ok((elapsed, call.vars))
}

fn round_trip(c: &mut Call<'_>) -> BoxResult<Duration> {
    let (elapsed, _) =
        c.timed(|conn| diesel::select(1i32.into_sql::<Integer>()).get_result::<i32>(conn))?;
    c.bind(1i32, ":one");
    Ok(elapsed)
}

fn user_create(c: &mut Call<'_>) -> BoxResult<Duration> {
    let email = format!("bench-{}@example.com", Uuid::new_v4().simple());
    let new = NewUser::new(email.as_str(), "Bench User");
    let (elapsed, created) = c.timed(|conn| UserRepo::create(conn, &new))?;
    c.bind(created.id, ":nid");
    c.bind(&email, ":nemail");
    c.bind("Bench User", ":nname");
    Ok(elapsed)
}

fn user_get(c: &mut Call<'_>) -> BoxResult<Duration> {
    let id = c.ctx.users[c.user].id;
    let (elapsed, ()) = c.timed(|conn| UserRepo::get(conn, id).map(drop))?;
    c.bind(id, ":uid");
    Ok(elapsed)
}

fn user_find_by_email(c: &mut Call<'_>) -> BoxResult<Duration> {
    let email = c.ctx.users[c.user].email.clone();
    let (elapsed, found) = c.timed(|conn| UserRepo::find_by_email(conn, &email))?;
    if found.is_none() {
        return Err(format!("find_by_email({email}) found nobody").into());
    }
    c.bind(email.as_str(), ":uemail");
    Ok(elapsed)
}

fn task_create(c: &mut Call<'_>) -> BoxResult<Duration> {
    let user_id = c.ctx.users[c.user].id;
    let new = NewTask::new(TITLE_NEW);
    let (elapsed, created) = c.timed(|conn| TaskRepo::create(conn, user_id, &new))?;
    c.bind(created.id, ":nid");
    c.bind(user_id, ":uid");
    c.bind(TITLE_NEW, ":ntitle");
    c.bind(Priority::Medium, ":prio");
    Ok(elapsed)
}

fn task_get(c: &mut Call<'_>) -> BoxResult<Duration> {
    let (user_id, task_id) = c.task();
    let (elapsed, ()) = c.timed(|conn| TaskRepo::get(conn, user_id, task_id).map(drop))?;
    c.bind(user_id, ":uid");
    c.bind(task_id, ":tid");
    Ok(elapsed)
}

fn task_update(c: &mut Call<'_>) -> BoxResult<Duration> {
    let (user_id, task_id) = c.task();
    let expected = c.ctx.versions[c.task];
    let patch = TaskPatch {
        title: Some(TITLE_RENAMED.to_owned()),
        expected_version: Some(expected),
        ..TaskPatch::default()
    };
    let (elapsed, updated) = c.timed(|conn| TaskRepo::update(conn, user_id, task_id, &patch))?;
    c.ctx.versions[c.task] = updated.version;
    c.bind(user_id, ":uid");
    c.bind(task_id, ":tid");
    c.bind(Some(TITLE_RENAMED), ":ntitle");
    c.bind(Some(expected), ":ver");
    Ok(elapsed)
}

fn task_set_completed(c: &mut Call<'_>) -> BoxResult<Duration> {
    let (user_id, task_id) = c.task();
    let completed = c.rng.random_bool(0.5);
    let (elapsed, _) =
        c.timed(|conn| TaskRepo::set_completed(conn, user_id, task_id, completed).map(drop))?;
    c.bind(user_id, ":uid");
    c.bind(task_id, ":tid");
    c.bind(completed, ":c");
    Ok(elapsed)
}

fn task_delete(c: &mut Call<'_>) -> BoxResult<Duration> {
    let (owner, id) = *c
        .ctx
        .deletable
        .get(c.ctx.next_delete)
        .ok_or("out of tasks to delete")?;
    c.ctx.next_delete += 1;
    let (elapsed, _) = c.timed(|conn| TaskRepo::delete(conn, owner, id))?;
    c.bind(owner, ":uid");
    c.bind(id, ":tid");
    Ok(elapsed)
}

/// The open-tasks page, newest first (the default sort), the application's main screen:
/// the very page of the hand-written reference (`reference::sql(Op::ListFirst)`).
fn list_first(c: &mut Call<'_>) -> BoxResult<Duration> {
    let query = TaskQuery::new().completed(false).limit(PAGE);
    list_like(c, Op::ListFirst, &query)
}

fn list_next(c: &mut Call<'_>) -> BoxResult<Duration> {
    let cursor = &c.ctx.users[c.user].cursor;
    let query = TaskQuery::new().completed(false).limit(PAGE).after(cursor);
    list_like(c, Op::ListNext, &query)
}

fn list_search(c: &mut Call<'_>) -> BoxResult<Duration> {
    let term = &c.ctx.users[c.user].term;
    let query = TaskQuery::new().search(term).limit(PAGE);
    list_like(c, Op::ListSearch, &query)
}

/// The search box: the sample user's term over their tasks and habits, one page.
fn search_all(c: &mut Call<'_>) -> BoxResult<Duration> {
    let user_id = c.ctx.users[c.user].id;
    let term = c.ctx.users[c.user].term.clone();
    let query = SearchQuery::new(term.as_str()).limit(PAGE);
    let (elapsed, rows) =
        c.timed(|conn| SearchRepo::search(conn, user_id, &query).map(|page| page.items.len()))?;
    if rows == 0 {
        return Err(format!("SearchRepo::search found nothing for user {user_id}").into());
    }
    c.bind(user_id, ":uid");
    c.bind(term.as_str(), ":term");
    // A first page starts before every rank: (rank, kind, id) < (+inf, 0, nil).
    c.bind(f32::INFINITY, "'Infinity'");
    c.bind(0i32, "0");
    c.bind(Uuid::nil(), "'00000000-0000-0000-0000-000000000000'");
    Ok(elapsed)
}

fn list_metadata(c: &mut Call<'_>) -> BoxResult<Duration> {
    let document = json_object(METADATA_FILTER);
    let query = TaskQuery::new()
        .metadata_contains(document.clone())
        .limit(PAGE);
    // The crate binds the document as jsonb; the floor writes it as a literal.
    bind_jsonb(c, &document, false);
    list_like(c, Op::ListMetadata, &query)
}

/// The object of a JSON text of this file.
fn json_object(text: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Records the jsonb bind of `document` (as diesel's debug output prints the crate's
/// bind, `Some(..)` when `optional`) as a jsonb literal for the floor.
fn bind_jsonb(
    c: &mut Call<'_>,
    document: &serde_json::Map<String, serde_json::Value>,
    optional: bool,
) {
    if c.record {
        let debug = format!("JsonObject({document:?})");
        let debug = if optional {
            format!("Some({debug})")
        } else {
            debug
        };
        // A space after each key's colon: pgbench would read `:45` as a variable.
        let text = serde_json::Value::Object(document.clone())
            .to_string()
            .replace("\":", "\": ");
        let literal = format!("'{text}'::jsonb");
        c.vars.push((debug, literal));
    }
}

fn task_merge_metadata(c: &mut Call<'_>) -> BoxResult<Duration> {
    let (user_id, task_id) = c.task();
    let patch = json_object(METADATA_PATCH);
    let change = TaskPatch {
        metadata: Some(MetadataChange::Merge(patch.clone())),
        ..TaskPatch::default()
    };
    let (elapsed, _) =
        c.timed(|conn| TaskRepo::update(conn, user_id, task_id, &change).map(drop))?;
    bind_jsonb(c, &patch, true);
    c.bind(user_id, ":uid");
    c.bind(task_id, ":tid");
    Ok(elapsed)
}

fn count_matching(c: &mut Call<'_>) -> BoxResult<Duration> {
    let query = TaskQuery::new().completed(false).limit(PAGE);
    list_like(c, Op::CountMatching, &query)
}

/// The list ops and count_matching: the sample user's tasks through `query`; finding
/// none is an error (the sample was picked to have them).
fn list_like(c: &mut Call<'_>, op: Op, query: &TaskQuery) -> BoxResult<Duration> {
    let user_id = c.ctx.users[c.user].id;
    let (elapsed, rows) = c.timed(|conn| {
        if op == Op::CountMatching {
            TaskRepo::count_matching(conn, user_id, query).map(|n| n as usize)
        } else {
            TaskRepo::list(conn, user_id, query).map(|page| page.items.len())
        }
    })?;
    if rows == 0 {
        return Err(format!("{} returned nothing for user {user_id}", op.label()).into());
    }
    if c.record {
        let user = c.ctx.users[c.user].clone();
        c.bind(user.id, ":uid");
        c.bind(user.cursor_at, ":cat");
        c.bind(user.cursor_id, ":cid");
        c.bind(user.term.as_str(), ":term");
    }
    Ok(elapsed)
}

fn stats(c: &mut Call<'_>) -> BoxResult<Duration> {
    let user_id = c.ctx.users[c.user].id;
    let (elapsed, ()) = c.timed(|conn| TaskRepo::stats(conn, user_id).map(drop))?;
    c.bind(user_id, ":uid");
    c.bind("UTC", ":tz");
    Ok(elapsed)
}

fn user_list_page(c: &mut Call<'_>) -> BoxResult<Duration> {
    let k = c.rng.random_range(0..c.ctx.user_cursors.len());
    let cursor = c.ctx.user_cursors[k].clone();
    let query = UserQuery::new().limit(PAGE).after(&cursor.cursor);
    let (elapsed, rows) =
        c.timed(|conn| UserRepo::list_page(conn, &query).map(|p| p.items.len()))?;
    if rows == 0 {
        return Err("UserRepo::list_page returned nothing".into());
    }
    c.bind(cursor.created_at, ":pcat");
    c.bind(cursor.id, ":pcid");
    Ok(elapsed)
}

fn session_authenticate(c: &mut Call<'_>) -> BoxResult<Duration> {
    let user = c.ctx.users[c.user].clone();
    let (elapsed, found) = c.timed(|conn| SessionRepo::authenticate(conn, &user.token))?;
    if found.is_none() {
        return Err(format!("authenticate found no session for user {}", user.id).into());
    }
    c.bind(&user.token_hash[..], ":th");
    Ok(elapsed)
}

/// Today in UTC, as the floors' `(now() AT TIME ZONE 'UTC')::date`.
fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

fn habit_check_in(c: &mut Call<'_>) -> BoxResult<Duration> {
    let user = c.ctx.users[c.user].clone();
    // A day of its own, mostly: a check-in that inserts.
    let day = today() + chrono::Days::new(c.rng.random_range(1..1_000_000));
    let (elapsed, _) = c.timed(|conn| HabitRepo::check_in(conn, user.id, user.habit_id, day))?;
    c.bind(user.id, ":uid");
    c.bind(user.habit_id, ":hid");
    c.bind(day, ":day");
    Ok(elapsed)
}

fn habit_streak(c: &mut Call<'_>) -> BoxResult<Duration> {
    let user = c.ctx.users[c.user].clone();
    let today = today();
    let (elapsed, streak) =
        c.timed(|conn| HabitRepo::streak(conn, user.id, user.habit_id, today))?;
    if streak.longest < 10 {
        return Err(format!("a five-year habit with a streak of {}", streak.longest).into());
    }
    c.bind(user.id, ":uid");
    c.bind(user.habit_id, ":hid");
    c.bind(today, ":today");
    Ok(elapsed)
}

fn habit_due_on(c: &mut Call<'_>) -> BoxResult<Duration> {
    let user_id = c.ctx.users[c.user].id;
    let today = today();
    let (elapsed, due) = c.timed(|conn| HabitRepo::due_on(conn, user_id, today))?;
    if due.is_empty() {
        return Err("due_on found no daily habit".into());
    }
    c.bind(user_id, ":uid");
    c.bind(today, ":today");
    Ok(elapsed)
}

fn held_get(c: &mut Call<'_>) -> BoxResult<Duration> {
    let (user_id, task_id) = c.task();
    let (elapsed, ()) = c.timed_held(|conn| TaskRepo::get(conn, user_id, task_id).map(drop))?;
    c.bind(user_id, ":uid");
    c.bind(task_id, ":tid");
    Ok(elapsed)
}
