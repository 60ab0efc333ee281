//! The seed program's logic, and the program itself against a TestDb.

use std::ops::ControlFlow;
use std::process::Command;

use chrono::{TimeZone, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use todo_store::seed::{seed, seed_with_pool, SeedOptions};
use todo_store::testing::TestDb;
use todo_store::{TaskQuery, TaskRepo, UserRepo};

use crate::support::examples::example_binary;

fn options(users: u32, tasks_per_user: u32) -> SeedOptions {
    SeedOptions {
        users,
        tasks_per_user,
        seed: 7,
        users_per_batch: 4,
        anchor: Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap(),
    }
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Fingerprint {
    #[diesel(sql_type = Text)]
    digest: String,
    #[diesel(sql_type = BigInt)]
    rows: i64,
}

/// A digest of every row, independent of physical order.
fn fingerprint(conn: &mut PgConnection) -> Fingerprint {
    diesel::sql_query(
        "SELECT md5(string_agg(r, '|' ORDER BY r)) AS digest, count(*) AS rows FROM ( \
           SELECT concat_ws(',', id, email, name, email_verified, image, created_at, updated_at) AS r FROM users \
           UNION ALL \
           SELECT concat_ws(',', id, user_id, title, description, completed, priority, due_date, \
                            created_at, updated_at, version, metadata) FROM tasks) t",
    )
    .get_result(conn)
    .unwrap()
}

#[test]
fn counts_are_exact() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let report = seed(&mut conn, &options(10, 7), |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(
        (
            report.users_created,
            report.tasks_created,
            report.users_skipped
        ),
        (10, 70, 0)
    );
    assert!(!report.interrupted);
    assert_eq!(UserRepo::count(&mut conn).unwrap(), 10);
    for user in UserRepo::list(&mut conn, 100, 0).unwrap() {
        assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 7);
    }
}

#[test]
fn the_same_seed_gives_the_same_data_in_any_batch_size_and_worker_count() {
    let (a, b) = (TestDb::new(), TestDb::new());
    seed(&mut a.conn(), &options(9, 5), |_| ControlFlow::Continue(())).unwrap();
    let parallel = SeedOptions {
        users_per_batch: 2,
        ..options(9, 5)
    };
    seed_with_pool(b.pool(), &parallel, 3, |_| ControlFlow::Continue(())).unwrap();
    let (fa, fb) = (fingerprint(&mut a.conn()), fingerprint(&mut b.conn()));
    assert_eq!(fa.rows, 9 + 9 * 5);
    assert_eq!(fa, fb);

    let c = TestDb::new();
    let other_seed = SeedOptions {
        seed: 8,
        ..options(9, 5)
    };
    seed(&mut c.conn(), &other_seed, |_| ControlFlow::Continue(())).unwrap();
    assert_ne!(fingerprint(&mut c.conn()).digest, fa.digest);
}

#[test]
fn a_second_run_creates_no_duplicates_and_says_so() {
    let db = TestDb::new();
    let mut conn = db.conn();
    seed(&mut conn, &options(6, 3), |_| ControlFlow::Continue(())).unwrap();
    let before = fingerprint(&mut conn);
    let again = seed(&mut conn, &options(8, 3), |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(
        (
            again.users_skipped,
            again.users_created,
            again.tasks_created
        ),
        (6, 2, 6)
    );
    assert_eq!(UserRepo::count(&mut conn).unwrap(), 8);
    assert_eq!(fingerprint(&mut conn).rows, before.rows + 2 + 6);
    assert!(again.first_user.is_some());
}

#[test]
fn data_looks_real() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let report = seed(&mut conn, &options(20, 50), |_| ControlFlow::Continue(())).unwrap();
    let user = report.first_user.unwrap();
    let stats = TaskRepo::stats(&mut conn, user).unwrap();
    assert_eq!(stats.total, 50);
    assert!(stats.completed > 0 && stats.open > 0, "{stats:?}");
    assert!(stats.by_priority.values().all(|&n| n > 0), "{stats:?}");
    // Titles are made of real words that full-text search finds, stemmed.
    let found = TaskRepo::count_matching(&mut conn, user, &TaskQuery::new().search("reports"))
        .unwrap()
        + TaskRepo::count_matching(
            &mut conn,
            user,
            &TaskQuery::new().search("invoice or meeting or bill"),
        )
        .unwrap();
    assert!(found > 0);
    // A share of the tasks carries metadata, which its filters find.
    let with_source = TaskRepo::count_matching(
        &mut conn,
        user,
        &TaskQuery::new().metadata_has_key("source"),
    )
    .unwrap();
    assert!((5..=35).contains(&with_source), "{with_source} of 50");
    let emails: std::collections::HashSet<_> = UserRepo::list(&mut conn, 100, 0)
        .unwrap()
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(emails.len(), 20);
}

#[test]
fn stopping_after_a_batch_leaves_whole_batches() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let report = seed(&mut conn, &options(12, 3), |p| {
        if p.users_done >= 4 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert!(report.interrupted);
    assert_eq!((report.users_created, report.tasks_created), (4, 12));
    assert_eq!(UserRepo::count(&mut conn).unwrap(), 4);
}

#[test]
fn the_seed_program_fills_a_test_db_and_reports() {
    let db = TestDb::new();
    let run = |extra: &[&str]| {
        let output = Command::new(example_binary("seed"))
            .args([
                "--database-url",
                db.url(),
                "--users",
                "5",
                "--tasks-per-user",
                "4",
            ])
            .args(extra)
            .env_remove("DATABASE_URL")
            .output()
            .expect("run the seed example (built by cargo test)");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "stdout:\n{stdout}\nstderr:\n{stderr}"
        );
        (stdout, stderr)
    };
    let (stdout, stderr) = run(&[]);
    assert!(stdout.contains("Seeded 5 users and 20 tasks"), "{stdout}");
    assert!(stdout.contains("A sample:"), "{stdout}");
    assert!(
        stderr.contains("seed: 5/5 users"),
        "plain progress lines off a terminal: {stderr}"
    );
    assert_eq!(UserRepo::count(&mut db.conn()).unwrap(), 5);

    let (again, _) = run(&[]);
    assert!(
        again.contains("Skipped 5 users that already existed"),
        "{again}"
    );
    assert_eq!(UserRepo::count(&mut db.conn()).unwrap(), 5);

    let (quiet, quiet_err) = run(&["--reset", "--quiet"]);
    assert_eq!((quiet.as_str(), quiet_err.as_str()), ("", ""));
    assert_eq!(UserRepo::count(&mut db.conn()).unwrap(), 5);
}

#[test]
fn without_a_server_the_seed_program_says_what_to_install_or_set() {
    let output = Command::new(example_binary("seed"))
        .env_remove("DATABASE_URL")
        .env("PG_BINDIR", "/nonexistent/postgresql/bin")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.starts_with("seed: "),
        "one clear message, no panic: {stderr}"
    );
    assert!(stderr.contains("PG_BINDIR"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_quickstart_example_is_the_readme_quickstart() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("examples/quickstart.rs")).unwrap();
    let start = readme.find("## Quickstart").unwrap();
    let code = readme[start..].split("```rust,no_run\n").nth(1).unwrap();
    let code = &code[..code.find("```").unwrap()];
    assert!(
        example.ends_with(code),
        "examples/quickstart.rs and the README's quickstart differ"
    );
    assert!(example.lines().count() < 60);
}

/// With sessions and habits asked for: every user gets them, some sessions expired and
/// some revoked, check-ins only on scheduled days and never today or later, the same
/// data for the same seed.
#[test]
fn the_seed_writes_sessions_and_habits_with_a_year_of_check_ins() {
    use todo_store::{HabitRepo, SessionRepo};
    let options = SeedOptions {
        users: 12,
        tasks_per_user: 3,
        anchor: Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap(),
        ..SeedOptions::default()
    };
    let extras = todo_store::seed::SeedExtras {
        sessions_per_user: 4,
        habits_per_user: 2,
    };
    let mut check_in_counts = Vec::new();
    for _ in 0..2 {
        let db = TestDb::new();
        let mut conn = db.conn();
        let report =
            todo_store::seed::seed_all(&mut conn, &options, &extras, |_| ControlFlow::Continue(()))
                .unwrap();
        assert_eq!(report.sessions_created, 48);
        assert_eq!(report.habits_created, 24);
        assert!(report.check_ins_created > 24 * 50, "{report:?}");
        #[derive(QueryableByName)]
        struct Counts {
            #[diesel(sql_type = BigInt)]
            expired: i64,
            #[diesel(sql_type = BigInt)]
            revoked: i64,
        }
        let counts: Counts = diesel::sql_query(
            "SELECT count(*) FILTER (WHERE expires_at <= '2026-06-01') AS expired, \
             count(*) FILTER (WHERE revoked_at IS NOT NULL) AS revoked FROM sessions",
        )
        .get_result(&mut conn)
        .unwrap();
        assert!(
            counts.expired > 0 && counts.expired < 48,
            "{}",
            counts.expired
        );
        assert!(
            counts.revoked > 0 && counts.revoked < 48,
            "{}",
            counts.revoked
        );
        let mut total = 0;
        for user in UserRepo::list(&mut conn, 100, 0).unwrap() {
            assert!(SessionRepo::list(&mut conn, user.id).unwrap().len() <= 4);
            let habits = HabitRepo::list(&mut conn, user.id).unwrap();
            assert_eq!(habits.len(), 2);
            for habit in habits {
                let from = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
                let to = chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
                let days = HabitRepo::check_ins(&mut conn, user.id, habit.id, from, to).unwrap();
                for day in &days {
                    assert!(
                        habit.schedule.is_due_on(*day),
                        "{day} for {:?}",
                        habit.schedule
                    );
                    assert!(*day < options.anchor.date_naive());
                }
                total += days.len();
            }
        }
        assert_eq!(total as u64, report.check_ins_created);
        check_in_counts.push(total);
    }
    assert_eq!(
        check_in_counts[0], check_in_counts[1],
        "same seed, same data"
    );
}
