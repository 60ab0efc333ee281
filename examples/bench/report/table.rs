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
    for a in &results.async_pool {
        println!(
            "TaskRepo::get over a pool of 10 [{}]: 64 tokio tasks through AsyncPool {:.0} ops/s, \
             10 OS threads (sync API) {:.0} ops/s: {:.2}x",
            a.size,
            a.async_ops_per_s,
            a.threads_ops_per_s,
            a.async_ops_per_s / a.threads_ops_per_s
        );
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
            "  size {:<17} {} users x {} tasks = {} tasks, seeded in {:.1} s ({:.0} rows/s), \
             database {:.2} GiB",
            s.label,
            group(u64::from(s.users)),
            s.tasks_per_user,
            group(u64::from(s.users) * u64::from(s.tasks_per_user)),
            s.seed_secs,
            s.seed_rows_per_s,
            s.db_bytes as f64 / (1u64 << 30) as f64
        );
    }
    print_loads(results);
}

/// The seed against psql's `\copy` of the same rows, per size.
fn print_loads(results: &Results) {
    let loads: Vec<_> = (results.sizes.iter())
        .filter_map(|s| s.load.as_ref().map(|l| (s.label, l)))
        .collect();
    if loads.is_empty() {
        return;
    }
    println!();
    println!(
        "{:<6} {:>12} {:>18} {:>18} {:>8} {:>30}",
        "load", "rows", "seed rows/s", "\\copy rows/s", "seed/copy", "\\copy, then indexes: rows/s"
    );
    for (label, l) in loads {
        let after = l.copy_bare_secs + l.index_secs;
        println!(
            "{:<6} {:>12} {:>11.0} ({:>4.0} s) {:>11.0} ({:>4.0} s) {:>8.2} {:>11.0} ({:.0} s + {:.0} s)",
            label,
            group(l.rows),
            l.rows_per_s(l.seed_secs),
            l.seed_secs,
            l.rows_per_s(l.copy_secs),
            l.copy_secs,
            l.copy_secs / l.seed_secs,
            l.rows_per_s(after),
            l.copy_bare_secs,
            l.index_secs
        );
    }
}

/// A line per operation and size, against its floor.
fn print_ops(results: &Results, profile: &Profile) {
    println!();
    println!(
        "{:<34} {:>4} {:>9} {:>9} {:>9} {:>8} {:>9} {:>9} {:>6} {:>11} {:>7} {:>5}  prepared",
        "operation (a checkout per call)",
        "size",
        "mean µs",
        "p50 µs",
        "p99 µs",
        "ops/s",
        "own SQL",
        "reference",
        "ratio",
        "per round",
        "cpu µs",
        "stmts",
    );
    println!("{}", "-".repeat(142));
    for op in Op::ALL {
        for r in results.ops.iter().filter(|r| r.op == op) {
            println!(
                "{:<34} {:>4} {:>9.1} {:>9.1} {:>9.1} {:>8.0} {:>9} {:>9} {:>6} {:>11} {:>7.1} {:>5}  {}",
                op.label(),
                r.size,
                r.mean_us,
                r.p50_us,
                r.p99_us,
                r.ops_per_s,
                r.floors.own.map_or("-".to_owned(), |f| format!("{f:.1}")),
                r.floors.reference.map_or("-".to_owned(), |f| format!("{f:.1}")),
                r.ratio().map_or("-".to_owned(), |x| format!("{x:.2}")),
                r.ratio_range(),
                r.client_cpu_us,
                r.statements.len(),
                if r.prepared { "yes" } else { "NO" }
            );
        }
    }
    println!(
        "(floors, µs: pgbench -M prepared -c 1 running the crate's own SQL, and a hand-written \
         reference statement for the same job; ratio: the crate over the faster of the two; \
         the crate checks a connection out of the pool per call; {} iterations per op after {} warm-up, in {} rounds alternating with \
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
    for (op, from, to, crate_growth, floor_growth) in crate::report::growth(results) {
        println!(
            "  growth {from} -> {to}: {:<40} crate {crate_growth:.2}x, faster floor {floor_growth:.2}x",
            op.label()
        );
    }
    let misses = targets.iter().filter(|t| !t.pass()).count();
    println!(
        "  {} of {} targets met",
        targets.len() - misses,
        targets.len()
    );
}
