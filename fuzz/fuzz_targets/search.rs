//! Search-string handling on the Rust side (`TaskQuery::search` as `TaskRepo::list`
//! normalises it before `websearch_to_tsquery`), without a database.
//! `todo_store_fuzz::normalize_search` panics when the normalisation breaks a
//! promise: blank in, search out (or the reverse); NUL out; words or quotes lost; two
//! negations left in a row; not idempotent; an error other than the length limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| todo_store_fuzz::search_target(data));
