//! The HTTP run's database: seeded as the repo-call benchmark seeds a size, with a
//! session token of the crate's for every user and a few of each user's task ids.

use std::collections::BTreeMap;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};

use todo_store::{connect, DbConfig, TaskId, UserId};

use crate::measure::{database_size, seed};
use crate::profile::HttpProfile;
use crate::report::{group, SizeInfo};
use crate::sample::{seed_sessions, session_token};
use crate::server::{BenchDb, Server};
use crate::{Args, BoxResult};

/// Task ids per user the gets (and the mix's PATCH) pick from: 10,000 tasks at L.
pub const TASK_IDS_PER_USER: i64 = 10;

/// The title of every task the benchmark's requests create: they are deleted by it.
pub const CREATED_TITLE: &str = "Written by the HTTP benchmark";

/// A user as wrk's script sees it.
pub struct UserPicks {
    /// A bearer token of `SessionRepo::create`.
    pub token: String,
    /// Some of the user's tasks, in a fixed random order.
    pub task_ids: Vec<TaskId>,
}

/// The database of an HTTP run; dropped with it.
pub struct HttpDb {
    pub name: String,
    pub url: String,
    pub users: Vec<UserPicks>,
    pub info: SizeInfo,
    /// A connection of the benchmark's own, outside the service's pool.
    pub setup: PgConnection,
    /// Last: the database is dropped once the connection above is closed.
    _db: BenchDb,
}

/// Creates and seeds the database of `profile`'s size, then gives every user a
/// session and picks its task ids.
pub fn prepare(server: &Server, profile: &HttpProfile, args: &Args) -> BoxResult<HttpDb> {
    let size = &profile.size;
    let name = format!(
        "todo_store_bench_http_{}{}",
        if profile.quick { "quick_" } else { "" },
        size.label.to_lowercase()
    );
    eprintln!(
        "\n== HTTP, {}: {} users x {} tasks = {} tasks, in database {name}",
        size.label,
        group(u64::from(size.users)),
        size.tasks_per_user,
        group(u64::from(size.users) * u64::from(size.tasks_per_user))
    );
    let db = BenchDb::create(server, &name, args)?;
    let url = server.db_url(&name);
    let mut info = seed(&connect(&DbConfig::new(url.as_str()).pool_size(3))?, size)?;
    let mut setup = PgConnection::establish(&url)?;
    // As the repo-call benchmark: rows fresh from COPY get their hint bits now, not
    // during the first timed run; the sessions table holds revoked and expiring ones.
    for sql in ["VACUUM (ANALYZE) users", "VACUUM (ANALYZE) tasks"] {
        setup.batch_execute(sql)?;
    }
    seed_sessions(&mut setup)?;
    let users = pick_users(&mut setup)?;
    setup.batch_execute("ANALYZE sessions")?;
    let _ = setup.batch_execute("CHECKPOINT");
    info.db_bytes = database_size(&mut setup)?;
    eprintln!(
        "   {} users with a session token each and {TASK_IDS_PER_USER} task ids; \
         database {:.2} GiB",
        group(users.len() as u64),
        info.db_bytes as f64 / (1u64 << 30) as f64
    );
    Ok(HttpDb {
        name,
        url,
        users,
        info,
        setup,
        _db: db,
    })
}

/// Every user with tasks: a new session token, and [`TASK_IDS_PER_USER`] of its tasks.
fn pick_users(setup: &mut PgConnection) -> BoxResult<Vec<UserPicks>> {
    #[derive(QueryableByName)]
    struct Pick {
        #[diesel(sql_type = SqlUuid)]
        user_id: UserId,
        #[diesel(sql_type = SqlUuid)]
        task_id: TaskId,
    }
    let picks: Vec<Pick> = sql_query(
        "SELECT user_id, id AS task_id FROM (SELECT user_id, id, row_number() OVER \
         (PARTITION BY user_id ORDER BY md5(id::text)) AS k FROM tasks) t \
         WHERE k <= $1 ORDER BY user_id, k",
    )
    .bind::<BigInt, _>(TASK_IDS_PER_USER)
    .load(setup)?;
    let mut by_user: BTreeMap<UserId, Vec<TaskId>> = BTreeMap::new();
    for pick in picks {
        by_user.entry(pick.user_id).or_default().push(pick.task_id);
    }
    let mut users = Vec::with_capacity(by_user.len());
    for (user, task_ids) in by_user {
        users.push(UserPicks {
            token: session_token(setup, user)?,
            task_ids,
        });
    }
    if users.is_empty() {
        return Err("the seed wrote no tasks".into());
    }
    Ok(users)
}

impl HttpDb {
    /// Deletes the tasks the requests created and vacuums: each run starts from the
    /// same table (and the open-tasks page finds no dead index entries at its top).
    pub fn undo_creates(&mut self) -> BoxResult<()> {
        sql_query("DELETE FROM tasks WHERE title = $1")
            .bind::<Text, _>(CREATED_TITLE)
            .execute(&mut self.setup)?;
        self.setup.batch_execute("VACUUM (ANALYZE) tasks")?;
        Ok(())
    }
}
