//! The sample users and tasks the measured calls pick from, in Rust and in the helper
//! tables (`bench_users`, `bench_pick`) the floor's pgbench scripts read.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Integer, Text, Uuid as SqlUuid};
use uuid::Uuid;

use todo_store::{TaskQuery, TaskRepo};

use crate::ops::PAGE;
use crate::profile::Profile;
use crate::server::lit;
use crate::BoxResult;

/// A sampled user: its id and email, the cursor after its first page of open tasks, and a
/// word of one of its titles to search for.
#[derive(Debug, Clone)]
pub struct SampleUser {
    pub id: Uuid,
    pub email: String,
    pub cursor: String,
    pub cursor_at: DateTime<Utc>,
    pub cursor_id: Uuid,
    pub term: String,
}

/// What the operations pick from, the same rows the floor's helper tables hold.
pub struct Ctx {
    pub users: Vec<SampleUser>,
    /// (user_id, task_id) of bench_pick's rows 1..=sample_tasks.
    pub tasks: Vec<(Uuid, Uuid)>,
    /// The version of each sample task, as the crate last saw it.
    pub versions: Vec<i32>,
    /// Tasks the crate deletes (bench_pick rows after the sample).
    pub deletable: Vec<(Uuid, Uuid)>,
    pub next_delete: usize,
    /// bench_pick's k before the floor's first deletable task.
    pub floor_delete_base: usize,
}

/// Picks the sample users and tasks, in Rust and in the helper tables the floor reads.
pub fn sample(setup: &mut PgConnection, profile: &Profile) -> BoxResult<Ctx> {
    let users = sample_users(setup, profile.sample_users)?;
    write_bench_users(setup, &users)?;
    let budget = profile.delete_budget();
    let all = sample_tasks(setup, profile.sample_tasks + 2 * budget)?;
    let n = profile.sample_tasks;
    let mut ctx = Ctx {
        users,
        tasks: all[..n].to_vec(),
        versions: vec![1; n],
        deletable: all[n..n + budget].to_vec(),
        next_delete: 0,
        floor_delete_base: n + budget,
    };
    refresh_versions(setup, &mut ctx)?;
    Ok(ctx)
}

/// Up to `count` users in a fixed random order, those with a second page of open tasks.
fn sample_users(setup: &mut PgConnection, count: usize) -> BoxResult<Vec<SampleUser>> {
    #[derive(QueryableByName)]
    struct UserPick {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
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

/// bench_users: the sample users, numbered from 1 (pgbench picks `k`).
fn write_bench_users(setup: &mut PgConnection, users: &[SampleUser]) -> BoxResult<()> {
    setup.batch_execute(
        "CREATE TABLE bench_users (k integer PRIMARY KEY, id uuid NOT NULL, email text NOT NULL, \
         cat timestamptz NOT NULL, cid uuid NOT NULL, term text NOT NULL)",
    )?;
    for (chunk_no, chunk) in users.chunks(200).enumerate() {
        let mut sql = String::from("INSERT INTO bench_users VALUES ");
        for (i, u) in chunk.iter().enumerate() {
            let _ = write!(
                sql,
                "{}({}, '{}', {}, '{}', '{}', {})",
                if i > 0 { ", " } else { "" },
                chunk_no * 200 + i + 1,
                u.id,
                lit(&u.email),
                u.cursor_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                u.cursor_id,
                lit(&u.term)
            );
        }
        setup.batch_execute(&sql)?;
    }
    Ok(())
}

/// bench_pick: `wanted` tasks in a fixed random order, numbered from 1; also returned.
fn sample_tasks(setup: &mut PgConnection, wanted: usize) -> BoxResult<Vec<(Uuid, Uuid)>> {
    #[derive(QueryableByName)]
    struct TaskPick {
        #[diesel(sql_type = SqlUuid)]
        user_id: Uuid,
        #[diesel(sql_type = SqlUuid)]
        task_id: Uuid,
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
        id: Uuid,
        #[diesel(sql_type = Integer)]
        version: i32,
    }
    let ids: Vec<Uuid> = ctx.tasks.iter().map(|(_, id)| *id).collect();
    let rows: Vec<IdVersion> = sql_query("SELECT id, version FROM tasks WHERE id = ANY($1)")
        .bind::<Array<SqlUuid>, _>(&ids)
        .load(conn)?;
    let versions: std::collections::HashMap<Uuid, i32> =
        rows.into_iter().map(|r| (r.id, r.version)).collect();
    for (i, (_, id)) in ctx.tasks.iter().enumerate() {
        ctx.versions[i] = *versions.get(id).ok_or("a sample task vanished")?;
    }
    Ok(())
}
