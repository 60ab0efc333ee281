//! The example web service (`examples/api.rs`, axum over `AsyncPool`) end to end over
//! real HTTP against a TestDb: a session token for the caller, the task endpoints with
//! filters and cursors, another user's task as 404, and errors as status codes. Its
//! front door: no caller, no answer but 401 (before the body is read, whatever the
//! request); a caller's malformed requests are JSON errors naming the problem; no error
//! names a table, constraint, SQL statement or Rust type.
#![cfg(all(feature = "tokio", feature = "serde"))]

use chrono::{Duration, Utc};
use serde_json::{json, Value};
use todo_store::testing::TestDb;
use todo_store::{NewSession, PgConnection, SessionRepo, User};
use uuid::Uuid;

use crate::support::api_service::{Reply, Service};
use crate::support::fixtures;

/// Over the service's 2 MB body limit.
const OVER_SIZE: usize = 3 * 1024 * 1024;

/// A session token for `user`, valid for a day.
fn token_for(conn: &mut PgConnection, user: &User) -> String {
    let (_, token) = SessionRepo::create(
        conn,
        user.id,
        &NewSession::new(Utc::now() + Duration::days(1)),
    )
    .unwrap();
    token
}

/// Words no error body may contain (compared ignoring case): table and constraint
/// names, the SQL layer, Rust types and the libraries' own wording.
const NEVER_IN_AN_ERROR: &[&str] = &[
    "tasks",
    "users",
    "sessions",
    "_key",
    "_fkey",
    "_check",
    "_idx",
    "constraint",
    "relation",
    "diesel",
    "libpq",
    "sqlstate",
    "select ",
    "insert into",
    "returning",
    "uuid::",
    "u8",
    "u16",
    "u32",
    "u64",
    "i16",
    "i32",
    "i64",
    "usize",
    "isize",
    "f64",
    "serde",
    "struct ",
    "enum ",
    "option<",
    "datetime",
    "invalid type",
    "invalid digit",
    "expected one of",
    "failed to",
    "axum",
    "todo_store",
    "newtask",
    "taskpatch",
    "taskqueryparams",
];

/// `reply` is an error as the service documents it: JSON `{"error": ..., "field": ...}`
/// with a non-empty message and nothing from [`NEVER_IN_AN_ERROR`].
fn assert_documented_error(reply: &Reply, what: &str) -> Value {
    assert!(
        reply.content_type.starts_with("application/json"),
        "{what}: {} {:?} {:?}",
        reply.status,
        reply.content_type,
        reply.body
    );
    let body = reply.json();
    let keys: Vec<&str> = body
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(keys, ["error", "field"], "{what}: {}", reply.body);
    assert!(
        body["error"].as_str().is_some_and(|e| !e.trim().is_empty()),
        "{what}: {}",
        reply.body
    );
    assert!(
        body["field"].is_null() || body["field"].is_string(),
        "{what}: {}",
        reply.body
    );
    let lower = reply.body.to_lowercase();
    for word in NEVER_IN_AN_ERROR {
        assert!(!lower.contains(word), "{what}: {word:?} in {}", reply.body);
    }
    body
}

