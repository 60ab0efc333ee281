//! The cargo-fuzz targets' bodies (fuzz/), without nightly.

use uuid::Uuid;

use super::fuzz_checks::{
    cursor_target, decode_cursor, decode_search_cursor, normalize_search, seal_cursor,
    seal_search_cursor, search_cursor_target, search_target, title_key,
};
use super::*;
use todo_store::fuzzing::search_sort_number;

fn id() -> [u8; 16] {
    *Uuid::now_v7().as_bytes()
}

/// Well-formed keys of every sort, sealed: all accepted, and only for their own sort
/// (`decode_cursor` panics otherwise). Fails when the cursor format changes under
/// `seal_cursor`, which would leave the fuzzer stuck at the checksum.
#[test]
fn sealed_well_formed_cursors_are_accepted() {
    let micros = 1_700_000_000_123_456i64.to_be_bytes();
    let title = "Zoë's \"list\"";
    let keys: Vec<(u8, Vec<u8>)> = vec![
        (0, micros.to_vec()),
        (1, micros.to_vec()),
        (2, vec![0]),
        (2, [&[1u8][..], &micros].concat()),
        (3, vec![2]),
        (4, title_key(title)),
        (5, 0.25f32.to_bits().to_be_bytes().to_vec()),
    ];
    for (sort, key) in keys {
        for direction in [0, 1] {
            let body = [&key[..], &id()].concat();
            let text = seal_cursor(sort, direction, &body);
            assert!(decode_cursor(&text), "sort {sort} direction {direction}");
            assert!(decode_cursor(&format!(" {text}\n")), "trimmed");
            // Not accepted for any other header.
            assert!(!decode_cursor(&seal_cursor(sort, 2, &body)));
            assert!(!decode_cursor(&seal_cursor(6, direction, &body)));
            // One byte more or less is malformed.
            assert!(!decode_cursor(&seal_cursor(sort, direction, &body[1..])));
            assert!(!decode_cursor(&seal_cursor(
                sort,
                direction,
                &[&body[..], &[0]].concat()
            )));
        }
    }
}

/// Inputs of a cursor target: bytes, hostile text, base64-ish text, and a header byte
/// before up to `body` bytes (which the targets seal behind a valid checksum).
fn cursor_inputs(body: usize) -> impl Strategy<Value = Vec<u8>> {
    let keyed = (0..8u8, prop::collection::vec(any::<u8>(), 0..body)).prop_map(|(head, body)| {
        let mut data = vec![head];
        data.extend(body);
        data
    });
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..96),
        1 => hostile_text().prop_map(String::into_bytes),
        1 => "[A-Za-z0-9_-]{0,80}".prop_map(String::into_bytes),
        2 => keyed,
    ]
}

#[test]
fn the_cursor_fuzz_target_holds_over_generated_inputs() {
    let strategy = prop_oneof![
        6 => cursor_inputs(48),
        // Headers of the query decode_cursor uses, with well-formed-ish keys.
        2 => (0..6u8, 0..2u8, prop::collection::vec(any::<u8>(), 0..8), any::<i64>())
            .prop_map(|(sort, direction, tag, n)| {
                let body = [&tag[..], &n.to_be_bytes(), &id()].concat();
                seal_cursor(sort, direction, &body).into_bytes()
            }),
    ];
    run(3000, strategy, |data| {
        cursor_target(&data);
        Ok(())
    });
}

/// Well-formed search cursors, sealed: accepted by the search, and by no task list;
/// any other header, kind or length is refused. Fails when the cursor format changes
/// under `seal_search_cursor`.
#[test]
fn sealed_well_formed_search_cursors_are_accepted() {
    let relevance = search_sort_number();
    for rank in [0.0f32, 0.25, 1e-30, 7.5] {
        for kind in [0u8, 1] {
            let body = [&rank.to_bits().to_be_bytes()[..], &[kind], &id()].concat();
            let text = seal_search_cursor(relevance, 1, &body);
            assert!(decode_search_cursor(&text), "rank {rank} kind {kind}");
            assert!(decode_search_cursor(&format!(" {text}\n")), "trimmed");
            assert!(!decode_cursor(&text), "not a task list's");
            // Another direction or sort, a kind no search has, one byte more or less.
            assert!(!decode_search_cursor(&seal_search_cursor(
                relevance, 0, &body
            )));
            assert!(!decode_search_cursor(&seal_search_cursor(5, 1, &body)));
            let other_kind = [&rank.to_bits().to_be_bytes()[..], &[2], &id()].concat();
            assert!(!decode_search_cursor(&seal_search_cursor(
                relevance,
                1,
                &other_kind
            )));
            assert!(!decode_search_cursor(&seal_search_cursor(
                relevance,
                1,
                &body[1..]
            )));
            let longer = [&body[..], &[0]].concat();
            assert!(!decode_search_cursor(&seal_search_cursor(
                relevance, 1, &longer
            )));
        }
    }
    // Ranks are finite.
    for rank in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
        let body = [&rank.to_bits().to_be_bytes()[..], &[0], &id()].concat();
        assert!(!decode_search_cursor(&seal_search_cursor(
            relevance, 1, &body
        )));
    }
}

#[test]
fn the_search_cursor_fuzz_target_holds_over_generated_inputs() {
    // The search's header (sort 7 in the target's first byte, direction 1) with ranks
    // and kinds near the accepted ones.
    let near = (
        any::<f32>(),
        0..4u8,
        prop::collection::vec(any::<u8>(), 14..18),
    )
        .prop_map(|(rank, kind, id)| {
            let mut data = vec![7 | (1 << 3)];
            data.extend(rank.to_bits().to_be_bytes());
            data.push(kind);
            data.extend(id);
            data
        });
    let strategy = prop_oneof![6 => cursor_inputs(40), 3 => near];
    run(3000, strategy, |data| {
        search_cursor_target(&data);
        Ok(())
    });
}

#[test]
fn the_search_fuzz_target_holds_over_generated_inputs() {
    let dashes = prop::sample::select(vec![
        "-", "--", "- ", " -", "-\t", "-\u{a0}", "-(", "-!", "-<", "\"", "\" ", " ", "a", "alpha",
        "a-b", "-a", "\0", "😀", "\u{3000}", "or", "|", "&", "é", "\u{200b}",
    ]);
    let strategy = prop_oneof![
        3 => prop::collection::vec(dashes, 0..64).prop_map(|p| p.concat().into_bytes()),
        2 => hostile_text().prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..128),
        1 => (prop::sample::select(vec!["-", "- ", "a", "\"", "é"]), 995..1005usize)
            .prop_map(|(p, n)| p.chars().cycle().take(n).collect::<String>().into_bytes()),
    ];
    run(3000, strategy, |data| {
        search_target(&data);
        Ok(())
    });
}

/// The hook's checks can fail: a search hook that let two negations through, or
/// lost a word, would panic. Spot checks of its verdicts on known inputs.
#[test]
fn the_search_hook_reports_what_list_sends() {
    assert_eq!(normalize_search("").unwrap(), None);
    assert_eq!(normalize_search(" \0 ").unwrap(), None);
    assert_eq!(normalize_search("--x").unwrap().as_deref(), Some(" x"));
    assert_eq!(normalize_search("---x").unwrap().as_deref(), Some("-x"));
    assert_eq!(normalize_search("a--b").unwrap().as_deref(), Some("a--b"));
    assert_eq!(
        normalize_search("\"- -\"").unwrap().as_deref(),
        Some("\"- -\"")
    );
    assert!(normalize_search(&"a".repeat(1001))
        .unwrap_err()
        .is_validation());
}
