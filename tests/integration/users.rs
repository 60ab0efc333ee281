//! UserRepo against real PostgreSQL.

use todo_store::testing::TestDb;
use todo_store::{ConflictKind, Error, NewUser, TaskRepo, UserPatch, UserRepo};
use uuid::Uuid;

use crate::support::fixtures;

#[test]
fn create_returns_the_stored_user() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let new = NewUser::new("  Ada@Example.com ", " Ada Lovelace ")
        .image("https://example.com/ada.png")
        .email_verified(true);
    let user = UserRepo::create(&mut conn, &new).unwrap();
    assert_eq!(user.email, "Ada@Example.com");
    assert_eq!(user.name, "Ada Lovelace");
    assert!(user.email_verified);
    assert_eq!(user.image.as_deref(), Some("https://example.com/ada.png"));
    assert_eq!(user.id.as_uuid().get_version_num(), 7);
    assert_eq!(user.created_at, user.updated_at);
    assert_eq!(UserRepo::get(&mut conn, user.id).unwrap(), user);
}

#[test]
fn email_is_unique_case_insensitively() {
    let db = TestDb::new();
    let mut conn = db.conn();
    UserRepo::create(&mut conn, &NewUser::new("ada@example.com", "Ada")).unwrap();
    let err = UserRepo::create(&mut conn, &NewUser::new("ADA@example.COM", "Other")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                kind: ConflictKind::EmailTaken
            }
        ),
        "{err:?}"
    );
    assert_eq!(UserRepo::count(&mut conn).unwrap(), 1);
}

#[test]
fn find_by_email_ignores_case_and_misses_cleanly() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = UserRepo::create(&mut conn, &NewUser::new("Grace@Example.com", "Grace")).unwrap();
    let found = UserRepo::find_by_email(&mut conn, "grace@EXAMPLE.com").unwrap();
    assert_eq!(found, Some(user));
    assert_eq!(
        UserRepo::find_by_email(&mut conn, "nobody@example.com").unwrap(),
        None
    );
    assert_eq!(
        UserRepo::find_by_email(&mut conn, "nul\0@example.com").unwrap(),
        None
    );
}

#[test]
fn get_of_a_missing_user_is_not_found() {
    let db = TestDb::new();
    let err = UserRepo::get(&mut db.conn(), Uuid::now_v7().into()).unwrap_err();
    assert!(
        matches!(err, Error::NotFound { entity: "user", .. }),
        "{err:?}"
    );
}