#[test]
fn the_task_endpoints_serve_the_callers_tasks_over_http() {
    let db = TestDb::new();
    let (ada, bob) = {
        let mut conn = db.conn();
        (fixtures::user(&mut conn), fixtures::user(&mut conn))
    };
    let token = token_for(&mut db.conn(), &ada);
    let bobs_token = token_for(&mut db.conn(), &bob);
    let service = Service::start(&db);
    let bearer = format!("Bearer {token}");
    let as_ada = [("Authorization", bearer.as_str())];
    let bobs_bearer = format!("Bearer {bobs_token}");
    let as_bob = [("Authorization", bobs_bearer.as_str())];

    // No caller, a bad token: 401.
    assert_eq!(service.request("GET", "/tasks", &[], None).0, 401);
    let forged = [("Authorization", "Bearer not-a-token")];
    assert_eq!(service.request("GET", "/tasks", &forged, None).0, 401);

    // Create, with validation as 422.
    let mut ids = Vec::new();
    for (title, priority) in [
        ("Pay rent", "high"),
        ("Water plants", "low"),
        ("Call mum", "high"),
    ] {
        let (status, task) = service.request(
            "POST",
            "/tasks",
            &as_ada,
            Some(json!({"title": title, "priority": priority})),
        );
        assert_eq!(status, 201, "{task}");
        assert_eq!(task["title"], title);
        ids.push(task["id"].as_str().unwrap().to_owned());
    }
    let (status, err) = service.request("POST", "/tasks", &as_ada, Some(json!({"title": " "})));
    assert_eq!(
        (status, err["field"].as_str()),
        (422, Some("title")),
        "{err}"
    );

    // List with a filter, then page with the cursor.
    let (status, page) = service.request("GET", "/tasks?priority=high&limit=1", &as_ada, None);
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let (status, next) = service.request(
        "GET",
        &format!("/tasks?priority=high&limit=1&after={cursor}"),
        &as_ada,
        None,
    );
    assert_eq!(status, 200, "{next}");
    let titles: Vec<&str> = [&page, &next]
        .iter()
        .map(|p| p["items"][0]["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Call mum", "Pay rent"]);
    assert!(next["next_cursor"].is_null());
    let (status, _) = service.request("GET", "/tasks?priority=urgent", &as_ada, None);
    assert_eq!(status, 422);

    // Get, update with a version (stale: 409), complete, delete.
    let path = format!("/tasks/{}", ids[0]);
    let (status, task) = service.request("GET", &path, &as_ada, None);
    assert_eq!((status, task["version"].as_i64()), (200, Some(1)));
    let (status, task) = service.request(
        "PATCH",
        &path,
        &as_ada,
        Some(json!({"title": "Pay the rent", "expected_version": 1, "description": null})),
    );
    assert_eq!((status, task["version"].as_i64()), (200, Some(2)), "{task}");
    let (status, _) = service.request(
        "PATCH",
        &path,
        &as_ada,
        Some(json!({"title": "x", "expected_version": 1})),
    );
    assert_eq!(status, 409);
    let (status, task) = service.request("POST", &format!("{path}/complete"), &as_ada, None);
    assert_eq!((status, task["completed"].as_bool()), (200, Some(true)));

    // Another user's task is 404 everywhere and stays as it was.
    for (method, p, body) in [
        ("GET", path.clone(), None),
        (
            "PATCH",
            path.clone(),
            Some(json!({"title": "Bob was here"})),
        ),
        ("POST", format!("{path}/complete"), None),
        ("DELETE", path.clone(), None),
    ] {
        let (status, _) = service.request(method, &p, &as_bob, body);
        assert_eq!(status, 404, "{method} {p} as another user");
    }
    let (_, bobs) = service.request("GET", "/tasks", &as_bob, None);
    assert!(bobs["items"].as_array().unwrap().is_empty());
    let (_, task) = service.request("GET", &path, &as_ada, None);
    assert_eq!(task["title"], "Pay the rent");

    let (status, _) = service.request("DELETE", &path, &as_ada, None);
    assert_eq!(status, 204);
    let (status, _) = service.request("GET", &path, &as_ada, None);
    assert_eq!(status, 404);

    // A revoked session is 401 from then on.
    let session = SessionRepo::list(&mut db.conn(), ada.id).unwrap()[0].id;
    SessionRepo::revoke(&mut db.conn(), ada.id, session).unwrap();
    assert_eq!(service.request("GET", "/tasks", &as_ada, None).0, 401);
}

/// Request headers, as names and values.
type Headers<'a> = &'a [(&'a str, &'a str)];

/// `Content-Type: application/json`, the header of every JSON body below.
const JSON: Headers = &[("Content-Type", "application/json")];

