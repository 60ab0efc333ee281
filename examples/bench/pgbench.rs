//! The floor: pgbench running the crate's own SQL (`-n -M prepared -c 1 -r`), and the
//! scripts it runs.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Instant;

use diesel::PgConnection;

use crate::ops::{Pick, PAGE, TITLE_NEW, TITLE_RENAMED};
use crate::pinning::{Pinning, PIN_WINDOW};
use crate::server::{lit, Server};
use crate::BoxResult;

/// A UUIDv7 made in SQL (millisecond time prefix, random rest): the floor's new ids land
/// at the right edge of the primary key, as the crate's `Uuid::now_v7()` ids do.
const SQL_UUID_V7: &str = "(lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), \
     12, '0') || '7' || substr(md5(random()::text), 1, 3) || '8' || \
     substr(md5(random()::text), 1, 15))::uuid";

/// The script for the mirrored statement `sql`: the constants it uses, the lines that
/// fetch its inputs, then the statement (last, so that `-r` reports it last).
pub fn script(sql: &str, pick: Pick) -> String {
    let mut script = String::new();
    let constants = [
        ("f", "false".to_owned()),
        ("t", "true".to_owned()),
        ("lim", (PAGE + 1).to_string()),
        ("one", "1".to_owned()),
    ];
    for (name, value) in constants {
        if contains_token(sql, &format!(":{name}")) {
            let _ = writeln!(script, "\\set {name} {value}");
        }
    }
    let mut prefix = prefix(pick);
    if contains_token(sql, ":wid") && !prefix.contains(" AS wid ") {
        // A write mark to store (see `capture::mirror`): made in the pick's query.
        prefix = prefix.replacen(
            " FROM bench_pick",
            &format!(", {SQL_UUID_V7} AS wid FROM bench_pick"),
            1,
        );
    }
    script.push_str(&prefix);
    script.push_str(sql);
    script.push('\n');
    script
}

/// The pgbench lines before the mirrored statement: pick the sample row at random
/// (`random` is uniform, like the crate side's picks) and fetch its values.
pub fn prefix(pick: Pick) -> String {
    let users = concat!(
        "\\set r random(1, :nu)\n",
        "SELECT id AS uid, email AS uemail, cat, cid, term, th, hid, 'UTC' AS tz, ",
        "(now() AT TIME ZONE 'UTC')::date AS today, ",
        "(now() AT TIME ZONE 'UTC')::date + 1 + (random() * 999998)::int AS day ",
        "FROM bench_users WHERE k = :r \\gset\n"
    );
    let tasks = "\\set r random(1, :nt)\n\
                 SELECT user_id AS uid, task_id AS tid FROM bench_pick WHERE k = :r \\gset\n";
    match pick {
        Pick::Nothing => String::new(),
        Pick::NewUser => format!(
            "SELECT {SQL_UUID_V7} AS nid, 'bench-' || md5(random()::text) || '@example.com' \
             AS nemail, 'Bench User' AS nname \\gset\n"
        ),
        Pick::NewTask => format!(
            "\\set r random(1, :nu)\n\
             SELECT id AS uid, {SQL_UUID_V7} AS nid, {} AS ntitle, 'medium' AS prio \
             FROM bench_users WHERE k = :r \\gset\n",
            lit(TITLE_NEW)
        ),
        Pick::TaskVersion => format!(
            "\\set r random(1, :nt)\n\
             SELECT p.user_id AS uid, p.task_id AS tid, t.version AS ver, {} AS ntitle, \
             {SQL_UUID_V7} AS wid \
             FROM bench_pick p JOIN tasks t ON t.id = p.task_id WHERE p.k = :r \\gset\n",
            lit(TITLE_RENAMED)
        ),
        Pick::TaskFlag => format!("\\set c random(0, 1)\n{tasks}"),
        Pick::NextDeletable => "\\set k :k + 1\n\
             SELECT user_id AS uid, task_id AS tid FROM bench_pick WHERE k = :k \\gset\n"
            .to_owned(),
        Pick::UserCursor => "\\set r random(1, :nc)\n\
             SELECT cat AS pcat, cid AS pcid FROM bench_ucur WHERE k = :r \\gset\n"
            .to_owned(),
        Pick::Task => tasks.to_owned(),
        Pick::User => users.to_owned(),
    }
}

/// Whether `sql` uses pgbench variable `token` (`:f`, not `:foo`).
fn contains_token(sql: &str, token: &str) -> bool {
    sql.match_indices(token).any(|(i, _)| {
        !sql[i + token.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && !sql[..i].ends_with(':')
    })
}

/// pgbench's result: the mirrored (last) statement's mean latency.
pub struct PgbenchRun {
    pub statement_ms: f64,
}

/// Runs `script` `transactions` times in pgbench on database `db`, with `defines` as
/// `-D` variables. With `pin`, pgbench's backend is pinned (found through the given
/// connection) before its first timed statement.
pub fn run(
    server: &Server,
    db: &str,
    script: &str,
    transactions: usize,
    defines: &[(&str, usize)],
    pin: Option<(&mut Pinning, &mut PgConnection)>,
) -> BoxResult<PgbenchRun> {
    // With pinning, the first transaction waits a moment, so that pgbench's backend can
    // be found and pinned before anything is timed.
    let script = if pin.is_some() {
        format!(
            "\\if :pinwait\n\\sleep {} ms\n\\set pinwait 0\n\\endif\n{script}",
            PIN_WINDOW.as_millis() + 30
        )
    } else {
        script.to_owned()
    };
    let mut cmd = command(server, db, transactions, defines, pin.is_some());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not run pgbench: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("pgbench stdin")?
        .write_all(script.as_bytes())?;
    if let Some((pinning, poll)) = pin {
        pinning.pin_pgbench_backend(poll, db, started);
    }
    let output = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("pgbench failed: {}{}", tail(&stderr, 8), tail(&stdout, 4)).into());
    }
    Ok(PgbenchRun {
        statement_ms: last_statement_ms(&stdout, &stderr)?,
    })
}

/// The pgbench command line: one client, prepared statements, the script on stdin.
fn command(
    server: &Server,
    db: &str,
    transactions: usize,
    defines: &[(&str, usize)],
    pinned: bool,
) -> Command {
    let (mut cmd, target) = server.tool("pgbench", db);
    if pinned {
        cmd.arg("-D").arg("pinwait=1");
    }
    cmd.args([
        "-n", "-M", "prepared", "-c", "1", "-j", "1", "-r", "-f", "-",
    ])
    .arg("-t")
    .arg(transactions.to_string());
    for (name, value) in defines {
        cmd.arg("-D").arg(format!("{name}={value}"));
    }
    cmd.arg(target)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The last statement's mean latency from pgbench's `-r` report; failed transactions
/// are an error.
fn last_statement_ms(stdout: &str, stderr: &str) -> BoxResult<f64> {
    if let Some(line) = stdout
        .lines()
        .find(|l| l.starts_with("number of failed transactions"))
    {
        if !line.contains(": 0 ") {
            return Err(format!("pgbench: {line}\n{}", tail(stderr, 8)).into());
        }
    }
    let latencies = stdout
        .split_once("statement latencies in milliseconds")
        .map(|(_, rest)| rest)
        .ok_or_else(|| {
            format!(
                "pgbench printed no statement latencies:\n{}",
                tail(stdout, 10)
            )
        })?;
    let last = latencies
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .last()
        .ok_or("pgbench: no statement latency")?;
    Ok(last)
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
