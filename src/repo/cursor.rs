//! Opaque keyset-pagination cursors.
//!
//! A cursor holds the sort key and id of the last row of a page, the sort it was made
//! for, and a fingerprint of the query's filters and user, followed by a checksum; it
//! travels as URL-safe base64. Decoding checks all of it: a cursor of another query, a
//! tampered or truncated one, or garbage is an [`Error::Validation`], never a panic.
//!
//! The checksum detects corruption, not forgery: a forged cursor can only move the
//! starting point within the caller's own tasks, since every query is scoped by user.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::query::{Direction, TaskSort};
// The query's fingerprint (query.rs) uses the cursor's hash, through here.
pub(crate) use crate::checksum::fnv1a;
use crate::error::{Error, Result};
use crate::models::validate::PG_MIN_TIMESTAMP_MICROS;
use crate::models::Priority;

const FORMAT_VERSION: u8 = 1;
/// Longest encoded cursor accepted (a title key is at most 255 characters).
const MAX_ENCODED_LEN: usize = 2048;

/// The sort key of the last row of a page.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SortKey {
    Timestamp(DateTime<Utc>),
    OptionalTimestamp(Option<DateTime<Utc>>),
    Priority(Priority),
    Title(String),
    Rank(f32),
}

/// A decoded cursor: continue after the row with this key and id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cursor {
    pub sort: TaskSort,
    pub direction: Direction,
    pub fingerprint: u64,
    pub key: SortKey,
    pub id: Uuid,
}

impl Cursor {
    /// The cursor's text, for the query of `user_id` (which keys the title mask).
    pub(crate) fn encode(&self, user_id: Uuid) -> String {
        let mut body = Vec::with_capacity(32);
        match &self.key {
            SortKey::Timestamp(t) => body.extend_from_slice(&t.timestamp_micros().to_be_bytes()),
            SortKey::OptionalTimestamp(None) => body.push(0),
            SortKey::OptionalTimestamp(Some(t)) => {
                body.push(1);
                body.extend_from_slice(&t.timestamp_micros().to_be_bytes());
            }
            SortKey::Priority(p) => body.push(*p as u8),
            SortKey::Title(title) => {
                body.extend_from_slice(&(title.len() as u32).to_be_bytes());
                let mut masked = title.as_bytes().to_vec();
                mask_title(&mut masked, user_id, self.fingerprint);
                body.extend_from_slice(&masked);
            }
            SortKey::Rank(r) => body.extend_from_slice(&r.to_bits().to_be_bytes()),
        }
        body.extend_from_slice(self.id.as_bytes());
        seal(
            self.sort as u8,
            self.direction as u8,
            self.fingerprint,
            &body,
        )
    }

