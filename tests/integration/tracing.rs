//! Tracing: a span per repository call, SQL at debug level, no user data, no password.

use todo_store::testing::TestDb;
use todo_store::{NewTask, NewUser, TaskQuery, TaskRepo, UserRepo};
use tracing_subscriber::fmt::format::FmtSpan;

use crate::support::trace_capture::Captured;

fn capture<T>(f: impl FnOnce() -> T) -> (T, String) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    let value = tracing::subscriber::with_default(subscriber, f);
    (value, captured.text())
}

#[test]
fn every_repo_call_has_a_span_with_op_user_rows_and_outcome() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = UserRepo::create(&mut conn, &NewUser::new("span@example.com", "Span")).unwrap();
    let (_, out) = capture(|| {
        let task = TaskRepo::create(&mut conn, user.id, &NewTask::new("secret plans")).unwrap();
        TaskRepo::list(&mut conn, user.id, &TaskQuery::new()).unwrap();
        TaskRepo::get(&mut conn, user.id, uuid::Uuid::now_v7().into()).unwrap_err();
        task
    });
    let spans: Vec<&str> = out.lines().filter(|l| l.contains("close")).collect();
    let create = spans
        .iter()
        .find(|l| l.contains("op=\"task.create\""))
        .expect(&out);
    assert!(create.contains(&format!("user_id={}", user.id)), "{create}");
    assert!(
        create.contains("rows=1") && create.contains("outcome=\"ok\""),
        "{create}"
    );
    assert!(create.contains("duration_us="), "{create}");
    let list = spans
        .iter()
        .find(|l| l.contains("op=\"task.list\""))
        .expect(&out);
    assert!(list.contains("rows=1"), "{list}");
    let missing = spans
        .iter()
        .find(|l| l.contains("op=\"task.get\""))
        .expect(&out);
    assert!(missing.contains("outcome=\"not_found\""), "{missing}");
}

#[test]
fn sql_is_visible_at_debug_level_without_users_data() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let (_, out) = capture(|| {
        let user = UserRepo::create(
            &mut conn,
            &NewUser::new("private@example.com", "Private Name"),
        )
        .unwrap();
        TaskRepo::create(
            &mut conn,
            user.id,
            &NewTask::new("confidential merger").description("top secret"),
        )
        .unwrap();
        TaskRepo::list(&mut conn, user.id, &TaskQuery::new().search("merger")).unwrap();
    });
    assert!(out.contains("todo_store::sql"), "{out}");
    assert!(out.contains("INSERT INTO \"tasks\""), "{out}");
    for secret in [
        "private@example.com",
        "Private Name",
        "confidential",
        "top secret",
        "merger",
    ] {
        assert!(
            !out.contains(secret),
            "{secret:?} leaked into the trace:\n{out}"
        );
    }
}

#[test]
fn without_a_subscriber_nothing_is_recorded_and_calls_work() {
    // The fast path: spans are disabled, repo calls behave the same.
    let db = TestDb::new();
    let mut conn = db.conn();
    assert!(!tracing::enabled!(tracing::Level::DEBUG));
    let user = UserRepo::create(&mut conn, &NewUser::new("quiet@example.com", "Quiet")).unwrap();
    assert_eq!(UserRepo::get(&mut conn, user.id).unwrap(), user);
}
