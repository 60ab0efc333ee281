//! Text that shows nothing, against real PostgreSQL: a task title or a user name must
//! contain a visible character, and an email address no white space or invisible
//! character. The crate's validation ([`todo_store::models::INVISIBLE`]) and the
//! schema's CHECK constraints hold the same rule: rows written with plain SQL, as
//! another client would write them, are accepted or rejected exactly as the crate's
//! validation accepts or rejects them.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Integer, Text};
use todo_store::models::{is_invisible, INVISIBLE};
use todo_store::testing::TestDb;
use todo_store::{Error, NewTask, NewUser, PgConnection, TaskPatch, TaskRepo, UserPatch, UserRepo};
use uuid::Uuid;

use crate::support::fixtures;

/// An md5 of every row of `users` and `tasks`.
fn digest(conn: &mut PgConnection) -> String {
    #[derive(QueryableByName)]
    struct Digest {
        #[diesel(sql_type = Text)]
        md5: String,
    }
    diesel::sql_query(
        "SELECT md5(coalesce((SELECT string_agg(u::text, E'\\n' ORDER BY u.id) FROM users u), '') \
         || E'\\n--\\n' || \
         coalesce((SELECT string_agg(t::text, E'\\n' ORDER BY t.id) FROM tasks t), '')) AS md5",
    )
    .get_result::<Digest>(conn)
    .expect("digest of the database")
    .md5
}

/// Every invisible character, NUL included.
fn every_invisible_char() -> Vec<char> {
    INVISIBLE
        .iter()
        .flat_map(|range| range.clone())
        .collect::<Vec<char>>()
}

/// Characters the issue names and their relatives, each invisible on its own.
const NAMED: &[char] = &[
    '\u{200B}',  // ZERO WIDTH SPACE
    '\u{FEFF}',  // ZERO WIDTH NO-BREAK SPACE (byte order mark)
    '\u{2060}',  // WORD JOINER
    '\u{3164}',  // HANGUL FILLER
    '\u{FFA0}',  // HALFWIDTH HANGUL FILLER
    '\u{115F}',  // HANGUL CHOSEONG FILLER
    '\u{1160}',  // HANGUL JUNGSEONG FILLER
    '\u{00AD}',  // SOFT HYPHEN
    '\u{034F}',  // COMBINING GRAPHEME JOINER
    '\u{200C}',  // ZERO WIDTH NON-JOINER
    '\u{200D}',  // ZERO WIDTH JOINER
    '\u{200E}',  // LEFT-TO-RIGHT MARK
    '\u{202E}',  // RIGHT-TO-LEFT OVERRIDE
    '\u{2066}',  // LEFT-TO-RIGHT ISOLATE
    '\u{180E}',  // MONGOLIAN VOWEL SEPARATOR
    '\u{2800}',  // BRAILLE PATTERN BLANK
    '\u{FE0F}',  // VARIATION SELECTOR-16
    '\u{E0020}', // TAG SPACE
    '\u{00A0}',  // NO-BREAK SPACE
    '\u{3000}',  // IDEOGRAPHIC SPACE
    '\u{0085}',  // NEXT LINE
    '\u{0001}',  // a control character
];

/// Blank texts: every invisible character alone, and combinations of them (with white
/// space around, repeated, all the named ones together, past the length limits).
fn blank_texts() -> Vec<String> {
    let mut texts: Vec<String> = every_invisible_char()
        .into_iter()
        .map(String::from)
        .collect();
    let named: String = NAMED.iter().collect();
    texts.push(named.clone());
    texts.push(format!("  {named}\t\n"));
    texts.push(NAMED.iter().rev().collect());
    for &c in NAMED {
        texts.push(format!(" {c} "));
        texts.push(format!("{c}\u{200B}{c}"));
        texts.push(c.to_string().repeat(300));
    }
    texts.push("\u{3164}".repeat(100));
    texts.push("\u{115F}\u{1160}".repeat(50));
    texts
}