    /// Decodes `text`, checking that it was made for `sort`, `direction` and a query
    /// with `fingerprint`, of `user_id`.
    pub(crate) fn decode(
        text: &str,
        sort: TaskSort,
        direction: Direction,
        fingerprint: u64,
        user_id: Uuid,
    ) -> Result<Cursor> {
        let invalid = |why: &str| Error::validation("cursor", why.to_owned());
        if text.len() > MAX_ENCODED_LEN {
            return Err(invalid("is too long to be a cursor of this crate"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| invalid("is not a cursor returned by this crate"))?;
        let (payload, checksum) = bytes
            .split_last_chunk::<8>()
            .ok_or_else(|| invalid("is truncated"))?;
        if fnv1a(payload) != u64::from_be_bytes(*checksum) {
            return Err(invalid("is damaged or was altered (checksum mismatch)"));
        }
        let mut reader = Reader(payload);
        if reader.u8()? != FORMAT_VERSION {
            return Err(invalid("was made by an incompatible version"));
        }
        let cursor_sort =
            TaskSort::from_u8(reader.u8()?).ok_or_else(|| invalid("names an unknown sort"))?;
        let cursor_direction = Direction::from_u8(reader.u8()?)
            .ok_or_else(|| invalid("names an unknown direction"))?;
        if cursor_sort != sort || cursor_direction != direction {
            return Err(invalid(&format!(
                "was made for sort {cursor_sort:?} {cursor_direction:?}, not {sort:?} {direction:?}: \
                 start again without a cursor"
            )));
        }
        if reader.u64()? != fingerprint {
            return Err(invalid(
                "was made for a query with other filters or another user: start again without a cursor",
            ));
        }
        let key = reader.key(sort, user_id, fingerprint)?;
        let id = Uuid::from_slice(reader.take(16)?).map_err(|_| invalid("is malformed"))?;
        if !reader.0.is_empty() {
            return Err(invalid("is malformed"));
        }
        Ok(Cursor {
            sort,
            direction,
            fingerprint,
            key,
            id,
        })
    }
}

/// XORs `title` with a keystream (SHA-256 in counter mode) keyed by the user and the
/// query's fingerprint, both ways: a title-sorted cursor, which ends up in URLs and
/// access logs, carries no task title in clear. This hides the text from whoever reads
/// a log; it is no protection against someone who knows the user's id and this
/// crate's code, and it needs none: a cursor only positions a page within its owner's
/// own tasks.
fn mask_title(title: &mut [u8], user_id: Uuid, fingerprint: u64) {
    use sha2::{Digest, Sha256};
    let key: [u8; 32] = Sha256::new()
        .chain_update(b"todo-store title cursor v1")
        .chain_update(user_id.as_bytes())
        .chain_update(fingerprint.to_be_bytes())
        .finalize()
        .into();
    for (block, chunk) in title.chunks_mut(32).enumerate() {
        let stream = Sha256::new()
            .chain_update(key)
            .chain_update((block as u32).to_be_bytes())
            .finalize();
        for (byte, mask) in chunk.iter_mut().zip(stream) {
            *byte ^= mask;
        }
    }
}

/// `title` as a title-sorted cursor of `user_id`'s query with `fingerprint` carries it.
#[cfg(feature = "fuzzing")]
pub(crate) fn masked_title(title: &str, user_id: Uuid, fingerprint: u64) -> Vec<u8> {
    let mut bytes = title.as_bytes().to_vec();
    mask_title(&mut bytes, user_id, fingerprint);
    bytes
}

/// The text of a cursor: the header (format version, `sort` and `direction` by number,
/// `fingerprint`), then `body` (sort key and task id), then the checksum of all of it,
/// as URL-safe base64.
pub(crate) fn seal(sort: u8, direction: u8, fingerprint: u64, body: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(11 + body.len() + 8);
    bytes.push(FORMAT_VERSION);
    bytes.push(sort);
    bytes.push(direction);
    bytes.extend_from_slice(&fingerprint.to_be_bytes());
    bytes.extend_from_slice(body);
    bytes.extend_from_slice(&fnv1a(&bytes).to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Reads big-endian fields off a byte slice; running out is a truncated cursor.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(Error::validation("cursor", "is truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    /// The sort key of a cursor made for `sort`.
    fn key(&mut self, sort: TaskSort, user_id: Uuid, fingerprint: u64) -> Result<SortKey> {
        let invalid = |why: &str| Error::validation("cursor", why.to_owned());
        Ok(match sort {
            TaskSort::CreatedAt | TaskSort::UpdatedAt => SortKey::Timestamp(self.timestamp()?),
            TaskSort::DueDate => SortKey::OptionalTimestamp(match self.u8()? {
                0 => None,
                1 => Some(self.timestamp()?),
                _ => return Err(invalid("is malformed")),
            }),
            TaskSort::Priority => SortKey::Priority(
                Priority::ALL
                    .get(self.u8()? as usize)
                    .copied()
                    .ok_or_else(|| invalid("is malformed"))?,
            ),
            TaskSort::Title => {
                let len = self.u32()? as usize;
                let mut raw = self.take(len)?.to_vec();
                mask_title(&mut raw, user_id, fingerprint);
                let title = String::from_utf8(raw).map_err(|_| invalid("is malformed"))?;
                // No stored title holds NUL, and PostgreSQL would reject the parameter.
                if title.contains('\0') {
                    return Err(invalid("is malformed"));
                }
                SortKey::Title(title)
            }
            TaskSort::Relevance => {
                let rank = f32::from_bits(self.u32()?);
                if !rank.is_finite() {
                    return Err(invalid("is malformed"));
                }
                SortKey::Rank(rank)
            }
        })
    }

    fn timestamp(&mut self) -> Result<DateTime<Utc>> {
        let micros = self.u64()? as i64;
        // PostgreSQL's timestamptz starts at 4714-11-24 00:00 UTC BC (4713 BC); an earlier
        // key would be a database error. (Its end lies beyond chrono's.)
        if micros < PG_MIN_TIMESTAMP_MICROS {
            return Err(Error::validation("cursor", "holds an impossible timestamp"));
        }
        DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| Error::validation("cursor", "holds an impossible timestamp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(key: SortKey, sort: TaskSort) -> Cursor {
        Cursor {
            sort,
            direction: Direction::Desc,
            fingerprint: 42,
            key,
            id: Uuid::now_v7(),
        }
    }

    #[test]
    fn every_key_round_trips() {
        let now = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        for (key, sort) in [
            (SortKey::Timestamp(now), TaskSort::CreatedAt),
            (SortKey::Timestamp(now), TaskSort::UpdatedAt),
            (SortKey::OptionalTimestamp(None), TaskSort::DueDate),
            (SortKey::OptionalTimestamp(Some(now)), TaskSort::DueDate),
            (SortKey::Priority(Priority::High), TaskSort::Priority),
            (SortKey::Title("Zoë's \"list\"".into()), TaskSort::Title),
            (SortKey::Rank(0.25), TaskSort::Relevance),
        ] {
            let cursor = sample(key, sort);
            let decoded = Cursor::decode(
                &cursor.encode(Uuid::nil()),
                sort,
                Direction::Desc,
                42,
                Uuid::nil(),
            )
            .unwrap();
            assert_eq!(decoded, cursor);
        }
    }

    #[test]
    fn rejects_other_sorts_tampering_truncation_and_garbage() {
        let cursor =
            sample(SortKey::Timestamp(Utc::now()), TaskSort::CreatedAt).encode(Uuid::nil());
        let decode =
            |s: &str| Cursor::decode(s, TaskSort::CreatedAt, Direction::Desc, 42, Uuid::nil());
        assert!(decode(&cursor).is_ok());
        assert!(Cursor::decode(
            &cursor,
            TaskSort::UpdatedAt,
            Direction::Desc,
            42,
            Uuid::nil()
        )
        .is_err());
        assert!(Cursor::decode(
            &cursor,
            TaskSort::CreatedAt,
            Direction::Asc,
            42,
            Uuid::nil()
        )
        .is_err());
        assert!(Cursor::decode(
            &cursor,
            TaskSort::CreatedAt,
            Direction::Desc,
            43,
            Uuid::nil()
        )
        .is_err());
        for cut in 0..cursor.len() {
            assert!(decode(&cursor[..cut]).is_err(), "truncated at {cut}");
        }
        let mut bytes = cursor.clone().into_bytes();
        for i in 0..bytes.len() {
            let original = bytes[i];
            bytes[i] = if original == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes.clone()).unwrap();
            assert!(decode(&tampered).is_err(), "byte {i} changed");
            bytes[i] = original;
        }
        for garbage in ["", "   ", "not a cursor", "!!!!", "ä", &"A".repeat(5000)] {
            assert!(decode(garbage).is_err(), "{garbage:?}");
        }
    }
}
