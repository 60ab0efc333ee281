//! Login sessions against real PostgreSQL: tokens shown once and stored only as hashes,
//! `authenticate` for every request (garbage of every shape is `None`, never an error),
//! sliding expiry, revocation, isolation between users, and the purge of dead
//! sessions while requests authenticate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Text};
use proptest::prelude::*;
use todo_store::testing::TestDb;
use todo_store::{Error, NewSession, PgConnection, Session, SessionRepo, User, UserRepo};
use uuid::Uuid;

use crate::support::fixtures;
use crate::support::trace_capture::{self, Captured};

fn in_days(days: i64) -> chrono::DateTime<Utc> {
    Utc::now() + Duration::days(days)
}

fn new_session(conn: &mut PgConnection, user: &User) -> (Session, String) {
    SessionRepo::create(conn, user.id, &NewSession::new(in_days(30))).expect("a session")
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count_sessions(conn: &mut PgConnection) -> i64 {
    diesel::sql_query("SELECT count(*) AS n FROM sessions")
        .get_result::<Count>(conn)
        .unwrap()
        .n
}

#[test]
fn a_new_sessions_token_authenticates_its_user_and_only_its_hash_is_stored() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let new = NewSession::new(in_days(7))
        .ip_address("2001:DB8::7")
        .user_agent("Mozilla/5.0 (X11)");
    let (session, token) = SessionRepo::create(&mut conn, user.id, &new).unwrap();
    assert_eq!(token.len(), 43, "256 bits in URL-safe base64");
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(session.user_id, user.id);
    assert_eq!(session.ip_address.as_deref(), Some("2001:db8::7"));
    assert_eq!(session.user_agent.as_deref(), Some("Mozilla/5.0 (X11)"));
    assert!(session.revoked_at.is_none() && session.expires_at > Utc::now());
    assert!(!format!("{session:?}").contains(&token));

    let (found, found_user) = SessionRepo::authenticate(&mut conn, &token)
        .unwrap()
        .expect("the token authenticates");
    assert_eq!(found, session);
    assert_eq!(found_user, user);

    // The table holds the SHA-256 of the token's bytes, and nothing holds the token.
    #[derive(QueryableByName)]
    struct Stored {
        #[diesel(sql_type = Bytea)]
        token_hash: Vec<u8>,
        #[diesel(sql_type = Text)]
        whole_row: String,
    }
    let stored =
        diesel::sql_query("SELECT token_hash, row_to_json(s)::text AS whole_row FROM sessions s")
            .get_result::<Stored>(&mut conn)
            .unwrap();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token)
        .unwrap();
    use sha2::Digest;
    assert_eq!(stored.token_hash, sha2::Sha256::digest(&bytes).to_vec());
    assert!(!stored.whole_row.contains(&token), "{}", stored.whole_row);

    // Two sessions never share a token.
    let (_, other) = new_session(&mut conn, &user);
    assert_ne!(other, token);
}

#[test]
fn creating_a_session_checks_its_input_and_writes_nothing_on_error() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    for (new, field) in [
        (
            NewSession::new(Utc::now() - Duration::seconds(1)),
            "expires_at",
        ),
        (NewSession::new(Utc::now()), "expires_at"),
        (
            NewSession::new(in_days(1)).ip_address("not an address"),
            "ip_address",
        ),
        (
            NewSession::new(in_days(1)).ip_address("1.2.3.4\0"),
            "ip_address",
        ),
        (
            NewSession::new(in_days(1)).user_agent("x".repeat(513)),
            "user_agent",
        ),
        (NewSession::new(in_days(1)).user_agent("a\0b"), "user_agent"),
    ] {
        match SessionRepo::create(&mut conn, user.id, &new) {
            Err(Error::Validation { field: f, .. }) => assert_eq!(f, field, "{new:?}"),
            other => panic!("{new:?}: expected Validation on {field}, got {other:?}"),
        }
    }
    let err = SessionRepo::create(
        &mut conn,
        Uuid::now_v7().into(),
        &NewSession::new(in_days(1)),
    )
    .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(count_sessions(&mut conn), 0);
    // At the edge: 512 characters of user agent are kept.
    let (s, _) = SessionRepo::create(
        &mut conn,
        user.id,
        &NewSession::new(in_days(1)).user_agent("é".repeat(512)),
    )
    .unwrap();
    assert_eq!(s.user_agent.unwrap().chars().count(), 512);
}