/// Ordinary text that must be accepted everywhere: emoji, CJK, RTL scripts, combining
/// marks on a base letter, and visible text next to invisible characters.
const VISIBLE: &[&str] = &[
    "Buy milk",
    "a",
    "-",
    "😀",
    "👨\u{200D}👩\u{200D}👧",
    "🏳\u{FE0F}\u{200D}🌈",
    "中文",
    "日本語のタスク",
    "한국어",
    "עברית",
    "العربية",
    "\u{202B}עברית\u{202C}",
    "e\u{301}",
    "Zoe\u{308}",
    "\u{200B}x\u{200B}",
    "\u{FEFF}Title",
    "ｆｕｌｌ",
    "𝒜",
    "\u{2801}",
];

fn assert_invalid<T: std::fmt::Debug>(result: todo_store::Result<T>, field: &str, what: &str) {
    match result {
        Err(Error::Validation { field: f, reason }) => {
            assert_eq!(f, field, "{what}");
            // Text with NUL is rejected for that first.
            let nul = what.contains("\\0") && reason.contains("NUL");
            assert!(
                reason.contains("visible character") || nul,
                "{what}: {reason}"
            );
        }
        other => panic!("{what}: expected Validation of {field}, got {other:?}"),
    }
}

#[test]
fn titles_and_names_of_only_invisible_characters_are_rejected() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let task = fixtures::task(&mut conn, &user, "A task");
    let blanks = blank_texts();
    assert!(blanks.len() > 4000, "{}", blanks.len());

    let before = digest(&mut conn);
    for text in &blanks {
        let what = format!("{text:?}");
        let new = NewTask::new(text.as_str());
        assert_invalid(TaskRepo::create(&mut conn, user.id, &new), "title", &what);
        let batch = [NewTask::new("Fine"), new];
        assert_invalid(
            TaskRepo::create_many(&mut conn, user.id, &batch),
            "tasks[1].title",
            &what,
        );
        let patch = TaskPatch {
            title: Some(text.clone()),
            ..TaskPatch::default()
        };
        assert_invalid(
            TaskRepo::update(&mut conn, user.id, task.id, &patch),
            "title",
            &what,
        );

        let email = format!("{}@example.com", Uuid::now_v7().simple());
        let new = NewUser::new(email, text.as_str());
        assert_invalid(UserRepo::create(&mut conn, &new), "name", &what);
        assert_invalid(
            UserRepo::create_many(&mut conn, &[new]),
            "users[0].name",
            &what,
        );
        let patch = UserPatch {
            name: Some(text.clone()),
            ..UserPatch::default()
        };
        assert_invalid(UserRepo::update(&mut conn, user.id, &patch), "name", &what);
    }
    assert_eq!(digest(&mut conn), before, "a rejected call wrote something");

    // Visible text is stored (trimmed of white space, nothing else removed).
    for text in VISIBLE {
        let created = TaskRepo::create(&mut conn, user.id, &NewTask::new(*text)).unwrap();
        assert_eq!(created.title, *text);
        let patch = UserPatch {
            name: Some(format!(" {text} ")),
            ..UserPatch::default()
        };
        assert_eq!(
            UserRepo::update(&mut conn, user.id, &patch).unwrap().name,
            *text
        );
    }
}

#[test]
fn emails_with_white_space_or_invisible_characters_are_rejected() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let before = digest(&mut conn);
    for c in every_invisible_char() {
        for email in [format!("a{c}b@example.com"), format!("ab@exa{c}mple.com")] {
            let what = format!("{email:?}");
            let result = UserRepo::create(&mut conn, &NewUser::new(email.as_str(), "Ada"));
            assert!(
                matches!(&result, Err(Error::Validation { field, .. }) if field == "email"),
                "{what}: {result:?}"
            );
            let patch = UserPatch {
                email: Some(email.clone()),
                ..UserPatch::default()
            };
            let result = UserRepo::update(&mut conn, user.id, &patch);
            assert!(
                matches!(&result, Err(Error::Validation { field, .. }) if field == "email"),
                "{what}: {result:?}"
            );
        }
    }
    assert_eq!(digest(&mut conn), before, "a rejected call wrote something");
    for local in ["ada", "ada.lovelace+todo", "zoë", "中文", "😀"] {
        let email = format!("{local}@example.com");
        let created = UserRepo::create(&mut conn, &NewUser::new(email.as_str(), "Ada")).unwrap();
        assert_eq!(created.email, email);
    }
}