/// A JSON body over the service's 2 MB limit.
fn over_size_body() -> Vec<u8> {
    format!(r#"{{"title":"{}"}}"#, "x".repeat(OVER_SIZE)).into_bytes()
}

#[test]
fn every_route_without_a_valid_caller_is_401_json_whatever_the_request() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let ada = fixtures::user(&mut conn);
    let task = fixtures::task(&mut conn, &ada, "Pay rent");
    let (session, expired_token) = SessionRepo::create(
        &mut conn,
        ada.id,
        &NewSession::new(Utc::now() + Duration::days(1)),
    )
    .unwrap();
    fixtures::expire_session(&mut conn, session.id);
    let service = Service::start(&db);

    let expired = format!("Bearer {expired_token}");
    let ada_id = ada.id.to_string();
    let callers: [(&str, Headers); 5] = [
        ("no credentials", &[]),
        ("a forged token", &[("Authorization", "Bearer not-a-token")]),
        ("an expired token", &[("Authorization", &expired)]),
        (
            "another scheme",
            &[("Authorization", "Basic YWRhOnNlY3JldA==")],
        ),
        ("only a user id header", &[("X-User-Id", &ada_id)]),
    ];
    let over_size = over_size_body();
    let declared = OVER_SIZE.to_string();
    let withheld = [
        ("Content-Type", "application/json"),
        ("Content-Length", declared.as_str()),
    ];
    let bodies: [(&str, Headers, &[u8]); 8] = [
        ("no body", &[], b""),
        ("a valid task", JSON, br#"{"title":"Bob was here"}"#),
        ("malformed JSON", JSON, br#"{"title":"#),
        ("an unknown field", JSON, br#"{"title":"x","colour":"red"}"#),
        ("a value of the wrong type", JSON, br#"{"title":5}"#),
        (
            "a text body",
            &[("Content-Type", "text/plain")],
            b"Bob was here",
        ),
        ("an over-size body", JSON, &over_size),
        // An answer before the body proves it was refused unread.
        ("an over-size body not sent yet", &withheld, b""),
    ];
    let mut routes = vec![("GET", "/tasks".to_owned()), ("POST", "/tasks".to_owned())];
    for id in [task.id.to_string(), "not-a-uuid".to_owned()] {
        routes.push(("GET", format!("/tasks/{id}")));
        routes.push(("PATCH", format!("/tasks/{id}")));
        routes.push(("DELETE", format!("/tasks/{id}")));
        routes.push(("POST", format!("/tasks/{id}/complete")));
    }

    for (method, route) in &routes {
        for query in ["", "?limit=abc"] {
            let path = format!("{route}{query}");
            for (caller, credentials) in &callers {
                for (body_name, headers, body) in &bodies {
                    let headers = [*credentials, *headers].concat();
                    let reply = service.send(method, &path, &headers, body);
                    let what = format!("{method} {path} with {caller} and {body_name}");
                    assert_eq!(reply.status, 401, "{what}: {}", reply.body);
                    let error = assert_documented_error(&reply, &what);
                    assert!(error["field"].is_null(), "{what}: {error}");
                }
            }
        }
    }

    // Nothing was done for any of them.
    let unchanged = todo_store::TaskRepo::get(&mut conn, ada.id, task.id).unwrap();
    assert_eq!(
        (
            unchanged.title.as_str(),
            unchanged.completed,
            unchanged.version
        ),
        ("Pay rent", false, 1)
    );
}

/// A malformed request of a signed-in caller: what is sent, the status, the field the
/// error names (if any) and a word its message contains.
struct Malformed {
    method: &'static str,
    path: String,
    headers: Headers<'static>,
    body: Vec<u8>,
    status: u16,
    field: Option<&'static str>,
    mentions: &'static str,
}

impl Malformed {
    /// The method, the path and the start of the body.
    fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(40)]).into_owned();
        format!("{} {} {body:?}", self.method, self.path)
    }
}

/// Every kind of request the service cannot read: JSON syntax and data, content type,
/// size, path, query, route and method.
fn malformed_requests(task_id: todo_store::TaskId) -> Vec<Malformed> {
    let case = |method, path: &str, headers, body: &[u8], status, field, mentions| Malformed {
        method,
        path: path.to_owned(),
        headers,
        body: body.to_vec(),
        status,
        field,
        mentions,
    };
    let task = format!("/tasks/{task_id}");
    let over_size = over_size_body();
    #[rustfmt::skip]
    let mut cases = vec![
        case("POST", "/tasks", JSON, br#"{"title":"#, 400, None, "JSON"),
        case("POST", "/tasks", JSON, b"", 400, None, "JSON"),
        case("POST", "/tasks", JSON, br#"{"title":"x"} {}"#, 400, None, "JSON"),
        case("PATCH", &task, JSON, b"{'title': 'x'}", 400, None, "JSON"),
        case("POST", "/tasks", JSON, br#"{"title":"x","colour":"red"}"#, 422, Some("colour"), "colour"),
        case("POST", "/tasks", JSON, br#"{"title":5}"#, 422, Some("title"), "title"),
        case("POST", "/tasks", JSON, br#"{"title":"x","priority":"urgent"}"#, 422, Some("priority"), "priority"),
        case("POST", "/tasks", JSON, br#"{"title":"x","due_date":"tomorrow"}"#, 422, Some("due_date"), "due_date"),
        case("PATCH", &task, JSON, br#"{"expected_version":99999999999}"#, 422, Some("expected_version"), "expected_version"),
        case("PATCH", &task, JSON, br#"{"completed":"yes"}"#, 422, Some("completed"), "completed"),
        case("POST", "/tasks", JSON, b"42", 422, None, "object"),
        case("POST", "/tasks", &[], br#"{"title":"x"}"#, 415, None, "Content-Type"),
        case("PATCH", &task, &[("Content-Type", "text/plain")], br#"{"title":"x"}"#, 415, None, "Content-Type"),
        case("POST", "/tasks", &[("Content-Type", "application/x-www-form-urlencoded")], b"title=x", 415, None, "Content-Type"),
        case("POST", "/tasks", JSON, &over_size, 413, None, "2 MB"),
        case("PATCH", &task, JSON, &over_size, 413, None, "2 MB"),
        case("GET", "/tasks?limit=abc", &[], b"", 400, Some("limit"), "limit"),
        case("GET", "/tasks?limit=-1&completed=maybe", &[], b"", 400, Some("completed"), "completed"),
        case("GET", "/tasks?sort=colour", &[], b"", 400, Some("sort"), "sort"),
        case("GET", "/tasks?due_before=yesterday", &[], b"", 400, Some("due_before"), "due_before"),
        case("GET", "/tasks?colour=red", &[], b"", 400, Some("colour"), "colour"),
        case("GET", "/nowhere", &[], b"", 404, None, "route"),
        case("DELETE", "/tasks", &[], b"", 405, None, "method"),
    ];
    for (method, suffix) in [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/complete"),
    ] {
        let headers: Headers<'static> = if method == "PATCH" { JSON } else { &[] };
        let body: &[u8] = if method == "PATCH" {
            br#"{"title":"x"}"#
        } else {
            b""
        };
        let path = format!("/tasks/not-a-uuid{suffix}");
        cases.push(case(method, &path, headers, body, 400, Some("id"), "id"));
    }
    cases
}

#[test]
fn a_callers_malformed_request_is_a_json_error_naming_the_problem() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let ada = fixtures::user(&mut conn);
    let task = fixtures::task(&mut conn, &ada, "Pay rent");
    let bearer = format!("Bearer {}", token_for(&mut conn, &ada));
    let service = Service::start(&db);

    for case in malformed_requests(task.id) {
        let headers = [&[("Authorization", bearer.as_str())], case.headers].concat();
        let reply = service.send(case.method, &case.path, &headers, &case.body);
        let what = case.describe();
        assert_eq!(reply.status, case.status, "{what}: {}", reply.body);
        let error = assert_documented_error(&reply, &what);
        assert_eq!(error["field"].as_str(), case.field, "{what}: {error}");
        let message = error["error"].as_str().unwrap();
        assert!(
            message.contains(case.mentions),
            "{what}: {message:?} should name {:?}",
            case.mentions
        );
    }

    // The service still serves the caller, and nothing was changed.
    let auth = [("Authorization", bearer.as_str())];
    let (status, page) = service.request("GET", "/tasks", &auth, None);
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"][0]["title"], "Pay rent");
    assert_eq!(page["items"][0]["version"], 1);
}

#[test]
fn no_error_names_a_table_constraint_sql_statement_or_rust_type() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let (ada, bob) = (fixtures::user(&mut conn), fixtures::user(&mut conn));
    let task = fixtures::task(&mut conn, &ada, "Pay rent");
    let bobs_task = fixtures::task(&mut conn, &bob, "Bob's");
    let bearer = format!("Bearer {}", token_for(&mut conn, &ada));
    let service = Service::start(&db);
    let auth = [("Authorization", bearer.as_str())];

    // What the service cannot read...
    let mut replies: Vec<(String, Reply)> = malformed_requests(task.id)
        .into_iter()
        .map(|case| {
            let headers = [&auth[..], case.headers].concat();
            (
                case.describe(),
                service.send(case.method, &case.path, &headers, &case.body),
            )
        })
        .collect();
    // ...and what the crate refuses: validation, conflicts, other users' rows.
    let this = format!("/tasks/{}", task.id);
    let bobs = format!("/tasks/{}", bobs_task.id);
    let long_title = json!({ "title": "x".repeat(100_000) }).to_string();
    let refused: Vec<(&str, String, String)> = vec![
        ("GET", "/tasks?priority=urgent".into(), String::new()),
        ("GET", "/tasks?limit=0".into(), String::new()),
        ("GET", "/tasks?limit=100000".into(), String::new()),
        ("GET", "/tasks?after=not-a-cursor".into(), String::new()),
        (
            "GET",
            "/tasks?sort=title&after=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
            String::new(),
        ),
        (
            "GET",
            "/tasks?due_before=9999-12-31T23:59:59Z&due_after=-9999-01-01T00:00:00Z".into(),
            String::new(),
        ),
        ("POST", "/tasks".into(), r#"{"title":" "}"#.into()),
        ("POST", "/tasks".into(), r#"{"title":"a\u0000b"}"#.into()),
        ("POST", "/tasks".into(), long_title),
        (
            "POST",
            "/tasks".into(),
            r#"{"title":"x","due_date":"-262000-01-01T00:00:00Z"}"#.into(),
        ),
        (
            "PATCH",
            this.clone(),
            r#"{"title":"x","expected_version":7}"#.into(),
        ),
        ("PATCH", this.clone(), r#"{"expected_version":0}"#.into()),
        ("GET", bobs.clone(), String::new()),
        ("PATCH", bobs.clone(), r#"{"title":"x"}"#.into()),
        ("DELETE", bobs, String::new()),
        ("GET", format!("/tasks/{}", Uuid::nil()), String::new()),
    ];
    for (method, path, body) in refused {
        let headers = if body.is_empty() {
            auth.to_vec()
        } else {
            [&auth[..], JSON].concat()
        };
        let what = format!("{method} {path}");
        replies.push((what, service.send(method, &path, &headers, body.as_bytes())));
    }

    for (what, reply) in &replies {
        assert!(
            reply.status >= 400,
            "{what}: {} {}",
            reply.status,
            reply.body
        );
        assert_documented_error(reply, what);
    }
}

/// The counters the service prints when it stops: `served: trips=.. checkouts=..
/// statements=..`.
fn served(stopped: &str) -> [u64; 3] {
    let line = stopped
        .lines()
        .find_map(|line| line.strip_prefix("served: "))
        .unwrap_or_else(|| panic!("no counters in {stopped:?}"));
    let count = |name: &str| -> u64 {
        line.split(' ')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
            .parse()
            .unwrap()
    };
    [count("trips"), count("checkouts"), count("statements")]
}

/// A request without a body is one trip to a connection thread with one checkout and
/// two statements (the caller's session, then the work); a request with a body is
/// authenticated before its body is read, so two of each. Counted by the crate's pool
/// instrumentation in the service; a checkout of a connection idle for a while may add
/// a ping.
#[test]
fn each_request_is_one_trip_unless_its_body_must_wait_for_the_caller() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let ada = fixtures::user(&mut conn);
    let task = fixtures::task(&mut conn, &ada, "Pay rent");
    let bearer = format!("Bearer {}", token_for(&mut conn, &ada));
    let auth = [("Authorization", bearer.as_str())];

    let service = Service::start_with(&db, &[("DATABASE_POOL_SIZE", "1")]);
    for _ in 0..5 {
        let (status, _) = service.request("GET", &format!("/tasks/{}", task.id), &auth, None);
        assert_eq!(status, 200);
        let (status, _) = service.request("GET", "/tasks?completed=false", &auth, None);
        assert_eq!(status, 200);
        let (status, _) = service.request("GET", "/tasks/not-a-uuid", &auth, None);
        assert_eq!(status, 400);
    }
    let [trips, checkouts, statements] = served(&service.stop());
    assert_eq!((trips, checkouts), (15, 15));
    // The malformed path: the session only.
    assert!((25..=27).contains(&statements), "{statements}");

    let service = Service::start_with(&db, &[("DATABASE_POOL_SIZE", "1")]);
    for _ in 0..5 {
        let body = Some(json!({"title": "Water the plants"}));
        let (status, _) = service.request("POST", "/tasks", &auth, body);
        assert_eq!(status, 201);
    }
    let [trips, checkouts, statements] = served(&service.stop());
    assert_eq!((trips, checkouts), (10, 10));
    assert!((10..=12).contains(&statements), "{statements}");
}
