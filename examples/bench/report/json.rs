//! target/bench/results.json: the results with the machine, the server and the method.

use std::path::Path;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde::{Serialize, Serializer};

use crate::ops::Op;
use crate::profile::Profile;
use crate::report::{OpResult, Results, Target};
use crate::BoxResult;

/// What the floor is, in the words of the JSON.
const FLOOR: &str = "the faster of two, each pgbench -n -M prepared -c 1 -r in the same rounds \
                     (mean of the measured statement): the crate's own SQL with its binds as \
                     pgbench variables, and a hand-written reference statement for the same \
                     job (examples/bench/reference.rs); the crate's side checks a connection \
                     out of the pool per call, inside the timing";
const BULK_FLOOR: &str = "psql \\copy ... FROM pstdin WITH (FORMAT csv), psql's own timing";

/// Pairs written as a JSON object, in their order.
pub struct Pairs<K, V>(pub Vec<(K, V)>);

impl<K: Serialize, V: Serialize> Serialize for Pairs<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// A figure rounded to two decimals; `null` when not finite.
pub fn num(x: f64) -> Option<f64> {
    x.is_finite().then(|| (x * 100.0).round() / 100.0)
}

#[derive(Serialize)]
struct Document<'a> {
    generated_at: String,
    mode: &'static str,
    runtime_seconds: Option<f64>,
    machine: Pairs<&'a str, &'a str>,
    server: Pairs<&'a str, &'a str>,
    pinning: Pairs<&'a str, &'a str>,
    method: Method,
    sizes: Pairs<&'a str, Size>,
    operations: Pairs<&'static str, Operation<'a>>,
    bulk: Vec<Bulk<'a>>,
    concurrency: Vec<Concurrency<'a>>,
    async_pool: Vec<AsyncJson<'a>>,
    targets: Vec<TargetJson<'a>>,
}

#[derive(Serialize)]
struct Method {
    iterations: usize,
    warmup: usize,
    floor: &'static str,
    bulk_floor: &'static str,
}

#[derive(Serialize)]
struct Size {
    users: u32,
    tasks_per_user: u32,
    tasks: u64,
    seed_seconds: Option<f64>,
    seed_rows_per_s: Option<f64>,
    database_bytes: i64,
    load: Option<Load>,
}

/// The seed against psql's `\copy` of the same rows.
#[derive(Serialize)]
struct Load {
    rows: u64,
    seed_seconds: Option<f64>,
    seed_rows_per_s: Option<f64>,
    copy_seconds: Option<f64>,
    copy_rows_per_s: Option<f64>,
    copy_without_secondary_indexes_seconds: Option<f64>,
    secondary_index_build_seconds: Option<f64>,
    secondary_indexes: usize,
    copy_then_index_rows_per_s: Option<f64>,
}

/// One operation: its label, then its figures per size.
#[derive(Serialize)]
struct Operation<'a> {
    label: &'static str,
    #[serde(flatten)]
    sizes: Pairs<&'static str, OpAtSize<'a>>,
}

#[derive(Serialize)]
struct OpAtSize<'a> {
    iterations: usize,
    mean_us: Option<f64>,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    ops_per_s: Option<f64>,
    floor_mean_us: Option<f64>,
    floor_ops_per_s: Option<f64>,
    ratio: Option<f64>,
    own_sql_floor_mean_us: Option<f64>,
    reference_floor_mean_us: Option<f64>,
    reference_ratio: Option<f64>,
    statements_per_call: usize,
    prepared_statement: bool,
    rounds_crate_floor_us: Vec<[Option<f64>; 2]>,
    client_cpu_us: Option<f64>,
    statements: &'a [String],
    floor_sql: &'a str,
    reference_sql: &'a str,
    floor_note: Option<&'a str>,
}

#[derive(Serialize)]
struct Bulk<'a> {
    size: &'a str,
    rows: usize,
    create_many_rows_per_s: Option<f64>,
    copy_rows_per_s: Option<f64>,
    ratio: Option<f64>,
}

#[derive(Serialize)]
struct Concurrency<'a> {
    size: &'a str,
    threads: usize,
    ops_per_s: Option<f64>,
    mean_us_per_op: Option<f64>,
    speedup: Option<f64>,
    cores_busy: Option<f64>,
    cores_this_program: Option<f64>,
    cores_stolen: Option<f64>,
}

/// TaskRepo::get over one pool of 10: 64 tokio tasks through AsyncPool, 10 OS threads.
#[derive(Serialize)]
struct AsyncJson<'a> {
    size: &'a str,
    async_pool_64_tasks_ops_per_s: Option<f64>,
    sync_10_threads_ops_per_s: Option<f64>,
    ratio: Option<f64>,
}

#[derive(Serialize)]
struct TargetJson<'a> {
    target: &'a str,
    value: Option<f64>,
    limit: Option<f64>,
    pass: bool,
}

