//! Cursor decoding (`TaskQuery::after` as `TaskRepo::list` decodes it), without a
//! database. `todo_store::fuzzing::decode_cursor` panics when decoding breaks a promise:
//! a rejection other than `Error::Validation` of `cursor`, or an accepted cursor that
//! does not encode back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use todo_store::fuzzing::{decode_cursor, seal_cursor};

fuzz_target!(|data: &[u8]| {
    // The text as a client sends it.
    if let Ok(text) = std::str::from_utf8(data) {
        decode_cursor(text);
    }
    // The same bytes behind a valid header and checksum, to reach the parsing of keys:
    // the first byte picks the sort (6 and 7 are unknown) and the direction (2 is
    // unknown).
    if let Some((&head, body)) = data.split_first() {
        decode_cursor(&seal_cursor(head & 7, (head >> 3) % 3, body));
    }
});
