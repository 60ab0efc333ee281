//! `AsyncPool` under load: 64 concurrent tokio tasks calling `TaskRepo::get` through
//! an `AsyncPool` over a pool of 10 connections, against 10 OS threads calling the
//! synchronous API on the same pool. Both keep every connection busy; the difference is
//! what the async layer (a blocking-pool hop per call, 64 waiters on 10 connections)
//! costs in throughput.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use todo_store::{connect, AsyncPool, DbConfig, PgPool, TaskRepo};

use crate::profile::Profile;
use crate::report::AsyncResult;
use crate::sample::Ctx;
use crate::BoxResult;

/// Connections in the pool both sides share.
const POOL: u32 = 10;
/// Concurrent tokio tasks on the async side.
const TASKS: usize = 64;

/// Measures both sides for `conc_duration` each, after a warm-up; prints a line.
pub fn run(
    config: &DbConfig,
    ctx: &Ctx,
    size: &'static str,
    profile: &Profile,
) -> BoxResult<AsyncResult> {
    let pool = connect(&config.clone().pool_size(POOL).min_idle(Some(POOL)))?;
    let tasks = Arc::new(ctx.tasks.clone());
    let threads_ops_per_s = threads(&pool, &tasks, profile)?;
    let async_ops_per_s = tokio_tasks(&pool, &tasks, profile)?;
    let result = AsyncResult {
        size,
        async_ops_per_s,
        threads_ops_per_s,
    };
    eprintln!(
        "   TaskRepo::get, pool of {POOL}: {TASKS} tokio tasks through AsyncPool \
         {async_ops_per_s:.0} ops/s, {POOL} OS threads {threads_ops_per_s:.0} ops/s ({:.2}x)",
        async_ops_per_s / threads_ops_per_s
    );
    Ok(result)
}

/// The synchronous side: `POOL` threads, a checkout per call.
fn threads(
    pool: &PgPool,
    tasks: &Arc<Vec<(todo_store::UserId, todo_store::TaskId)>>,
    p: &Profile,
) -> BoxResult<f64> {
    let counted = AtomicU64::new(0);
    let (count_from, stop_at) = window(p);
    std::thread::scope(|scope| -> BoxResult<()> {
        let handles: Vec<_> = (0..POOL as u64)
            .map(|t| {
                let counted = &counted;
                scope.spawn(move || -> Result<(), String> {
                    let mut rng = Pcg64::seed_from_u64(500 + t);
                    while Instant::now() < stop_at {
                        let (user, task) = tasks[rng.random_range(0..tasks.len())];
                        let mut conn = pool.get().map_err(|e| e.to_string())?;
                        TaskRepo::get(&mut conn, user, task).map_err(|e| e.to_string())?;
                        if Instant::now() >= count_from {
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "thread panicked")??;
        }
        Ok(())
    })?;
    Ok(counted.load(Ordering::Relaxed) as f64 / p.conc_duration.as_secs_f64())
}

/// The async side: `TASKS` tasks on a multi-threaded runtime, each awaiting
/// `AsyncPool::run` in a loop.
fn tokio_tasks(
    pool: &PgPool,
    tasks: &Arc<Vec<(todo_store::UserId, todo_store::TaskId)>>,
    p: &Profile,
) -> BoxResult<f64> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let async_pool = AsyncPool::new(pool.clone());
    let counted = Arc::new(AtomicU64::new(0));
    let (count_from, stop_at) = window(p);
    runtime.block_on(async {
        let mut handles = Vec::new();
        for t in 0..TASKS as u64 {
            let (async_pool, tasks, counted) =
                (async_pool.clone(), Arc::clone(tasks), Arc::clone(&counted));
            handles.push(tokio::spawn(async move {
                let mut rng = Pcg64::seed_from_u64(900 + t);
                while Instant::now() < stop_at {
                    let (user, task) = tasks[rng.random_range(0..tasks.len())];
                    async_pool
                        .run(move |conn| TaskRepo::get(conn, user, task))
                        .await?;
                    if Instant::now() >= count_from {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok::<(), todo_store::Error>(())
            }));
        }
        for h in handles {
            h.await??;
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(counted.load(Ordering::Relaxed) as f64 / p.conc_duration.as_secs_f64())
}

/// When counting starts (after the warm-up) and when the side stops.
fn window(p: &Profile) -> (Instant, Instant) {
    let count_from = Instant::now() + p.conc_warmup;
    (count_from, count_from + p.conc_duration)
}
