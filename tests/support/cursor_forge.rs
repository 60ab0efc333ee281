//! Forged cursors: a cursor's payload edited behind a checksum that matches, so that
//! only the format checks stand between it and the database.
//!
//! A cursor is the URL-safe base64 (no padding) of its payload and the FNV-1a 64 of the
//! payload, big-endian. The payload: version, sort, direction, query fingerprint (8
//! bytes), then the sort key and the task id (16 bytes).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Offset of the sort key in a cursor's payload.
pub const KEY: usize = 11;

/// FNV-1a 64, as the crate checksums cursors. The crate's own is private; that this one
/// is the same is a test of its own (an unedited forgery is a valid cursor, in
/// tests/queries.rs).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// `cursor` with its payload (everything before the checksum) replaced by `edit` of it,
/// and a checksum that matches.
pub fn forge(cursor: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).expect("a cursor is base64");
    forge_bytes(&bytes, edit)
}

/// As [`forge`], from the cursor's bytes (payload and checksum).
pub fn forge_bytes(bytes: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut payload = bytes[..bytes.len() - 8].to_vec();
    edit(&mut payload);
    let checksum = fnv1a(&payload);
    payload.extend_from_slice(&checksum.to_be_bytes());
    URL_SAFE_NO_PAD.encode(payload)
}
