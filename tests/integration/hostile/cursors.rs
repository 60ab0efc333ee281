//! Arbitrary text, and real cursors mutated or forged.

use std::cell::RefCell;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::sample::Index;
use todo_store::testing::TestDb;

use crate::support::cursor_forge::{forge_bytes, KEY};

use super::*;

/// How to damage a real cursor: edits of its text, and edits of its payload behind a
/// valid checksum (a forgery: only the format checks stand in the way).
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, char),
    Delete(Index),
    Insert(Index, String),
    Truncate(Index),
    Append(String),
    Wrap(String, String),
    ForgeByte(Index, u8),
    ForgeTruncate(Index),
    ForgeExtend(Vec<u8>),
    /// The key and id replaced by these bytes.
    ForgeKey(Vec<u8>),
    /// 8 bytes at the key (or just after its tag byte) replaced by this number.
    ForgeI64(bool, i64),
    /// 4 bytes at the key replaced by these bits (a rank or a title length).
    ForgeU32(u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let micros = prop_oneof![
        any::<i64>(),
        prop::sample::select(vec![
            i64::MIN,
            i64::MAX,
            -1,
            0,
            -210_866_803_200_000_000,
            -210_866_803_200_000_001,
            DateTime::<Utc>::MIN_UTC.timestamp_micros(),
            DateTime::<Utc>::MAX_UTC.timestamp_micros(),
            DateTime::<Utc>::MAX_UTC.timestamp_micros() + 1,
        ]),
    ];
    let bits = prop_oneof![
        any::<u32>(),
        prop::sample::select(vec![
            f32::NAN.to_bits(),
            f32::INFINITY.to_bits(),
            f32::NEG_INFINITY.to_bits(),
            (-0.0f32).to_bits(),
            f32::MIN_POSITIVE.to_bits(),
            1,
            f32::MAX.to_bits(),
            u32::MAX,
            256,
            2048,
        ]),
    ];
    let b64 =
        prop::char::ranges(vec!['A'..='Z', 'a'..='z', '0'..='9', '-'..='-', '_'..='_'].into());
    prop_oneof![
        2 => (any::<Index>(), prop_oneof![b64, any::<char>()]).prop_map(|(i, c)| Mutation::Replace(i, c)),
        1 => any::<Index>().prop_map(Mutation::Delete),
        1 => (any::<Index>(), hostile_text()).prop_map(|(i, s)| Mutation::Insert(i, s)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => hostile_text().prop_map(Mutation::Append),
        1 => (prop::sample::select(vec![" ", "\t", "\n", "\0", "\u{a0}", "=", "==", "\u{200b}"]),
              prop::sample::select(vec!["", " ", "\n", "\0", "=", "\u{feff}"]))
            .prop_map(|(a, b)| Mutation::Wrap(a.to_owned(), b.to_owned())),
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::ForgeByte(i, b)),
        1 => any::<Index>().prop_map(Mutation::ForgeTruncate),
        1 => prop::collection::vec(any::<u8>(), 1..40).prop_map(Mutation::ForgeExtend),
        2 => prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64),
                hostile_text().prop_map(|s| {
                    // A title key: length, the text (NUL and all), an id.
                    let mut b = (s.len() as u32).to_be_bytes().to_vec();
                    b.extend_from_slice(s.as_bytes());
                    b.extend_from_slice(Uuid::now_v7().as_bytes());
                    b
                }),
            ].prop_map(Mutation::ForgeKey),
        3 => (any::<bool>(), micros).prop_map(|(tagged, n)| Mutation::ForgeI64(tagged, n)),
        2 => bits.prop_map(Mutation::ForgeU32),
    ]
}

impl Mutation {
    fn apply(&self, cursor: &str) -> String {
        let mut chars: Vec<char> = cursor.chars().collect();
        let n = chars.len();
        match self {
            Mutation::Replace(i, c) if n > 0 => chars[i.index(n)] = *c,
            Mutation::Delete(i) if n > 0 => {
                chars.remove(i.index(n));
            }
            Mutation::Insert(i, s) => {
                let at = i.index(n + 1);
                chars.splice(at..at, s.chars());
            }
            Mutation::Truncate(i) if n > 0 => chars.truncate(i.index(n)),
            Mutation::Append(s) => chars.extend(s.chars()),
            Mutation::Wrap(a, b) => return format!("{a}{cursor}{b}"),
            Mutation::Replace(..) | Mutation::Delete(..) | Mutation::Truncate(..) => {}
            // Forgeries start from a payload: not possible once the text is no cursor.
            _ => {
                return match URL_SAFE_NO_PAD.decode(cursor) {
                    Ok(bytes) if bytes.len() >= 8 => forge_bytes(&bytes, |p| self.edit_payload(p)),
                    _ => cursor.to_owned(),
                }
            }
        }
        chars.into_iter().collect()
    }