/// Tokens of every shape that is not a live token: `None`, never an error or a panic,
/// and the connection still serves.
#[test]
fn any_text_that_is_not_a_live_token_is_none() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let (live, token) = new_session(&mut conn, &user);
    let (expired, expired_token) = new_session(&mut conn, &user);
    fixtures::expire_session(&mut conn, expired.id);
    let (revoked, revoked_token) = new_session(&mut conn, &user);
    SessionRepo::revoke(&mut conn, user.id, revoked.id).unwrap();

    let mut flipped = token.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let huge = "A".repeat(1 << 20);
    let cases: Vec<String> = vec![
        String::new(),
        " ".into(),
        expired_token,
        revoked_token,
        flipped,
        format!("{token} "),
        format!(" {token}"),
        format!("{token}\n"),
        token[..42].to_owned(),
        format!("{token}A"),
        token.to_uppercase(),
        token.replace('-', "+").replace('_', "/"),
        format!("Bearer {token}"),
        "\0".repeat(43),
        format!("{}\0", &token[..42]),
        "é".repeat(43),
        "💥".repeat(11),
        huge,
        "'; DROP TABLE sessions; --".into(),
        "A".repeat(43),
        "_".repeat(43),
        Uuid::now_v7().to_string(),
        live.id.to_string(),
    ];
    // (A rewrite that changed nothing, e.g. a token without `-` or `_`, is the token.)
    for text in cases.iter().filter(|text| **text != token) {
        match SessionRepo::authenticate(&mut conn, text) {
            Ok(None) => {}
            other => panic!("{:?}: {other:?}", &text[..text.len().min(60)]),
        }
    }
    assert!(SessionRepo::authenticate(&mut conn, &token)
        .unwrap()
        .is_some());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_token_text_is_none(text in any::<String>(), ascii in "[A-Za-z0-9_-]{43}") {
        use std::sync::OnceLock;
        static DB: OnceLock<TestDb> = OnceLock::new();
        let db = DB.get_or_init(TestDb::new);
        let mut conn = db.conn();
        prop_assert!(matches!(SessionRepo::authenticate(&mut conn, &text), Ok(None)));
        prop_assert!(matches!(SessionRepo::authenticate(&mut conn, &ascii), Ok(None)));
    }
}

#[test]
fn touch_slides_the_expiry_later_and_never_earlier() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let (s, _) = new_session(&mut conn, &user);
    let later = SessionRepo::touch(&mut conn, user.id, s.id, in_days(60)).unwrap();
    assert!(later.expires_at > s.expires_at);
    assert!(later.last_seen_at >= s.last_seen_at);
    let kept = SessionRepo::touch(&mut conn, user.id, s.id, in_days(1)).unwrap();
    assert_eq!(kept.expires_at, later.expires_at, "never shortened");
    assert!(kept.last_seen_at >= later.last_seen_at);

    let err =
        SessionRepo::touch(&mut conn, user.id, s.id, Utc::now() - Duration::hours(1)).unwrap_err();
    assert!(err.is_validation(), "{err:?}");

    let other = fixtures::user(&mut conn);
    let err = SessionRepo::touch(&mut conn, other.id, s.id, in_days(90)).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let unchanged = SessionRepo::list(&mut conn, user.id).unwrap();
    assert_eq!(unchanged[0].expires_at, later.expires_at);

    // Dead sessions are not revived.
    let (expired, _) = new_session(&mut conn, &user);
    fixtures::expire_session(&mut conn, expired.id);
    let (revoked, _) = new_session(&mut conn, &user);
    SessionRepo::revoke(&mut conn, user.id, revoked.id).unwrap();
    for dead in [expired.id, revoked.id, Uuid::now_v7().into()] {
        let err = SessionRepo::touch(&mut conn, user.id, dead, in_days(90)).unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
    }
}

#[test]
fn revoking_ends_a_session_and_another_users_session_is_not_found() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let (ada, bob) = (fixtures::user(&mut conn), fixtures::user(&mut conn));
    let (s, token) = new_session(&mut conn, &ada);
    let (_, bobs_token) = new_session(&mut conn, &bob);

    let err = SessionRepo::revoke(&mut conn, bob.id, s.id).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(SessionRepo::authenticate(&mut conn, &token)
        .unwrap()
        .is_some());

    SessionRepo::revoke(&mut conn, ada.id, s.id).unwrap();
    assert!(SessionRepo::authenticate(&mut conn, &token)
        .unwrap()
        .is_none());
    SessionRepo::revoke(&mut conn, ada.id, s.id).expect("revoking twice is fine");
    assert!(
        SessionRepo::revoke(&mut conn, ada.id, Uuid::now_v7().into())
            .unwrap_err()
            .is_not_found()
    );
    assert!(SessionRepo::authenticate(&mut conn, &bobs_token)
        .unwrap()
        .is_some());
}

#[test]
fn revoke_all_counts_the_active_sessions_it_ended_and_only_the_users() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let (ada, bob) = (fixtures::user(&mut conn), fixtures::user(&mut conn));
    let tokens: Vec<String> = (0..3).map(|_| new_session(&mut conn, &ada).1).collect();
    let (expired, _) = new_session(&mut conn, &ada);
    fixtures::expire_session(&mut conn, expired.id);
    let (revoked, _) = new_session(&mut conn, &ada);
    SessionRepo::revoke(&mut conn, ada.id, revoked.id).unwrap();
    let (_, bobs) = new_session(&mut conn, &bob);

    assert_eq!(SessionRepo::revoke_all(&mut conn, ada.id).unwrap(), 3);
    assert_eq!(SessionRepo::revoke_all(&mut conn, ada.id).unwrap(), 0);
    for token in &tokens {
        assert!(SessionRepo::authenticate(&mut conn, token)
            .unwrap()
            .is_none());
    }
    assert!(SessionRepo::authenticate(&mut conn, &bobs)
        .unwrap()
        .is_some());
    assert_eq!(SessionRepo::list(&mut conn, bob.id).unwrap().len(), 1);
}

