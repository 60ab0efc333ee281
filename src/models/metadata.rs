//! A task's metadata: a JSON object of the application's own fields, its rules, how
//! a patch changes it ([`MetadataChange`]), and its jsonb mapping.
//!
//! The rules are the migration's CHECK constraints on `tasks.metadata`, applied here
//! before any write, in the same order and with the same reasons (the constraint table
//! of `error::database` maps each constraint to the reason below):
//!
//! | rule | constraint |
//! |---|---|
//! | at most [`METADATA_MAX_DEPTH`] (8) levels deep: the top object is level 1, an object or array in it level 2, ... | `tasks_metadata_depth` |
//! | every key of every object non-empty | `tasks_metadata_keys` |
//! | an object at the top (the Rust type says so; the CHECK for other clients) | `tasks_metadata_object` |
//! | at most [`METADATA_MAX_BYTES`] (16 KiB) as PostgreSQL writes it as text | `tasks_metadata_size` |
//!
//! and no NUL (U+0000) in any key or string, which jsonb cannot store at all.
//!
//! The size counts the bytes of `metadata::text` (`octet_length`), the text a client
//! reads back: `{"a": [1, 2]}` with a space after each `:` and `,`, strings escaped as
//! PostgreSQL escapes them, and numbers as its `numeric` writes them: `1e3` is `1000`,
//! `1.50` stays `1.50`, `-0.0` is `0.0`. [`stored_text_len`] computes exactly that from
//! the number as serde_json sends it (`tests/integration/metadata/rules.rs` proves the
//! agreement on generated values).

use std::io::Write;

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Jsonb;
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};

/// The most bytes a task's metadata may take as PostgreSQL writes it as text
/// (`octet_length(metadata::text)`): 16 KiB.
pub const METADATA_MAX_BYTES: usize = 16 * 1024;

/// The deepest a task's metadata may nest: the top object is level 1, an object or
/// array inside it level 2, and so on; scalars add no level.
pub const METADATA_MAX_DEPTH: usize = 8;

/// The reason of a metadata nested too deep (`tasks_metadata_depth`).
pub(crate) const DEPTH_RULE: &str =
    "must be at most 8 levels deep (the top object is level 1, an object or array inside it level 2, ...)";
/// The reason of an empty key (`tasks_metadata_keys`).
pub(crate) const KEYS_RULE: &str = "must not have an empty key in any object";
/// The reason of metadata that is not an object (`tasks_metadata_object`).
pub(crate) const OBJECT_RULE: &str = "must be a JSON object";
/// The reason of metadata too large (`tasks_metadata_size`).
pub(crate) const SIZE_RULE: &str =
    "must be at most 16384 bytes as PostgreSQL writes it as text (metadata::text)";
/// The reason of a NUL character, which jsonb cannot store.
pub(crate) const NUL_RULE: &str = "must not contain the NUL character (U+0000) in a key or string";

/// How a [`crate::TaskPatch`] changes a task's metadata.
///
/// Both are applied by the database in the update's one statement, under the patch's
/// `expected_version`, and the result must obey the rules of [`crate::Task::metadata`].
/// A replacement is checked before anything is sent. So is a merge patch, for what it
/// alone decides: a merge is never deeper than the larger of its target and its patch,
/// and has no key that neither had, so a patch deeper than 8 levels, with an empty key
/// (but for one it removes) or with a NUL fails before the database. Only the size
/// depends on the metadata it merges into: a merge whose result would pass 16 KiB
/// fails in the statement itself (its CHECK), as [`crate::Error::Validation`] on
/// `metadata` too. Nothing is written in either case (inside a caller's transaction,
/// the failed statement ends it, as any failed statement does).
///
/// In JSON (feature `serde`): `{"replace": {...}}` or `{"merge": {...}}`.
///
/// ```
/// use serde_json::json;
/// use todo_store::{MetadataChange, TaskPatch};
///
/// // Set the estimate, drop the labels, keep everything else (RFC 7396).
/// let patch = TaskPatch {
///     metadata: Some(MetadataChange::merge(json!({"estimate_minutes": 30, "labels": null}))?),
///     ..TaskPatch::default()
/// };
/// assert!(patch.validate().is_ok());
/// # Ok::<(), todo_store::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum MetadataChange {
    /// The whole object becomes this one.
    Replace(Map<String, Value>),
    /// A JSON Merge Patch (RFC 7396): each key of the patch replaces the key of the
    /// metadata, objects merging recursively; a `null` value removes the key. An object
    /// at the top, as the result must be one (the RFC's non-object patch would replace
    /// the whole metadata with a non-object).
    Merge(Map<String, Value>),
}

