//! The seed against psql's `\copy` of the same rows: after the seed, its users and
//! tasks are exported to CSV, the tables emptied, and the rows loaded again by psql,
//! first into the tables as they are (every index in place: the seed's situation),
//! then with the task table's secondary indexes dropped and built after the load
//! (what a load into an empty database could do instead). The second load leaves the
//! same rows and the same indexes as the seed did.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::Text;

use crate::dev_database::target_dir;

use crate::pgbench::tail;
use crate::report::LoadResult;
use crate::server::Server;
use crate::BoxResult;

/// The task columns a load writes (the search vector is generated; `last_write` is
/// empty after a seed).
const TASK_COLUMNS: &str =
    "id, user_id, title, description, completed, priority, due_date, created_at, updated_at, \
     version, metadata";

/// Measures `\copy` of the rows the seed wrote, with indexes in place and with the
/// secondary indexes built after; prints a line.
pub fn run(
    server: &Server,
    db: &str,
    setup: &mut PgConnection,
    seed_secs: f64,
    rows: u64,
) -> BoxResult<LoadResult> {
    // Through psql's stdin and stdout: the server may run as another OS user, which
    // cannot read or write this program's files.
    let dir = target_dir().join("bench").join("load");
    std::fs::create_dir_all(&dir)?;
    let (users_csv, tasks_csv) = (dir.join("users.csv"), dir.join("tasks.csv"));
    let tables = [
        ("users", "users", users_csv.as_path()),
        (
            "tasks",
            &*format!("tasks ({TASK_COLUMNS})"),
            tasks_csv.as_path(),
        ),
    ];
    let load = |setup: &mut PgConnection| -> BoxResult<f64> {
        let mut secs = 0.0;
        for (_, target, csv) in tables {
            let command = format!("\\copy {target} FROM pstdin WITH (FORMAT csv)");
            secs += psql(server, db, &command, Io::From(csv))?;
        }
        let _ = setup.batch_execute("CHECKPOINT");
        Ok(secs)
    };
    let outcome = (|| {
        for (_, target, csv) in tables {
            let command = format!("\\copy {target} TO pstdout WITH (FORMAT csv)");
            psql(server, db, &command, Io::To(csv))?;
        }
        empty(setup)?;
        let copy_secs = load(setup)?;
        empty(setup)?;
        let indexes = drop_secondary_indexes(setup)?;
        let copy_bare_secs = load(setup)?;
        let started = Instant::now();
        for definition in &indexes {
            setup.batch_execute(definition)?;
        }
        let index_secs = started.elapsed().as_secs_f64();
        let _ = setup.batch_execute("CHECKPOINT");
        Ok::<_, Box<dyn std::error::Error>>(LoadResult {
            rows,
            seed_secs,
            copy_secs,
            copy_bare_secs,
            index_secs,
            indexes: indexes.len(),
        })
    })();
    let _ = std::fs::remove_file(&users_csv);
    let _ = std::fs::remove_file(&tasks_csv);
    let result = outcome?;
    let per_s = |secs: f64| result.rows as f64 / secs;
    eprintln!(
        "   load of the seed's {} rows: seed {:.1} s ({:.0} rows/s); \\copy {:.1} s ({:.0} rows/s); \
         \\copy without the {} secondary task indexes {:.1} s + building them {:.1} s ({:.0} rows/s)",
        result.rows,
        result.seed_secs,
        per_s(result.seed_secs),
        result.copy_secs,
        per_s(result.copy_secs),
        result.indexes,
        result.copy_bare_secs,
        result.index_secs,
        per_s(result.copy_bare_secs + result.index_secs)
    );
    Ok(result)
}

/// Empties users and tasks (the benchmark's sessions come later) and checkpoints, so
/// that each load starts from the same state.
fn empty(setup: &mut PgConnection) -> BoxResult<()> {
    setup.batch_execute("TRUNCATE tasks, users CASCADE")?;
    let _ = setup.batch_execute("CHECKPOINT");
    Ok(())
}

/// Drops the task table's indexes other than its primary key; returns their
/// definitions, to build them again.
fn drop_secondary_indexes(setup: &mut PgConnection) -> BoxResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Index {
        #[diesel(sql_type = Text)]
        indexname: String,
        #[diesel(sql_type = Text)]
        indexdef: String,
    }
    let indexes: Vec<Index> = sql_query(
        "SELECT indexname::text, indexdef FROM pg_indexes \
         WHERE schemaname = 'public' AND tablename = 'tasks' AND indexname <> 'tasks_pkey' \
         ORDER BY indexname",
    )
    .load(setup)?;
    for index in &indexes {
        setup.batch_execute(&format!("DROP INDEX {}", index.indexname))?;
    }
    Ok(indexes.into_iter().map(|i| i.indexdef).collect())
}

/// Where psql's `\copy` reads from or writes to: a file as its stdin or stdout.
enum Io<'a> {
    From(&'a Path),
    To(&'a Path),
}

/// Runs psql's meta-command `command` on `db`: with [`Io::From`] timed by psql's
/// `\timing` (without starting psql and connecting), else by the wall clock; seconds.
fn psql(server: &Server, db: &str, command: &str, io: Io<'_>) -> BoxResult<f64> {
    let (mut cmd, target) = server.tool("psql", db);
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]);
    match io {
        Io::From(file) => {
            cmd.args(["-c", "\\timing on"])
                .stdin(std::fs::File::open(file)?)
                .stdout(Stdio::piped());
        }
        Io::To(file) => {
            cmd.stdin(Stdio::null())
                .stdout(std::fs::File::create(file)?);
        }
    }
    cmd.arg("-c")
        .arg(command)
        .arg("-d")
        .arg(target)
        .stderr(Stdio::piped());
    let started = Instant::now();
    let output = cmd
        .output()
        .map_err(|e| format!("could not run psql: {e}"))?;
    let wall = started.elapsed().as_secs_f64();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("psql failed: {}", tail(&stderr, 8)).into());
    }
    let ms: f64 = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("Time: "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .sum();
    Ok(if ms > 0.0 { ms / 1000.0 } else { wall })
}