// ---------------------------------------------------------------------------------------
// The CHECK constraints, for rows other clients write
// ---------------------------------------------------------------------------------------

/// The characters at the edges of every [`INVISIBLE`] range and just outside them, the
/// named ones, and a few visible ones; no NUL (PostgreSQL text cannot hold it) and no
/// surrogates (no `char` is one).
fn boundary_chars() -> Vec<char> {
    let mut chars: Vec<char> = INVISIBLE
        .iter()
        .flat_map(|range| {
            let (start, end) = (u32::from(*range.start()), u32::from(*range.end()));
            [
                start.wrapping_sub(1),
                start,
                start + 1,
                end - 1,
                end,
                end + 1,
            ]
        })
        .filter_map(char::from_u32)
        .chain(NAMED.iter().copied())
        .chain(['a', '@', '\u{301}', '\u{10FFFF}'])
        .filter(|&c| c != '\0')
        .collect();
    chars.sort_unstable();
    chars.dedup();
    chars
}

/// Writes a row with plain SQL and bound parameters, bypassing the crate's validation:
/// `Ok(true)` when the server stored it, `Ok(false)` when `constraint` rejected it.
fn raw_insert(
    conn: &mut PgConnection,
    sql: &str,
    constraint: &str,
    (a, b): (&str, &str),
) -> Result<bool, String> {
    let result = diesel::sql_query(sql)
        .bind::<diesel::sql_types::Uuid, _>(Uuid::now_v7())
        .bind::<Text, _>(a)
        .bind::<Text, _>(b)
        .execute(conn);
    match result {
        Ok(1) => Ok(true),
        Err(DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, info))
            if info.constraint_name() == Some(constraint) =>
        {
            // And the crate reports another client's broken rule like its own.
            let mapped = Error::from(DieselError::DatabaseError(
                DatabaseErrorKind::CheckViolation,
                info,
            ));
            assert!(mapped.is_validation(), "{mapped:?}");
            Ok(false)
        }
        other => Err(format!("{other:?}")),
    }
}

#[test]
fn the_check_constraints_accept_and_reject_what_validation_does_at_every_boundary() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let user_id = user.id.to_string();
    let title_sql = "INSERT INTO tasks (id, user_id, title) VALUES ($1, $2::uuid, $3)";
    let user_sql = "INSERT INTO users (id, email, name) VALUES ($1, $2, $3)";
    let fresh_email = || format!("{}@example.com", Uuid::now_v7().simple());

    let mut disagreements = Vec::new();
    let (mut accepted, mut rejected) = (0, 0);
    let mut compare = |what: String, crate_ok: bool, server: Result<bool, String>| {
        match server {
            Ok(server_ok) if server_ok == crate_ok => {}
            other => disagreements.push(format!("{what}: crate {crate_ok}, server {other:?}")),
        }
        if crate_ok {
            accepted += 1;
        } else {
            rejected += 1;
        }
    };

    for c in boundary_chars() {
        for text in [
            c.to_string(),
            format!("{c}{c}"),
            format!("{c}\u{200B}"),
            format!("x{c}"),
        ] {
            let crate_ok = NewTask::new(text.as_str()).validate().is_ok();
            let server = raw_insert(&mut conn, title_sql, "tasks_title_valid", (&user_id, &text));
            compare(format!("title {text:?}"), crate_ok, server);

            let crate_ok = NewUser::new(fresh_email(), text.as_str())
                .validate()
                .is_ok();
            let server = raw_insert(
                &mut conn,
                user_sql,
                "users_name_valid",
                (&fresh_email(), &text),
            );
            compare(format!("name {text:?}"), crate_ok, server);
        }
        let id = Uuid::now_v7().simple();
        for email in [
            format!("a{c}{id}@example.com"),
            format!("{id}@exa{c}mple.com"),
        ] {
            let crate_ok = NewUser::new(email.as_str(), "Ada").validate().is_ok();
            let server = raw_insert(&mut conn, user_sql, "users_email_valid", (&email, "Ada"));
            compare(format!("email {email:?}"), crate_ok, server);
        }
    }
    for text in VISIBLE {
        let crate_ok = NewTask::new(*text).validate().is_ok()
            && NewUser::new(fresh_email(), *text).validate().is_ok();
        assert!(crate_ok, "{text:?}");
        let server = raw_insert(&mut conn, title_sql, "tasks_title_valid", (&user_id, text));
        compare(format!("title {text:?}"), true, server);
        let server = raw_insert(
            &mut conn,
            user_sql,
            "users_name_valid",
            (&fresh_email(), text),
        );
        compare(format!("name {text:?}"), true, server);
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(
        accepted > 100 && rejected > 100,
        "{accepted} accepted, {rejected} rejected"
    );
}

