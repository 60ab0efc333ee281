//! Single calls on one held connection against their floor: a warm-up on both sides,
//! then rounds that alternate which side goes first, so that drift (and other load on
//! the machine) hits the crate and its floor alike.

use std::path::Path;
use std::time::Duration;

use diesel::PgConnection;
use rand::SeedableRng;
use rand_pcg::Pcg64;

use crate::dev_database::target_dir;
use todo_store::{DbConfig, PgPool};

use crate::capture::{capture, Capture};
use crate::ops::{call, Conn, Op};
use crate::pgbench::{self, PgbenchRun};
use crate::pinning::{pin_everything, thread_cpu_time, Pinning};
use crate::profile::Profile;
use crate::reference;
use crate::report::{Floors, OpResult};
use crate::sample::{refresh_versions, Ctx};
use crate::server::Server;
use crate::BoxResult;

/// What the single-call part of one size works with.
pub struct Part<'a> {
    pub server: &'a Server,
    pub db: &'a str,
    pub pool: &'a PgPool,
    pub config: &'a DbConfig,
    pub profile: &'a Profile,
    pub size: &'static str,
}

/// Every op the profile runs, in [`Op::RUN_ORDER`], pinned unless `no_pin` (or pinning is impossible):
/// how client and server were placed, and the results in the order of [`Op::ALL`].
pub fn run(
    part: &Part<'_>,
    ctx: &mut Ctx,
    setup: &mut PgConnection,
    no_pin: bool,
) -> BoxResult<(String, Vec<OpResult>)> {
    let mut rng = Pcg64::seed_from_u64(7);
    let mut conn = part.pool.get()?;
    let mut pinning = if no_pin {
        Err("--no-pin".to_owned())
    } else {
        pin_everything(part.pool, &mut conn, setup)
    };
    let pin_state = match &pinning {
        Ok(p) => p.describe(),
        Err(why) => format!("off ({why})"),
    };
    eprintln!("   pinning: {pin_state}");
    let scripts = target_dir().join("bench").join("pgbench");
    std::fs::create_dir_all(&scripts)?;
    let mut done = Vec::new();
    for op in Op::RUN_ORDER
        .into_iter()
        .filter(|op| part.profile.runs_op(*op))
    {
        let bench = OpBench {
            part,
            op,
            scripts: &scripts,
            ctx: &mut *ctx,
            conn: &mut conn,
            setup: &mut *setup,
            rng: &mut rng,
            pinning: pinning.as_mut().ok(),
        };
        let result = bench.run(&done)?;
        done.push(result);
    }
    if let Ok(p) = pinning.as_mut() {
        p.release();
    }
    drop(conn);
    let ops = Op::ALL
        .into_iter()
        .filter_map(|op| done.iter().find(|r| r.op == op).cloned())
        .collect();
    Ok((pin_state, ops))
}

/// The benchmark of one op and what it works on.
struct OpBench<'a, 'b> {
    part: &'a Part<'a>,
    op: Op,
    /// Where the floor's scripts are written (target/bench/pgbench/).
    scripts: &'a Path,
    ctx: &'b mut Ctx,
    /// The held connection the crate's calls run on.
    conn: &'b mut PgConnection,
    /// The setup connection: refreshes versions, finds pgbench's backend.
    setup: &'b mut PgConnection,
    rng: &'b mut Pcg64,
    pinning: Option<&'b mut Pinning>,
}

/// The timed part of one op.
#[derive(Default)]
struct Measured {
    samples: Vec<Duration>,
    /// This thread's CPU time over the timed loops: the client side's own work.
    client_cpu: Duration,
    /// Per round: the crate's mean and the floors' (its own SQL, the reference), µs.
    per_round: Vec<(f64, Floors)>,
    /// The floors' means over every round, µs.
    floor_us: Floors,
}

/// The pgbench scripts of an op's floors: its own SQL, the reference.
#[derive(Default)]
struct Scripts {
    own: Option<String>,
    reference: Option<String>,
}

