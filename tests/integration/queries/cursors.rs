//! Cursors that do not belong to the query (another sort, filters or user; truncated,
//! tampered, garbage, forged), and what a title cursor carries.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use todo_store::testing::TestDb;

use crate::support::cursor_forge::{forge, version_1_title_cursor, KEY, TITLE_NONCE};

use super::*;

#[test]
fn a_cursor_for_another_sort_or_direction_is_invalid() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let all_shapes: Vec<(TaskSort, Direction, TaskQuery)> = SORTS
        .iter()
        .chain([TaskSort::Relevance].iter())
        .flat_map(|&sort| {
            DIRECTIONS.iter().map(move |&dir| {
                let q = TaskQuery::new().search("alpha").sort(sort, dir);
                (sort, dir, q)
            })
        })
        .collect();
    for (sort, dir, q) in &all_shapes {
        let cursor = cursor_of(&mut conn, fx.user.id, q);
        assert!(TaskRepo::list(&mut conn, fx.user.id, &q.clone().after(&cursor)).is_ok());
        for (other_sort, other_dir, other) in &all_shapes {
            if (sort, dir) != (other_sort, other_dir) {
                let result = TaskRepo::list(&mut conn, fx.user.id, &other.clone().after(&cursor));
                assert_invalid(result, "cursor");
            }
        }
    }
}

#[test]
fn a_cursor_for_other_filters_is_invalid() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let t0 = fx.t0;
    let queries = [
        TaskQuery::new(),
        TaskQuery::new().completed(false),
        TaskQuery::new().completed(true),
        TaskQuery::new().priority(Priority::High),
        TaskQuery::new()
            .priority(Priority::High)
            .priority(Priority::Low),
        TaskQuery::new().due_before(t0 + Duration::days(100)),
        TaskQuery::new().due_before(t0 + Duration::days(101)),
        TaskQuery::new().due_after(t0 - Duration::days(100)),
        TaskQuery::new().overdue(),
        TaskQuery::new().created_before(t0 + Duration::days(1)),
        TaskQuery::new().created_after(t0 - Duration::days(1)),
        TaskQuery::new().search("alpha"),
        TaskQuery::new().search("alpha or bravo"),
    ];
    for (i, q) in queries.iter().enumerate() {
        let Some(cursor) = TaskRepo::list(&mut conn, fx.user.id, &q.clone().limit(1))
            .unwrap()
            .next_cursor
        else {
            panic!("{q:?} should have two pages");
        };
        for (j, other) in queries.iter().enumerate() {
            let result = TaskRepo::list(&mut conn, fx.user.id, &other.clone().after(&cursor));
            if i == j {
                assert!(result.is_ok(), "{q:?}: {result:?}");
            } else {
                assert_invalid(result, "cursor");
            }
        }
        // count_matching ignores the cursor.
        assert!(TaskRepo::count_matching(&mut conn, fx.user.id, &q.clone().after(&cursor)).is_ok());
    }
}

/// Two filter sets that a concatenation of their fields without tags or lengths would
/// encode alike (a priority byte, then absent bounds; or four bounds chosen to spell
/// the same bytes): the cursor of one is not accepted by the other.
#[test]
fn a_cursor_of_a_query_with_the_same_field_bytes_is_rejected() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    for _ in 0..2 {
        TaskRepo::create(
            &mut conn,
            user.id,
            &NewTask::new("apple pie").priority(Priority::Low),
        )
        .unwrap();
    }
    let far = |micros: i64| DateTime::from_timestamp_micros(micros).unwrap();
    let first = TaskQuery::new()
        .priority(Priority::Low)
        .search("apple")
        .limit(1);
    let other = TaskQuery::new()
        .due_before(far(0x0A80_0000_0000_0000))
        .due_after(far(0x0080_0000_0000_0000))
        .created_before(far(0x0080_0000_0000_0000))
        .created_after(far(0x0080_0000_0000_0000))
        .search("\0apple")
        .limit(1);
    let cursor = TaskRepo::list(&mut conn, user.id, &first)
        .unwrap()
        .next_cursor
        .expect("a second page");
    assert!(TaskRepo::list(&mut conn, user.id, &first.clone().after(&cursor)).is_ok());
    assert_invalid(
        TaskRepo::list(&mut conn, user.id, &other.after(&cursor)),
        "cursor",
    );
}

