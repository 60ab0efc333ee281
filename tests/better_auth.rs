//! Better Auth itself (tests/better-auth: better-auth 1.7.25 on Node, pinned by its
//! package-lock.json) against a TestDb: its schema check agrees with the crate's
//! migrations, its users are the crate's users, and its session cookie authenticates
//! on the Rust side exactly as long as Better Auth accepts it.
//!
//! Needs `node` and either the fixture's node_modules or `npm` (the first test to
//! need them runs `npm ci`); without them the tests fail (never skip) and say what to
//! install.
#![cfg(feature = "better-auth")]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use diesel::connection::SimpleConnection;
use diesel::RunQueryDsl;
use proptest::prelude::*;
use serde_json::{json, Value};
use todo_store::better_auth::{
    authenticate_cookie, BetterAuthSecret, SECURE_SESSION_COOKIE, SESSION_COOKIE,
};
use todo_store::testing::TestDb;
use todo_store::UserId;
use todo_store::{NewTask, PgConnection, TaskQuery, TaskRepo, UserRepo};
use uuid::Uuid;

use support::fixtures;
use support::trace_capture::{self, Captured};

/// The fixture's directory, with its node_modules installed (once per process).
fn fixture() -> &'static Path {
    static READY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    READY
        .get_or_init(prepare_fixture)
        .as_deref()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn prepare_fixture() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/better-auth");
    let node = Command::new("node").arg("--version").output();
    let version = match node {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => {
            return Err("the Better Auth tests need Node.js 20 or later with npm: \
                        run scripts/setup, which installs them or says how"
                .into())
        }
    };
    // better-auth 1.7's query builder (kysely 0.29) needs Node 20.
    let major = version.trim_start_matches('v').split('.').next();
    if major.and_then(|m| m.parse::<u32>().ok()).unwrap_or(0) < 20 {
        return Err(format!(
            "the Better Auth tests need Node.js 20 or later, this is {version}: \
             scripts/setup says how to get it"
        ));
    }
    if installed_version(&dir).as_deref() != Some(pinned_version(&dir).as_str()) {
        let npm = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .map_err(|e| {
                format!(
                    "{}/node_modules is missing or stale and npm could not run ({e}): \
                     run scripts/setup, which installs it or says how",
                    dir.display()
                )
            })?;
        if !npm.status.success() {
            return Err(format!(
                "`npm ci` in {} failed:\n{}",
                dir.display(),
                String::from_utf8_lossy(&npm.stderr)
            ));
        }
    }
    Ok(dir)
}

/// The better-auth version package.json pins.
fn pinned_version(dir: &Path) -> String {
    let package: Value = read_json(&dir.join("package.json")).expect("package.json");
    package["dependencies"]["better-auth"]
        .as_str()
        .expect("package.json pins better-auth")
        .to_owned()
}

/// The better-auth version in node_modules, if any.
fn installed_version(dir: &Path) -> Option<String> {
    let package = read_json(&dir.join("node_modules/better-auth/package.json"))?;
    package["version"].as_str().map(str::to_owned)
}

