//! The sample users and tasks the measured calls pick from, in Rust and in the helper
//! tables (`bench_users`, `bench_pick`) the floor's pgbench scripts read.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Integer, Text, Uuid as SqlUuid};
use uuid::Uuid;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use todo_store::{
    HabitId, NewSession, SessionRepo, TaskId, TaskQuery, TaskRepo, UserId, UserQuery, UserRepo,
};

use crate::ops::PAGE;
use crate::profile::Profile;
use crate::server::lit;
use crate::BoxResult;

/// A sampled user: its id and email, the cursor after its first page of open tasks, and a
/// word of one of its titles to search for.
#[derive(Debug, Clone)]
pub struct SampleUser {
    pub id: UserId,
    pub email: String,
    pub cursor: String,
    pub cursor_at: DateTime<Utc>,
    pub cursor_id: TaskId,
    pub term: String,
    /// A session token of the user's (made by `SessionRepo::create`) and its SHA-256.
    pub token: String,
    pub token_hash: Vec<u8>,
    /// The user's daily habit, checked in (almost) every day of the last five years.
    pub habit_id: HabitId,
}

/// A cursor of `UserRepo::list_page`, deep in the users, and the user it points after.
#[derive(Debug, Clone)]
pub struct UserCursor {
    pub cursor: String,
    pub created_at: DateTime<Utc>,
    pub id: UserId,
}

/// Sessions seeded per user (besides the sample users' own, made by the crate).
pub const SESSIONS_PER_USER: u32 = 3;

/// What the operations pick from, the same rows the floor's helper tables hold.
pub struct Ctx {
    pub users: Vec<SampleUser>,
    /// (user_id, task_id) of bench_pick's rows 1..=sample_tasks.
    pub tasks: Vec<(UserId, TaskId)>,
    /// The version of each sample task, as the crate last saw it.
    pub versions: Vec<i32>,
    /// Tasks the crate deletes (bench_pick rows after the sample).
    pub deletable: Vec<(UserId, TaskId)>,
    pub next_delete: usize,
    /// bench_pick's k before the floor's first deletable task.
    pub floor_delete_base: usize,
    /// Cursors into the second half of the users (bench_ucur's rows, from 1).
    pub user_cursors: Vec<UserCursor>,
}

/// Picks the sample users and tasks, in Rust and in the helper tables the floor reads.
pub fn sample(setup: &mut PgConnection, profile: &Profile) -> BoxResult<Ctx> {
    seed_sessions(setup)?;
    let mut users = sample_users(setup, profile.sample_users)?;
    give_sessions(setup, &mut users)?;
    seed_habits(setup, &mut users)?;
    write_bench_users(setup, &users)?;
    let user_cursors = deep_user_cursors(setup)?;
    write_bench_ucur(setup, &user_cursors)?;
    // The crate deletes `budget` tasks; the floors (its own SQL and the reference) as
    // many each.
    let budget = profile.delete_budget();
    let all = sample_tasks(setup, profile.sample_tasks + 3 * budget)?;
    let n = profile.sample_tasks;
    let mut ctx = Ctx {
        users,
        tasks: all[..n].to_vec(),
        versions: vec![1; n],
        deletable: all[n..n + budget].to_vec(),
        next_delete: 0,
        floor_delete_base: n + budget,
        user_cursors,
    };
    refresh_versions(setup, &mut ctx)?;
    Ok(ctx)
}

/// Up to `count` users in a fixed random order, those with a second page of open tasks.
fn sample_users(setup: &mut PgConnection, count: usize) -> BoxResult<Vec<SampleUser>> {
    #[derive(QueryableByName)]
    struct UserPick {
        #[diesel(sql_type = SqlUuid)]
        id: UserId,
        #[diesel(sql_type = Text)]
        email: String,
    }
    let picks: Vec<UserPick> =
        sql_query("SELECT id, email FROM users ORDER BY md5(id::text) LIMIT $1")
            .bind::<BigInt, _>(count as i64)
            .load(setup)?;
    let first_page = TaskQuery::new().completed(false).limit(PAGE);
    let mut users = Vec::new();
    for pick in picks {
        let page = TaskRepo::list(setup, pick.id, &first_page)?;
        let (Some(cursor), Some(last), Some(first)) = (
            page.next_cursor.clone(),
            page.items.last(),
            page.items.first(),
        ) else {
            continue;
        };
        users.push(SampleUser {
            id: pick.id,
            email: pick.email,
            cursor,
            cursor_at: last.created_at,
            cursor_id: last.id,
            term: search_term(&first.title),
            token: String::new(),
            token_hash: Vec::new(),
            habit_id: Uuid::nil().into(),
        });
    }
    if users.is_empty() {
        return Err("no user has a second page of open tasks".into());
    }
    Ok(users)
}

