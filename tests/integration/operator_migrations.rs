//! The operator's migrations: status, reverting a number or down to a version, what a
//! revert would drop, two operators at once, and the `migrate` example built on them.

use std::process::Command;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamp};
use todo_store::migrate::{self, Migration, Revert, RevertOutcome};
use todo_store::testing::TestDb;
use todo_store::{run_migrations, Error, HabitRepo, NewHabit, Schedule};

use crate::support::examples::example_binary;
use crate::support::fixtures;

/// What the `migrate` example did: its exit code, stdout and stderr.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the `migrate` example against `url` with `args`.
fn migrate_command(url: &str, args: &[&str]) -> Run {
    let output = Command::new(example_binary("migrate"))
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .expect("the migrate example runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn server_local_time(conn: &mut PgConnection) -> NaiveDateTime {
    diesel::select(diesel::dsl::sql::<Timestamp>("localtimestamp"))
        .get_result(conn)
        .unwrap()
}

/// The versions applied, oldest first.
fn applied(conn: &mut PgConnection) -> Vec<String> {
    migrate::status(conn)
        .unwrap()
        .into_iter()
        .filter(|l| l.is_applied())
        .map(|l| l.migration.version)
        .collect()
}

fn versions(migrations: &[Migration]) -> Vec<String> {
    migrations.iter().map(|m| m.version.clone()).collect()
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .unwrap()
        .count
}

#[test]
fn status_lists_each_migration_pending_then_applied_with_when() {
    let db = TestDb::empty();
    let mut conn = PgConnection::establish(db.url()).unwrap();
    let embedded = migrate::embedded();
    assert!(embedded.windows(2).all(|w| w[0].version < w[1].version));

    let before = migrate::status(&mut conn).unwrap();
    let listed: Vec<&Migration> = before.iter().map(|l| &l.migration).collect();
    assert_eq!(listed, embedded.iter().collect::<Vec<_>>());
    assert!(before.iter().all(|l| l.known && !l.is_applied()));

    let start = server_local_time(&mut conn);
    run_migrations(&mut conn).unwrap();
    let end = server_local_time(&mut conn);
    let after = migrate::status(&mut conn).unwrap();
    assert_eq!(after.len(), embedded.len());
    for line in &after {
        let at = line.applied_at.expect("applied");
        assert!(start <= at && at <= end, "{}: {at}", line.migration);
    }

    let reverted = migrate::revert_last(&mut conn).unwrap();
    assert_eq!(&reverted, embedded.last().unwrap());
    let now = migrate::status(&mut conn).unwrap();
    let (last, rest) = now.split_last().unwrap();
    assert!(!last.is_applied() && last.migration == reverted);
    assert!(rest.iter().all(|l| l.is_applied()));
}

#[test]
fn a_migration_this_binary_does_not_know_is_listed_and_is_not_reverted() {
    let db = TestDb::new();
    let mut conn = db.conn();
    diesel::sql_query("INSERT INTO __diesel_schema_migrations (version) VALUES ('29991231000001')")
        .execute(&mut conn)
        .unwrap();
    let status = migrate::status(&mut conn).unwrap();
    let last = status.last().unwrap();
    assert_eq!(last.migration.version, "29991231000001");
    assert!(!last.known && last.is_applied());

    let before = applied(&mut conn);
    let err = migrate::revert(&mut conn, 2).unwrap_err();
    assert!(
        matches!(&err, Error::Migration(d) if d.as_str().contains("29991231000001")
            && d.as_str().contains("newer release")),
        "{err}"
    );
    assert_eq!(applied(&mut conn), before, "nothing reverted");
}

#[test]
fn counts_and_versions_that_cannot_be_reverted_are_typed_errors_and_revert_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let embedded = migrate::embedded();
    let n = embedded.len();
    let all = applied(&mut conn);
    assert_eq!(all.len(), n);
    // The connection caches task_priority's OID, which reverting every migration and
    // applying them again changes.
    high_priority_task(&mut conn);

    for count in [0, n + 1] {
        let err = migrate::revert(&mut conn, count).unwrap_err();
        assert!(
            matches!(&err, Error::Validation { field, .. } if field == "count"),
            "{count}: {err}"
        );
    }
    let err = migrate::revert(&mut conn, n + 1).unwrap_err().to_string();
    assert!(err.contains(&format!("revert at most {n}")), "{err}");
    let err = migrate::revert_to(&mut conn, "2099-01-01-000001").unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { entity: "migration", key } if key == "2099-01-01-000001"),
        "{err}"
    );
    assert_eq!(applied(&mut conn), all, "nothing reverted");

    // Down to the third newest, named as its directory: the two newer ones go.
    let reverted = migrate::revert_to(&mut conn, &embedded[n - 3].name).unwrap();
    assert_eq!(
        versions(&reverted),
        [
            embedded[n - 1].version.clone(),
            embedded[n - 2].version.clone()
        ]
    );
    assert_eq!(applied(&mut conn), all[..n - 2]);
    // It is the newest now: nothing to revert, in any spelling.
    let dashed = embedded[n - 3].name.split('_').next().unwrap().to_owned();
    assert!(migrate::revert_to(&mut conn, &dashed).unwrap().is_empty());
    assert!(migrate::revert_to(&mut conn, &embedded[n - 3].version)
        .unwrap()
        .is_empty());
    // A pending one cannot stay applied.
    let err = migrate::revert_to(&mut conn, &embedded[n - 1].version).unwrap_err();
    assert!(
        matches!(&err, Error::Validation { field, .. } if field == "version"),
        "{err}"
    );
    assert_eq!(applied(&mut conn), all[..n - 2]);
    // Every migration reverted, then no count is possible.
    assert_eq!(migrate::revert(&mut conn, n - 2).unwrap().len(), n - 2);
    let err = migrate::revert_last(&mut conn).unwrap_err().to_string();
    assert!(err.contains("no migration is applied"), "{err}");
    // Applied again on another connection: the one that reverted was renewed (as
    // after run_migrations) and caches nothing of the old schema.
    assert_eq!(run_migrations(&mut db.conn()).unwrap(), all);
    high_priority_task(&mut conn);
}