fn read_json(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Better Auth on one TestDb, with its own secret.
struct BetterAuth {
    url: String,
    secret: String,
    base_url: &'static str,
}

/// A session cookie as Better Auth set it.
#[derive(Debug, Clone)]
struct Cookie {
    name: String,
    /// As Set-Cookie carries it: URL-encoded.
    value: String,
}

/// The outcome of a sign-up or sign-in.
struct SignedIn {
    cookie: Cookie,
    user_id: UserId,
}

impl BetterAuth {
    fn on(db: &TestDb) -> Self {
        BetterAuth {
            url: db.url().to_owned(),
            secret: format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()),
            base_url: "http://localhost:3000",
        }
    }

    /// The same server behind an https base URL: its cookies are `__Secure-`.
    fn over_https(mut self) -> Self {
        self.base_url = "https://todo.example.com";
        self
    }

    fn secret(&self) -> BetterAuthSecret {
        BetterAuthSecret::new(self.secret.clone()).unwrap()
    }

    /// Runs `operation` of server.mjs and returns what it printed.
    fn run(&self, operation: &str, input: Value) -> Value {
        let output = Command::new("node")
            .arg("server.mjs")
            .arg(operation)
            .arg(input.to_string())
            .current_dir(fixture())
            .env("DATABASE_URL", &self.url)
            .env("BETTER_AUTH_SECRET", &self.secret)
            .env("BETTER_AUTH_URL", self.base_url)
            .env_remove("BETTER_AUTH_SECRETS")
            .output()
            .expect("node runs");
        assert!(
            output.status.success(),
            "server.mjs {operation} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "server.mjs {operation} printed no JSON ({e}):\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    fn sign_up(&self, email: &str, password: &str) -> SignedIn {
        let out = self.run(
            "sign-up",
            json!({ "email": email, "password": password, "name": "Ada Lovelace" }),
        );
        signed_in(&out).unwrap_or_else(|| panic!("sign-up failed: {out}"))
    }

    /// The outcome of a sign-in: `Err` with Better Auth's status and error code.
    fn sign_in(&self, email: &str, password: &str) -> Result<SignedIn, (u64, String)> {
        let out = self.run("sign-in", json!({ "email": email, "password": password }));
        signed_in(&out).ok_or_else(|| {
            (
                out["status"].as_u64().unwrap(),
                out["code"].as_str().unwrap_or_default().to_owned(),
            )
        })
    }

    fn sign_out(&self, cookie: &Cookie) {
        let out = self.run("sign-out", json!({ "cookie": cookie_json(cookie) }));
        assert_eq!(out["status"], 200, "{out}");
    }

    /// Better Auth's own answer to the cookie: the session's id, if it accepts it.
    fn session_id(&self, cookie: &Cookie) -> Option<Uuid> {
        let out = self.run("get-session", json!({ "cookie": cookie_json(cookie) }));
        out["session"]["id"].as_str().map(|id| id.parse().unwrap())
    }

    /// `value` signed into a cookie value by better-call, as Better Auth signs tokens.
    fn sign(&self, value: &str) -> String {
        self.run("sign", json!({ "value": value }))["value"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn signed_in(out: &Value) -> Option<SignedIn> {
    if out["status"] != 200 {
        return None;
    }
    Some(SignedIn {
        cookie: Cookie {
            name: out["cookie"]["name"].as_str()?.to_owned(),
            value: out["cookie"]["value"].as_str()?.to_owned(),
        },
        user_id: out["user"]["id"].as_str()?.parse().ok()?,
    })
}

fn cookie_json(cookie: &Cookie) -> Value {
    json!({ "name": cookie.name, "value": cookie.value })
}

/// The id of the session and user that `value` authenticates on the Rust side.
fn rust_side(
    conn: &mut PgConnection,
    value: &str,
    secret: &BetterAuthSecret,
) -> Option<(Uuid, UserId)> {
    authenticate_cookie(conn, value, secret)
        .expect("never an error for what the client sent")
        .map(|(session, user)| (session.id, user.id))
}

const PASSWORD: &str = "correct horse battery staple";

#[test]
fn better_auths_schema_check_finds_nothing_to_add_or_change_after_both_sides_migrated() {
    let db = TestDb::new();
    let auth = BetterAuth::on(&db);
    let nothing = json!({
        "toCreate": [], "toAdd": [], "indexes": [], "problems": [],
        "warnings": [], "schemaCheck": [],
    });
    assert_eq!(auth.run("check", json!({})), nothing);
    // Better Auth's migrator, run anyway, finds nothing to do either.
    assert_eq!(auth.run("migrate", json!({})), nothing);
}

#[test]
fn a_user_signed_up_through_better_auth_is_the_crates_user_and_its_cookie_authenticates() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let auth = BetterAuth::on(&db);
    let secret = auth.secret();
    let signed_up = auth.sign_up("Ada@Example.com", PASSWORD);
    assert_eq!(signed_up.cookie.name, SESSION_COOKIE);
    // The id came from the database's uuid_v7() default.
    assert_eq!(signed_up.user_id.as_uuid().get_version_num(), 7);

    let user = UserRepo::get(&mut conn, signed_up.user_id).unwrap();
    assert_eq!(
        user.email, "ada@example.com",
        "Better Auth lower-cases emails"
    );
    assert_eq!(user.name, "Ada Lovelace");
    assert!(!user.email_verified);
    let found = UserRepo::find_by_email(&mut conn, "ADA@example.com").unwrap();
    assert_eq!(found.as_ref(), Some(&user));

    let (session, session_user) = authenticate_cookie(&mut conn, &signed_up.cookie.value, &secret)
        .unwrap()
        .expect("Better Auth's own cookie authenticates");
    assert_eq!(session_user, user);
    assert_eq!(session.user_id, user.id);
    assert_eq!(session.id.get_version_num(), 7);
    assert_eq!(auth.session_id(&signed_up.cookie), Some(session.id));
    assert!(session.is_active_at(chrono::Utc::now()));

    // The Rust side works for them.
    for title in ["Write the report", "Review the draft"] {
        TaskRepo::create(&mut conn, user.id, &NewTask::new(title)).unwrap();
    }
    let titles: Vec<String> = TaskRepo::list(&mut conn, user.id, &TaskQuery::new())
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.title)
        .collect();
    assert_eq!(titles, ["Review the draft", "Write the report"]);

    // Signing in again makes a second session; both cookies work, each its own.
    let signed_in = auth.sign_in("ada@example.com", PASSWORD).unwrap();
    assert_eq!(signed_in.user_id, user.id);
    let first = rust_side(&mut conn, &signed_up.cookie.value, &secret).unwrap();
    let second = rust_side(&mut conn, &signed_in.cookie.value, &secret).unwrap();
    assert_ne!(first.0, second.0);
    assert_eq!((first.1, second.1), (user.id, user.id));
    assert_eq!(
        auth.sign_in("ada@example.com", "wrong password")
            .err()
            .map(|e| e.0),
        Some(401)
    );
}

#[test]
fn the_cookie_works_url_encoded_or_decoded_and_only_with_its_secret() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let auth = BetterAuth::on(&db);
    let secret = auth.secret();
    let cookie = auth.sign_up("grace@example.com", PASSWORD).cookie;
    assert!(
        cookie.value.contains("%3D"),
        "Better Auth URL-encodes the value"
    );
    let decoded = cookie
        .value
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    let expected = rust_side(&mut conn, &cookie.value, &secret);
    assert!(expected.is_some());
    assert_eq!(rust_side(&mut conn, &decoded, &secret), expected);

    let another = BetterAuthSecret::new(format!("{}x", auth.secret)).unwrap();
    assert_eq!(rust_side(&mut conn, &cookie.value, &another), None);
    // The same token signed by a Better Auth with another secret.
    let mut other_server = BetterAuth::on(&db);
    other_server.secret = "another secret of the same kind, 0123456789".into();
    let (token, _) = decoded.rsplit_once('.').unwrap();
    assert_eq!(
        rust_side(&mut conn, &other_server.sign(token), &secret),
        None
    );
    // better-call's signature of the token is the cookie's own.
    assert_eq!(auth.sign(token), cookie.value);
}

#[test]
fn an_https_deployments_secure_cookie_authenticates_too() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let auth = BetterAuth::on(&db).over_https();
    let signed_up = auth.sign_up("secure@example.com", PASSWORD);
    assert_eq!(signed_up.cookie.name, SECURE_SESSION_COOKIE);
    let (_, user_id) = rust_side(&mut conn, &signed_up.cookie.value, &auth.secret()).unwrap();
    assert_eq!(user_id, signed_up.user_id);
}

#[test]
fn signing_out_ends_that_cookie_on_the_rust_side_and_only_that_one() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let auth = BetterAuth::on(&db);
    let secret = auth.secret();
    let phone = auth.sign_up("linus@example.com", PASSWORD).cookie;
    let laptop = auth.sign_in("linus@example.com", PASSWORD).unwrap().cookie;
    auth.sign_out(&laptop);
    assert_eq!(rust_side(&mut conn, &laptop.value, &secret), None);
    assert_eq!(auth.session_id(&laptop), None, "Better Auth agrees");
    assert!(rust_side(&mut conn, &phone.value, &secret).is_some());
    assert!(auth.session_id(&phone).is_some());
}

