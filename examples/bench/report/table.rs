//! The table on the terminal: the setting, then operations, bulk, concurrency, targets.

use crate::ops::Op;
use crate::profile::Profile;
use crate::report::{group, Results, Target};

/// Prints every part of the report that has results.
pub fn print(
    results: &Results,
    profile: &Profile,
    machine: &[(String, String)],
    targets: &[Target],
) {
    print_setting(results, profile, machine);
    if !results.ops.is_empty() {
        print_ops(results, profile);
    }
    if !results.bulk.is_empty() {
        print_bulk(results);
    }
    if !results.concurrency.is_empty() {
        print_concurrency(results);
    }
    print_targets(results, targets);
}

/// The mode, the machine, the server, the pinning and the sizes.
fn print_setting(results: &Results, profile: &Profile, machine: &[(String, String)]) {
    println!();
    println!(
        "todo-store benchmark ({})",
        if profile.quick { "quick" } else { "full" }
    );
    for (k, v) in machine.iter().chain(results.server.iter()) {
        println!("  {k:<22} {v}");
    }
    for (size, state) in &results.pinning {
        println!("  {:<22} {state}", format!("pinning [{size}]"));
    }
    for s in &results.sizes {
        println!(
            "  size {:<17} {} users x {} tasks = {} tasks (seeded at {:.0} rows/s)",
            s.label,
            group(u64::from(s.users)),
            s.tasks_per_user,
            group(u64::from(s.users) * u64::from(s.tasks_per_user)),
            s.seed_rows_per_s
        );
    }
}

/// A line per operation and size, against its floor.
fn print_ops(results: &Results, profile: &Profile) {
    println!();
    println!(
        "{:<34} {:>4} {:>9} {:>9} {:>9} {:>8} {:>9} {:>6} {:>11} {:>7} {:>5}  prepared",
        "operation (one held connection)",
        "size",
        "mean µs",
        "p50 µs",
        "p99 µs",
        "ops/s",
        "floor µs",
        "ratio",
        "per round",
        "cpu µs",
        "stmts",
    );
    println!("{}", "-".repeat(132));
    for op in Op::ALL {
        for r in results.ops.iter().filter(|r| r.op == op) {
            println!(
                "{:<34} {:>4} {:>9.1} {:>9.1} {:>9.1} {:>8.0} {:>9} {:>6} {:>11} {:>7.1} {:>5}  {}",
                op.label(),
                r.size,
                r.mean_us,
                r.p50_us,
                r.p99_us,
                r.ops_per_s,
                r.floor_us.map_or("-".to_owned(), |f| format!("{f:.1}")),
                r.ratio().map_or("-".to_owned(), |x| format!("{x:.2}")),
                r.ratio_range(),
                r.client_cpu_us,
                r.statements.len(),
                if r.prepared { "yes" } else { "NO" }
            );
        }
    }
    println!(
        "(floor: pgbench -M prepared -c 1 running the crate's own SQL, mean of the mirrored \
         statement; {} iterations per op after {} warm-up, in {} rounds alternating with \
         the floor; per round: the lowest and highest ratio of a round; cpu: this program's \
         CPU time per call; stmts: statements per call; prepared: whether diesel caches \
         the statement)",
        profile.iterations, profile.warmup, profile.rounds
    );
}

fn print_bulk(results: &Results) {
    println!();
    println!(
        "{:<34} {:>4} {:>10} {:>14} {:>14} {:>6}",
        "bulk load", "size", "rows", "create_many/s", "\\copy rows/s", "ratio"
    );
    for b in &results.bulk {
        println!(
            "{:<34} {:>4} {:>10} {:>14.0} {:>14.0} {:>6.2}",
            "TaskRepo::create_many vs \\copy",
            b.size,
            group(b.rows as u64),
            b.crate_rows_per_s,
            b.copy_rows_per_s,
            b.crate_rows_per_s / b.copy_rows_per_s
        );
    }
}

fn print_concurrency(results: &Results) {
    println!();
    println!(
        "{:<34} {:>4} {:>8} {:>10} {:>10} {:>8}",
        "mixed 70/30 through the pool", "size", "threads", "ops/s", "µs/op", "x 1 thr"
    );
    for c in &results.concurrency {
        println!(
            "{:<34} {:>4} {:>8} {:>10.0} {:>10.0} {:>8.2} {:>11.2} {:>11.2} {:>7.2}",
            "",
            c.size,
            c.threads,
            c.ops_per_s,
            c.mean_us,
            results.speedup(c),
            c.busy_cores,
            c.own_cores,
            c.steal_cores
        );
    }
}

/// PASS or MISS per target, and the drift of the bare round trip from S to L.
fn print_targets(results: &Results, targets: &[Target]) {
    println!();
    println!("targets (reported, not asserted):");
    for t in targets {
        println!(
            "  {}  {:<66} {:>6.2} ({} {})",
            if t.pass() { "PASS" } else { "MISS" },
            t.what,
            t.value,
            if t.at_most { "<=" } else { ">=" },
            t.limit
        );
    }
    let at = |op: Op, size: &str| {
        results
            .ops
            .iter()
            .find(|r| r.op == op && r.size == size)
            .map(|r| r.mean_us)
    };
    if let (Some(s), Some(l)) = (at(Op::RoundTrip, "S"), at(Op::RoundTrip, "L")) {
        println!(
            "  (the bare round trip, SELECT $1, changed {:.2}x from S to L: the machine's \
             drift, not the data's)",
            l / s
        );
    }
    let misses = targets.iter().filter(|t| !t.pass()).count();
    println!(
        "  {} of {} targets met",
        targets.len() - misses,
        targets.len()
    );
}
