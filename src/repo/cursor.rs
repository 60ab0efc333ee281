//! Opaque keyset-pagination cursors.
//!
//! A cursor holds the sort key and id of the last row of a page, the sort it was made
//! for, and a fingerprint of the query's filters and user, followed by a checksum; it
//! travels as URL-safe base64. Decoding checks all of it: a cursor of another query, a
//! tampered or truncated one, or garbage is an [`Error::Validation`], never a panic.
//!
//! The checksum detects corruption, not forgery: a forged cursor can only move the
//! starting point within the caller's own tasks, since every query is scoped by user.
//!
//! The first byte is the layout's version: 1 for every sort but titles (unchanged since
//! the first release, so those cursors stay valid), 2 for titles, whose key carries a
//! random nonce (see [`mask_title`]). A title cursor of version 1 (masked without a
//! nonce, by earlier releases) is refused as [`Error::Validation`]: its client starts
//! again without a cursor, and never gets a page from a misread title.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::query::{Direction, TaskSort};
// The query's fingerprint (query.rs) uses the cursor's hash, through here.
pub(crate) use crate::checksum::fnv1a;
use crate::error::{Error, Result};
use crate::models::validate::PG_MIN_TIMESTAMP_MICROS;
use crate::models::{Priority, UserId};

/// The layout of every cursor but title-sorted ones.
const FORMAT_VERSION: u8 = 1;
/// The layout of title-sorted cursors: the title masked under a nonce of its own.
const TITLE_FORMAT_VERSION: u8 = 2;
/// Bytes of the random nonce of a title cursor.
pub(crate) const TITLE_NONCE_LEN: usize = 16;
/// The largest kind number of [`SortKey::KindRank`] (tasks 0, habits 1).
pub(crate) const MAX_FOUND_KIND: u8 = 1;
/// Longest encoded cursor accepted (a title key is at most 255 characters).
const MAX_ENCODED_LEN: usize = 2048;

/// The sort key of the last row of a page.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SortKey {
    Timestamp(DateTime<Utc>),
    OptionalTimestamp(Option<DateTime<Utc>>),
    Priority(Priority),
    /// A title, and the nonce its cursor masks it under ([`TitleNonce::fresh`] for a
    /// new cursor; a decoded one keeps its own, so it encodes back to the same text).
    Title(String, TitleNonce),
    Rank(f32),
    /// The relevance of a row of a search across tasks and habits, and its kind by its
    /// number in that search's SQL (`crate::repo::search`).
    KindRank(f32, u8),
}

/// The random nonce of a title cursor, which makes its keystream its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TitleNonce(pub [u8; TITLE_NONCE_LEN]);

impl TitleNonce {
    /// Random bytes from the operating system. Should it fail (it does not on any
    /// supported system), the clock and a process-wide counter stand in: a nonce needs
    /// to be unique, not secret.
    pub(crate) fn fresh() -> TitleNonce {
        let mut bytes = [0u8; TITLE_NONCE_LEN];
        if getrandom::fill(&mut bytes).is_err() {
            use std::sync::atomic::{AtomicU64, Ordering};
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            bytes[..8].copy_from_slice(&nanos.to_be_bytes());
            let count = COUNTER.fetch_add(1, Ordering::Relaxed) ^ u64::from(std::process::id());
            bytes[8..].copy_from_slice(&count.to_be_bytes());
        }
        TitleNonce(bytes)
    }
}

/// A sort a cursor can be made for ([`TaskSort`], [`crate::UserSort`]): its number in
/// the cursor's header, and the kind of sort key that follows.
pub(crate) trait CursorSort: Copy + PartialEq + std::fmt::Debug {
    /// Its number in the cursor's header.
    fn number(self) -> u8;
    /// The sort numbered `n`, if any.
    fn from_number(n: u8) -> Option<Self>;
    /// The kind of its sort key.
    fn key_kind(self) -> KeyKind;
}

/// The kinds of [`SortKey`], as a cursor's sort names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Timestamp,
    OptionalTimestamp,
    Priority,
    Title,
    Rank,
    KindRank,
}

impl CursorSort for TaskSort {
    fn number(self) -> u8 {
        self as u8
    }

    fn from_number(n: u8) -> Option<Self> {
        TaskSort::from_u8(n)
    }

