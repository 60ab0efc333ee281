//! The checks of the fuzz targets, and the targets' bodies: each check calls the
//! crate's code through the hooks of its `fuzzing` feature (`todo_store::fuzzing`) and
//! panics when that code breaks one of its promises.
//!
//! `tests/integration/hostile/mod.rs` includes this file as a module (`#[path]`), so stable
//! CI runs the same checks over generated inputs; it therefore names nothing but
//! `todo_store` and `std`.

use todo_store::fuzzing;
use todo_store::{Direction, Error, Result, SearchQuery, TaskQuery, TaskSort};

/// The search of the checks' query (a relevance sort needs one).
const SEARCH: &str = "fuzz";

/// The body of the `cursor` target: `data` as the text a client sends, and the same
/// bytes behind a valid header and checksum, to reach the parsing of keys (the first
/// byte picks the sort, 6 and 7 being unknown, and the direction, 2 being unknown).
pub fn cursor_target(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        decode_cursor(text);
    }
    if let Some((&head, body)) = data.split_first() {
        decode_cursor(&seal_cursor(head & 7, (head >> 3) % 3, body));
    }
}

/// The body of the `search_cursor` target: `data` as the cursor text a client sends
/// to `SearchRepo::search`, and the same bytes behind a valid header and checksum (the
/// first byte picks the sort, the search's or a task sort's, and the direction). A
/// search's cursor is never a task list's, nor the reverse.
pub fn search_cursor_target(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let search = decode_search_cursor(text);
        assert!(
            !(search && decode_cursor(text)),
            "{text:?}: a cursor of both"
        );
    }
    if let Some((&head, body)) = data.split_first() {
        let sort = match head & 7 {
            7 => fuzzing::search_sort_number(),
            n => n,
        };
        let text = seal_search_cursor(sort, (head >> 3) % 3, body);
        let search = decode_search_cursor(&text);
        assert!(
            !(search && decode_cursor(&text)),
            "{text:?}: a cursor of both"
        );
    }
}

/// Decodes `text` as `SearchRepo::search` does for the search of [`SEARCH`], builds the
/// statement of the page it starts, and returns whether it was accepted.
///
/// # Panics
/// When decoding breaks a promise: a rejection that is not an [`Error::Validation`] of
/// `cursor`, or an accepted cursor that does not encode back to `text` (trimmed).
pub fn decode_search_cursor(text: &str) -> bool {
    match fuzzing::plan_search(&SearchQuery::new(SEARCH).after(text)) {
        Ok(page) => {
            assert_eq!(
                page.cursor.as_deref(),
                Some(text.trim()),
                "an accepted search cursor must encode back to itself"
            );
            assert!(!page.sql.is_empty());
            true
        }
        Err(Error::Validation { ref field, .. }) if field == "cursor" => false,
        Err(other) => panic!("{text:?}: unexpected {other:?}"),
    }
}

/// A cursor text around `body` (the rank, the kind and the row id) with the header and
/// fingerprint of [`decode_search_cursor`]'s search, sort number `sort` (the search's
/// is `fuzzing::search_sort_number()`) and `direction` (1, descending, is the
/// search's), and a valid checksum.
pub fn seal_search_cursor(sort: u8, direction: u8, body: &[u8]) -> String {
    let fingerprint = fuzzing::search_fingerprint(&SearchQuery::new(SEARCH))
        .expect("the checks' search is valid");
    fuzzing::seal_cursor(sort, direction, fingerprint, body)
}

/// The body of the `search` target: `data` as search text.
pub fn search_target(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = normalize_search(&text);
}

/// The query [`decode_cursor`] decodes cursors for: the tasks matching [`SEARCH`], in
/// `sort` and `direction`. Every sort shares its fingerprint.
fn query(sort: TaskSort, direction: Direction) -> TaskQuery {
    TaskQuery::new().search(SEARCH).sort(sort, direction)
}

