//! Forged cursors: a cursor's payload edited behind a checksum that matches, so that
//! only the format checks stand between it and the database.
//!
//! A cursor is the URL-safe base64 (no padding) of its payload and the FNV-1a 64 of the
//! payload, big-endian. The payload: version, sort, direction, query fingerprint (8
//! bytes), then the sort key and the task id (16 bytes). A title key (version 2) is a
//! random nonce ([`TITLE_NONCE`] bytes), the title's length (4 bytes) and the masked
//! title; version 1 title keys had no nonce ([`version_1_title_cursor`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Offset of the sort key in a cursor's payload.
pub const KEY: usize = 11;

/// Bytes of the nonce that begins the key of a title cursor.
pub const TITLE_NONCE: usize = 16;

/// FNV-1a 64, as the crate checksums cursors. The crate's own is private; that this one
/// is the same is a test of its own (an unedited forgery is a valid cursor, in
/// tests/integration/queries/cursors.rs).
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

/// A title cursor as releases before the nonce wrote it (version 1): `cursor`'s header
/// and task id around `title` masked with the keystream of the user and the query's
/// fingerprint alone, written here from that format, not with the crate's code.
pub fn version_1_title_cursor(cursor: &str, user_id: todo_store::UserId, title: &str) -> String {
    use sha2::{Digest, Sha256};
    let bytes = URL_SAFE_NO_PAD.decode(cursor).expect("a cursor is base64");
    let payload = &bytes[..bytes.len() - 8];
    let fingerprint: [u8; 8] = payload[3..KEY].try_into().expect("8 bytes");
    let id = &payload[payload.len() - 16..];
    let key: [u8; 32] = Sha256::new()
        .chain_update(b"todo-store title cursor v1")
        .chain_update(user_id.as_uuid().as_bytes())
        .chain_update(fingerprint)
        .finalize()
        .into();
    let mut masked = title.as_bytes().to_vec();
    for (block, chunk) in masked.chunks_mut(32).enumerate() {
        let stream = Sha256::new()
            .chain_update(key)
            .chain_update((block as u32).to_be_bytes())
            .finalize();
        for (byte, mask) in chunk.iter_mut().zip(stream) {
            *byte ^= mask;
        }
    }
    let mut old = vec![1, payload[1], payload[2]];
    old.extend_from_slice(&fingerprint);
    old.extend_from_slice(&(title.len() as u32).to_be_bytes());
    old.extend_from_slice(&masked);
    old.extend_from_slice(id);
    let checksum = fnv1a(&old);
    old.extend_from_slice(&checksum.to_be_bytes());
    URL_SAFE_NO_PAD.encode(old)
}
