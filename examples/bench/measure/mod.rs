//! One size, start to end: its database, the seed (`load`: against `\copy` of the same
//! rows), the sample, then each part of the measurement (`rounds`: single calls against
//! their floors; `concurrency`: the mix through the pool; `bulk`: create_many against
//! `\copy`).

mod async_pool;
mod bulk;
mod concurrency;
mod load;
mod rounds;

use std::ops::ControlFlow;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use todo_store::seed::{seed_with_pool, SeedOptions};
use todo_store::{connect, DbConfig, PgPool};

use crate::profile::{Profile, SizeSpec};
use crate::report::{group, Results, SizeInfo};
use crate::sample::sample;
use crate::server::{BenchDb, Server};
use crate::{facts, Args, BoxResult};

/// Connections in the benchmark's pool: the 8 threads of the concurrency test, plus one.
const POOL_SIZE: u32 = 9;

/// Creates the size's database, seeds it, picks the sample and runs every part the
/// profile asks for; the database is dropped at the end.
pub fn run_size(
    server: &Server,
    size: &SizeSpec,
    profile: &Profile,
    args: &Args,
    results: &mut Results,
) -> BoxResult<()> {
    let db_name = format!(
        "todo_store_bench_{}{}",
        if profile.quick { "quick_" } else { "" },
        size.label.to_lowercase()
    );
    let tasks_total = u64::from(size.users) * u64::from(size.tasks_per_user);
    eprintln!(
        "\n== {}: {} users x {} tasks = {} tasks, in database {db_name}",
        size.label,
        group(u64::from(size.users)),
        size.tasks_per_user,
        group(tasks_total)
    );
    let bench_db = BenchDb::create(server, &db_name, args)?;
    let url = server.db_url(&db_name);
    let config = DbConfig::new(url.as_str()).pool_size(POOL_SIZE);
    let pool = connect(&config)?;
    // The seed's pool has no statement timeout: one COPY of its many rows can run past
    // the default 30 s on a busy machine, and that is no failure of the seed.
    let mut info = seed(&connect(&config.clone().statement_timeout(None))?, size)?;

    // A connection of our own for setup: no statement timeout.
    let mut setup = PgConnection::establish(&url)?;
    if profile.runs("load") {
        let rows = u64::from(size.users) * (1 + u64::from(size.tasks_per_user));
        info.load = Some(load::run(
            server,
            &db_name,
            &mut setup,
            info.seed_secs,
            rows,
        )?);
    }
    // VACUUM as well as ANALYZE: rows fresh from COPY would otherwise get their hint bits
    // and visibility map set by the first reads (and by autovacuum) mid-measurement.
    for sql in ["VACUUM (ANALYZE) users", "VACUUM (ANALYZE) tasks"] {
        setup.batch_execute(sql)?;
    }
    if results.server.is_empty() {
        results.server = facts::server_facts(&mut setup, server)?;
    }
    let mut ctx = sample(&mut setup, profile)?;
    let _ = setup.batch_execute("CHECKPOINT");
    info.db_bytes = database_size(&mut setup)?;
    eprintln!(
        "   database size on disk: {:.2} GiB",
        info.db_bytes as f64 / (1u64 << 30) as f64
    );
    results.sizes.push(info);

    if profile.runs("ops") {
        let part = rounds::Part {
            server,
            db: &db_name,
            pool: &pool,
            config: &config,
            profile,
            size: size.label,
        };
        let (pinning, ops) = rounds::run(&part, &mut ctx, &mut setup, args.no_pin)?;
        results.pinning.push((size.label, pinning));
        results.ops.extend(ops);
    }
    if profile.runs("concurrency") {
        let measured = concurrency::run(&pool, &ctx, size.label, profile)?;
        results.concurrency.extend(measured);
    }
    if profile.runs("async") {
        let measured = async_pool::run(&config, &ctx, size.label, profile)?;
        results.async_pool.push(measured);
    }
    if profile.runs("bulk") {
        let bulk = bulk::run(server, &db_name, &pool, &mut setup, profile, size.label)?;
        results.bulk.push(bulk);
    }

    drop(setup);
    drop(pool);
    drop(bench_db);
    Ok(())
}

/// Seeds users x tasks with the crate's bulk path, two workers.
pub fn seed(pool: &PgPool, size: &SizeSpec) -> BoxResult<SizeInfo> {
    eprintln!("   seeding with seed_with_pool (2 workers)...");
    let options = SeedOptions {
        users: size.users,
        tasks_per_user: size.tasks_per_user,
        seed: 42,
        ..SeedOptions::default()
    };
    let report = seed_with_pool(pool, &options, 2, |_| ControlFlow::Continue(()))?;
    eprintln!(
        "   seeded {} users and {} tasks in {:.1} s ({:.0} rows/s)",
        report.users_created,
        report.tasks_created,
        report.elapsed.as_secs_f64(),
        report.rows_per_second()
    );
    Ok(SizeInfo {
        label: size.label,
        users: size.users,
        tasks_per_user: size.tasks_per_user,
        seed_secs: report.elapsed.as_secs_f64(),
        seed_rows_per_s: report.rows_per_second(),
        db_bytes: 0,
        load: None,
    })
}

/// pg_database_size of the connection's database.
pub fn database_size(conn: &mut PgConnection) -> BoxResult<i64> {
    #[derive(QueryableByName)]
    struct Size {
        #[diesel(sql_type = BigInt)]
        bytes: i64,
    }
    let size: Size = diesel::sql_query("SELECT pg_database_size(current_database()) AS bytes")
        .get_result(conn)?;
    Ok(size.bytes)
}