/// A new user with a task whose insert binds a `task_priority`.
fn high_priority_task(conn: &mut PgConnection) {
    use todo_store::{NewTask, Priority, TaskRepo};
    let user = fixtures::user(conn);
    TaskRepo::create(conn, user.id, &NewTask::new("t").priority(Priority::High)).unwrap();
}

/// The position of the migration whose directory ends with `_suffix`.
fn position_of(embedded: &[Migration], suffix: &str) -> usize {
    embedded
        .iter()
        .position(|m| m.name.ends_with(&format!("_{suffix}")))
        .unwrap_or_else(|| panic!("no migration named {suffix}"))
}

#[test]
fn what_a_revert_would_drop_names_the_tables_holding_rows_and_changes_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let embedded = migrate::embedded();
    let all = Revert::Newest(embedded.len());
    // Empty tables: nothing of value goes.
    assert_eq!(migrate::data_dropped_by(&mut conn, &all).unwrap(), []);

    let user = fixtures::user(&mut conn);
    fixtures::task(&mut conn, &user, "Keep me");
    let dropped = migrate::data_dropped_by(&mut conn, &all).unwrap();
    let lines: Vec<String> = dropped.iter().map(ToString::to_string).collect();
    let users = &embedded[position_of(&embedded, "create_users")];
    let tasks = &embedded[position_of(&embedded, "create_tasks")];
    assert_eq!(
        lines,
        [
            format!("{tasks} drops table tasks, which holds rows"),
            format!("{users} drops table users, which holds rows"),
        ]
    );
    assert_eq!(dropped[0].column, None);
    // The trial was rolled back.
    assert_eq!(applied(&mut conn).len(), embedded.len());
    assert_eq!(count(&mut conn, "SELECT count(*) FROM tasks"), 1);
    // And refused for real, with the same answer.
    match migrate::revert_unless_it_drops_data(&mut conn, &all).unwrap() {
        RevertOutcome::Refused(refused) => assert_eq!(refused, dropped),
        other => panic!("{other:?}"),
    }
    assert_eq!(applied(&mut conn).len(), embedded.len());
}

/// Reverting the search migration drops `tasks.search_vector`, which holds values for
/// every task; they are derived from the title and description, and do not count.
#[test]
fn a_generated_column_never_counts_as_data_dropped() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    fixtures::task(&mut conn, &user, "searchable words");
    let embedded = migrate::embedded();
    let search = position_of(&embedded, "task_search");
    let dropped = migrate::data_dropped_by(
        &mut conn,
        &Revert::DownTo(embedded[search - 1].version.clone()),
    )
    .unwrap();
    assert!(
        dropped
            .iter()
            .all(|d| d.column.as_deref() != Some("search_vector")),
        "{dropped:?}"
    );
}