#[test]
fn update_changes_only_the_given_fields() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = UserRepo::create(
        &mut conn,
        &NewUser::new("ada@example.com", "Ada").image("https://example.com/a.png"),
    )
    .unwrap();
    let updated = UserRepo::update(
        &mut conn,
        user.id,
        &UserPatch {
            name: Some("Ada King".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(updated.name, "Ada King");
    assert_eq!(updated.email, user.email);
    assert_eq!(updated.image, user.image);
    assert!(updated.updated_at > user.updated_at);

    let cleared = UserRepo::update(
        &mut conn,
        user.id,
        &UserPatch {
            image: Some(None),
            email_verified: Some(true),
            email: Some("ada.king@example.com".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(cleared.image, None);
    assert!(cleared.email_verified);
    assert_eq!(cleared.email, "ada.king@example.com");
    assert_eq!(UserRepo::get(&mut conn, user.id).unwrap(), cleared);
}

#[test]
fn update_to_a_taken_email_is_a_conflict_and_changes_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    UserRepo::create(&mut conn, &NewUser::new("taken@example.com", "A")).unwrap();
    let user = UserRepo::create(&mut conn, &NewUser::new("free@example.com", "B")).unwrap();
    let err = UserRepo::update(
        &mut conn,
        user.id,
        &UserPatch {
            email: Some("TAKEN@example.com".into()),
            name: Some("Changed".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(UserRepo::get(&mut conn, user.id).unwrap(), user);
}

#[test]
fn update_and_delete_of_a_missing_user_are_not_found() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let id: todo_store::UserId = Uuid::now_v7().into();
    assert!(UserRepo::update(&mut conn, id, &UserPatch::default())
        .unwrap_err()
        .is_not_found());
    assert!(UserRepo::delete(&mut conn, id).unwrap_err().is_not_found());
}

#[test]
fn delete_cascades_to_the_users_tasks() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let other = fixtures::user(&mut conn);
    fixtures::task(&mut conn, &user, "one");
    fixtures::task(&mut conn, &user, "two");
    let kept = fixtures::task(&mut conn, &other, "other's");
    UserRepo::delete(&mut conn, user.id).unwrap();
    assert!(UserRepo::get(&mut conn, user.id)
        .unwrap_err()
        .is_not_found());
    assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 0);
    assert_eq!(TaskRepo::get(&mut conn, other.id, kept.id).unwrap(), kept);
}

/// Better Auth's rows of a user (written here as Better Auth writes them, ids left to
/// the database) go with the user: sessions, accounts (the password hash), and the
/// crate's own sessions; another user's stay.
#[test]
fn delete_removes_the_users_sessions_and_better_auth_rows() {
    use diesel::connection::SimpleConnection;
    use diesel::dsl::sql;
    use diesel::sql_types::Text;
    use diesel::RunQueryDsl;

    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let other = fixtures::user(&mut conn);
    for (id, n) in [(user.id, 1), (other.id, 2)] {
        conn.batch_execute(&format!(
            "INSERT INTO auth_sessions (user_id, token, expires_at, updated_at) \
               VALUES ('{id}', 'token-{n}', now() + interval '7 days', now()); \
             INSERT INTO auth_accounts (user_id, account_id, provider_id, password, updated_at) \
               VALUES ('{id}', '{id}', 'credential', 'scrypt-hash', now()); \
             INSERT INTO sessions (user_id, token_hash, expires_at) \
               VALUES ('{id}', sha256('{n}'), now() + interval '7 days')"
        ))
        .unwrap();
    }
    UserRepo::delete(&mut conn, user.id).unwrap();
    let rows_of = |conn: &mut todo_store::PgConnection, id: todo_store::UserId| -> String {
        diesel::select(sql::<Text>(&format!(
            "concat_ws(' ', \
               (SELECT count(*) FROM auth_sessions WHERE user_id = '{id}'), \
               (SELECT count(*) FROM auth_accounts WHERE user_id = '{id}'), \
               (SELECT count(*) FROM sessions WHERE user_id = '{id}'))"
        )))
        .get_result(conn)
        .unwrap()
    };
    assert_eq!(rows_of(&mut conn, user.id), "0 0 0");
    assert_eq!(rows_of(&mut conn, other.id), "1 1 1");
}

#[test]
fn list_pages_through_users_oldest_first() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let created: Vec<_> = (0..5).map(|_| fixtures::user(&mut conn)).collect();
    let first = UserRepo::list(&mut conn, 3, 0).unwrap();
    let second = UserRepo::list(&mut conn, 3, 3).unwrap();
    let listed: Vec<_> = first.into_iter().chain(second).collect();
    assert_eq!(listed, created);
    for (limit, offset) in [(0, 0), (1001, 0), (-1, 0), (10, -1)] {
        let err = UserRepo::list(&mut conn, limit, offset).unwrap_err();
        assert!(err.is_validation(), "{limit} {offset}: {err:?}");
    }
}

#[test]
fn invalid_users_are_rejected_and_nothing_is_written() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let long_name = "n".repeat(101);
    let long_email = format!("{}@example.com", "e".repeat(250));
    let cases = [
        (NewUser::new("no-at-sign", "A"), "email"),
        (NewUser::new("two@@example.com", "A"), "email"),
        (NewUser::new("sp ace@example.com", "A"), "email"),
        (NewUser::new("@example.com", "A"), "email"),
        (NewUser::new("a@", "A"), "email"),
        (NewUser::new(long_email.as_str(), "A"), "email"),
        (NewUser::new("nul\0@example.com", "A"), "email"),
        (NewUser::new("a@example.com", ""), "name"),
        (NewUser::new("a@example.com", "   "), "name"),
        (NewUser::new("a@example.com", long_name.as_str()), "name"),
        (NewUser::new("a@example.com", "N\0ul"), "name"),
        (NewUser::new("a@example.com", "A").image("x\0y"), "image"),
    ];
    for (new, field) in cases {
        let err = UserRepo::create(&mut conn, &new).unwrap_err();
        match err {
            Error::Validation { field: ref f, .. } if f == field => {}
            other => panic!("{new:?}: expected Validation on {field}, got {other:?}"),
        }
    }
    // 100 characters of a multi-byte letter are fine: characters, not bytes.
    UserRepo::create(&mut conn, &NewUser::new("ok@example.com", "é".repeat(100))).unwrap();
    assert_eq!(UserRepo::count(&mut conn).unwrap(), 1);
}

#[test]
fn invalid_patches_are_rejected_and_change_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    for patch in [
        UserPatch {
            email: Some("bad".into()),
            ..Default::default()
        },
        UserPatch {
            name: Some(" ".into()),
            ..Default::default()
        },
        UserPatch {
            name: Some("a\0".into()),
            ..Default::default()
        },
        UserPatch {
            image: Some(Some("i".repeat(2049))),
            ..Default::default()
        },
    ] {
        let err = UserRepo::update(&mut conn, user.id, &patch).unwrap_err();
        assert!(err.is_validation(), "{patch:?}: {err:?}");
    }
    assert_eq!(UserRepo::get(&mut conn, user.id).unwrap(), user);
}

// ---------------------------------------------------------------------------------------
// What "the same email" means: Unicode's compatibility caseless matching (the key
// email_key() under ICU's root collation at secondary strength: case and compatibility
// forms ignored, accents not). Every code point: tests/integration/email_key.rs.
// ---------------------------------------------------------------------------------------

/// Pairs of spellings of one address.
const SAME_ACCOUNT: &[(&str, &str)] = &[
    ("grace@example.com", "GRACE@Example.COM"),
    ("élodie@example.fr", "ÉLODIE@example.fr"),
    ("straße@example.de", "STRASSE@example.de"),
    ("straße@example.de", "strasse@example.de"),
    ("ẞig@example.de", "ssig@example.de"),
    ("ΟΔΟΣ@example.gr", "οδος@example.gr"),
    ("οδοσ@example.gr", "οδος@example.gr"),
    ("ſam@example.com", "SAM@example.com"),
    ("ﬀ@example.com", "FF@example.com"),
    ("ﬁle@example.com", "file@example.com"),
    ("ＡＤＡ@example.com", "ada@example.com"),
    ("ǅemal@example.hr", "džemal@example.hr"),
    ("İzmir@example.com.tr", "izmir@example.com.tr"),
    ("e\u{301}mile@example.fr", "émile@example.fr"),
    // Compatibility forms that ICU's collation alone weighs like accents.
    ("ﬅop@x.example", "stop@x.example"),
    ("ẛx@x.example", "ṡx@x.example"),
    ("ẛx@x.example", "S\u{307}X@x.example"),
    ("ᾳ@example.gr", "αι@example.gr"),
    ("₨@example.in", "RS@example.in"),
    ("i\u{307}zmir@example.com.tr", "İZMİR@example.com.tr"),
    // Compatibility forms and case foldings of every kind.
    ("ﬆop@x.example", "STOP@x.example"),
    ("ﬃx@example.com", "FFIX@example.com"),
    ("𝐚𝐝𝐚@example.com", "ADA@example.com"),
    ("𝔞𝔡𝔞@example.com", "ada@example.com"),
    ("ǆemal@example.hr", "DŽEMAL@example.hr"),
    ("\u{212A}elvin@example.com", "kelvin@example.com"),
    ("ａｄａ@ｅｘａｍｐｌｅ.ｃｏｍ", "ada@example.com"),
    ("①@example.com", "1@example.com"),
];

/// Pairs of addresses that are different accounts.
const DIFFERENT_ACCOUNTS: &[(&str, &str)] = &[
    ("é@example.fr", "e@example.fr"),
    ("müller@example.de", "muller@example.de"),
    ("åsa@example.se", "asa@example.se"),
    ("ıi@example.com.tr", "ii@example.com.tr"),
    ("ß@example.de", "s@example.de"),
    ("ada@example.com", "ada@example.co"),
    ("a.da@example.org", "ada@example.org"),
    // Look-alikes of other scripts are other letters: Latin o, Greek ο, Cyrillic о.
    ("odos@example.gr", "οdos@example.gr"),
    ("odos@example.gr", "оdos@example.gr"),
];

#[track_caller]
fn assert_email_taken<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
    match result {
        Err(Error::Conflict {
            kind: ConflictKind::EmailTaken,
        }) => {}
        other => panic!("{what}: expected Conflict(EmailTaken), got {other:?}"),
    }
}