    fn edit_payload(&self, payload: &mut Vec<u8>) {
        let n = payload.len();
        match self {
            Mutation::ForgeByte(i, b) if n > 0 => payload[i.index(n)] = *b,
            Mutation::ForgeTruncate(i) if n > 0 => payload.truncate(i.index(n)),
            Mutation::ForgeExtend(bytes) => payload.extend_from_slice(bytes),
            Mutation::ForgeKey(bytes) => {
                payload.truncate(KEY);
                payload.extend_from_slice(bytes);
            }
            Mutation::ForgeI64(tagged, value) => {
                let at = (KEY + usize::from(*tagged)).min(n);
                let mut rest = payload.split_off(at);
                rest.drain(..8.min(rest.len()));
                payload.extend_from_slice(&value.to_be_bytes());
                payload.extend_from_slice(&rest);
            }
            Mutation::ForgeU32(bits) => {
                let mut rest = payload.split_off(KEY.min(n));
                rest.drain(..4.min(rest.len()));
                payload.extend_from_slice(&bits.to_be_bytes());
                payload.extend_from_slice(&rest);
            }
            _ => {}
        }
    }
}

/// The first page's cursor of `query` (limit 1) for `user`.
fn first_cursor(conn: &mut PgConnection, user: UserId, query: &TaskQuery) -> String {
    TaskRepo::list(conn, user, &query.clone().limit(1))
        .expect("the first page")
        .next_cursor
        .unwrap_or_else(|| panic!("{query:?} has a second page"))
}

#[test]
fn arbitrary_and_mutated_cursors_are_ok_or_invalid_never_a_database_error() {
    let db = TestDb::new();
    let conn = RefCell::new(db.conn());
    let fx = fixture(&mut conn.borrow_mut());
    // A real cursor of every sort in both directions, some with filters and a search.
    let mut queries = Vec::new();
    for sort in TaskSort::ALL {
        for dir in [Direction::Asc, Direction::Desc] {
            queries.push(TaskQuery::new().search("alpha").sort(sort, dir));
            if sort != TaskSort::Relevance {
                queries.push(TaskQuery::new().sort(sort, dir));
            }
        }
    }
    queries.push(
        TaskQuery::new()
            .due_after(pg_min())
            .priority(Priority::Low)
            .priority(Priority::High)
            .sort(TaskSort::DueDate, Direction::Asc),
    );
    let cursors: Vec<(TaskQuery, String)> = {
        let mut conn = conn.borrow_mut();
        queries
            .into_iter()
            .map(|q| {
                let c = first_cursor(&mut conn, fx.user.id, &q);
                (q, c)
            })
            .collect()
    };
    let strategy = (
        any::<Index>(),
        prop_oneof![
            3 => prop::collection::vec(mutation(), 1..4).prop_map(Some),
            1 => Just(None),
        ],
        hostile_text(),
        1..=3i64,
    );
    run(384, strategy, |(index, mutations, garbage, limit)| {
        let mut guard = conn.borrow_mut();
        let conn: &mut PgConnection = &mut guard;
        let (query, real) = index.get(&cursors);
        let cursor = match &mutations {
            Some(mutations) => mutations.iter().fold(real.clone(), |c, m| m.apply(&c)),
            None => garbage,
        };
        let q = query.clone().limit(limit).after(&cursor);
        list_pages(
            conn,
            fx.user.id,
            &q,
            "TaskRepo::list after a damaged cursor",
        )?;
        // The same cursor as another user, with the filters of another query.
        let as_other = TaskRepo::list(conn, fx.other.id, &q);
        prop_assert!(
            matches!(&as_other, Err(e) if e.is_validation()),
            "another user's cursor: {}",
            match &as_other {
                Ok(page) => format!("Ok with {} rows", page.items.len()),
                Err(e) => format!("{e:?}"),
            }
        );
        Ok(())
    });
    // The real cursors still work.
    let mut conn = conn.borrow_mut();
    for (query, cursor) in &cursors {
        TaskRepo::list(&mut conn, fx.user.id, &query.clone().after(cursor))
            .unwrap_or_else(|e| panic!("{query:?}: {e:?}"));
    }
}