#[test]
fn down_one_then_up_keeps_the_data_of_the_tables_it_does_not_touch() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let task = fixtures::task(&mut conn, &user, "Survive the round trip");
    let habit =
        HabitRepo::create(&mut conn, user.id, &NewHabit::new("Run", Schedule::Daily)).unwrap();
    drop(conn);
    let embedded = migrate::embedded();
    let newest = embedded.last().unwrap();

    let status = migrate_command(db.url(), &["status"]);
    assert_eq!(status.code, Some(0), "{}", status.stderr);
    assert!(
        status
            .stdout
            .contains(&format!("{} applied, 0 pending", embedded.len())),
        "{}",
        status.stdout
    );
    assert_eq!(
        status.stdout.lines().next().unwrap(),
        format!("database {}", todo_store::config::redact_url(db.url()))
    );

    let down = migrate_command(db.url(), &["down"]);
    assert_eq!(down.code, Some(0), "{}{}", down.stdout, down.stderr);
    assert!(
        down.stdout.contains(&format!("reverted {newest}\n")),
        "{}",
        down.stdout
    );
    let status = migrate_command(db.url(), &["status"]);
    assert!(
        status
            .stdout
            .contains(&format!("pending  {:19}  {newest}\n", "")),
        "{}",
        status.stdout
    );

    let up = migrate_command(db.url(), &["up"]);
    assert_eq!(up.code, Some(0), "{}", up.stderr);
    assert!(
        up.stdout.contains(&format!("applied {newest}\n")),
        "{}",
        up.stdout
    );
    let up_again = migrate_command(db.url(), &["up"]);
    assert!(
        up_again.stdout.contains("nothing to apply"),
        "{}",
        up_again.stdout
    );

    // A connection opened now: the migrations ran in another process.
    let mut fresh = PgConnection::establish(db.url()).unwrap();
    assert_eq!(
        todo_store::TaskRepo::get(&mut fresh, user.id, task.id)
            .unwrap()
            .title,
        task.title
    );
    assert_eq!(
        HabitRepo::get(&mut fresh, user.id, habit.id).unwrap().name,
        habit.name
    );
    assert_eq!(applied(&mut fresh).len(), embedded.len());
}

#[test]
fn down_that_drops_a_table_holding_rows_is_refused_without_yes() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    HabitRepo::create(&mut conn, user.id, &NewHabit::new("Read", Schedule::Daily)).unwrap();
    let embedded = migrate::embedded();
    let habits = position_of(&embedded, "habits");
    let count_to_habits = (embedded.len() - habits).to_string();

    let refused = migrate_command(db.url(), &["down", &count_to_habits]);
    assert_eq!(
        refused.code,
        Some(2),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    assert!(
        refused.stderr.contains(&format!(
            "{} drops table habits, which holds rows",
            embedded[habits]
        )),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert!(!refused.stdout.contains("reverted"), "{}", refused.stdout);
    assert_eq!(applied(&mut conn).len(), embedded.len(), "nothing reverted");
    assert_eq!(count(&mut conn, "SELECT count(*) FROM habits"), 1);

    // --to the migration before it: the same refusal.
    let to = migrate_command(db.url(), &["down", "--to", &embedded[habits - 1].name]);
    assert_eq!(to.code, Some(2), "{}", to.stderr);

    let allowed = migrate_command(db.url(), &["down", &count_to_habits, "--yes"]);
    assert_eq!(allowed.code, Some(0), "{}", allowed.stderr);
    let reverted: Vec<&str> = allowed
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("reverted "))
        .collect();
    let mut expected: Vec<String> = embedded[habits..].iter().map(|m| m.name.clone()).collect();
    expected.reverse();
    assert_eq!(reverted, expected);
    drop(conn);
    let mut fresh = PgConnection::establish(db.url()).unwrap();
    assert_eq!(applied(&mut fresh).len(), habits);
    assert_eq!(
        count(&mut fresh, "SELECT count(*) FROM users"),
        1,
        "users kept"
    );
    let up = migrate_command(db.url(), &["up"]);
    assert_eq!(up.code, Some(0), "{}", up.stderr);
}

