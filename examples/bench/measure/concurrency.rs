//! The 70 % read / 30 % write mix through the pool (a checkout per operation) at 1, 2,
//! 4 and 8 threads, and the CPU the machine and this program spend on it.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use todo_store::{NewTask, PgPool, TaskPatch, TaskQuery, TaskRepo, UserRepo};

use crate::ops::{PAGE, TITLE_NEW, TITLE_RENAMED};
use crate::pinning::process_cpu_seconds;
use crate::profile::Profile;
use crate::report::ConcResult;
use crate::sample::Ctx;
use crate::BoxResult;

/// Rounds over the thread counts, up and down, summed per count; prints a line per count.
pub fn run(
    pool: &PgPool,
    ctx: &Ctx,
    size: &'static str,
    profile: &Profile,
) -> BoxResult<Vec<ConcResult>> {
    let mut totals: Vec<(usize, u64, Duration, CpuUse)> = profile
        .threads
        .iter()
        .map(|&t| (t, 0, Duration::ZERO, CpuUse::default()))
        .collect();
    for round in 0..profile.conc_rounds {
        let mut order: Vec<usize> = (0..totals.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let (ops, busy, cpu) = measure(pool, ctx, totals[i].0, profile)?;
            totals[i].1 += ops;
            totals[i].2 += busy;
            totals[i].3.add(&cpu);
        }
    }
    let secs = profile.conc_duration.as_secs_f64() * profile.conc_rounds as f64;
    let results = totals
        .into_iter()
        .map(|(threads, ops, busy, cpu)| conc_result(size, threads, ops, busy, &cpu, secs))
        .collect();
    Ok(results)
}

/// The figures of one thread count over `secs` of measuring.
fn conc_result(
    size: &'static str,
    threads: usize,
    ops: u64,
    busy: Duration,
    cpu: &CpuUse,
    secs: f64,
) -> ConcResult {
    let ops_per_s = ops as f64 / secs;
    let mean_us = busy.as_secs_f64() * 1e6 / ops.max(1) as f64;
    // /proc/stat counts every core: total / secs is the number of cores.
    let cores = cpu.total / secs;
    let per = |x: f64| {
        if cpu.total > 0.0 {
            x / cpu.total * cores
        } else {
            0.0
        }
    };
    let result = ConcResult {
        size,
        threads,
        ops_per_s,
        mean_us,
        busy_cores: per(cpu.busy),
        own_cores: cpu.own / secs,
        steal_cores: per(cpu.steal),
    };
    eprintln!(
        "   mixed 70/30 through the pool, {threads} thread(s): {ops_per_s:.0} ops/s \
         ({mean_us:.0} µs per op; cores busy {:.2}, this program {:.2}, stolen {:.2})",
        result.busy_cores, result.own_cores, result.steal_cores
    );
    result
}

/// The 70 % read / 30 % write mix through the pool (a checkout per operation) at
/// `threads` threads for `conc_duration` after a warm-up: operations done, and the time
/// they took.
fn measure(
    pool: &PgPool,
    ctx: &Ctx,
    threads: usize,
    profile: &Profile,
) -> BoxResult<(u64, Duration, CpuUse)> {
    let started = Instant::now();
    let count_from = started + profile.conc_warmup;
    let stop_at = count_from + profile.conc_duration;
    let mut cpu = CpuUse::default();
    let outcomes: Vec<Result<(u64, Duration), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> Result<(u64, Duration), String> {
                    let mut rng = Pcg64::seed_from_u64(1000 + t as u64);
                    let (mut ops, mut busy) = (0u64, Duration::ZERO);
                    loop {
                        let begin = Instant::now();
                        if begin >= stop_at {
                            break;
                        }
                        mixed_op(pool, ctx, &mut rng).map_err(|e| e.to_string())?;
                        let end = Instant::now();
                        if begin >= count_from && end <= stop_at {
                            ops += 1;
                            busy += end - begin;
                        }
                    }
                    Ok((ops, busy))
                })
            })
            .collect();
        // The machine's and this process's CPU time over the measured window.
        std::thread::sleep(count_from.saturating_duration_since(Instant::now()));
        let before = CpuUse::now();
        std::thread::sleep(stop_at.saturating_duration_since(Instant::now()));
        cpu = CpuUse::now().minus(&before);
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("thread panicked".to_owned()))
            })
            .collect()
    });
    let (mut ops, mut busy) = (0u64, Duration::ZERO);
    for outcome in outcomes {
        let (o, b) = outcome?;
        ops += o;
        busy += b;
    }
    Ok((ops, busy, cpu))
}

/// CPU time, in seconds: the whole machine's (from /proc/stat, Linux) and this
/// process's.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    busy: f64,
    iowait: f64,
    steal: f64,
    total: f64,
    own: f64,
}

impl CpuUse {
    fn now() -> CpuUse {
        let ticks = 100.0; // USER_HZ
        let fields: Vec<f64> = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned))
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .filter_map(|f| f.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let at = |i: usize| fields.get(i).copied().unwrap_or(0.0) / ticks;
        // user nice system idle iowait irq softirq steal
        let own = process_cpu_seconds();
        CpuUse {
            busy: at(0) + at(1) + at(2) + at(5) + at(6),
            iowait: at(4),
            steal: at(7),
            total: (0..8).map(at).sum(),
            own,
        }
    }

    fn minus(&self, before: &CpuUse) -> CpuUse {
        CpuUse {
            busy: self.busy - before.busy,
            iowait: self.iowait - before.iowait,
            steal: self.steal - before.steal,
            total: self.total - before.total,
            own: self.own - before.own,
        }
    }

    fn add(&mut self, other: &CpuUse) {
        self.busy += other.busy;
        self.iowait += other.iowait;
        self.steal += other.steal;
        self.total += other.total;
        self.own += other.own;
    }
}

/// One operation of the mix: 70 % reads (get 30, list 20, stats 10, user get 10), 30 %
/// writes (set_completed 10, update 10, create 10).
fn mixed_op(pool: &PgPool, ctx: &Ctx, rng: &mut Pcg64) -> BoxResult<()> {
    let user = &ctx.users[rng.random_range(0..ctx.users.len())];
    let (task_user, task_id) = ctx.tasks[rng.random_range(0..ctx.tasks.len())];
    let dice = rng.random_range(0..100);
    let mut conn = pool.get()?;
    match dice {
        0..=29 => {
            TaskRepo::get(&mut conn, task_user, task_id)?;
        }
        30..=49 => {
            let query = TaskQuery::new().completed(false).limit(PAGE);
            TaskRepo::list(&mut conn, user.id, &query)?;
        }
        50..=59 => {
            TaskRepo::stats(&mut conn, user.id)?;
        }
        60..=69 => {
            UserRepo::get(&mut conn, user.id)?;
        }
        70..=79 => {
            TaskRepo::set_completed(&mut conn, task_user, task_id, rng.random_bool(0.5))?;
        }
        80..=89 => {
            let patch = TaskPatch {
                title: Some(TITLE_RENAMED.to_owned()),
                ..TaskPatch::default()
            };
            TaskRepo::update(&mut conn, task_user, task_id, &patch)?;
        }
        _ => {
            TaskRepo::create(&mut conn, user.id, &NewTask::new(TITLE_NEW))?;
        }
    }
    Ok(())
}
