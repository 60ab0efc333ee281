//! Replacing and merging metadata through `TaskRepo::update`: the database's
//! `jsonb_merge_patch` against RFC 7396's own examples and against a Rust model, in the
//! update's one statement, under its version check; a result that breaks the rules is
//! a validation error and nothing is written.

use std::cell::RefCell;

use diesel::sql_types::{Bool, Text};
use diesel::{QueryableByName, RunQueryDsl};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};
use todo_store::models::METADATA_MAX_BYTES;
use todo_store::testing::TestDb;
use todo_store::{ConflictKind, Error, MetadataChange, NewTask, PgConnection, TaskPatch, TaskRepo};

use super::{by_value, json_object, json_value, merge_patch, verdict};
use crate::support::fixtures;

/// RFC 7396, Appendix A: every example, (original, patch, result).
const RFC_7396_EXAMPLES: [(&str, &str, &str); 15] = [
    (r#"{"a":"b"}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
    (r#"{"a":"b"}"#, r#"{"b":"c"}"#, r#"{"a":"b","b":"c"}"#),
    (r#"{"a":"b"}"#, r#"{"a":null}"#, r#"{}"#),
    (r#"{"a":"b","b":"c"}"#, r#"{"a":null}"#, r#"{"b":"c"}"#),
    (r#"{"a":["b"]}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
    (r#"{"a":"c"}"#, r#"{"a":["b"]}"#, r#"{"a":["b"]}"#),
    (
        r#"{"a":{"b":"c"}}"#,
        r#"{"a":{"b":"d","c":null}}"#,
        r#"{"a":{"b":"d"}}"#,
    ),
    (r#"{"a":[{"b":"c"}]}"#, r#"{"a":[1]}"#, r#"{"a":[1]}"#),
    (r#"["a","b"]"#, r#"["c","d"]"#, r#"["c","d"]"#),
    (r#"{"a":"b"}"#, r#"["c"]"#, r#"["c"]"#),
    (r#"{"a":"foo"}"#, "null", "null"),
    (r#"{"a":"foo"}"#, r#""bar""#, r#""bar""#),
    (r#"{"e":null}"#, r#"{"a":1}"#, r#"{"e":null,"a":1}"#),
    (r#"[1,2]"#, r#"{"a":"b","c":null}"#, r#"{"a":"b"}"#),
    (
        r#"{}"#,
        r#"{"a":{"bb":{"ccc":null}}}"#,
        r#"{"a":{"bb":{}}}"#,
    ),
];

#[derive(QueryableByName)]
struct Merged {
    #[diesel(sql_type = Text)]
    merged: String,
    #[diesel(sql_type = Bool)]
    equal: bool,
}

/// The database's `jsonb_merge_patch(original, patch)`, and whether it equals `expected`.
fn sql_merge(conn: &mut PgConnection, original: &str, patch: &str, expected: &str) -> Merged {
    diesel::sql_query(
        "SELECT m::text AS merged, m = $3::jsonb AS equal \
           FROM jsonb_merge_patch($1::jsonb, $2::jsonb) AS m",
    )
    .bind::<Text, _>(original)
    .bind::<Text, _>(patch)
    .bind::<Text, _>(expected)
    .get_result(conn)
    .unwrap()
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn the_rfc_examples_through_the_database_and_through_update() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let mut through_update = 0;
    for (original, patch, result) in RFC_7396_EXAMPLES {
        let merged = sql_merge(&mut conn, original, patch, result);
        assert!(
            merged.equal,
            "{original} + {patch}: {} not {result}",
            merged.merged
        );
        // The Rust model agrees with the RFC too.
        assert_eq!(merge_patch(&parse(original), &parse(patch)), parse(result));

        // Through TaskRepo::update when the original can be a task's metadata.
        let Value::Object(start) = parse(original) else {
            continue;
        };
        let task =
            TaskRepo::create(&mut conn, user.id, &NewTask::new("RFC").metadata(start)).unwrap();
        match MetadataChange::merge(parse(patch)) {
            Ok(change) => {
                let patch = TaskPatch {
                    metadata: Some(change),
                    expected_version: Some(1),
                    ..TaskPatch::default()
                };
                let updated = TaskRepo::update(&mut conn, user.id, task.id, &patch).unwrap();
                assert_eq!(
                    Value::Object(updated.metadata),
                    parse(result),
                    "{original} + {patch:?}"
                );
                assert_eq!(updated.version, 2);
                through_update += 1;
            }
            // A patch that is not an object would make the metadata a non-object.
            Err(Error::Validation { field, .. }) => {
                assert_eq!(field, "metadata");
                assert!(!parse(result).is_object());
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(through_update, 10);
}

#[test]
fn replace_and_merge_change_only_the_metadata_in_one_versioned_update() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let object = |v: Value| v.as_object().cloned().unwrap();
    let task = TaskRepo::create(
        &mut conn,
        user.id,
        &NewTask::new("Plan").metadata(object(json!({"source": "web", "labels": ["a"]}))),
    )
    .unwrap();
    // A merge beside another field, in the same update.
    let merged = TaskRepo::update(
        &mut conn,
        user.id,
        task.id,
        &TaskPatch {
            title: Some("Plan the trip".into()),
            metadata: Some(MetadataChange::Merge(object(
                json!({"labels": null, "estimate_minutes": 30}),
            ))),
            ..TaskPatch::default()
        },
    )
    .unwrap();
    assert_eq!(merged.title, "Plan the trip");
    assert_eq!(
        Value::Object(merged.metadata.clone()),
        json!({"source": "web", "estimate_minutes": 30})
    );
    // A patch without metadata leaves it.
    let titled = TaskRepo::update(
        &mut conn,
        user.id,
        task.id,
        &TaskPatch {
            completed: Some(true),
            ..TaskPatch::default()
        },
    )
    .unwrap();
    assert_eq!(titled.metadata, merged.metadata);
    // Replace.
    let replaced = TaskRepo::update(
        &mut conn,
        user.id,
        task.id,
        &TaskPatch {
            metadata: Some(MetadataChange::Replace(object(json!({"x": 1})))),
            ..TaskPatch::default()
        },
    )
    .unwrap();
    assert_eq!(Value::Object(replaced.metadata.clone()), json!({"x": 1}));
    // A stale version: a conflict, nothing written.
    let stale = TaskPatch {
        metadata: Some(MetadataChange::Merge(object(json!({"y": 2})))),
        expected_version: Some(1),
        ..TaskPatch::default()
    };
    assert!(matches!(
        TaskRepo::update(&mut conn, user.id, task.id, &stale),
        Err(Error::Conflict {
            kind: ConflictKind::StaleVersion {
                expected: 1,
                actual: 4
            }
        })
    ));
    // Another user's task: not found, nothing written.
    let other = fixtures::user(&mut conn);
    assert!(matches!(
        TaskRepo::update(
            &mut conn,
            other.id,
            task.id,
            &TaskPatch {
                expected_version: None,
                ..stale.clone()
            }
        ),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        TaskRepo::get(&mut conn, user.id, task.id).unwrap(),
        replaced
    );
    // serde: {"merge": {...}} and {"replace": {...}}.
    let patch: TaskPatch =
        serde_json::from_value(json!({"metadata": {"merge": {"x": null}}})).unwrap();
    assert_eq!(
        patch.metadata,
        Some(MetadataChange::Merge(object(json!({"x": null}))))
    );
    let patch: TaskPatch =
        serde_json::from_value(json!({"metadata": {"replace": {"z": true}}})).unwrap();
    assert_eq!(
        patch.metadata,
        Some(MetadataChange::Replace(object(json!({"z": true}))))
    );
}

#[test]
fn a_merge_that_would_break_the_rules_is_a_validation_error_and_writes_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let object = |v: Value| v.as_object().cloned().unwrap();
    let half = "x".repeat(METADATA_MAX_BYTES / 2);
    let start = object(json!({"a": half, "deep": {"b": {"c": {"d": {"e": {"f": {}}}}}}}));
    let task = TaskRepo::create(&mut conn, user.id, &NewTask::new("Full").metadata(start)).unwrap();
    // The patch is fine alone; merged into the task, the result is too large. (Only the
    // size can fail here: a merge is never deeper than its target or its patch, and
    // keeps no key that neither had, so depth and keys are checked on the patch.)
    {
        let (patch, rule) = (json!({"b": half}), "16384 bytes");
        let patch = TaskPatch {
            metadata: Some(MetadataChange::Merge(object(patch))),
            expected_version: Some(1),
            ..TaskPatch::default()
        };
        patch.validate().unwrap();
        match TaskRepo::update(&mut conn, user.id, task.id, &patch) {
            Err(Error::Validation { field, reason }) => {
                assert_eq!(field, "metadata");
                assert!(reason.contains(rule), "{reason}: {rule}");
            }
            other => panic!("{rule}: {other:?}"),
        }
        assert_eq!(TaskRepo::get(&mut conn, user.id, task.id).unwrap(), task);
    }
    // Found in Rust before the database: a patch too deep, a NUL, an empty key.
    for patch in [
        json!({"1": {"2": {"3": {"4": {"5": {"6": {"7": {"8": {}}}}}}}}}),
        json!({"a": "\u{0}"}),
        json!({"a": {"": 1}}),
    ] {
        let patch = TaskPatch {
            metadata: Some(MetadataChange::Merge(object(patch))),
            ..TaskPatch::default()
        };
        assert!(
            matches!(patch.validate(), Err(Error::Validation { field, .. }) if field == "metadata")
        );
    }
}

#[test]
fn jsonb_merge_patch_is_the_rfc_model_on_generated_values() {
    let db = TestDb::new();
    let conn = RefCell::new(db.conn());
    let config = ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    TestRunner::new(config)
        .run(&(json_value(), json_value()), |(target, patch)| {
            let (target_text, patch_text) = (target.to_string(), patch.to_string());
            if target_text.contains("\\u0000") || patch_text.contains("\\u0000") {
                return Ok(()); // not jsonb
            }
            let expected = merge_patch(&target, &patch);
            let merged = sql_merge(
                &mut conn.borrow_mut(),
                &target_text,
                &patch_text,
                &expected.to_string(),
            );
            prop_assert!(
                merged.equal,
                "{} + {}: {} not {}",
                target_text,
                patch_text,
                merged.merged,
                expected
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn merging_through_update_is_the_rfc_model_on_generated_tasks() {
    let db = TestDb::new();
    let conn = RefCell::new(db.conn());
    let user = fixtures::user(&mut conn.borrow_mut());
    let config = ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let outcomes = RefCell::new([0u32; 2]);
    TestRunner::new(config)
        .run(&(json_object(), json_object()), |(start, patch)| {
            let mut guard = conn.borrow_mut();
            let conn: &mut PgConnection = &mut guard;
            let new = NewTask::new("Merged").metadata(start.clone());
            if new.validate().is_err() {
                return Ok(());
            }
            let task = TaskRepo::create(conn, user.id, &new).unwrap();
            let change = TaskPatch {
                metadata: Some(MetadataChange::Merge(patch.clone())),
                expected_version: Some(1),
                ..TaskPatch::default()
            };
            let Value::Object(expected) = merge_patch(&Value::Object(start), &Value::Object(patch))
            else {
                unreachable!("an object patch merges into an object");
            };
            let valid = NewTask::new("Model").metadata(expected.clone()).validate();
            if let Err(refused) = change.validate() {
                // Refused in Rust, before the database: a NUL anywhere in the patch, or
                // a patch whose result would break a rule whatever the metadata.
                prop_assert!(
                    refused.to_string().contains("NUL") || valid.is_err(),
                    "{:?}",
                    refused
                );
                prop_assert_eq!(
                    verdict(&TaskRepo::update(conn, user.id, task.id, &change)),
                    verdict::<()>(&Err(refused))
                );
                prop_assert_eq!(TaskRepo::get(conn, user.id, task.id).unwrap(), task);
                outcomes.borrow_mut()[1] += 1;
                return Ok(());
            }
            match (TaskRepo::update(conn, user.id, task.id, &change), valid) {
                (Ok(updated), Ok(())) => {
                    prop_assert_eq!(
                        by_value(&Value::Object(updated.metadata)),
                        by_value(&Value::Object(expected))
                    );
                    prop_assert_eq!(updated.version, 2);
                    outcomes.borrow_mut()[0] += 1;
                }
                (
                    Err(Error::Validation { field, reason }),
                    Err(Error::Validation { reason: model, .. }),
                ) => {
                    // Refused by the database (the result), for the model's reason,
                    // and nothing written.
                    prop_assert_eq!(field.as_str(), "metadata");
                    prop_assert_eq!(&reason, &model);
                    prop_assert_eq!(TaskRepo::get(conn, user.id, task.id).unwrap(), task);
                    outcomes.borrow_mut()[1] += 1;
                }
                (got, model) => prop_assert!(false, "update {:?}, model {:?}", got, model),
            }
            Ok(())
        })
        .unwrap();
    let [merged, refused] = *outcomes.borrow();
    eprintln!("{merged} merged, {refused} refused");
    assert!(merged > 100 && refused > 10, "{merged} {refused}");
}
