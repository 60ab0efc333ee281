//! Cursor decoding (`TaskQuery::after` as `TaskRepo::list` decodes it), without a
//! database: the text as a client sends it, and the same bytes behind a valid header
//! and checksum. `todo_store_fuzz::decode_cursor` panics when decoding breaks a promise:
//! a rejection other than `Error::Validation` of `cursor`, or an accepted cursor that
//! does not encode back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| todo_store_fuzz::cursor_target(data));