impl MetadataChange {
    /// A [`MetadataChange::Replace`] by `value`.
    ///
    /// # Errors
    /// [`crate::Error::Validation`] on `metadata` when `value` is not an object.
    pub fn replace(value: Value) -> Result<Self> {
        object(value).map(MetadataChange::Replace)
    }

    /// A [`MetadataChange::Merge`] by `patch`.
    ///
    /// # Errors
    /// [`crate::Error::Validation`] on `metadata` when `patch` is not an object.
    pub fn merge(patch: Value) -> Result<Self> {
        object(patch).map(MetadataChange::Merge)
    }

    /// The validated change as the update binds it.
    pub(crate) fn to_binds(&self) -> Result<MetadataBinds<'_>> {
        match self {
            MetadataChange::Replace(map) => {
                check("metadata", map)?;
                Ok(MetadataBinds {
                    replace: Some(JsonObject(map)),
                    merge: None,
                })
            }
            MetadataChange::Merge(patch) => {
                // A merge's result is at least as deep as its patch and at most as deep
                // as the deeper of target and patch, and its keys are the target's and
                // the patch's non-null ones: depth and keys are decided here. Its size
                // is the database's to judge, with the metadata it merges into.
                check_shape("metadata", patch, true)?;
                Ok(MetadataBinds {
                    replace: None,
                    merge: Some(JsonObject(patch)),
                })
            }
        }
    }
}

/// `value` as an object, or the object rule's error.
fn object(value: Value) -> Result<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Error::validation("metadata", OBJECT_RULE)),
    }
}

/// The binds of a metadata change: the new object, or a merge patch (at most one).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MetadataBinds<'a> {
    pub replace: Option<JsonObject<'a>>,
    pub merge: Option<JsonObject<'a>>,
}

/// Whether `stored` (read back) is `given` (as written): equal, numbers compared by
/// value, as PostgreSQL's jsonb keeps them (`1e3` is read back as `1000`). Two integers
/// are compared exactly; a float with an integer, or two floats, as `f64` (what
/// serde_json made of either text).
pub(crate) fn same(stored: &Map<String, Value>, given: &Map<String, Value>) -> bool {
    stored.len() == given.len()
        && stored
            .iter()
            .all(|(key, a)| given.get(key).is_some_and(|b| same_value(a, b)))
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => {
            a == b || ((a.is_f64() || b.is_f64()) && a.as_f64() == b.as_f64())
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_value(a, b))
        }
        (Value::Object(a), Value::Object(b)) => same(a, b),
        (a, b) => a == b,
    }
}

/// Checks `metadata` against every rule of the column, in the order of its CHECK
/// constraints; `field` names it in the error.
///
/// # Errors
/// [`Error::Validation`] on `field` with the first rule broken.
pub(crate) fn check(field: &str, metadata: &Map<String, Value>) -> Result<()> {
    check_shape(field, metadata, false)?;
    if stored_object_len(metadata) > METADATA_MAX_BYTES {
        return Err(Error::validation(field, SIZE_RULE));
    }
    Ok(())
}

/// The rules but size: NUL first (the database would refuse the text before any CHECK),
/// then depth, then keys. `patch`: a key whose value is `null` may be empty (it
/// removes nothing that can exist).
fn check_shape(field: &str, metadata: &Map<String, Value>, patch: bool) -> Result<()> {
    if object_has_nul(metadata) {
        return Err(Error::validation(field, NUL_RULE));
    }
    if object_deeper_than(metadata, METADATA_MAX_DEPTH) {
        return Err(Error::validation(field, DEPTH_RULE));
    }
    if object_has_empty_key(metadata, patch) {
        return Err(Error::validation(field, KEYS_RULE));
    }
    Ok(())
}

fn object_has_nul(map: &Map<String, Value>) -> bool {
    map.iter().any(|(k, v)| k.contains('\0') || has_nul(v))
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => object_has_nul(map),
        _ => false,
    }
}