#[test]
fn an_expired_session_stops_authenticating_on_both_sides() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let auth = BetterAuth::on(&db);
    let secret = auth.secret();
    let cookie = auth.sign_up("barbara@example.com", PASSWORD).cookie;
    let (session_id, _) = rust_side(&mut conn, &cookie.value, &secret).unwrap();
    // A session one second from its end works; past it, it does not.
    let expire_in = |conn: &mut PgConnection, interval: &str| {
        conn.batch_execute(&format!(
            "UPDATE auth_sessions SET expires_at = now() + interval '{interval}' \
             WHERE id = '{session_id}'"
        ))
        .unwrap();
    };
    expire_in(&mut conn, "1 second");
    assert!(rust_side(&mut conn, &cookie.value, &secret).is_some());
    expire_in(&mut conn, "-1 millisecond");
    assert_eq!(rust_side(&mut conn, &cookie.value, &secret), None);
    assert_eq!(auth.session_id(&cookie), None, "Better Auth agrees");
}

#[test]
fn a_user_deleted_by_the_crate_is_signed_out_and_can_no_longer_sign_in() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let auth = BetterAuth::on(&db);
    let secret = auth.secret();
    let signed_up = auth.sign_up("edsger@example.com", PASSWORD);
    let user = UserRepo::get(&mut conn, signed_up.user_id).unwrap();
    fixtures::task(&mut conn, &user, "Write EWD");
    UserRepo::delete(&mut conn, signed_up.user_id).unwrap();

    assert_eq!(rust_side(&mut conn, &signed_up.cookie.value, &secret), None);
    assert_eq!(auth.session_id(&signed_up.cookie), None);
    assert_eq!(
        auth.sign_in("edsger@example.com", PASSWORD).err(),
        Some((401, "INVALID_EMAIL_OR_PASSWORD".to_owned()))
    );
    let left: Vec<Counted> = diesel::sql_query(
        "SELECT (SELECT count(*) FROM auth_sessions) + (SELECT count(*) FROM auth_accounts) \
              + (SELECT count(*) FROM tasks) AS n",
    )
    .load(&mut conn)
    .unwrap();
    assert_eq!(
        left[0].n, 0,
        "sessions, accounts and tasks went with the user"
    );
    // The address is free again: a new account, a new id.
    let again = auth.sign_up("edsger@example.com", PASSWORD);
    assert_ne!(again.user_id, signed_up.user_id);
}

