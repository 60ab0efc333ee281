//! The metadata's rules: `NewTask::validate` in Rust and the CHECK constraints of
//! `tasks.metadata` give the same verdict, with the same reason, on generated objects
//! (and `stored_text_len` is the size the CHECK measures); a task keeps its metadata.

use std::cell::RefCell;

use diesel::sql_types::{Integer, Text, Uuid as SqlUuid};
use diesel::{QueryableByName, RunQueryDsl};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{json, Map, Value};
use todo_store::models::{stored_text_len, METADATA_MAX_BYTES};
use todo_store::testing::TestDb;
use todo_store::{Error, NewTask, PgConnection, TaskRepo};

use super::{by_value, json_object, verdict};
use crate::support::fixtures;

#[derive(QueryableByName)]
struct Size {
    #[diesel(sql_type = Integer)]
    bytes: i32,
}

/// What PostgreSQL makes of `text`: its size as stored text, or None when it refuses
/// the text as jsonb (a NUL).
fn stored_size(conn: &mut PgConnection, text: &str) -> Option<usize> {
    diesel::sql_query("SELECT octet_length($1::jsonb::text) AS bytes")
        .bind::<Text, _>(text)
        .get_result::<Size>(conn)
        .ok()
        .map(|s| s.bytes as usize)
}

/// The database's verdict on a task whose metadata is `text`, written by another client
/// (raw SQL, no validation of the crate): the error as the crate maps it.
fn insert_raw(conn: &mut PgConnection, user: &todo_store::User, text: &str) -> Result<(), Error> {
    diesel::sql_query(
        "INSERT INTO tasks (id, user_id, title, metadata) VALUES ($1, $2, 'Raw', $3::jsonb)",
    )
    .bind::<SqlUuid, _>(uuid::Uuid::now_v7())
    .bind::<SqlUuid, _>(user.id)
    .bind::<Text, _>(text)
    .execute(conn)
    .map(|_| ())
    .map_err(Error::from)
}

/// An object near the size limit: `base` with a `pad` string of `unit`s that brings it
/// to about `target` bytes as stored text (one unit more or less).
fn padded(mut base: Map<String, Value>, unit: &str, target: usize) -> Map<String, Value> {
    base.insert("pad".into(), json!(""));
    let unit_len = stored_text_len(&json!(unit)) - 2;
    let have = stored_text_len(&Value::Object(base.clone()));
    let units = target.saturating_sub(have) / unit_len.max(1);
    base.insert("pad".into(), json!(unit.repeat(units)));
    base
}

fn objects() -> impl Strategy<Value = Map<String, Value>> {
    let unit = prop_oneof![
        Just("x"),
        Just("é"),
        Just("€"),
        Just("😀"),
        Just("\n"),
        Just("\u{1}"),
        Just("\""),
        Just("ab")
    ];
    prop_oneof![
        3 => json_object(),
        2 => (json_object(), unit, -8i64..8)
            .prop_map(|(base, unit, off)| padded(base, unit, (METADATA_MAX_BYTES as i64 + off) as usize)),
    ]
}