/// Every sort and direction, from the numbers the cursor format gives them.
fn headers() -> impl Iterator<Item = (TaskSort, Direction)> {
    let sorts = (0..).map_while(fuzzing::sort_numbered);
    sorts.flat_map(|sort| {
        (0..)
            .map_while(fuzzing::direction_numbered)
            .map(move |d| (sort, d))
    })
}

/// Decodes `text` as `TaskRepo::list` does, for every sort and direction of one query
/// (the tasks matching `fuzz`), builds the SQL of each page it starts, and returns
/// whether any sort accepted it.
///
/// # Panics
/// When decoding breaks a promise: a rejection that is not an [`Error::Validation`] of
/// `cursor`, an accepted cursor that does not encode back to `text` (trimmed), or one
/// accepted for two sorts.
pub fn decode_cursor(text: &str) -> bool {
    let mut accepted_by = None;
    for (sort, direction) in headers() {
        match fuzzing::plan_page(&query(sort, direction).after(text)) {
            Ok(page) => {
                let cursor = page.cursor.expect("a cursor was given");
                assert_eq!(
                    cursor,
                    text.trim(),
                    "an accepted cursor must encode back to itself ({sort:?} {direction:?})"
                );
                if let Some(other) = accepted_by.replace((sort, direction)) {
                    panic!("{text:?} was accepted for {other:?} and {sort:?} {direction:?}");
                }
                // The seek condition and its bind parameters were built.
                assert!(!page.sql.is_empty());
            }
            Err(Error::Validation { ref field, .. }) if field == "cursor" => {}
            Err(other) => panic!("{text:?} ({sort:?} {direction:?}): unexpected {other:?}"),
        }
    }
    accepted_by.is_some()
}

/// A cursor text around `body` (the sort key and the task id) with the header that
/// [`decode_cursor`] expects for the sort numbered `sort` (0 to 5, as in the cursor
/// format) and `direction` (0 ascending, 1 descending), and a valid checksum. Other
/// numbers make headers no query accepts.
pub fn seal_cursor(sort: u8, direction: u8, body: &[u8]) -> String {
    let fingerprint = fuzzing::fingerprint(&query(TaskSort::CreatedAt, Direction::Desc));
    fuzzing::seal_cursor(sort, direction, fingerprint, body)
}

/// The sort key of a title-sorted cursor for [`seal_cursor`]: a nonce, the title's
/// length, then the title as cursors carry it (masked).
pub fn title_key(title: &str) -> Vec<u8> {
    let fingerprint = fuzzing::fingerprint(&query(TaskSort::CreatedAt, Direction::Desc));
    fuzzing::title_key(title, fingerprint)
}

/// The search text as `TaskRepo::list` sends it to PostgreSQL (`None`: no search), as
/// [`TaskQuery::search`] with `terms` makes it.
///
/// # Errors
/// [`Error::Validation`] of `search` for more than [`TaskQuery::MAX_SEARCH_CHARS`] characters.
///
/// # Panics
/// When the normalisation breaks a promise: another error; a blank text (NUL counts
/// as blank) that is not `None`, or a non-blank one that is; NUL in the result; a
/// result longer than `terms`; letters, digits or quotes lost or reordered; two
/// negations left in a row outside quotes (`- -x`, which PostgreSQL stacks up to an
/// error); a result that normalises to something else (a blank one excepted).
pub fn normalize_search(terms: &str) -> Result<Option<String>> {
    let result = fuzzing::normalized_search(&TaskQuery::new().search(terms));
    let chars = terms.chars().count();
    if chars > TaskQuery::MAX_SEARCH_CHARS {
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
    check_normalized(terms, text);
    result
}

/// The promises of a non-blank search `text` normalised from `terms`.
fn check_normalized(terms: &str, text: &str) {
    assert!(!text.contains('\0'), "{terms:?} gave {text:?} with NUL");
    assert!(
        text.chars().count() <= terms.chars().count(),
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
    let again = fuzzing::normalized_search(&TaskQuery::new().search(text));
    let expected = (!text.trim().is_empty()).then(|| text.to_owned());
    assert!(
        matches!(&again, Ok(t) if *t == expected),
        "{terms:?} -> {text:?} -> {again:?}: not idempotent"
    );
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