#[test]
fn spellings_that_differ_by_unicode_case_or_compatibility_form_are_one_account() {
    let db = TestDb::new();
    let mut conn = db.conn();
    for (first, second) in SAME_ACCOUNT {
        let user = UserRepo::create(&mut conn, &NewUser::new(*first, "First")).unwrap();
        assert_email_taken(
            UserRepo::create(&mut conn, &NewUser::new(*second, "Second")),
            &format!("{second} after {first}"),
        );
        for spelling in [first, second] {
            assert_eq!(
                UserRepo::find_by_email(&mut conn, spelling)
                    .unwrap()
                    .as_ref(),
                Some(&user),
                "find_by_email({spelling}) for {first}"
            );
        }
        UserRepo::delete(&mut conn, user.id).unwrap();
    }
    assert_eq!(UserRepo::count(&mut conn).unwrap(), 0);
}

#[test]
fn addresses_that_differ_by_an_accent_or_a_letter_stay_different_accounts() {
    let db = TestDb::new();
    let mut conn = db.conn();
    for (a, b) in DIFFERENT_ACCOUNTS {
        let first = UserRepo::create(&mut conn, &NewUser::new(*a, "A")).unwrap();
        let second = UserRepo::create(&mut conn, &NewUser::new(*b, "B"))
            .unwrap_or_else(|e| panic!("{b} after {a}: {e:?}"));
        assert_eq!(
            UserRepo::find_by_email(&mut conn, a).unwrap().as_ref(),
            Some(&first)
        );
        assert_eq!(
            UserRepo::find_by_email(&mut conn, b).unwrap().as_ref(),
            Some(&second)
        );
        UserRepo::delete(&mut conn, first.id).unwrap();
        UserRepo::delete(&mut conn, second.id).unwrap();
    }
}