    fn key_kind(self) -> KeyKind {
        match self {
            TaskSort::CreatedAt | TaskSort::UpdatedAt => KeyKind::Timestamp,
            TaskSort::DueDate => KeyKind::OptionalTimestamp,
            TaskSort::Priority => KeyKind::Priority,
            TaskSort::Title => KeyKind::Title,
            TaskSort::Relevance => KeyKind::Rank,
        }
    }
}

/// A decoded cursor: continue after the row with this key and id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cursor<S = TaskSort> {
    pub sort: S,
    pub direction: Direction,
    pub fingerprint: u64,
    pub key: SortKey,
    pub id: Uuid,
}

impl<S: CursorSort> Cursor<S> {
    /// The cursor's text, for the query of `user_id` (which keys the title mask).
    pub(crate) fn encode(&self, user_id: UserId) -> String {
        let mut body = Vec::with_capacity(32);
        match &self.key {
            SortKey::Timestamp(t) => body.extend_from_slice(&t.timestamp_micros().to_be_bytes()),
            SortKey::OptionalTimestamp(None) => body.push(0),
            SortKey::OptionalTimestamp(Some(t)) => {
                body.push(1);
                body.extend_from_slice(&t.timestamp_micros().to_be_bytes());
            }
            SortKey::Priority(p) => body.push(*p as u8),
            SortKey::Title(title, nonce) => {
                body.extend_from_slice(&title_key(title, *nonce, user_id, self.fingerprint));
            }
            SortKey::Rank(r) => body.extend_from_slice(&r.to_bits().to_be_bytes()),
            SortKey::KindRank(r, kind) => {
                body.extend_from_slice(&r.to_bits().to_be_bytes());
                body.push(*kind);
            }
        }
        body.extend_from_slice(self.id.as_bytes());
        seal_as(
            version_of(self.sort.key_kind()),
            self.sort.number(),
            self.direction as u8,
            self.fingerprint,
            &body,
        )
    }