#[test]
fn rust_and_the_check_agree_on_every_generated_object() {
    let db = TestDb::new();
    let conn = RefCell::new(db.conn());
    let user = fixtures::user(&mut conn.borrow_mut());
    let config = ProptestConfig {
        cases: 1500,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let counts = RefCell::new([0u32; 3]); // accepted, refused by a rule, refused for NUL
    TestRunner::new(config)
        .run(&objects(), |metadata| {
            let mut guard = conn.borrow_mut();
            let conn: &mut PgConnection = &mut guard;
            let text = serde_json::to_string(&metadata).unwrap();
            let rust = NewTask::new("Generated")
                .metadata(metadata.clone())
                .validate();
            let Some(size) = stored_size(conn, &text) else {
                // PostgreSQL refuses the text itself: only a NUL does that.
                prop_assert!(
                    matches!(&rust, Err(Error::Validation { field, reason })
                        if field == "metadata" && reason.contains("NUL")),
                    "{} refused by jsonb, Rust says {:?}",
                    text,
                    rust
                );
                counts.borrow_mut()[2] += 1;
                return Ok(());
            };
            prop_assert_eq!(
                size,
                stored_text_len(&Value::Object(metadata.clone())),
                "{}",
                text
            );
            let database = insert_raw(conn, &user, &text);
            prop_assert_eq!(verdict(&rust), verdict(&database), "{}", text);
            counts.borrow_mut()[usize::from(rust.is_err())] += 1;
            if rust.is_ok() {
                // Written by the crate, it reads back as written.
                let task = TaskRepo::create(
                    conn,
                    user.id,
                    &NewTask::new("Kept").metadata(metadata.clone()),
                )
                .unwrap();
                let read = TaskRepo::get(conn, user.id, task.id).unwrap();
                prop_assert_eq!(
                    by_value(&Value::Object(read.metadata)),
                    by_value(&Value::Object(metadata))
                );
            }
            Ok(())
        })
        .unwrap();
    let [accepted, refused, nul] = *counts.borrow();
    eprintln!("{accepted} accepted, {refused} refused by a rule, {nul} with NUL");
    assert!(
        accepted > 200 && refused > 100 && nul > 10,
        "{accepted} {refused} {nul}"
    );
}

#[test]
fn each_rule_is_a_validation_error_naming_it_and_nothing_is_written() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let object = |v: Value| v.as_object().cloned().unwrap();
    let cases = [
        (
            json!({"a": {"b": {"c": {"d": {"e": {"f": {"g": [[1]]}}}}}}}),
            "8 levels",
        ),
        (json!({"a": [{"": 1}]}), "empty key"),
        (json!({"a": "x".repeat(METADATA_MAX_BYTES)}), "16384 bytes"),
        (json!({"a\u{0}": 1}), "NUL"),
    ];
    for (metadata, rule) in cases {
        let new = NewTask::new("Bad").metadata(object(metadata));
        match TaskRepo::create(&mut conn, user.id, &new) {
            Err(Error::Validation { field, reason }) => {
                assert_eq!(field, "metadata");
                assert!(reason.contains(rule), "{reason} should say {rule}");
            }
            other => panic!("{rule}: {other:?}"),
        }
        // The same through the bulk path, named by its index.
        match TaskRepo::create_many(&mut conn, user.id, &[NewTask::new("Fine"), new]) {
            Err(Error::Validation { field, .. }) => assert_eq!(field, "tasks[1].metadata"),
            other => panic!("{rule}: {other:?}"),
        }
    }
    assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 0);
    // Another client's non-object is refused by the CHECK, named as the rule.
    for text in ["[]", "null", "1", "\"a\""] {
        assert_eq!(
            verdict(&insert_raw(&mut conn, &user, text)),
            Err(("metadata".to_owned(), "must be a JSON object".to_owned())),
            "{text}"
        );
    }
}

#[test]
fn metadata_is_kept_through_create_create_many_and_serde() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let metadata = json!({"source": "email", "labels": ["work", "urgent"], "estimate_minutes": 30,
                          "links": [{"url": "https://example.com/1", "title": "Ticket"}], "n": null});
    let map = metadata.as_object().cloned().unwrap();
    let one = TaskRepo::create(
        &mut conn,
        user.id,
        &NewTask::new("One").metadata(map.clone()),
    )
    .unwrap();
    assert_eq!(one.metadata, map);
    let plain = TaskRepo::create(&mut conn, user.id, &NewTask::new("Plain")).unwrap();
    assert!(plain.metadata.is_empty());
    let many = TaskRepo::create_many(
        &mut conn,
        user.id,
        &[
            NewTask::new("Two").metadata(map.clone()),
            NewTask::new("Three"),
        ],
    )
    .unwrap();
    assert_eq!(many[0].metadata, map);
    for task in many.iter().chain([&one, &plain]) {
        assert_eq!(&TaskRepo::get(&mut conn, user.id, task.id).unwrap(), task);
    }
    // serde: in as a field of NewTask, out as a field of Task.
    let new: NewTask =
        serde_json::from_value(json!({"title": "From JSON", "metadata": metadata})).unwrap();
    assert_eq!(new.metadata, map);
    assert!(serde_json::from_value::<NewTask>(json!({"title": "x", "metadata": [1]})).is_err());
    let out = serde_json::to_value(&one).unwrap();
    assert_eq!(out["metadata"], metadata);
}