#[test]
fn a_cursor_for_another_user_is_invalid() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    for sort in SORTS {
        let q = TaskQuery::new().sort(sort, Direction::Asc);
        let mine = cursor_of(&mut conn, fx.user.id, &q);
        assert_invalid(
            TaskRepo::list(&mut conn, fx.other.id, &q.clone().after(&mine)),
            "cursor",
        );
        let theirs = cursor_of(&mut conn, fx.other.id, &q);
        assert_invalid(
            TaskRepo::list(&mut conn, fx.user.id, &q.clone().after(&theirs)),
            "cursor",
        );
    }
}

#[test]
fn a_truncated_or_tampered_cursor_is_invalid() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for sort in SORTS {
        let q = TaskQuery::new().sort(sort, Direction::Desc);
        let cursor = cursor_of(&mut conn, fx.user.id, &q);
        for cut in 0..cursor.len() {
            let truncated = &cursor[..cut];
            assert_invalid(
                TaskRepo::list(&mut conn, fx.user.id, &q.clone().after(truncated)),
                "cursor",
            );
        }
        let bytes = cursor.as_bytes();
        for (i, &original) in bytes.iter().enumerate() {
            for replacement in [
                alphabet[(i * 7) % 64],
                alphabet[(i * 13 + 5) % 64],
                b'=',
                b'.',
            ] {
                if replacement == original {
                    continue;
                }
                let mut tampered = bytes.to_vec();
                tampered[i] = replacement;
                let tampered = String::from_utf8(tampered).unwrap();
                let result = TaskRepo::list(&mut conn, fx.user.id, &q.clone().after(&tampered));
                assert_invalid(result, "cursor");
            }
        }
        for extra in ["A", "AA", "AAAA", "x", "=="] {
            let longer = format!("{cursor}{extra}");
            assert_invalid(
                TaskRepo::list(&mut conn, fx.user.id, &q.clone().after(&longer)),
                "cursor",
            );
        }
    }
}

#[test]
fn a_garbage_cursor_is_invalid() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let random_bytes =
        URL_SAFE_NO_PAD.encode((0..64u8).map(|i| i.wrapping_mul(37)).collect::<Vec<_>>());
    let garbage = [
        "".to_owned(),
        " ".to_owned(),
        "null".to_owned(),
        "not a cursor".to_owned(),
        "%%%".to_owned(),
        "🙂".to_owned(),
        "\0".to_owned(),
        "'; DROP TABLE tasks; --".to_owned(),
        "A".repeat(10_000),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        random_bytes,
        URL_SAFE_NO_PAD.encode([1u8; 8]),
        URL_SAFE_NO_PAD.encode([0u8; 16]),
    ];
    for sort in SORTS.into_iter().chain([TaskSort::Relevance]) {
        for dir in DIRECTIONS {
            let q = TaskQuery::new().search("alpha").sort(sort, dir);
            for g in &garbage {
                assert_invalid(
                    TaskRepo::list(&mut conn, fx.user.id, &q.clone().after(g)),
                    "cursor",
                );
            }
        }
    }
}