impl OpBench<'_, '_> {
    /// Capture, warm-up, then the rounds; prints a line and returns the result.
    fn run(mut self, done: &[OpResult]) -> BoxResult<OpResult> {
        let part = self.part;
        let captured = capture(self.op, self.ctx, part.config, self.rng)?;
        let scripts = self.write_floor_scripts(&captured)?;
        let measured = self.measure(&scripts)?;
        let result = op_result(self.op, part, &captured, measured, done);
        print_line(&result);
        Ok(result)
    }

    /// The op's floor scripts (its own SQL, the reference), written to
    /// target/bench/pgbench/; none for an op compared with another's floor, no own one
    /// when the SQL could not be mirrored.
    fn write_floor_scripts(&self, captured: &Capture) -> BoxResult<Scripts> {
        if self.op.floor_of() != self.op {
            return Ok(Scripts::default());
        }
        let write = |kind: &str, script: &str| -> BoxResult<String> {
            let name = format!("{}_{}{kind}.sql", self.part.size, self.op.key());
            std::fs::write(self.scripts.join(name), script)?;
            Ok(script.to_owned())
        };
        let own = match &captured.floor_script {
            Ok(script) => Some(write("", script)?),
            Err(why) => {
                eprintln!("   {}: no floor of its own SQL: {why}", self.op.label());
                None
            }
        };
        let reference = reference::sql(self.op)
            .map(|sql| write("_reference", &pgbench::script(&sql, self.op.floor_pick())))
            .transpose()?;
        Ok(Scripts { own, reference })
    }

    /// Warm-up on every side, then the rounds, alternating which side goes first.
    fn measure(&mut self, scripts: &Scripts) -> BoxResult<Measured> {
        let profile = self.part.profile;
        let n = profile.iterations;
        let rounds = profile.rounds.clamp(1, n);
        // pgbench's `k`: the floors' deletes walk bench_pick from their own base.
        let mut floor_k = self.ctx.floor_delete_base;
        if self.op == Op::TaskUpdate {
            refresh_versions(self.setup, self.ctx)?;
        }
        self.crate_side(profile.warmup, &mut Vec::new())?;
        let sides = [scripts.own.as_deref(), scripts.reference.as_deref()];
        for script in sides.into_iter().flatten() {
            self.floor_side(script, profile.warmup, floor_k)?;
            floor_k += profile.warmup;
        }
        let mut m = Measured::default();
        let mut totals = [(0.0, 0usize); 2];
        for round in 0..rounds {
            let chunk = n / rounds + usize::from(round < n % rounds);
            let mut crate_us = 0.0;
            let mut floors = [None; 2];
            let order: [usize; 3] = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
            for side in order {
                if side == 0 {
                    crate_us = self.crate_round(chunk, &mut m)?;
                } else if let Some(script) = sides[side - 1] {
                    let run = self.floor_side(script, chunk, floor_k)?;
                    floor_k += chunk;
                    totals[side - 1].0 += run.statement_ms * chunk as f64;
                    totals[side - 1].1 += chunk;
                    floors[side - 1] = Some(run.statement_ms * 1000.0);
                }
            }
            m.per_round.push((
                crate_us,
                Floors {
                    own: floors[0],
                    reference: floors[1],
                },
            ));
        }
        let mean =
            |(total_ms, count): (f64, usize)| (count > 0).then(|| total_ms / count as f64 * 1000.0);
        m.floor_us = Floors {
            own: mean(totals[0]),
            reference: mean(totals[1]),
        };
        Ok(m)
    }

    /// One round of the crate's side: `count` timed calls; their mean, µs.
    fn crate_round(&mut self, count: usize, m: &mut Measured) -> BoxResult<f64> {
        if self.op == Op::TaskUpdate {
            refresh_versions(self.setup, self.ctx)?;
        }
        let before = m.samples.len();
        m.client_cpu += self.crate_side(count, &mut m.samples)?;
        let total_us: f64 = m.samples[before..]
            .iter()
            .map(|d| d.as_secs_f64() * 1e6)
            .sum();
        Ok(total_us / count.max(1) as f64)
    }

