//! serde (feature `serde`): rows serialize with their field names, inputs deserialize
//! with absent/`null` meaning unchanged/cleared, the query-string form of `TaskQuery`,
//! and `DbConfig` from a configuration source with its password kept out of `Debug`.
//! Deserialized input goes through the same validation before any write.
#![cfg(feature = "serde")]

use serde_json::json;
use todo_store::serde_support::TaskQueryParams;
use todo_store::testing::TestDb;
use todo_store::{
    DbConfig, Direction, NewTask, NewUser, Priority, TaskPatch, TaskQuery, TaskRepo, TaskSort,
    UserPatch, UserRepo,
};

use crate::support::fixtures;

#[test]
fn rows_pages_and_stats_serialize_with_their_field_names() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let new: NewTask = serde_json::from_value(json!({
        "title": "Pay rent",
        "priority": "high",
        "due_date": "2030-01-31T09:00:00Z",
    }))
    .unwrap();
    let task = TaskRepo::create(&mut conn, user.id, &new).unwrap();
    let value = serde_json::to_value(&task).unwrap();
    assert_eq!(value["title"], "Pay rent");
    assert_eq!(value["priority"], "high");
    assert_eq!(value["due_date"], "2030-01-31T09:00:00Z");
    assert_eq!(value["id"], task.id.to_string());
    assert_eq!(value["user_id"], user.id.to_string());
    assert_eq!(value["version"], 1);

    let page = TaskRepo::list(&mut conn, user.id, &TaskQuery::new()).unwrap();
    let value = serde_json::to_value(&page).unwrap();
    assert_eq!(value["items"][0]["title"], "Pay rent");
    assert!(value["next_cursor"].is_null());

    let stats = serde_json::to_value(TaskRepo::stats(&mut conn, user.id).unwrap()).unwrap();
    assert_eq!(stats["total"], 1);
    assert_eq!(
        stats["by_priority"],
        json!({"low": 0, "medium": 0, "high": 1})
    );

    let value = serde_json::to_value(&user).unwrap();
    assert_eq!(value["email"], user.email.as_str());
    assert_eq!(value["email_verified"], false);
}

#[test]
fn patches_leave_absent_fields_and_clear_null_ones() {
    let patch: TaskPatch = serde_json::from_value(json!({})).unwrap();
    // Each deserialized patch is a write of its own, unless the client names it.
    assert_eq!(
        patch,
        TaskPatch {
            write_id: patch.write_id,
            ..TaskPatch::default()
        }
    );
    let again: TaskPatch = serde_json::from_value(json!({})).unwrap();
    assert_ne!(again.write_id, patch.write_id);
    let named: TaskPatch =
        serde_json::from_value(json!({"write_id": patch.write_id.to_string()})).unwrap();
    assert_eq!(named, patch);
    let patch: TaskPatch =
        serde_json::from_value(json!({"description": null, "due_date": null})).unwrap();
    assert_eq!(patch.description, Some(None));
    assert_eq!(patch.due_date, Some(None));
    assert_eq!(patch.title, None);
    let patch: TaskPatch = serde_json::from_value(json!({
        "title": "New", "description": "text", "completed": true, "priority": "low",
        "expected_version": 3
    }))
    .unwrap();
    assert_eq!(patch.description, Some(Some("text".into())));
    assert_eq!(patch.priority, Some(Priority::Low));
    assert_eq!(patch.expected_version, Some(3));
    let patch: UserPatch = serde_json::from_value(json!({"image": null})).unwrap();
    assert_eq!(patch.image, Some(None));
    // Typos and wrong types are refused, not ignored.
    assert!(serde_json::from_value::<TaskPatch>(json!({"titel": "x"})).is_err());
    assert!(serde_json::from_value::<TaskPatch>(json!({"priority": "urgent"})).is_err());
    assert!(serde_json::from_value::<NewUser>(json!({"email": 7})).is_err());
    // A user's id never comes from a request body (a create with a taken id and the
    // same fields returns that user): refused, and each new user gets a fresh one.
    let id = uuid::Uuid::now_v7().to_string();
    let body = json!({"id": id, "email": "a@example.com", "name": "A"});
    assert!(serde_json::from_value::<NewUser>(body).is_err());
    let body = json!({"email": "a@example.com", "name": "A"});
    let (a, b): (NewUser, NewUser) = (
        serde_json::from_value(body.clone()).unwrap(),
        serde_json::from_value(body).unwrap(),
    );
    assert_ne!(a.id, b.id);
}

#[test]
fn deserialized_input_is_validated_before_any_write() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    for body in [
        json!({}),
        json!({"title": "   "}),
        json!({"title": "\u{200b}"}),
        json!({"title": "x".repeat(256)}),
        json!({"title": "ok", "description": "d".repeat(10_001)}),
    ] {
        let new: NewTask = serde_json::from_value(body.clone()).unwrap();
        let err = TaskRepo::create(&mut conn, user.id, &new).unwrap_err();
        assert!(err.is_validation(), "{body}: {err:?}");
    }
    let new: NewUser = serde_json::from_value(json!({"email": "nobody", "name": "N"})).unwrap();
    assert!(UserRepo::create(&mut conn, &new)
        .unwrap_err()
        .is_validation());
    assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 0);
}

#[test]
fn the_query_string_form_builds_the_same_query() {
    let params: TaskQueryParams = serde_urlencoded::from_str(
        "completed=false&priority=high,medium&due_before=2030-01-01T00:00:00Z\
         &sort=due_date&direction=asc&limit=20&search=rent",
    )
    .unwrap();
    let query = TaskQuery::try_from(params).unwrap();
    let expected = TaskQuery::new()
        .completed(false)
        .priority(Priority::High)
        .priority(Priority::Medium)
        .due_before("2030-01-01T00:00:00Z".parse().unwrap())
        .search("rent")
        .sort(TaskSort::DueDate, Direction::Asc)
        .limit(20);
    assert_eq!(query, expected);
    let empty: TaskQueryParams = serde_urlencoded::from_str("").unwrap();
    assert_eq!(TaskQuery::try_from(empty).unwrap(), TaskQuery::new());
    let bad: TaskQueryParams = serde_urlencoded::from_str("priority=urgent").unwrap();
    assert!(TaskQuery::try_from(bad).unwrap_err().is_validation());
    assert!(serde_urlencoded::from_str::<TaskQueryParams>("sort=size").is_err());
    assert!(serde_urlencoded::from_str::<TaskQueryParams>("bogus=1").is_err());
}

#[test]
fn db_config_deserializes_and_keeps_its_password_secret() {
    let config: DbConfig = serde_json::from_value(json!({
        "url": "postgres://app:Sup3rSecret@db.example/todo",
        "pool_size": 7,
        "statement_timeout_ms": 0,
        "pgbouncer": true,
    }))
    .unwrap();
    assert_eq!(config.get_pool_size(), 7);
    assert_eq!(config.get_statement_timeout(), None);
    assert!(config.get_pgbouncer());
    assert!(!format!("{config:?}").contains("Sup3rSecret"));
    for bad in [
        json!({"url": "postgres://app:Sup3rSecret@db/todo", "pool_size": 0}),
        json!({"url": "postgres://app:Sup3rSecret@db/todo", "pool_size": "many"}),
        json!({"url": "postgres://app:Sup3rSecret@db/todo", "poolsize": 3}),
        json!({"pool_size": 3}),
    ] {
        let err = serde_json::from_value::<DbConfig>(bad.clone()).unwrap_err();
        assert!(!err.to_string().contains("Sup3rSecret"), "{bad}: {err}");
    }
}