#[test]
fn a_forged_cursor_with_a_valid_checksum_is_invalid_never_a_database_error() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = fixture(&mut conn);
    let user = fx.user.id;
    let mut list =
        |q: &TaskQuery, cursor: &str| TaskRepo::list(&mut conn, user, &q.clone().after(cursor));

    let by_created = TaskQuery::new().sort(TaskSort::CreatedAt, Direction::Desc);
    let real = {
        let page = TaskRepo::list(&mut db.conn(), user, &by_created.clone().limit(2)).unwrap();
        page.next_cursor.unwrap()
    };
    // The forging itself is right: an unchanged payload is accepted.
    assert!(list(&by_created, &forge(&real, |_| {})).is_ok());
    // Timestamps PostgreSQL cannot hold (before 4713 BC), or chrono cannot.
    for micros in [
        i64::MIN,
        i64::MAX,
        -210_866_803_200_000_001,
        -8_000_000_000_000_000_000,
    ] {
        let forged = forge(&real, |p| {
            p[KEY..KEY + 8].copy_from_slice(&micros.to_be_bytes())
        });
        assert_invalid(list(&by_created, &forged), "cursor");
    }
    // The earliest instant PostgreSQL holds is a valid key.
    let earliest = forge(&real, |p| {
        p[KEY..KEY + 8].copy_from_slice(&(-210_866_803_200_000_000i64).to_be_bytes())
    });
    assert!(list(&by_created, &earliest).unwrap().items.is_empty());
    // Unknown version, sort or direction bytes; extra or missing bytes.
    assert_invalid(list(&by_created, &forge(&real, |p| p[0] = 99)), "cursor");
    assert_invalid(list(&by_created, &forge(&real, |p| p[1] = 99)), "cursor");
    assert_invalid(list(&by_created, &forge(&real, |p| p[2] = 99)), "cursor");
    assert_invalid(list(&by_created, &forge(&real, |p| p.push(0))), "cursor");
    assert_invalid(
        list(
            &by_created,
            &forge(&real, |p| {
                p.pop();
            }),
        ),
        "cursor",
    );

    // Due dates: the same timestamps, and an unknown presence byte.
    let by_due = TaskQuery::new().sort(TaskSort::DueDate, Direction::Asc);
    let real = cursor_of(&mut db.conn(), user, &by_due);
    assert!(list(&by_due, &forge(&real, |_| {})).is_ok());
    for micros in [i64::MIN, -210_866_803_200_000_001] {
        let forged = forge(&real, |p| {
            p[KEY] = 1;
            p[KEY + 1..KEY + 9].copy_from_slice(&micros.to_be_bytes());
        });
        assert_invalid(list(&by_due, &forged), "cursor");
    }
    assert_invalid(list(&by_due, &forge(&real, |p| p[KEY] = 2)), "cursor");

    // Priorities: an unknown one.
    let by_priority = TaskQuery::new().sort(TaskSort::Priority, Direction::Asc);
    let real = cursor_of(&mut db.conn(), user, &by_priority);
    assert_invalid(list(&by_priority, &forge(&real, |p| p[KEY] = 3)), "cursor");

    // Titles: NUL (which PostgreSQL text cannot hold), invalid UTF-8, a wrong length.
    let by_title = TaskQuery::new().sort(TaskSort::Title, Direction::Asc);
    let real = cursor_of(&mut db.conn(), user, &by_title);
    let with_title = |title: &[u8], declared: u32| {
        forge(&real, |p| {
            let at = KEY + TITLE_NONCE;
            let old_len = u32::from_be_bytes(p[at..at + 4].try_into().unwrap()) as usize;
            let id = p[at + 4 + old_len..].to_vec();
            p.truncate(at);
            p.extend_from_slice(&declared.to_be_bytes());
            p.extend_from_slice(title);
            p.extend_from_slice(&id);
        })
    };
    // The title travels masked (no task text in clear in a URL): any bytes there are
    // a page or Validation (what they unmask to may be NUL or invalid UTF-8), never a
    // database error.
    for bytes in [&b"a b"[..], b"a\0b", b"\xff\xfe", b"", &[0u8; 255]] {
        match list(&by_title, &with_title(bytes, bytes.len() as u32)) {
            Ok(_) | Err(Error::Validation { .. }) => {}
            Err(other) => panic!("{bytes:?}: {other:?}"),
        }
    }
    assert_invalid(list(&by_title, &with_title(b"abc", 4)), "cursor");
    assert_invalid(list(&by_title, &with_title(b"abc", u32::MAX)), "cursor");

    // Relevance: NaN and infinite ranks.
    let by_rank = TaskQuery::new()
        .search("alpha")
        .sort(TaskSort::Relevance, Direction::Desc);
    let real = cursor_of(&mut db.conn(), user, &by_rank);
    for rank in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let forged = forge(&real, |p| {
            p[KEY..KEY + 4].copy_from_slice(&rank.to_bits().to_be_bytes())
        });
        assert_invalid(list(&by_rank, &forged), "cursor");
    }
    let forged = forge(&real, |p| {
        p[KEY..KEY + 4].copy_from_slice(&(-1.5f32).to_bits().to_be_bytes())
    });
    assert!(list(&by_rank, &forged).is_ok());
}

/// Cursors end up in URLs and access logs: a title-sorted one carries its task's
/// title masked, not in clear, and still pages correctly.
#[test]
fn a_title_cursor_carries_no_title_in_clear() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    for title in ["Surprise party for Grace", "Tax return 2026"] {
        fixtures::task(&mut conn, &user, title);
    }
    let query = TaskQuery::new()
        .sort(TaskSort::Title, Direction::Asc)
        .limit(1);
    let first = TaskRepo::list(&mut conn, user.id, &query).unwrap();
    let cursor = first.next_cursor.expect("a second page");
    let bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
    for part in ["Surprise", "party", "Grace"] {
        assert!(
            !bytes.windows(part.len()).any(|w| w == part.as_bytes()),
            "{part:?} in clear in the cursor"
        );
    }
    let next = TaskRepo::list(&mut conn, user.id, &query.clone().after(&cursor)).unwrap();
    assert_eq!(next.items[0].title, "Tax return 2026");
    // Another user's query cannot use it.
    let other = fixtures::user(&mut conn);
    assert_invalid(
        TaskRepo::list(&mut conn, other.id, &query.after(&cursor)),
        "cursor",
    );
}