/// Writes the results to `path`.
pub fn write(
    path: &Path,
    results: &Results,
    profile: &Profile,
    machine: &[(String, String)],
    targets: &[Target],
    elapsed: Duration,
) -> BoxResult<()> {
    let document = Document {
        generated_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        mode: if profile.quick { "quick" } else { "full" },
        runtime_seconds: num(elapsed.as_secs_f64()),
        machine: facts(machine),
        server: facts(&results.server),
        pinning: Pairs(
            (results.pinning.iter())
                .map(|(size, state)| (*size, state.as_str()))
                .collect(),
        ),
        method: Method {
            iterations: profile.iterations,
            warmup: profile.warmup,
            floor: FLOOR,
            bulk_floor: BULK_FLOOR,
        },
        sizes: sizes(results),
        operations: operations(results),
        bulk: bulk(results),
        concurrency: concurrency(results),
        async_pool: (results.async_pool.iter())
            .map(|a| AsyncJson {
                size: a.size,
                async_pool_64_tasks_ops_per_s: num(a.async_ops_per_s),
                sync_10_threads_ops_per_s: num(a.threads_ops_per_s),
                ratio: num(a.async_ops_per_s / a.threads_ops_per_s),
            })
            .collect(),
        targets: (targets.iter())
            .map(|t| TargetJson {
                target: &t.what,
                value: num(t.value),
                limit: num(t.limit),
                pass: t.pass(),
            })
            .collect(),
    };
    let mut json = serde_json::to_string_pretty(&document)?;
    json.push('\n');
    std::fs::write(path, json)?;
    Ok(())
}

/// Facts (name, value) as a JSON object.
pub fn facts(pairs: &[(String, String)]) -> Pairs<&str, &str> {
    Pairs(
        pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
    )
}

fn sizes(results: &Results) -> Pairs<&str, Size> {
    Pairs(
        (results.sizes.iter())
            .map(|s| {
                let size = Size {
                    users: s.users,
                    tasks_per_user: s.tasks_per_user,
                    tasks: u64::from(s.users) * u64::from(s.tasks_per_user),
                    seed_seconds: num(s.seed_secs),
                    seed_rows_per_s: num(s.seed_rows_per_s),
                    database_bytes: s.db_bytes,
                    load: s.load.as_ref().map(|l| Load {
                        rows: l.rows,
                        seed_seconds: num(l.seed_secs),
                        seed_rows_per_s: num(l.rows_per_s(l.seed_secs)),
                        copy_seconds: num(l.copy_secs),
                        copy_rows_per_s: num(l.rows_per_s(l.copy_secs)),
                        copy_without_secondary_indexes_seconds: num(l.copy_bare_secs),
                        secondary_index_build_seconds: num(l.index_secs),
                        secondary_indexes: l.indexes,
                        copy_then_index_rows_per_s: num(
                            l.rows_per_s(l.copy_bare_secs + l.index_secs)
                        ),
                    }),
                };
                (s.label, size)
            })
            .collect(),
    )
}

/// Every measured op in the order of the table, with its figures per size.
fn operations(results: &Results) -> Pairs<&'static str, Operation<'_>> {
    let measured = Op::ALL
        .into_iter()
        .filter(|op| results.ops.iter().any(|r| r.op == *op));
    Pairs(
        measured
            .map(|op| {
                let sizes = (results.ops.iter())
                    .filter(|r| r.op == op)
                    .map(|r| (r.size, op_at_size(r)))
                    .collect();
                let operation = Operation {
                    label: op.label(),
                    sizes: Pairs(sizes),
                };
                (op.key(), operation)
            })
            .collect(),
    )
}

fn op_at_size(r: &OpResult) -> OpAtSize<'_> {
    OpAtSize {
        iterations: r.iterations,
        mean_us: num(r.mean_us),
        p50_us: num(r.p50_us),
        p99_us: num(r.p99_us),
        ops_per_s: num(r.ops_per_s),
        floor_mean_us: r.floor_us().and_then(num),
        floor_ops_per_s: r.floor_us().and_then(|f| num(1e6 / f)),
        ratio: r.ratio().and_then(num),
        own_sql_floor_mean_us: r.floors.own.and_then(num),
        reference_floor_mean_us: r.floors.reference.and_then(num),
        reference_ratio: r.reference_ratio().and_then(num),
        statements_per_call: r.statements.len(),
        prepared_statement: r.prepared,
        rounds_crate_floor_us: r.rounds.iter().map(|(c, f)| [num(*c), num(*f)]).collect(),
        client_cpu_us: num(r.client_cpu_us),
        statements: &r.statements,
        floor_sql: &r.floor_sql,
        reference_sql: &r.reference_sql,
        floor_note: r.floor_note.as_deref(),
    }
}

fn bulk(results: &Results) -> Vec<Bulk<'_>> {
    (results.bulk.iter())
        .map(|b| Bulk {
            size: b.size,
            rows: b.rows,
            create_many_rows_per_s: num(b.crate_rows_per_s),
            copy_rows_per_s: num(b.copy_rows_per_s),
            ratio: num(b.crate_rows_per_s / b.copy_rows_per_s),
        })
        .collect()
}

fn concurrency(results: &Results) -> Vec<Concurrency<'_>> {
    (results.concurrency.iter())
        .map(|c| Concurrency {
            size: c.size,
            threads: c.threads,
            ops_per_s: num(c.ops_per_s),
            mean_us_per_op: num(c.mean_us),
            speedup: num(results.speedup(c)),
            cores_busy: num(c.busy_cores),
            cores_this_program: num(c.own_cores),
            cores_stolen: num(c.steal_cores),
        })
        .collect()
}