    /// `count` calls of the op, their times pushed to `samples`; this thread's CPU time.
    fn crate_side(&mut self, count: usize, samples: &mut Vec<Duration>) -> BoxResult<Duration> {
        let cpu_before = thread_cpu_time();
        for _ in 0..count {
            let conn = Conn::PerCall(self.part.pool, &mut *self.conn);
            let (elapsed, _) = call(self.op, self.ctx, conn, self.rng, false)
                .map_err(|e| format!("{}: {e}", self.op.label()))?;
            samples.push(elapsed);
        }
        Ok(thread_cpu_time().saturating_sub(cpu_before))
    }

    /// `count` transactions of the floor's script in pgbench, its deletes from `k` on.
    fn floor_side(&mut self, script: &str, count: usize, k: usize) -> BoxResult<PgbenchRun> {
        let defines = [
            ("nu", self.ctx.users.len()),
            ("nt", self.ctx.tasks.len()),
            ("nc", self.ctx.user_cursors.len()),
            ("k", k),
        ];
        let pin = self.pinning.as_deref_mut().map(|p| (p, &mut *self.setup));
        pgbench::run(self.part.server, self.part.db, script, count, &defines, pin)
    }
}

/// The op's result: its statistics, its floor (its own, or the one it is compared
/// with), and what it sent.
fn op_result(
    op: Op,
    part: &Part<'_>,
    captured: &Capture,
    mut m: Measured,
    done: &[OpResult],
) -> OpResult {
    let n = part.profile.iterations;
    let (floors, floor_note) = if op.floor_of() != op {
        match done.iter().find(|r| r.op == op.floor_of()) {
            Some(r) => (
                r.floors,
                Some(format!("the floors of {}", op.floor_of().label())),
            ),
            None => (Floors::default(), Some("no floor measured".to_owned())),
        }
    } else {
        (m.floor_us, captured.floor_script.clone().err())
    };
    let rounds: Vec<(f64, f64)> = m
        .per_round
        .iter()
        .filter_map(|(crate_us, round)| round.best().or(floors.best()).map(|f| (*crate_us, f)))
        .collect();
    let s = stats(&mut m.samples);
    OpResult {
        client_cpu_us: m.client_cpu.as_secs_f64() * 1e6 / n.max(1) as f64,
        rounds,
        op,
        size: part.size,
        iterations: n,
        mean_us: s.mean_us,
        p50_us: s.p50_us,
        p99_us: s.p99_us,
        ops_per_s: 1e6 / s.mean_us,
        floors,
        floor_note,
        floor_sql: captured.floor_sql.clone(),
        reference_sql: reference::sql(op.floor_of()).unwrap_or_default(),
        statements: captured
            .statements
            .iter()
            .map(|(sql, _)| sql.clone())
            .collect(),
        prepared: captured.prepared,
    }
}

fn print_line(result: &OpResult) {
    eprintln!(
        "   {:<34} mean {:>7.1} µs  p50 {:>7.1}  p99 {:>7.1}  floors {:>7} / {:>7}  ratio {:>5}  cpu {:>5.1}  ({} stmt{})",
        result.op.label(),
        result.mean_us,
        result.p50_us,
        result.p99_us,
        result.floors.own.map_or("-".to_owned(), |f| format!("{f:.1}")),
        result.floors.reference.map_or("-".to_owned(), |f| format!("{f:.1}")),
        result.ratio().map_or("-".to_owned(), |r| format!("{r:.2}")),
        result.client_cpu_us,
        result.statements.len(),
        if result.statements.len() == 1 { "" } else { "s" }
    );
}

struct Stats {
    mean_us: f64,
    p50_us: f64,
    p99_us: f64,
}

fn stats(samples: &mut [Duration]) -> Stats {
    samples.sort_unstable();
    let n = samples.len().max(1);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = samples.iter().map(|d| us(*d)).sum::<f64>() / n as f64;
    let at = |q: f64| us(samples[(((n as f64) * q).ceil() as usize).clamp(1, n) - 1]);
    Stats {
        mean_us: mean,
        p50_us: at(0.50),
        p99_us: at(0.99),
    }
}