#[derive(QueryableByName)]
struct CodePoint {
    #[diesel(sql_type = Integer)]
    c: i32,
}

/// The code points (NUL and surrogates excepted) for which the CHECK constraint
/// `constraint` rejects the value `value_sql` (an SQL expression of the code point `c`)
/// in column `column`: the constraint's own expression, as the server stores it,
/// evaluated over all of Unicode.
fn rejected_by(
    conn: &mut PgConnection,
    constraint: &str,
    column: &str,
    value_sql: &str,
) -> Vec<u32> {
    #[derive(QueryableByName)]
    struct Expr {
        #[diesel(sql_type = Text)]
        expr: String,
    }
    let expr = diesel::sql_query(
        "SELECT pg_get_expr(conbin, conrelid) AS expr FROM pg_constraint WHERE conname = $1",
    )
    .bind::<Text, _>(constraint)
    .get_result::<Expr>(conn)
    .unwrap()
    .expr;
    diesel::sql_query(format!(
        "SELECT c FROM generate_series(1, 1114111) AS c, \
         LATERAL (SELECT {value_sql} AS {column}) AS probe \
         WHERE c NOT BETWEEN 55296 AND 57343 AND ({expr}) IS FALSE ORDER BY c"
    ))
    .load::<CodePoint>(conn)
    .unwrap()
    .into_iter()
    .map(|p| p.c as u32)
    .collect()
}

/// The code points (NUL and surrogates excepted) whose `probe` the crate rejects.
fn rejected_by_the_crate(probe: impl Fn(char) -> bool) -> Vec<u32> {
    (1..=0x10FFFFu32)
        .filter_map(char::from_u32)
        .filter(|&c| !probe(c))
        .map(u32::from)
        .collect()
}

/// Panics, naming up to 20 code points on either side, unless `actual == expected`.
fn assert_same(what: &str, actual: &[u32], expected: &[u32]) {
    if actual == expected {
        return;
    }
    let only = |a: &[u32], b: &[u32]| -> Vec<String> {
        a.iter()
            .filter(|c| b.binary_search(c).is_err())
            .take(20)
            .map(|c| format!("U+{c:04X}"))
            .collect()
    };
    panic!(
        "{what}: rejected but not expected {:?}; expected but not rejected {:?}",
        only(actual, expected),
        only(expected, actual)
    );
}

#[test]
fn the_check_constraints_reject_exactly_the_invisible_characters_of_all_unicode() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let invisible: Vec<u32> = rejected_by_the_crate(|c| !is_invisible(c));
    assert_eq!(
        invisible.len(),
        every_invisible_char().len() - 1,
        "NUL is the only one left out"
    );

    let title = rejected_by(&mut conn, "tasks_title_valid", "title", "chr(c)");
    assert_same("tasks_title_valid", &title, &invisible);
    let crate_title = rejected_by_the_crate(|c| NewTask::new(c.to_string()).validate().is_ok());
    assert_same("the crate's title validation", &crate_title, &invisible);

    let name = rejected_by(&mut conn, "users_name_valid", "name", "chr(c)");
    assert_same("users_name_valid", &name, &invisible);

    let email = rejected_by(
        &mut conn,
        "users_email_valid",
        "email",
        "'a' || chr(c) || 'b@example.com'",
    );
    let crate_email = rejected_by_the_crate(|c| {
        NewUser::new(format!("a{c}b@example.com"), "Ada")
            .validate()
            .is_ok()
    });
    let mut expected = invisible.clone();
    expected.push(u32::from('@'));
    expected.sort_unstable();
    assert_same("the crate's email validation", &crate_email, &expected);
    assert_same("users_email_valid", &email, &expected);
}
