//! The example web service (`examples/api.rs`, axum over `AsyncPool`) end to end over
//! real HTTP against a TestDb: sessions or a user header for the caller, the task
//! endpoints with filters and cursors, another user's task as 404, and errors as
//! status codes.
#![cfg(all(feature = "tokio", feature = "serde"))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use chrono::{Duration, Utc};
use serde_json::{json, Value};
use todo_store::testing::TestDb;
use todo_store::{NewSession, SessionRepo};

use crate::support::examples::example_binary;
use crate::support::fixtures;

/// The service, on a free port, stopped when dropped.
struct Service {
    child: Child,
    addr: String,
}

impl Service {
    fn start(db: &TestDb) -> Service {
        let mut child = Command::new(example_binary("api"))
            .env("DATABASE_URL", db.url())
            .env("API_ADDR", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the api example starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        Service { child, addr }
    }

    /// One HTTP/1.1 request; the status and the JSON body (null when empty).
    fn request(
        &self,
        method: &str,
        path: &str,
        auth: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (name, value) in auth {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        };
        let json = if body.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&body).unwrap_or(Value::String(body))
        };
        (status, json)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

#[test]
fn the_task_endpoints_serve_the_callers_tasks_over_http() {
    let db = TestDb::new();
    let (ada, bob) = {
        let mut conn = db.conn();
        (fixtures::user(&mut conn), fixtures::user(&mut conn))
    };
    let (_, token) = SessionRepo::create(
        &mut db.conn(),
        ada.id,
        &NewSession::new(Utc::now() + Duration::days(1)),
    )
    .unwrap();
    let service = Service::start(&db);
    let bearer = format!("Bearer {token}");
    let as_ada = [("Authorization", bearer.as_str())];
    let bob_id = bob.id.to_string();
    let as_bob = [("X-User-Id", bob_id.as_str())];

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