/// Whether the object nests more than `levels` levels (itself one). Stops descending
/// below `levels`, so a value of any depth costs a bounded stack.
fn object_deeper_than(map: &Map<String, Value>, levels: usize) -> bool {
    levels == 0 || map.values().any(|v| deeper_than(v, levels - 1))
}

fn deeper_than(value: &Value, levels: usize) -> bool {
    match value {
        Value::Array(items) => levels == 0 || items.iter().any(|v| deeper_than(v, levels - 1)),
        Value::Object(map) => object_deeper_than(map, levels),
        _ => false,
    }
}

fn object_has_empty_key(map: &Map<String, Value>, patch: bool) -> bool {
    map.iter()
        .any(|(k, v)| (k.is_empty() && !(patch && v.is_null())) || has_empty_key(v, patch))
}

fn has_empty_key(value: &Value, patch: bool) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|v| has_empty_key(v, false)),
        Value::Object(map) => object_has_empty_key(map, patch),
        _ => false,
    }
}

/// The bytes of `value` as PostgreSQL writes it as text once stored as jsonb
/// (`octet_length(value::text)`), given that serde_json sends it.
///
/// ```
/// use serde_json::json;
/// use todo_store::models::stored_text_len;
/// assert_eq!(stored_text_len(&json!({"a": [1, 2], "b": null})), r#"{"a": [1, 2], "b": null}"#.len());
/// assert_eq!(stored_text_len(&json!({"n": 1e3})), r#"{"n": 1000.0}"#.len());
/// assert_eq!(stored_text_len(&json!({"n": 1e-7})), r#"{"n": 0.0000001}"#.len());
/// ```
pub fn stored_text_len(value: &Value) -> usize {
    match value {
        Value::Null => 4,
        Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(n) => numeric_text_len(n),
        Value::String(s) => string_text_len(s),
        // [a, b]
        Value::Array(items) => {
            2 + items.iter().map(stored_text_len).sum::<usize>() + 2 * items.len().saturating_sub(1)
        }
        Value::Object(map) => stored_object_len(map),
    }
}

/// [`stored_text_len`] of an object: `{"k": v, "k2": v2}`.
fn stored_object_len(map: &Map<String, Value>) -> usize {
    2 + map
        .iter()
        .map(|(k, v)| string_text_len(k) + 2 + stored_text_len(v))
        .sum::<usize>()
        + 2 * map.len().saturating_sub(1)
}

/// A string as PostgreSQL's `escape_json` writes it: quoted, `"` and `\` and the
/// controls `\b \f \n \r \t` as two bytes, the other controls below U+0020 as `\u00XX`,
/// everything else as its UTF-8.
fn string_text_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | 0x08 | 0x0c | b'\n' | b'\r' | b'\t' => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// The length of the number as PostgreSQL's `numeric` writes it after reading the
/// text serde_json sends (`1e300`, `1.5e-7`, `100.0`, `-0.0`, `42`): the digits of its
/// integer part (at least `0`), and as many decimals as the text had after its point
/// less its exponent (`1.50e1` is `15.0`); a minus sign unless it is zero.
fn numeric_text_len(number: &Number) -> usize {
    let text = number.to_string();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().unwrap_or(0)),
        None => (unsigned, 0),
    };
    let (int_digits, frac_digits) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: Vec<u8> = int_digits.bytes().chain(frac_digits.bytes()).collect();
    let zero = digits.iter().all(|&d| d == b'0');
    // Where the decimal point falls among `digits`.
    let point = int_digits.len() as i64 + exponent;
    let int_len = if point <= 0 {
        1
    } else {
        let within = (point as usize).min(digits.len());
        match digits[..within].iter().position(|&d| d != b'0') {
            Some(first) => point as usize - first,
            None => 1,
        }
    };
    let scale = (frac_digits.len() as i64 - exponent).max(0) as usize;
    usize::from(negative && !zero) + int_len + if scale > 0 { 1 + scale } else { 0 }
}

/// A task's metadata bound as `jsonb` (written as serde_json writes the object).
#[derive(Debug, Clone, Copy, AsExpression)]
#[diesel(sql_type = Jsonb)]
pub(crate) struct JsonObject<'a>(pub &'a Map<String, Value>);

impl ToSql<Jsonb, Pg> for JsonObject<'_> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        // jsonb's binary format: version 1, then the text.
        out.write_all(&[1])?;
        serde_json::to_writer(out, self.0)?;
        Ok(IsNull::No)
    }
}