#[test]
fn bad_arguments_fail_with_what_to_do_and_change_nothing() {
    let db = TestDb::new();
    let embedded = migrate::embedded();
    let too_many = (embedded.len() + 1).to_string();
    let run = migrate_command(db.url(), &["down", &too_many]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains(&format!("invalid count: {too_many} is more than the")),
        "{}",
        run.stderr
    );
    let run = migrate_command(db.url(), &["down", "--to", "1999-01-01-000000"]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("migration 1999-01-01-000000 not found"),
        "{}",
        run.stderr
    );
    let mut conn = PgConnection::establish(db.url()).unwrap();
    assert_eq!(applied(&mut conn).len(), embedded.len());
}

#[test]
fn operators_reverting_and_applying_at_once_take_turns() {
    let db = TestDb::new();
    let url = db.url().to_owned();
    let embedded = migrate::embedded();
    let barrier = std::sync::Barrier::new(4);
    // Two revert the newest, at the same moment: each reverts a different one.
    let reverted: Vec<Migration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut conn = PgConnection::establish(&url).unwrap();
                    barrier.wait();
                    migrate::revert_last(&mut conn).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut reverted = versions(&reverted);
    reverted.sort();
    let newest: Vec<String> = versions(&embedded[embedded.len() - 4..]);
    assert_eq!(reverted, newest, "each reverted a different migration");

    // Revert and apply side by side: every call succeeds, and the database ends with
    // the oldest migrations applied and the rest pending, whatever the order.
    let results: Vec<todo_store::Result<Vec<String>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (url, barrier) = (&url, &barrier);
                s.spawn(move || {
                    let mut conn = PgConnection::establish(url).unwrap();
                    barrier.wait();
                    if i % 2 == 0 {
                        run_migrations(&mut conn)
                    } else {
                        migrate::revert(&mut conn, 2).map(|r| versions(&r))
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    let mut conn = PgConnection::establish(&url).unwrap();
    let now = applied(&mut conn);
    assert_eq!(now, versions(&embedded[..now.len()]), "a prefix is applied");
    run_migrations(&mut conn).unwrap();
    assert_eq!(applied(&mut conn).len(), embedded.len());

    // Two operators' commands at once: each migration reverted once, then applied once.
    let newest_two: Vec<String> = embedded[embedded.len() - 2..]
        .iter()
        .map(|m| m.name.clone())
        .collect();
    assert_eq!(lines(&at_once(&url, &["down"]), "reverted "), newest_two);
    assert_eq!(lines(&at_once(&url, &["up"]), "applied "), newest_two);
}

/// Two `migrate` commands started together.
fn at_once(url: &str, args: &[&str]) -> Vec<Run> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| migrate_command(url, args)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The lines of successful runs after `prefix`, sorted.
fn lines(runs: &[Run], prefix: &str) -> Vec<String> {
    let mut all: Vec<String> = runs
        .iter()
        .flat_map(|r| {
            assert_eq!(r.code, Some(0), "{}", r.stderr);
            r.stdout
                .lines()
                .filter_map(|l| l.strip_prefix(prefix).map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    all.sort();
    all
}

#[test]
fn no_migration_needs_to_run_outside_a_transaction() {
    // The operator's functions revert in one transaction (and refuse a migration with
    // run_in_transaction = false): the module docs say so while this holds.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(dir).unwrap() {
        let metadata = entry.unwrap().path().join("metadata.toml");
        let text = std::fs::read_to_string(&metadata).unwrap_or_default();
        assert!(
            !text.replace(' ', "").contains("run_in_transaction=false"),
            "{} opts out of the transaction: revisit src/migrate",
            metadata.display()
        );
    }
}

#[test]
fn the_command_never_prints_the_password() {
    let url = "postgres://operator:s3cr3t-pw@127.0.0.1:1/todo";
    let output = Command::new(example_binary("migrate"))
        .arg("status")
        .env("DATABASE_URL", url)
        .env("DATABASE_CONNECT_TIMEOUT_MS", "500")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("database postgres://operator:***@127.0.0.1:1/todo"),
        "{stdout}"
    );
    assert!(stderr.starts_with("migrate: "), "{stderr}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}
