//! Hooks for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`): the crate-private
//! cursor decoding and search normalisation, reachable without a database.
//!
//! Not an API: hidden from the docs, and free to change. Each hook runs the same code
//! as [`crate::TaskRepo::list`] up to the SQL, and panics when that code breaks one of
//! its promises, so a fuzzer (or a property test) only has to call it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::pg::Pg;
use uuid::Uuid;

use crate::checksum::fnv1a;
use crate::error::{Error, Result};
use crate::repo::list::ListPlan;
use crate::repo::{Direction, TaskQuery, TaskSort, MAX_SEARCH_CHARS};

/// Every sort, in the order of their numbers in a cursor.
const SORTS: [TaskSort; 6] = [
    TaskSort::CreatedAt,
    TaskSort::UpdatedAt,
    TaskSort::DueDate,
    TaskSort::Priority,
    TaskSort::Title,
    TaskSort::Relevance,
];
const DIRECTIONS: [Direction; 2] = [Direction::Asc, Direction::Desc];

/// The search of the hooks' query (a relevance sort needs one).
const SEARCH: &str = "fuzz";

/// The query [`decode_cursor`] decodes cursors for: the nil user's tasks matching
/// [`SEARCH`], in `sort` and `direction`. Every sort shares its fingerprint.
fn query(sort: TaskSort, direction: Direction) -> TaskQuery {
    TaskQuery::new().search(SEARCH).sort(sort, direction)
}

/// Decodes `text` as `TaskRepo::list` does, for every sort and direction of one query
/// (the nil user's tasks matching `fuzz`), builds the SQL of each page it starts, and
/// returns whether any sort accepted it.
///
/// # Panics
/// When decoding breaks a promise: a rejection that is not an [`Error::Validation`] of
/// `cursor`, an accepted cursor that does not encode back to `text` (trimmed), or one
/// accepted for two sorts.
pub fn decode_cursor(text: &str) -> bool {
    let mut accepted_by = None;
    for sort in SORTS {
        for direction in DIRECTIONS {
            let query = query(sort, direction).after(text);
            match ListPlan::new(Uuid::nil(), &query) {
                Ok(plan) => {
                    let cursor = plan.cursor.as_ref().expect("a cursor was given");
                    assert_eq!(
                        cursor.encode(),
                        text.trim(),
                        "an accepted cursor must encode back to itself ({sort:?} {direction:?})"
                    );
                    if let Some(other) = accepted_by.replace((sort, direction)) {
                        panic!("{text:?} was accepted for {other:?} and {sort:?} {direction:?}");
                    }
                    // The seek condition and its bind parameters are built here.
                    let sql = diesel::debug_query::<Pg, _>(&plan.page_query()).to_string();
                    assert!(!sql.is_empty());
                }
                Err(Error::Validation { ref field, .. }) if field == "cursor" => {}
                Err(other) => panic!("{text:?} ({sort:?} {direction:?}): unexpected {other:?}"),
            }
        }
    }
    accepted_by.is_some()
}

/// A cursor text around `body` (the sort key and the task id) with the header that
/// [`decode_cursor`] expects for the sort numbered `sort` (0 to 5, as in the cursor
/// format) and `direction` (0 ascending, 1 descending), and a valid checksum: lets a
/// fuzzer get past the checksum to the parsing of keys. Other numbers make headers no
/// query accepts.
pub fn seal_cursor(sort: u8, direction: u8, body: &[u8]) -> String {
    // The layout of `repo::cursor`: format version 1, sort, direction, fingerprint,
    // body, FNV-1a checksum of everything before it. (A test seals known-good bodies,
    // so a change of the format shows up there.)
    let fingerprint = query(TaskSort::CreatedAt, Direction::Desc).fingerprint(Uuid::nil());
    let mut bytes = vec![1, sort, direction];
    bytes.extend_from_slice(&fingerprint.to_be_bytes());
    bytes.extend_from_slice(body);
    let checksum = fnv1a(&bytes);
    bytes.extend_from_slice(&checksum.to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The search text as `TaskRepo::list` sends it to PostgreSQL (`None`: no search), as
/// [`TaskQuery::search`] with `terms` makes it.
///
/// # Errors
/// [`Error::Validation`] of `search` for more than [`MAX_SEARCH_CHARS`] characters.
///
/// # Panics
/// When the normalisation breaks a promise: another error; a blank text (NUL counts
/// as blank) that is not `None`, or a non-blank one that is; NUL in the result; a
/// result longer than `terms`; letters, digits or quotes lost or reordered; two
/// negations left in a row outside quotes (`- -x`, which PostgreSQL stacks up to an
/// error); a result that normalises to something else (a blank one excepted).
pub fn normalize_search(terms: &str) -> Result<Option<String>> {
    let result = TaskQuery::new().search(terms).checked_search();
    let chars = terms.chars().count();
    if chars > MAX_SEARCH_CHARS {
        match &result {
            Err(Error::Validation { field, .. }) if field == "search" => return result,
            other => panic!("a search of {chars} characters gave {other:?}"),
        }
    }
    let normalized = match &result {
        Ok(normalized) => normalized,
        Err(e) => panic!("{terms:?}: unexpected {e:?}"),
    };
    let blank = terms.replace('\0', " ").trim().is_empty();
    let Some(text) = normalized else {
        assert!(blank, "{terms:?} is not blank but gave no search");
        return result;
    };
    assert!(!blank, "{terms:?} is blank but gave the search {text:?}");
    assert!(!text.contains('\0'), "{terms:?} gave {text:?} with NUL");
    assert!(
        text.chars().count() <= chars,
        "{terms:?} grew into {text:?}"
    );
    let kept = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphanumeric() || *c == '"')
            .collect()
    };
    assert_eq!(
        kept(text),
        kept(terms),
        "{terms:?} -> {text:?}: words or quotes changed"
    );
    if let Some(at) = stacked_negation(text) {
        panic!("{terms:?} -> {text:?}: two negations in a row at byte {at}");
    }
    // Idempotent, except that a text of negations only (`--`) becomes blank, which is
    // no search the second time.
    let again = TaskQuery::new().search(text).checked_search();
    let expected = (!text.trim().is_empty()).then(|| text.clone());
    assert!(
        matches!(&again, Ok(t) if *t == expected),
        "{terms:?} -> {text:?} -> {again:?}: not idempotent"
    );
    result
}

/// The byte offset of a negation that begins a word (after white space or at the
/// start, outside quotes) and is followed, after white space only, by another dash.
fn stacked_negation(text: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut word_start = true;
    for (i, c) in text.char_indices() {
        if in_quotes {
            in_quotes = c != '"';
            continue;
        }
        if c == '"' {
            in_quotes = true;
        } else if c == '-' && word_start {
            let rest = text[i + 1..].trim_start();
            if rest.starts_with('-') {
                return Some(i);
            }
        }
        word_start = c.is_whitespace();
    }
    None
}