#[test]
fn updating_to_another_spelling_of_a_taken_email_is_a_conflict() {
    let db = TestDb::new();
    let mut conn = db.conn();
    UserRepo::create(&mut conn, &NewUser::new("οδος@example.gr", "A")).unwrap();
    let user = UserRepo::create(&mut conn, &NewUser::new("free@example.gr", "B")).unwrap();
    for taken in ["ΟΔΟΣ@EXAMPLE.GR", "ΟΔΟΣ@ｅｘａｍｐｌｅ.ｇｒ"] {
        assert_email_taken(
            UserRepo::update(
                &mut conn,
                user.id,
                &UserPatch {
                    email: Some(taken.into()),
                    ..Default::default()
                },
            ),
            taken,
        );
    }
    assert_eq!(UserRepo::get(&mut conn, user.id).unwrap(), user);
    // Another spelling of one's own address is fine.
    let renamed = UserRepo::update(
        &mut conn,
        user.id,
        &UserPatch {
            email: Some("FREE@example.gr".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(renamed.email, "FREE@example.gr");
}

#[test]
fn a_batch_with_two_spellings_of_one_email_is_a_conflict_and_writes_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let result = UserRepo::create_many(
        &mut conn,
        &[
            NewUser::new("straße@example.de", "A"),
            NewUser::new("other@example.de", "B"),
            NewUser::new("STRASSE@example.de", "C"),
        ],
    );
    assert_email_taken(result, "a batch with two spellings");
    assert_eq!(UserRepo::count(&mut conn).unwrap(), 0);
}

#[test]
fn raw_sql_inserts_obey_the_same_email_uniqueness() {
    use diesel::sql_types::{Text, Uuid as SqlUuid};
    use diesel::RunQueryDsl;
    let db = TestDb::new();
    let mut conn = db.conn();
    UserRepo::create(&mut conn, &NewUser::new("ſam@example.com", "Sam")).unwrap();
    let insert = |conn: &mut todo_store::PgConnection, email: &str| {
        diesel::sql_query("INSERT INTO users (id, email, name) VALUES ($1, $2, 'Raw')")
            .bind::<SqlUuid, _>(Uuid::now_v7())
            .bind::<Text, _>(email)
            .execute(conn)
            .map_err(Error::from)
    };
    for email in ["SAM@example.com", "sam@EXAMPLE.com", "ｓａｍ@example.com"] {
        assert_email_taken(insert(&mut conn, email), email);
    }
    insert(&mut conn, "sám@example.com").unwrap();
    assert_eq!(UserRepo::count(&mut conn).unwrap(), 2);
}

/// Keyset pages of users: walking every page returns every user once, oldest first
/// (ties by id), whatever the page size; users created during the walk come at its end
/// and none is skipped or repeated.
#[test]
fn user_pages_walk_every_user_once_in_creation_order() {
    use todo_store::UserQuery;
    let db = TestDb::new();
    let mut conn = db.conn();
    let news: Vec<NewUser> = (0..57)
        .map(|i| NewUser::new(format!("walker-{i:02}@example.com"), "Walker"))
        .collect();
    // One batch shares its created_at: the order falls back to id.
    let mut created = UserRepo::create_many(&mut conn, &news[..30]).unwrap();
    for new in &news[30..] {
        created.push(UserRepo::create(&mut conn, new).unwrap());
    }
    let mut expected = created.clone();
    expected.sort_by_key(|u| (u.created_at, u.id));
    for limit in [1, 7, 50, 1000] {
        let query = UserQuery::new().limit(limit);
        let mut seen = Vec::new();
        let mut page = UserRepo::list_page(&mut conn, &query).unwrap();
        let mut added = None;
        loop {
            seen.extend(page.items.iter().cloned());
            if added.is_none() {
                added = Some(
                    UserRepo::create(
                        &mut conn,
                        &NewUser::new(format!("late-{limit}@example.com"), "Late"),
                    )
                    .unwrap(),
                );
            }
            let Some(cursor) = page.next_cursor.take() else {
                break;
            };
            page = UserRepo::list_page(&mut conn, &query.clone().after(&cursor)).unwrap();
        }
        let ids: Vec<todo_store::UserId> = seen.iter().map(|u| u.id).collect();
        let mut want: Vec<todo_store::UserId> = expected.iter().map(|u| u.id).collect();
        // Created after the first page: seen at the end when more pages followed it.
        if expected.len() as i64 > limit {
            want.push(added.as_ref().unwrap().id);
        }
        assert_eq!(ids, want, "limit {limit}");
        expected.push(added.unwrap());
    }
}

/// The email prefix is compared lower-cased; a cursor is bound to its prefix; bad
/// input is Validation, never a database error.
#[test]
fn user_pages_filter_by_email_prefix_and_reject_bad_input() {
    use todo_store::UserQuery;
    let db = TestDb::new();
    let mut conn = db.conn();
    for email in [
        "Ada@example.com",
        "ada.l@example.org",
        "bob@example.com",
        "ADAM@x.io",
    ] {
        UserRepo::create(&mut conn, &NewUser::new(email, "User")).unwrap();
    }
    let emails = |query: &UserQuery, conn: &mut todo_store::PgConnection| -> Vec<String> {
        UserRepo::list_page(conn, query)
            .unwrap()
            .items
            .into_iter()
            .map(|u| u.email)
            .collect()
    };
    assert_eq!(
        emails(&UserQuery::new().email_prefix("aDa"), &mut conn),
        ["Ada@example.com", "ada.l@example.org", "ADAM@x.io"]
    );
    assert_eq!(
        emails(&UserQuery::new().email_prefix(""), &mut conn).len(),
        4
    );
    assert!(emails(&UserQuery::new().email_prefix("%"), &mut conn).is_empty());
    assert!(emails(&UserQuery::new().email_prefix("_da"), &mut conn).is_empty());
    let first =
        UserRepo::list_page(&mut conn, &UserQuery::new().email_prefix("ada").limit(1)).unwrap();
    let cursor = first.next_cursor.expect("more than one");
    let next = UserQuery::new().email_prefix("ada").limit(1).after(&cursor);
    assert_eq!(emails(&next, &mut conn), ["ada.l@example.org"]);
    for (query, field) in [
        (
            UserQuery::new().email_prefix("bob").after(&cursor),
            "cursor",
        ),
        (UserQuery::new().after(&cursor), "cursor"),
        (UserQuery::new().after("garbage"), "cursor"),
        (UserQuery::new().after(""), "cursor"),
        (UserQuery::new().limit(0), "limit"),
        (UserQuery::new().limit(1001), "limit"),
        (UserQuery::new().email_prefix("a\0b"), "email_prefix"),
        (
            UserQuery::new().email_prefix(&"a".repeat(300)),
            "email_prefix",
        ),
    ] {
        match UserRepo::list_page(&mut conn, &query) {
            Err(Error::Validation { field: f, .. }) => assert_eq!(f, field, "{query:?}"),
            other => panic!("{query:?}: expected Validation on {field}, got {other:?}"),
        }
    }
    // A task cursor is not a user cursor.
    let user = UserRepo::find_by_email(&mut conn, "bob@example.com")
        .unwrap()
        .unwrap();
    for i in 0..3 {
        fixtures::task(&mut conn, &user, &format!("t{i}"));
    }
    let task_cursor = TaskRepo::list(&mut conn, user.id, &todo_store::TaskQuery::new().limit(1))
        .unwrap()
        .next_cursor
        .unwrap();
    assert!(matches!(
        UserRepo::list_page(&mut conn, &UserQuery::new().after(&task_cursor)),
        Err(Error::Validation { .. })
    ));
}
