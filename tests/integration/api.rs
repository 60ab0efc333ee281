//! The example web service (`examples/api.rs`, axum over `AsyncPool`) end to end over
//! real HTTP against a TestDb: a session token for the caller, the task endpoints with
//! filters and cursors, another user's task as 404, and errors as status codes.
#![cfg(all(feature = "tokio", feature = "serde"))]

use chrono::{Duration, Utc};
use serde_json::json;
use todo_store::testing::TestDb;
use todo_store::{NewSession, PgConnection, SessionRepo, User};

use crate::support::api_service::Service;
use crate::support::fixtures;

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