/// The bytes of `cursor` (base64 decoded).
fn cursor_bytes(cursor: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(cursor).unwrap()
}

/// Two title cursors of one user and query never share a keystream: their XOR is not
/// the XOR of their titles (which would give one title away to whoever knows the
/// other), and two cursors of the very same page differ in their masked titles.
#[test]
fn title_cursors_of_one_query_share_no_keystream() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    // Titles of equal length, so that the two cursors line up byte for byte.
    let titles = [
        "Alpha budget memo",
        "Bravo doctor call",
        "Charlie dentist 9",
    ];
    for title in titles {
        fixtures::task(&mut conn, &user, title);
    }
    let query = TaskQuery::new()
        .sort(TaskSort::Title, Direction::Asc)
        .limit(1);
    let first = TaskRepo::list(&mut conn, user.id, &query).unwrap();
    let after_alpha = first.next_cursor.unwrap();
    let second = TaskRepo::list(&mut conn, user.id, &query.clone().after(&after_alpha)).unwrap();
    assert_eq!(second.items[0].title, titles[1]);
    let after_bravo = second.next_cursor.unwrap();
    let (a, b) = (cursor_bytes(&after_alpha), cursor_bytes(&after_bravo));
    assert_eq!(a.len(), b.len());
    let xor: Vec<u8> = a.iter().zip(&b).map(|(x, y)| x ^ y).collect();
    let titles_xor: Vec<u8> = titles[0]
        .bytes()
        .zip(titles[1].bytes())
        .map(|(x, y)| x ^ y)
        .collect();
    assert!(
        !xor.windows(titles_xor.len()).any(|w| w == titles_xor),
        "the XOR of two cursors is the XOR of their titles: one keystream for both"
    );
    // The same page twice: two cursors, each masking the same title its own way.
    let again = TaskRepo::list(&mut conn, user.id, &query).unwrap();
    let also_after_alpha = again.next_cursor.unwrap();
    let c = cursor_bytes(&also_after_alpha);
    assert_ne!(a, c, "one page, one cursor text: a keystream used twice");
    let masked = |bytes: &[u8]| bytes[KEY..bytes.len() - 8 - 16].to_vec();
    let same = masked(&a)
        .iter()
        .zip(masked(&c))
        .filter(|(x, y)| **x == *y)
        .count();
    assert!(same < 8, "{same} bytes of the masked titles are equal");
    // Both still lead to the same next page.
    for cursor in [&after_alpha, &also_after_alpha] {
        let next = TaskRepo::list(&mut conn, user.id, &query.clone().after(cursor)).unwrap();
        assert_eq!(next.items[0].title, titles[1]);
    }
}

/// A title cursor of the format before the nonce (version 1), as a client may still
/// hold one across an upgrade, is a Validation error that says to start again, never
/// a page from a title read the wrong way.
#[test]
fn an_old_title_cursor_is_invalid_never_a_wrong_page() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    for title in ["Alpha", "Bravo", "Charlie"] {
        fixtures::task(&mut conn, &user, title);
    }
    let query = TaskQuery::new()
        .sort(TaskSort::Title, Direction::Asc)
        .limit(1);
    let cursor = TaskRepo::list(&mut conn, user.id, &query)
        .unwrap()
        .next_cursor
        .unwrap();
    let old = version_1_title_cursor(&cursor, user.id, "Alpha");
    match TaskRepo::list(&mut conn, user.id, &query.clone().after(&old)) {
        Err(Error::Validation { field, reason }) if field == "cursor" => {
            assert!(reason.contains("start again"), "{reason}");
        }
        other => panic!("expected Validation of the cursor, got {other:?}"),
    }
    // Cursors of other sorts keep their format (version 1) and stay valid.
    let by_created = TaskQuery::new().limit(1);
    let created = TaskRepo::list(&mut conn, user.id, &by_created)
        .unwrap()
        .next_cursor
        .unwrap();
    assert_eq!(cursor_bytes(&created)[0], 1);
    assert!(TaskRepo::list(&mut conn, user.id, &by_created.after(&created)).is_ok());
}