/// The `metadata` column read into its object (public only because diesel's derived
/// `Queryable` names it; unreachable from outside the crate).
#[derive(Debug, Clone, FromSqlRow)]
pub struct StoredMetadata(Map<String, Value>);

impl From<StoredMetadata> for Map<String, Value> {
    fn from(value: StoredMetadata) -> Self {
        value.0
    }
}

impl FromSql<Jsonb, Pg> for StoredMetadata {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        match value.as_bytes() {
            [1, text @ ..] => Ok(StoredMetadata(serde_json::from_slice(text)?)),
            _ => Err("unsupported jsonb encoding of tasks.metadata".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        object(value).unwrap()
    }

    /// The reason of a validation error on `metadata`.
    fn reason(result: Result<()>) -> String {
        match result {
            Err(Error::Validation { field, reason }) if field == "metadata" => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn numbers_are_the_same_by_value_and_integers_exactly() {
        let obj = |v: serde_json::Value| v.as_object().cloned().unwrap();
        // jsonb reads `1e3` back as `1000`; serde_json reads `2.50` as the float 2.5.
        let stored = obj(serde_json::json!({"n": 1000, "x": 2.5}));
        let given: Map<String, Value> = serde_json::from_str(r#"{"n": 1e3, "x": 2.50}"#).unwrap();
        assert!(same(&stored, &given));
        // Two integers that one f64 cannot tell apart are still two integers.
        let big = obj(serde_json::json!({"n": 9_007_199_254_740_993_u64}));
        let near = obj(serde_json::json!({"n": 9_007_199_254_740_992_u64}));
        assert!(!same(&big, &near));
        assert!(same(&big, &big.clone()));
        assert!(!same(&stored, &obj(serde_json::json!({"n": 1000}))));
    }

    #[test]
    fn numbers_count_as_numeric_writes_them() {
        for (number, text) in [
            (json!(0), "0"),
            (json!(-5), "-5"),
            (json!(u64::MAX), "18446744073709551615"),
            (json!(100.0), "100.0"),
            (json!(-0.0), "0.0"),
            (json!(0.5), "0.5"),
            (json!(-0.001), "-0.001"),
            (json!(1e-7), "0.0000001"),
            (json!(1.5e-7), "0.00000015"),
            (json!(1e16), "10000000000000000"),
            (json!(1.5e300), &format!("15{}", "0".repeat(299))),
        ] {
            assert_eq!(stored_text_len(&number), text.len(), "{number}");
        }
    }

    #[test]
    fn strings_count_as_escape_json_writes_them() {
        assert_eq!(stored_text_len(&json!("a\"b\\c")), r#""a\"b\\c""#.len());
        assert_eq!(stored_text_len(&json!("\n\u{1}é")), r#""\n\u0001é""#.len());
        assert_eq!(stored_text_len(&json!({})), 2);
        assert_eq!(stored_text_len(&json!([])), 2);
    }

    #[test]
    fn the_rules_in_their_order() {
        let deep = json!({"1": {"2": {"3": {"4": {"5": {"6": {"7": [[]]}}}}}}});
        assert_eq!(reason(check("metadata", &map(deep.clone()))), DEPTH_RULE);
        let eight = json!({"1": {"2": {"3": {"4": {"5": {"6": {"7": [1]}}}}}}});
        assert!(check("metadata", &map(eight)).is_ok());
        assert_eq!(
            reason(check("metadata", &map(json!({"a": [{"": 1}]})))),
            KEYS_RULE
        );
        assert_eq!(
            reason(check("metadata", &map(json!({"a": "x\u{0}"})))),
            NUL_RULE
        );
        let big = json!({"a": "x".repeat(METADATA_MAX_BYTES - 9)});
        assert_eq!(stored_text_len(&big), METADATA_MAX_BYTES);
        assert!(check("metadata", &map(big)).is_ok());
        let bigger = json!({"a": "x".repeat(METADATA_MAX_BYTES - 8)});
        assert_eq!(reason(check("metadata", &map(bigger))), SIZE_RULE);
        assert!(MetadataChange::merge(json!({"": null}))
            .unwrap()
            .to_binds()
            .is_ok());
        assert!(MetadataChange::merge(json!([1])).is_err());
        assert!(MetadataChange::merge(deep).unwrap().to_binds().is_err());
    }
}
