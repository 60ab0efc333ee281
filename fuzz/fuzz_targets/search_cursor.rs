//! Cursor decoding of a search across tasks and habits (`SearchQuery::after` as
//! `SearchRepo::search` decodes it), without a database: the text as a client sends it,
//! and the same bytes behind a valid header and checksum.
//! `todo_store_fuzz::search_cursor_target` panics when decoding breaks a promise: a
//! rejection other than `Error::Validation` of `cursor`, an accepted cursor that does
//! not encode back to itself, or a cursor accepted by both a search and a task list.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| todo_store_fuzz::search_cursor_target(data));