/// The first word of `title`, lowercase letters only.
fn search_term(title: &str) -> String {
    title
        .split_whitespace()
        .next()
        .unwrap_or("task")
        .chars()
        .filter(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_lowercase()
}

/// A few sessions for every user, in one statement: random token hashes (nobody
/// holds their tokens), one revoked, one expiring in 30 days, one in 7.
pub fn seed_sessions(setup: &mut PgConnection) -> BoxResult<()> {
    setup.batch_execute(&format!(
        "INSERT INTO sessions (id, user_id, token_hash, expires_at, created_at, last_seen_at, \
         ip_address, user_agent, revoked_at) \
         SELECT gen_random_uuid(), u.id, sha256(uuid_send(gen_random_uuid())), \
         now() + (7 + 23 * (g % 2)) * interval '1 day', now() - interval '1 day', now(), \
         '192.0.2.' || (g + 1), 'Mozilla/5.0 (bench)', CASE WHEN g = 0 THEN now() END \
         FROM users u, generate_series(0, {}) g",
        SESSIONS_PER_USER - 1
    ))?;
    setup.batch_execute("VACUUM (ANALYZE) sessions")?;
    Ok(())
}

/// Three habits for every user (daily, weekly, every third day); the sample users'
/// daily one checked in on about 98 % of the last five years' days.
fn seed_habits(setup: &mut PgConnection, users: &mut [SampleUser]) -> BoxResult<()> {
    #[derive(QueryableByName)]
    struct Daily {
        #[diesel(sql_type = SqlUuid)]
        user_id: UserId,
        #[diesel(sql_type = SqlUuid)]
        id: HabitId,
    }
    setup.batch_execute(
        "INSERT INTO habits (id, user_id, name, schedule, created_at, updated_at) \
         SELECT gen_random_uuid(), u.id, s.name, s.schedule::jsonb, \
         now() - interval '6 years', now() - interval '6 years' \
         FROM users u, (VALUES ('Walk 10,000 steps', '{\"v\":1,\"kind\":\"daily\"}'), \
         ('Gym', '{\"v\":1,\"kind\":\"weekly\",\"days\":[\"mon\",\"thu\"]}'), \
         ('Water the plants', \
         '{\"v\":1,\"kind\":\"every_n_days\",\"n\":3,\"start\":\"2020-01-06\"}')) \
         AS s (name, schedule)",
    )?;
    let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
    let daily: Vec<Daily> = sql_query(
        "SELECT user_id, id FROM habits WHERE user_id = ANY($1) AND schedule ->> 'kind' = 'daily'",
    )
    .bind::<Array<SqlUuid>, _>(&ids)
    .load(setup)?;
    let by_user: std::collections::HashMap<UserId, HabitId> =
        daily.into_iter().map(|d| (d.user_id, d.id)).collect();
    for user in users.iter_mut() {
        user.habit_id = *by_user
            .get(&user.id)
            .ok_or("a sample user without a habit")?;
    }
    let habits: Vec<HabitId> = users.iter().map(|u| u.habit_id).collect();
    sql_query(
        "INSERT INTO habit_check_ins (habit_id, day) \
         SELECT h, d::date FROM unnest($1) AS h, generate_series( \
         (now() AT TIME ZONE 'UTC')::date - 1826, (now() AT TIME ZONE 'UTC')::date - 1, \
         interval '1 day') AS d WHERE random() < 0.98",
    )
    .bind::<Array<SqlUuid>, _>(&habits)
    .execute(setup)?;
    setup.batch_execute("VACUUM (ANALYZE) habits")?;
    setup.batch_execute("VACUUM (ANALYZE) habit_check_ins")?;
    Ok(())
}

/// A session of each sample user's own, made by the crate: its token and hash.
fn give_sessions(setup: &mut PgConnection, users: &mut [SampleUser]) -> BoxResult<()> {
    for user in users {
        let token = session_token(setup, user.id)?;
        user.token_hash = Sha256::digest(URL_SAFE_NO_PAD.decode(&token)?).to_vec();
        user.token = token;
    }
    setup.batch_execute("ANALYZE sessions")?;
    Ok(())
}

/// A new session of `user`, made by the crate (`SessionRepo::create`), valid for 30
/// days: its bearer token.
pub fn session_token(setup: &mut PgConnection, user: UserId) -> BoxResult<String> {
    let expires = Utc::now() + chrono::Duration::days(30);
    let new = NewSession::new(expires).user_agent("Mozilla/5.0 (bench sample)");
    let (_, token) = SessionRepo::create(setup, user, &new)?;
    Ok(token)
}

/// Cursors deep in the users' order (oldest first), each with a full page after it,
/// from walking every page of `UserRepo::list_page`: up to about 32 of them.
fn deep_user_cursors(setup: &mut PgConnection) -> BoxResult<Vec<UserCursor>> {
    let total = UserRepo::count(setup)?;
    let per_page = (total / 64).clamp(1, 1000);
    let query = UserQuery::new().limit(per_page);
    let mut page = UserRepo::list_page(setup, &query)?;
    let (mut cursors, mut seen) = (Vec::new(), 0i64);
    while let Some(cursor) = page.next_cursor.take() {
        seen += page.items.len() as i64;
        let last = page
            .items
            .last()
            .ok_or("a page with a cursor but no users")?;
        // Deep (past the middle of where a full page can start) with a full page after
        // it; with too few users for a full page, past the middle.
        let deep = if total > PAGE {
            seen * 2 >= total - PAGE && seen + PAGE <= total
        } else {
            seen * 2 >= total
        };
        if deep {
            cursors.push(UserCursor {
                cursor: cursor.clone(),
                created_at: last.created_at,
                id: last.id,
            });
        }
        page = UserRepo::list_page(setup, &query.clone().after(&cursor))?;
    }
    if cursors.is_empty() {
        return Err(format!("{total} users: too few for a deep page of {PAGE}").into());
    }
    Ok(cursors)
}

/// bench_ucur: the deep cursors, numbered from 1.
fn write_bench_ucur(setup: &mut PgConnection, cursors: &[UserCursor]) -> BoxResult<()> {
    let mut sql = String::from(
        "CREATE TABLE bench_ucur (k integer PRIMARY KEY, cat timestamptz NOT NULL, \
         cid uuid NOT NULL); INSERT INTO bench_ucur VALUES ",
    );
    for (i, c) in cursors.iter().enumerate() {
        let _ = write!(
            sql,
            "{}({}, '{}', '{}')",
            if i > 0 { ", " } else { "" },
            i + 1,
            c.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            c.id
        );
    }
    sql.push_str("; ANALYZE bench_ucur");
    setup.batch_execute(&sql)?;
    Ok(())
}

/// bench_users: the sample users, numbered from 1 (pgbench picks `k`).
fn write_bench_users(setup: &mut PgConnection, users: &[SampleUser]) -> BoxResult<()> {
    setup.batch_execute(
        "CREATE TABLE bench_users (k integer PRIMARY KEY, id uuid NOT NULL, email text NOT NULL, \
         cat timestamptz NOT NULL, cid uuid NOT NULL, term text NOT NULL, th bytea NOT NULL, \
         hid uuid NOT NULL)",
    )?;
    for (chunk_no, chunk) in users.chunks(200).enumerate() {
        let mut sql = String::from("INSERT INTO bench_users VALUES ");
        for (i, u) in chunk.iter().enumerate() {
            let _ = write!(
                sql,
                "{}({}, '{}', {}, '{}', '{}', {}, '\\x{}', '{}')",
                if i > 0 { ", " } else { "" },
                chunk_no * 200 + i + 1,
                u.id,
                lit(&u.email),
                u.cursor_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                u.cursor_id,
                lit(&u.term),
                hex(&u.token_hash),
                u.habit_id
            );
        }
        setup.batch_execute(&sql)?;
    }
    Ok(())
}

/// bench_pick: `wanted` tasks in a fixed random order, numbered from 1; also returned.
fn sample_tasks(setup: &mut PgConnection, wanted: usize) -> BoxResult<Vec<(UserId, TaskId)>> {
    #[derive(QueryableByName)]
    struct TaskPick {
        #[diesel(sql_type = SqlUuid)]
        user_id: UserId,
        #[diesel(sql_type = SqlUuid)]
        task_id: TaskId,
    }
    setup.batch_execute(&format!(
        "CREATE TABLE bench_pick (k integer PRIMARY KEY, user_id uuid NOT NULL, task_id uuid NOT NULL); \
         INSERT INTO bench_pick SELECT row_number() OVER (), user_id, id \
         FROM (SELECT user_id, id FROM tasks ORDER BY md5(id::text) LIMIT {wanted}) s; \
         ANALYZE bench_users; ANALYZE bench_pick"
    ))?;
    let picks: Vec<TaskPick> =
        sql_query("SELECT user_id, task_id FROM bench_pick ORDER BY k").load(setup)?;
    if picks.len() < wanted {
        return Err(format!("only {} tasks to sample, {wanted} needed", picks.len()).into());
    }
    Ok(picks.iter().map(|p| (p.user_id, p.task_id)).collect())
}

/// Reads the sample tasks' versions (the floor's updates move them too).
pub fn refresh_versions(conn: &mut PgConnection, ctx: &mut Ctx) -> BoxResult<()> {
    #[derive(QueryableByName)]
    struct IdVersion {
        #[diesel(sql_type = SqlUuid)]
        id: TaskId,
        #[diesel(sql_type = Integer)]
        version: i32,
    }
    let ids: Vec<TaskId> = ctx.tasks.iter().map(|(_, id)| *id).collect();
    let rows: Vec<IdVersion> = sql_query("SELECT id, version FROM tasks WHERE id = ANY($1)")
        .bind::<Array<SqlUuid>, _>(&ids)
        .load(conn)?;
    let versions: std::collections::HashMap<TaskId, i32> =
        rows.into_iter().map(|r| (r.id, r.version)).collect();
    for (i, (_, id)) in ctx.tasks.iter().enumerate() {
        ctx.versions[i] = *versions.get(id).ok_or("a sample task vanished")?;
    }
    Ok(())
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