#[derive(diesel::QueryableByName)]
struct Counted {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Values Better Auth's signature covers exactly: each odd token, signed by
/// better-call and stored as a session's token, authenticates; with its signature
/// moved to another token, or any character changed, it does not.
#[test]
fn exactly_what_better_auth_signs_authenticates_and_nothing_else() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let auth = BetterAuth::on(&db);
    let secret = auth.secret();
    let user = fixtures::user(&mut conn);
    let real = auth.sign_up("alan@example.com", PASSWORD).cookie;
    for token in [
        "plain",
        "with.dots.inside",
        "percent%41literal",
        "spaces and ü and ✓",
        "quote\"s;and=equals",
    ] {
        conn.batch_execute(&format!(
            "INSERT INTO auth_sessions (user_id, token, expires_at, updated_at) \
             VALUES ('{}', '{}', now() + interval '1 hour', now())",
            user.id,
            token.replace('\'', "''")
        ))
        .unwrap();
        let signed = auth.sign(token);
        assert_eq!(
            rust_side(&mut conn, &signed, &secret).map(|(_, u)| u),
            Some(user.id),
            "{token:?}"
        );
    }
    // A real cookie, each of its characters changed in turn.
    let decoded = real
        .value
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    for i in 0..decoded.len() {
        let mut bytes = decoded.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(bytes).unwrap();
        assert_eq!(
            rust_side(&mut conn, &changed, &secret),
            None,
            "character {i}"
        );
    }
    // Another session's token under this cookie's signature.
    let (_, signature) = decoded.rsplit_once('.').unwrap();
    assert_eq!(
        rust_side(&mut conn, &format!("plain.{signature}"), &secret),
        None
    );
    // Truncated anywhere.
    for end in 0..real.value.len() {
        assert_eq!(
            rust_side(&mut conn, &real.value[..end], &secret),
            None,
            "{end}"
        );
    }
    for garbage in [
        "",
        ".",
        "\0",
        "%00.%00",
        &"a".repeat(1 << 20),
        &format!("{}\0", real.value),
    ] {
        assert_eq!(rust_side(&mut conn, garbage, &secret), None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary text, and a real cookie with arbitrary text spliced in, is `None`:
    /// never an error, never a panic.
    #[test]
    fn arbitrary_cookie_text_is_none(text in any::<String>(), at in any::<prop::sample::Index>()) {
        static SETUP: OnceLock<(TestDb, String, String)> = OnceLock::new();
        let (db, secret, cookie) = SETUP.get_or_init(|| {
            let db = TestDb::new();
            let auth = BetterAuth::on(&db);
            let cookie = auth.sign_up("fuzz@example.com", PASSWORD).cookie.value;
            let secret = auth.secret.clone();
            (db, secret, cookie)
        });
        let secret = BetterAuthSecret::new(secret.clone()).unwrap();
        let mut conn = db.conn();
        prop_assert_eq!(rust_side(&mut conn, &text, &secret), None);
        let i = at.index(cookie.len() + 1);
        let spliced = format!("{}{text}{}", &cookie[..i], &cookie[i..]);
        if !text.is_empty() && text.trim() != "" {
            prop_assert_eq!(rust_side(&mut conn, &spliced, &secret), None);
        }
    }
}

/// No span, event or log line of the Rust side shows a cookie or a token.
#[test]
fn no_trace_shows_the_cookie_or_its_token() {
    let db = TestDb::new();
    let auth = BetterAuth::on(&db);
    let secret = auth.secret();
    let cookie = auth.sign_up("trace@example.com", PASSWORD).cookie;
    let capture = Captured::default();
    let subscriber = trace_capture::everything(&capture);
    let mut conn = db.pool().get().unwrap();
    tracing::subscriber::with_default(subscriber, || {
        assert!(rust_side(&mut conn, &cookie.value, &secret).is_some());
        assert!(rust_side(&mut conn, &format!("{}x", cookie.value), &secret).is_none());
    });
    let text = capture.text();
    assert!(
        text.contains("better_auth.authenticate_cookie") && text.contains("auth_sessions"),
        "the capture works: {text}"
    );
    let token = &cookie.value[..cookie.value.find('.').unwrap()];
    assert!(!text.contains(token), "a token in the trace");
    assert!(!text.contains(&auth.secret), "the secret in the trace");
}

/// docs/better-auth.md shows the configuration these tests run.
#[test]
fn the_documented_configuration_is_the_tested_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema =
        std::fs::read_to_string(root.join("tests/better-auth/todo-store-schema.mjs")).unwrap();
    let options = &schema[schema.find("export const todoStoreSchema").unwrap()..];
    let doc = std::fs::read_to_string(root.join("docs/better-auth.md")).unwrap();
    assert!(
        doc.contains(options.trim_end()),
        "docs/better-auth.md should quote tests/better-auth/todo-store-schema.mjs from \
         `export const todoStoreSchema` on"
    );
}