#[test]
fn list_shows_the_users_active_sessions_newest_first() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let (ada, bob) = (fixtures::user(&mut conn), fixtures::user(&mut conn));
    let created: Vec<Session> = (0..4).map(|_| new_session(&mut conn, &ada).0).collect();
    fixtures::expire_session(&mut conn, created[1].id);
    SessionRepo::revoke(&mut conn, ada.id, created[2].id).unwrap();
    new_session(&mut conn, &bob);
    let listed: Vec<todo_store::SessionId> = SessionRepo::list(&mut conn, ada.id)
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, [created[3].id, created[0].id]);
    assert!(SessionRepo::list(&mut conn, Uuid::now_v7().into())
        .unwrap()
        .is_empty());
}

#[test]
fn deleting_a_user_deletes_their_sessions() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let (_, token) = new_session(&mut conn, &user);
    UserRepo::delete(&mut conn, user.id).unwrap();
    assert!(SessionRepo::authenticate(&mut conn, &token)
        .unwrap()
        .is_none());
    assert_eq!(count_sessions(&mut conn), 0);
}

/// The purge deletes only dead sessions, at most `limit`, in bounded batches, while
/// other threads authenticate live tokens without a miss.
#[test]
fn purge_deletes_dead_sessions_in_batches_while_requests_authenticate() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let live: Vec<String> = (0..20).map(|_| new_session(&mut conn, &user).1).collect();
    // 2,500 dead sessions (expired or revoked), written in bulk.
    diesel::sql_query(
        "INSERT INTO sessions (id, user_id, token_hash, created_at, expires_at, revoked_at) \
         SELECT gen_random_uuid(), $1, sha256(i::text::bytea), now() - interval '2 days', \
                now() - interval '1 day' + (CASE WHEN i % 2 = 0 THEN interval '2 days' ELSE interval '0' END), \
                CASE WHEN i % 2 = 0 THEN now() ELSE NULL END \
         FROM generate_series(1, 2500) i",
    )
    .bind::<diesel::sql_types::Uuid, _>(user.id)
    .execute(&mut conn)
    .unwrap();
    assert_eq!(count_sessions(&mut conn), 2520);

    let stop = Arc::new(AtomicBool::new(false));
    let misses = Arc::new(Mutex::new(Vec::new()));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (pool, live, stop, misses) = (
                db.pool().clone(),
                live.clone(),
                stop.clone(),
                misses.clone(),
            );
            std::thread::spawn(move || {
                let mut conn = pool.get().unwrap();
                let mut checks = 0;
                while !stop.load(Ordering::Relaxed) || checks == 0 {
                    for token in &live {
                        match SessionRepo::authenticate(&mut conn, token) {
                            Ok(Some(_)) => {}
                            other => misses.lock().unwrap().push(format!("{other:?}")),
                        }
                        checks += 1;
                    }
                }
                checks
            })
        })
        .collect();

    assert_eq!(SessionRepo::purge_expired(&mut conn, 2100).unwrap(), 2100);
    assert_eq!(SessionRepo::purge_expired(&mut conn, 5000).unwrap(), 400);
    assert_eq!(SessionRepo::purge_expired(&mut conn, 5000).unwrap(), 0);
    assert_eq!(SessionRepo::purge_expired(&mut conn, 0).unwrap(), 0);
    stop.store(true, Ordering::Relaxed);
    let checks: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(checks > 0);
    assert!(
        misses.lock().unwrap().is_empty(),
        "{:?}",
        misses.lock().unwrap()
    );
    assert_eq!(count_sessions(&mut conn), 20);
    assert_eq!(SessionRepo::list(&mut conn, user.id).unwrap().len(), 20);
}

/// No span, event or log line of any session call shows a token.
#[test]
fn no_trace_shows_a_token() {
    let capture = Captured::default();
    let subscriber = trace_capture::everything(&capture);
    let db = TestDb::new();
    let mut conn = db.pool().get().unwrap();
    let user = fixtures::user(&mut conn);
    let tokens = tracing::subscriber::with_default(subscriber, || {
        let (s, token) = new_session(&mut conn, &user);
        SessionRepo::authenticate(&mut conn, &token)
            .unwrap()
            .unwrap();
        SessionRepo::touch(&mut conn, user.id, s.id, in_days(40)).unwrap();
        SessionRepo::list(&mut conn, user.id).unwrap();
        SessionRepo::revoke(&mut conn, user.id, s.id).unwrap();
        let _ = SessionRepo::authenticate(&mut conn, &token);
        let _ = SessionRepo::authenticate(&mut conn, &format!("{token}x"));
        SessionRepo::purge_expired(&mut conn, 10).unwrap();
        vec![token]
    });
    let text = capture.text();
    assert!(
        text.contains("session.authenticate"),
        "the capture works: {text}"
    );
    for token in tokens {
        assert!(
            !text.contains(&token[..20]),
            "a token in the trace:\n{text}"
        );
    }
}
