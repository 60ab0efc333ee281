//! Task metadata (JSONB): the rules in Rust and in the database's CHECKs agree
//! (`rules`), replace and JSON Merge Patch in the update's one statement (`merge`), and
//! the containment and key filters of `TaskQuery` (`queries`).
//!
//! The generators and the Rust model of RFC 7396 they share are here.

mod merge;
mod queries;
mod rules;

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// RFC 7396's merge, as its section 2 writes it in pseudo-code: the model the
/// database's `jsonb_merge_patch` is tested against.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut result = match target {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    for (key, value) in patch {
        if value.is_null() {
            result.remove(key);
        } else {
            let merged = merge_patch(result.get(key).unwrap_or(&Value::Null), value);
            result.insert(key.clone(), merged);
        }
    }
    Value::Object(result)
}

/// `value` with every number as the double it stands for: PostgreSQL gives numbers
/// back by their decimal value (`1e16` as `10000000000000000`, which serde_json reads
/// as an integer), so two values are compared number by number.
pub fn by_value(value: &Value) -> Value {
    match value {
        Value::Number(n) => {
            Number::from_f64(n.as_f64().unwrap_or(f64::NAN)).map_or(Value::Null, Value::Number)
        }
        Value::Array(items) => Value::Array(items.iter().map(by_value).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), by_value(v))).collect())
        }
        other => other.clone(),
    }
}

/// A result as the rule it broke: `Ok`, or the field and reason of a validation error
/// (any other error as its text, to compare).
pub fn verdict<T>(result: &Result<T, todo_store::Error>) -> Result<(), (String, String)> {
    match result {
        Ok(_) => Ok(()),
        Err(todo_store::Error::Validation { field, reason }) => {
            Err((field.clone(), reason.clone()))
        }
        Err(other) => Err(("(not a validation)".to_owned(), other.to_string())),
    }
}

/// Keys from a small set, so that patches meet the keys of their targets; the empty
/// key and ones PostgreSQL escapes among them.
pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop_oneof![Just("a"), Just("b"), Just("c"), Just("labels"), Just("source")]
            .prop_map(str::to_owned),
        1 => prop_oneof![Just(""), Just("é"), Just("q\"t"), Just("tab\t"), Just("\u{1}")]
            .prop_map(str::to_owned),
    ]
}

/// Numbers of every shape serde_json writes: integers of any size, and doubles that
/// it writes with a fraction or an exponent (100.0, 1e16, 1.5e-7, -0.0, 1e300).
pub fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1000i64..1000).prop_map(Value::from),
        prop_oneof![
            Just(0.0f64),
            Just(-0.0),
            Just(100.0),
            Just(1e16),
            Just(1.5e-7),
            Just(1e300),
            Just(-2.5e-300),
            Just(5e-324),
            Just(f64::MAX),
            Just(0.1),
        ]
        .prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        (-1_000_000i64..1_000_000, 0u32..6)
            .prop_map(|(n, scale)| Value::from(n as f64 / 10f64.powi(scale as i32))),
    ]
}

/// Strings, with characters PostgreSQL escapes, multi-byte ones, and now and then NUL.
pub fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z é€😀\"\\\\\n\t\u{1}\u{1f}\u{7f}]{0,12}",
        1 => Just("nul \u{0} inside".to_owned()),
    ]
}

/// Any JSON value, nested up to about 11 levels.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        string().prop_map(Value::String),
    ];
    leaf.prop_recursive(11, 64, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// Any JSON object.
pub fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((key(), json_value()), 0..5).prop_map(|pairs| pairs.into_iter().collect())
}