    /// Decodes `text`, checking that it was made for `sort`, `direction` and a query
    /// with `fingerprint`, of `user_id`.
    pub(crate) fn decode(
        text: &str,
        sort: S,
        direction: Direction,
        fingerprint: u64,
        user_id: UserId,
    ) -> Result<Cursor<S>> {
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
        let version = reader.u8()?;
        let cursor_sort =
            S::from_number(reader.u8()?).ok_or_else(|| invalid("names an unknown sort"))?;
        if cursor_sort.key_kind() == KeyKind::Title && version == FORMAT_VERSION {
            return Err(invalid(
                "was made by an earlier version of this crate, whose title cursors are no \
                 longer read: start again without a cursor",
            ));
        }
        if version != version_of(cursor_sort.key_kind()) {
            return Err(invalid("was made by an incompatible version"));
        }
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
        let key = reader.key(sort.key_kind(), user_id, fingerprint)?;
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

/// The version byte of a cursor whose sort key is of `kind`.
fn version_of(kind: KeyKind) -> u8 {
    if kind == KeyKind::Title {
        TITLE_FORMAT_VERSION
    } else {
        FORMAT_VERSION
    }
}

/// The sort key of a title cursor: the nonce, the title's length in bytes, then the
/// title masked ([`mask_title`]).
pub(crate) fn title_key(
    title: &str,
    nonce: TitleNonce,
    user_id: UserId,
    fingerprint: u64,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(TITLE_NONCE_LEN + 4 + title.len());
    key.extend_from_slice(&nonce.0);
    key.extend_from_slice(&(title.len() as u32).to_be_bytes());
    let start = key.len();
    key.extend_from_slice(title.as_bytes());
    mask_title(&mut key[start..], nonce, user_id, fingerprint);
    key
}

/// XORs `title` with a keystream (SHA-256 in counter mode) keyed by the cursor's own
/// random nonce, the user and the query's fingerprint, both ways: a title-sorted
/// cursor, which ends up in URLs and access logs, carries no task title in clear.
///
/// This hides the text from casual readers of a log; it is not encryption. There is
/// no server secret: someone who knows the user's id and this crate's code unmasks
/// it, and nothing needs more, since a cursor only positions a page within its
/// owner's own tasks. The nonce makes every cursor's keystream its own: without it,
/// two cursors of one user and query shared a keystream, and the XOR of the two
/// cursors was the XOR of their titles, so one known title gave away the other.
fn mask_title(title: &mut [u8], nonce: TitleNonce, user_id: UserId, fingerprint: u64) {
    use sha2::{Digest, Sha256};
    let key: [u8; 32] = Sha256::new()
        .chain_update(b"todo-store title cursor v2")
        .chain_update(nonce.0)
        .chain_update(user_id.as_uuid().as_bytes())
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

/// The text of a task cursor: [`seal_as`] with the layout's version for the task sort
/// numbered `sort` (for the fuzzing hooks, which seal any bytes).
#[cfg(feature = "fuzzing")]
pub(crate) fn seal(sort: u8, direction: u8, fingerprint: u64, body: &[u8]) -> String {
    let version = TaskSort::from_u8(sort).map_or(FORMAT_VERSION, |s| version_of(s.key_kind()));
    seal_as(version, sort, direction, fingerprint, body)
}

/// The text of a cursor: the header (the layout's `version`, `sort` and `direction` by
/// number, `fingerprint`), then `body` (sort key and row id), then the checksum of all
/// of it, as URL-safe base64.
fn seal_as(version: u8, sort: u8, direction: u8, fingerprint: u64, body: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(11 + body.len() + 8);
    bytes.push(version);
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

    /// A sort key of `kind`.
    fn key(&mut self, kind: KeyKind, user_id: UserId, fingerprint: u64) -> Result<SortKey> {
        let invalid = |why: &str| Error::validation("cursor", why.to_owned());
        Ok(match kind {
            KeyKind::Timestamp => SortKey::Timestamp(self.timestamp()?),
            KeyKind::OptionalTimestamp => SortKey::OptionalTimestamp(match self.u8()? {
                0 => None,
                1 => Some(self.timestamp()?),
                _ => return Err(invalid("is malformed")),
            }),
            KeyKind::Priority => SortKey::Priority(
                Priority::ALL
                    .get(self.u8()? as usize)
                    .copied()
                    .ok_or_else(|| invalid("is malformed"))?,
            ),
            KeyKind::Title => {
                let nonce = TitleNonce(self.take(TITLE_NONCE_LEN)?.try_into().expect("16 bytes"));
                let len = self.u32()? as usize;
                let mut raw = self.take(len)?.to_vec();
                mask_title(&mut raw, nonce, user_id, fingerprint);
                let title = String::from_utf8(raw).map_err(|_| invalid("is malformed"))?;
                // No stored title holds NUL, and PostgreSQL would reject the parameter.
                if title.contains('\0') {
                    return Err(invalid("is malformed"));
                }
                SortKey::Title(title, nonce)
            }
            KeyKind::Rank => SortKey::Rank(self.rank()?),
            KeyKind::KindRank => {
                let rank = self.rank()?;
                match self.u8()? {
                    kind @ 0..=MAX_FOUND_KIND => SortKey::KindRank(rank, kind),
                    _ => return Err(invalid("is malformed")),
                }
            }
        })
    }

    /// A relevance rank: a finite `real`.
    fn rank(&mut self) -> Result<f32> {
        let rank = f32::from_bits(self.u32()?);
        if !rank.is_finite() {
            return Err(Error::validation("cursor", "is malformed"));
        }
        Ok(rank)
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
            (
                SortKey::Title("Zoë's \"list\"".into(), TitleNonce::fresh()),
                TaskSort::Title,
            ),
            (SortKey::Rank(0.25), TaskSort::Relevance),
        ] {
            let cursor = sample(key, sort);
            let decoded = Cursor::decode(
                &cursor.encode(Uuid::nil().into()),
                sort,
                Direction::Desc,
                42,
                Uuid::nil().into(),
            )
            .unwrap();
            assert_eq!(decoded, cursor);
        }
    }

    #[test]
    fn rejects_other_sorts_tampering_truncation_and_garbage() {
        let cursor =
            sample(SortKey::Timestamp(Utc::now()), TaskSort::CreatedAt).encode(Uuid::nil().into());
        let decode = |s: &str| {
            Cursor::decode(
                s,
                TaskSort::CreatedAt,
                Direction::Desc,
                42,
                Uuid::nil().into(),
            )
        };
        assert!(decode(&cursor).is_ok());
        assert!(Cursor::decode(
            &cursor,
            TaskSort::UpdatedAt,
            Direction::Desc,
            42,
            Uuid::nil().into()
        )
        .is_err());
        assert!(Cursor::decode(
            &cursor,
            TaskSort::CreatedAt,
            Direction::Asc,
            42,
            Uuid::nil().into()
        )
        .is_err());
        assert!(Cursor::decode(
            &cursor,
            TaskSort::CreatedAt,
            Direction::Desc,
            43,
            Uuid::nil().into()
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
