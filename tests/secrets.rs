//! The password of DATABASE_URL never shows: not in `Debug` or `Display` of
//! any type (DbConfig, the pool and its connection manager, TestDb), not in any error
//! of a failure scenario (connection refused, unknown database, pool timeout, statement
//! timeout, malformed URLs, `?password=`, key=value strings), and not in any log or
//! tracing output: a subscriber captures everything at TRACE level, `log` records
//! included (r2d2 logs through `log` when a pool has a logging error handler).
//!
//! The tests' own TestDb server is a local cluster reached with a password in its URL
//! (`TEST_DATABASE_URL`; the cluster trusts local connections, so any password is
//! accepted and travels through every layer).

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl};
use todo_store::config::redact_url;
use todo_store::local_postgres::LocalPostgres;
use todo_store::pool::{checkout, PoolOptions};
use todo_store::testing::{TestDb, TEST_DATABASE_URL};
use todo_store::{connect, DbConfig, Error, NewTask, NewUser, TaskRepo, UserRepo};
use uuid::Uuid;

/// A password no text would contain by chance (letters and digits only, so its
/// percent-encoded form is itself).
fn password() -> &'static str {
    static PASSWORD: OnceLock<String> = OnceLock::new();
    PASSWORD.get_or_init(|| format!("Pw{}", Uuid::new_v4().simple()))
}

// ---------------------------------------------------------------------------------------
// Capture of every log and tracing line
// ---------------------------------------------------------------------------------------

static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct CaptureWriter;

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged so far, by every test of this process.
fn captured() -> String {
    String::from_utf8_lossy(&CAPTURED.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// The process-wide setup: the subscriber (TRACE, spans with their fields, `log`
/// records bridged), a local cluster, and `TEST_DATABASE_URL` with the password.
struct Setup {
    cluster: LocalPostgres,
    /// The cluster's URL with the password, for database `postgres`.
    url: String,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        use tracing_subscriber::fmt::format::FmtSpan;
        use tracing_subscriber::util::SubscriberInitExt;
        tracing_subscriber::fmt()
            .with_writer(|| CaptureWriter)
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(FmtSpan::FULL)
            .with_ansi(false)
            .finish()
            .try_init()
            .expect("the only subscriber of this process (with the log bridge)");
        let cluster = LocalPostgres::builder()
            .listen_tcp(true)
            .start()
            .expect("a local cluster");
        let url = with_password(&cluster.tcp_url("postgres").expect("listens on TCP"));
        // Before any TestDb: the server of every TestDb of this process. Set once, by
        // the first test, while the others wait on this OnceLock.
        std::env::set_var(TEST_DATABASE_URL, &url);
        Setup { cluster, url }
    })
}

/// `url` (postgres://user@...) with the password added.
fn with_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (user, rest) = rest.split_once('@').expect("a user");
    format!("{scheme}://{user}:{}@{rest}", password())
}

/// `url` pointed at another database.
fn with_database(url: &str, database: &str) -> String {
    let (head, _) = url.rsplit_once('/').expect("a path");
    format!("{head}/{database}")
}

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

/// Every way an error prints, with its whole `source()` chain.
fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("{error}\n{error:?}\n{error:#?}");
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(&format!("\n{e}\n{e:?}"));
        source = e.source();
    }
    text
}

/// The error of `result`, which must have failed.
#[track_caller]
fn failure<T, E>(result: Result<T, E>, what: &str) -> E {
    match result {
        Ok(_) => panic!("{what}: expected an error"),
        Err(e) => e,
    }
}

#[track_caller]
fn assert_hidden(what: &str, text: &str) {
    assert!(
        !text.contains(password()),
        "{what} shows the password:\n{}",
        text.replace(password(), "<<PASSWORD>>")
    );
}

/// `err` hides the password in all its forms and in everything logged so far.
#[track_caller]
fn assert_error_hidden(what: &str, err: &Error) {
    assert_hidden(what, &error_text(err));
    assert_hidden(&format!("the log after {what}"), &captured());
}

/// Connecting with `url` fails (quickly), and neither the error nor the configuration
/// nor the log shows the password.
#[track_caller]
fn assert_connect_fails_hidden(what: &str, url: &str) -> Error {
    let config = DbConfig::new(url).connection_timeout(Duration::from_millis(300));
    assert_hidden(&format!("DbConfig of {what}"), &format!("{config:?}"));
    assert_hidden(&format!("redacted_url of {what}"), &config.redacted_url());
    let started = Instant::now();
    let err = connect(&config).expect_err(what);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{what}: took {:?}",
        started.elapsed()
    );
    assert_error_hidden(&format!("the error of {what}"), &err);
    // The pool path that opens nothing up front, then times out on checkout with the
    // last connection error.
    let config = config.min_idle(Some(0));
    match PoolOptions::new(&config).run_migrations(false).connect() {
        Ok(pool) => {
            assert_hidden(&format!("the pool of {what}"), &format!("{pool:?}"));
            let err = failure(checkout(&pool), what);
            assert!(matches!(err, Error::PoolTimeout { .. }), "{what}: {err:?}");
            assert_error_hidden(&format!("the checkout error of {what}"), &err);
        }
        Err(err) => assert_error_hidden(&format!("the pool error of {what}"), &err),
    }
    err
}

/// [`assert_connect_fails_hidden`] and `check` for every case; the failing cases are
/// reported together.
fn all_hidden(cases: Vec<(&str, String)>, check: impl Fn(&Error)) {
    let failures: Vec<String> = cases
        .into_iter()
        .filter_map(|(what, url)| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                check(&assert_connect_fails_hidden(what, &url));
            }))
            .err()
            .map(|panic| {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                format!("{what}: {message}")
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of the cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

/// The capture works: a tracing event and a `log` record both land in it (otherwise the
/// log checks would pass vacuously).
#[test]
fn the_capture_sees_tracing_events_and_log_records() {
    setup();
    let (event, record) = (Uuid::new_v4().simple(), Uuid::new_v4().simple());
    tracing::error!("canary event {event}");
    log::error!("canary record {record}");
    let text = captured();
    assert!(text.contains(&format!("canary event {event}")), "{text}");
    assert!(text.contains(&format!("canary record {record}")), "{text}");
}

/// URLs the `url` crate parses, and key=value strings. (Malformed URLs and the forms
/// only libpq accepts have tests of their own below, configuration included.)
#[test]
fn configurations_never_print_the_password() {
    setup();
    let pw = password();
    for url in [
        format!("postgres://app:{pw}@db.example:5432/todo"),
        format!("postgresql://app:{pw}@db.example/todo?sslmode=require"),
        format!("postgres://app@db.example/todo?password={pw}&sslmode=require"),
        format!("postgres://app@db.example/todo?sslmode=require&PASSWORD={pw}"),
        format!("host=db.example user=app password={pw} dbname=todo"),
        format!("host=db.example user=app password='{pw}' dbname=todo"),
        format!("host=db.example password = {pw} dbname=todo"),
        format!("password='{pw}"),
    ] {
        let config = DbConfig::new(&url);
        assert_hidden(
            &format!("DbConfig::new({url:?}) Debug"),
            &format!("{config:?}"),
        );
        assert_hidden(
            &format!("DbConfig::new({url:?}) Debug"),
            &format!("{config:#?}"),
        );
        assert_hidden(
            &format!("DbConfig::new({url:?}).redacted_url()"),
            &config.redacted_url(),
        );
        assert_hidden(&format!("redact_url({url:?})"), &redact_url(&url));
        // from_env's path, with a bad number next to the URL.
        let err = DbConfig::from_lookup(|name| match name {
            "DATABASE_URL" => Some(url.clone()),
            "DATABASE_POOL_SIZE" => Some("many".into()),
            _ => None,
        })
        .expect_err("a bad pool size");
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert_error_hidden("a configuration error", &err);
    }
}

#[test]
fn connection_refused_never_shows_the_password() {
    setup();
    let port = closed_port();
    let pw = password();
    let err = assert_connect_fails_hidden(
        "a refused URL",
        &format!("postgres://app:{pw}@127.0.0.1:{port}/todo"),
    );
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(
        err.to_string().contains("127.0.0.1"),
        "names the host: {err}"
    );
    let err = assert_connect_fails_hidden(
        "a refused URL with ?password=",
        &format!("postgres://app@127.0.0.1:{port}/todo?password={pw}&sslmode=disable"),
    );
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    let err = assert_connect_fails_hidden(
        "a refused key=value string",
        &format!("host=127.0.0.1 port={port} user=app password={pw} dbname=todo"),
    );
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    let err = assert_connect_fails_hidden(
        "a refused key=value string with a quoted password",
        &format!("host=127.0.0.1 port={port} user=app password='{pw}' dbname=todo"),
    );
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
}

#[test]
fn malformed_urls_never_show_the_password() {
    setup();
    let pw = password();
    let mut cases: Vec<(&str, String)> = Vec::new();
    for (what, url) in [
        (
            "a URL with a bad port",
            format!("postgres://app:{pw}@127.0.0.1:notaport/todo"),
        ),
        (
            "a URL with an unterminated IPv6 host",
            format!("postgres://app:{pw}@[::1/todo"),
        ),
        (
            "a URL with an unknown parameter",
            format!("postgres://app:{pw}@127.0.0.1/todo?bogus=1"),
        ),
        (
            "a URL with ?password= and an unknown parameter",
            format!("postgres://app@127.0.0.1/todo?password={pw}&bogus=1"),
        ),
        (
            "a URL with a bad sslmode",
            format!("postgres://app:{pw}@127.0.0.1/todo?sslmode=sometimes"),
        ),
        (
            "a key=value string with an unknown keyword",
            format!("host=127.0.0.1 password={pw} bogus=1"),
        ),
        (
            "a key=value string with an unterminated quote",
            format!("host=127.0.0.1 password='{pw}"),
        ),
        (
            "a key=value string with a keyword without value",
            format!("host=127.0.0.1 password={pw} dbname"),
        ),
    ] {
        cases.push((what, url));
    }
    all_hidden(cases, |_| {});
}

/// URLs that libpq accepts but the `url` crate does not parse as a host and port: a
/// unix socket directory with an empty host, and several hosts for failover.
#[test]
fn libpq_only_url_forms_never_show_the_password() {
    setup();
    let pw = password();
    let port = closed_port();
    let mut cases: Vec<(&str, String)> = Vec::new();
    for (what, url) in [
        (
            "a URL with an empty host and a socket directory",
            format!("postgres://app:{pw}@/todo?host=%2Fnonexistent-socket-dir"),
        ),
        (
            "a URL with several hosts",
            format!("postgres://app:{pw}@127.0.0.1:{port},127.0.0.1:{port}/todo"),
        ),
    ] {
        cases.push((what, url));
    }
    all_hidden(cases, |err| {
        assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    });
}

#[test]
fn an_unknown_database_never_shows_the_password() {
    let s = setup();
    let url = with_database(&s.url, "no_such_database");
    let err = assert_connect_fails_hidden("an unknown database", &url);
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(err.to_string().contains("no_such_database"), "{err}");
}

#[test]
fn pool_and_statement_timeouts_and_database_errors_never_show_the_password() {
    let s = setup();
    let config = DbConfig::new(&s.url)
        .pool_size(1)
        .connection_timeout(Duration::from_secs(1))
        .statement_timeout(Some(Duration::from_millis(50)));
    // Migrated without the short statement timeout, which is for pg_sleep below.
    connect(&config.clone().statement_timeout(None))
        .expect("the cluster accepts the password-bearing URL");
    let pool = PoolOptions::new(&config)
        .run_migrations(false)
        .connect()
        .expect("a pool");
    assert_hidden("the pool's Debug", &format!("{pool:?}"));
    assert_hidden("the pool's alternate Debug", &format!("{pool:#?}"));
    let mut conn = checkout(&pool).expect("a connection");

    // Pool exhausted.
    let err = failure(checkout(&pool), "the only connection is taken");
    assert!(matches!(err, Error::PoolTimeout { .. }), "{err:?}");
    assert_error_hidden("a pool timeout", &err);
    let err = Error::from(failure(pool.get(), "the only connection is taken"));
    assert_error_hidden("a bare r2d2 timeout", &err);

    // Statement timeout.
    let err = Error::from(
        diesel::sql_query("SELECT pg_sleep(2)")
            .execute(&mut *conn)
            .expect_err("cancelled"),
    );
    assert!(matches!(err, Error::StatementTimeout), "{err:?}");
    assert_error_hidden("a statement timeout", &err);

    // Any other database error, and the repositories' own errors: with no statement
    // timeout, which a loaded machine could reach on these.
    conn.batch_execute("SET statement_timeout = 0")
        .expect("the timeout lifted");
    let err = Error::from(
        conn.batch_execute("SELECT 1/0")
            .expect_err("division by zero"),
    );
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    assert_error_hidden("a database error", &err);
    let user = UserRepo::create(&mut conn, &NewUser::new("ada@example.com", "Ada"))
        .expect("a user on the cluster's own database");
    let err = UserRepo::create(&mut conn, &NewUser::new("ADA@example.com", "Ada")).unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_error_hidden("a conflict", &err);
    let err = TaskRepo::create(&mut conn, user.id, &NewTask::new(" ")).unwrap_err();
    assert!(err.is_validation(), "{err:?}");
    assert_error_hidden("a validation error", &err);
    let err = TaskRepo::get(&mut conn, user.id, Uuid::now_v7().into()).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_error_hidden("a not-found error", &err);
    UserRepo::delete(&mut conn, user.id).expect("cleaned up");
}

#[test]
fn test_databases_never_show_the_password() {
    let s = setup();
    let db = TestDb::new();
    assert!(
        db.url().contains(password()),
        "TestDb uses TEST_DATABASE_URL: {}",
        redact_url(db.url())
    );
    assert_hidden("TestDb's Debug", &format!("{db:?}"));
    assert_hidden("TestDb's alternate Debug", &format!("{db:#?}"));
    assert_hidden("TestDb's config", &format!("{:?}", db.config()));
    assert_hidden("TestDb's pool", &format!("{:?}", db.pool()));
    let mut conn = db.conn();
    let user = UserRepo::create(&mut conn, &NewUser::new("grace@example.com", "Grace")).unwrap();
    TaskRepo::create(&mut conn, user.id, &NewTask::new("Ship it")).unwrap();
    drop(conn);
    drop(db);
    assert_hidden("the log after a TestDb's life", &captured());
    assert!(s.cluster.port() > 0);
}

/// Last, by name, in a run on one thread; with parallel tests this checks whatever was
/// logged by then (each test checks the log after its own scenarios too).
#[test]
fn zz_nothing_logged_by_any_test_shows_the_password() {
    setup();
    assert_hidden("the log", &captured());
}

/// Passwords holding characters that libpq takes unencoded where other parsers see
/// syntax: `#` and `?` in a URL (a URL parser reads a fragment or a query; libpq reads
/// the credentials up to the `@`), `&`, `'`, `=` and `:`; and in a key=value string a
/// backslash-escaped space, `&` and quotes. libpq connects with every one of these
/// strings (checked first, so the case is real); then no part of the password shows
/// in the configuration, its printable URL, the pool, a connection error or the log.
#[test]
fn passwords_libpq_reads_unencoded_never_show_in_any_part() {
    let s = setup();
    let port = s.cluster.port();
    let (head, tail) = (
        format!("Hd{}", Uuid::new_v4().simple()),
        format!("Tl{}", Uuid::new_v4().simple()),
    );
    let mut cases: Vec<(String, String)> = Vec::new();
    for special in [
        "#",
        "?",
        "#?",
        "?sslmode=disable&",
        "&",
        "'",
        "=",
        ":",
        "#x=1&",
    ] {
        cases.push((
            format!("a URL password with {special:?}"),
            format!("postgres://postgres:{head}{special}{tail}@127.0.0.1:{port}/postgres"),
        ));
    }
    for (what, value) in [
        ("a backslash-escaped space", format!("{head}\\ {tail}")),
        ("an ampersand", format!("{head}&{tail}")),
        ("a hash", format!("{head}#{tail}")),
        ("a quoted escaped quote", format!("'{head}\\'{tail}'")),
        (
            "a quoted space and backslash",
            format!("'{head} \\\\{tail}'"),
        ),
    ] {
        cases.push((
            format!("a key=value password with {what}"),
            format!("host=127.0.0.1 port={port} user=postgres password={value} dbname=postgres"),
        ));
    }
    let check = |what: &str, text: &str| {
        for part in [&head, &tail] {
            assert!(
                !text.contains(part.as_str()),
                "{what} shows part of the password:\n{}",
                text.replace(head.as_str(), "<<HEAD>>")
                    .replace(tail.as_str(), "<<TAIL>>")
            );
        }
    };
    for (what, url) in &cases {
        diesel::PgConnection::establish(url).unwrap_or_else(|e| {
            panic!(
                "libpq connects with {what}: {}",
                e.to_string().replace(head.as_str(), "<<HEAD>>")
            )
        });
        let config = DbConfig::new(url).connection_timeout(Duration::from_secs(5));
        check(
            &format!("Debug of {what}"),
            &format!("{config:?} {config:#?}"),
        );
        check(&format!("redacted_url of {what}"), &config.redacted_url());
        check(&format!("redact_url of {what}"), &redact_url(url));
        let pool = connect(&config).unwrap_or_else(|e| panic!("{what}: {e}"));
        check(&format!("the pool of {what}"), &format!("{pool:?}"));
        drop(pool);
        // The same string, pointed at a database that does not exist: a connection
        // error from the server, through the pool.
        let missing =
            url.replace("postgres?", "nope?")
                .replacen("/postgres", "/no_such_database", 1);
        let missing = if missing.contains("dbname=postgres") {
            missing.replace("dbname=postgres", "dbname=no_such_database")
        } else {
            missing
        };
        let config = DbConfig::new(&missing).connection_timeout(Duration::from_millis(200));
        let err = connect(&config).expect_err("an unknown database");
        assert!(matches!(err, Error::Connection { .. }), "{what}: {err:?}");
        check(
            &format!("the connection error of {what}"),
            &error_text(&err),
        );
        let lazy = PoolOptions::new(&config.clone().min_idle(Some(0)))
            .run_migrations(false)
            .connect()
            .expect("a lazy pool");
        let err = failure(checkout(&lazy), what);
        check(&format!("the checkout error of {what}"), &error_text(&err));
        let err = Error::from(failure(lazy.get(), what));
        check(
            &format!("the bare checkout error of {what}"),
            &error_text(&err),
        );
    }
    check("the log", &captured());
}

/// Strings libpq cannot parse, each with a password in it: libpq's parse errors quote
/// the offending part of the string (a bad percent escape, a value, at times the whole
/// URI), and with the string unparsed nothing can tell which part is the password. No
/// part of it (no four characters in a row) shows in the configuration, its printable
/// URL, any error of `connect`, `PoolOptions` (a lazy pool included), or a replica
/// router, in their `Display`, `Debug` or source chain, nor in
/// the log.
#[test]
fn strings_libpq_cannot_parse_never_show_any_part_of_the_password() {
    let s = setup();
    // Letters that messages do not hold four in a row of by chance.
    let rare = |n: usize| -> String {
        Uuid::new_v4()
            .as_bytes()
            .iter()
            .take(n)
            .map(|b| char::from(b"JKQVWXYZ"[usize::from(b % 8)]))
            .collect()
    };
    let (a, b) = (format!("Qz{}", rare(10)), format!("Zq{}", rare(10)));
    let cases: Vec<(&str, String, String)> = vec![
        // (what, the password as written in the string, the string)
        ("a bad percent escape", format!("{a}%ZZ{b}"), String::new()),
        ("a percent-encoded NUL", format!("{a}%00{b}"), String::new()),
        (
            "a truncated percent escape",
            format!("{a}{b}%4"),
            String::new(),
        ),
        ("a lone percent sign", format!("{a}%{b}"), String::new()),
        (
            "an @ and a bad escape",
            format!("{a}@{b}%ZZ"),
            String::new(),
        ),
    ]
    .into_iter()
    .map(|(what, pw, _)| {
        let url = format!("postgres://app:{pw}@127.0.0.1:1/db");
        (what, pw, url)
    })
    .chain([(
        // libpq ends the credentials at the first `@`: a string it can parse reads
        // the rest as the host, so only the unparseable form is this test's case.
        "an @ in the password and an unknown parameter",
        format!("{a}@{b}"),
        format!("postgres://app:{a}@{b}@127.0.0.1:1/db?bogus=1"),
    )])
    .chain([
        (
            "an unterminated IPv6 host",
            a.clone(),
            format!("postgres://app:{a}@[::1/db"),
        ),
        (
            "an empty IPv6 host",
            a.clone(),
            format!("postgres://app:{a}@[]:1/db"),
        ),
        (
            "text after an IPv6 host",
            a.clone(),
            format!("postgres://app:{a}@[::1]x/db"),
        ),
        (
            "a bad escape and an IPv6 host",
            format!("{a}%G1{b}"),
            format!("postgres://app:{a}%G1{b}@[::1]:1/db"),
        ),
        (
            "several hosts and a bad escape",
            format!("{a}%ZZ{b}"),
            format!("postgres://app:{a}%ZZ{b}@127.0.0.1:1,127.0.0.1:2/db"),
        ),
        (
            "several hosts and an unknown parameter",
            a.clone(),
            format!("postgres://app:{a}@127.0.0.1:1,127.0.0.1:2/db?bogus=1"),
        ),
        (
            "?password= with a bad escape",
            format!("{a}%ZZ{b}"),
            format!("postgres://app@127.0.0.1:1/db?password={a}%ZZ{b}"),
        ),
        (
            "?password= with a second =",
            format!("{a}={b}"),
            format!("postgres://app@127.0.0.1:1/db?password={a}={b}"),
        ),
        (
            "?password= and a parameter without =",
            a.clone(),
            format!("postgres://app@127.0.0.1:1/db?password={a}&{b}"),
        ),
        (
            "repeated ?password= and an unknown parameter",
            format!("{a}{b}"),
            format!("postgres://app@127.0.0.1:1/db?password={a}&password={b}&bogus=1"),
        ),
        (
            "a double quote in the password and a bad escape",
            format!("{a}\"{b}%ZZ"),
            format!("postgres://app:{a}\"{b}%ZZ@127.0.0.1:1/db"),
        ),
        (
            "a double quote in a key=value password without =",
            format!("{a}\"{b}"),
            format!("host=127.0.0.1 port=1 password {a}\"{b}"),
        ),
        (
            "a key=value unterminated quote",
            format!("{a} {b}"),
            format!("host=127.0.0.1 port=1 password='{a} {b}"),
        ),
        (
            "a key=value quoted password and an unknown keyword",
            format!("{a} {b}"),
            format!("host=127.0.0.1 port=1 password='{a} {b}' bogus=1"),
        ),
        (
            "a key=value password that is a keyword without =",
            format!("{a}{b}"),
            format!("host=127.0.0.1 port=1 password= {a}{b}"),
        ),
        (
            "a key=value password and a keyword without value",
            a.clone(),
            format!("host=127.0.0.1 port=1 password={a} dbname"),
        ),
        (
            "repeated key=value passwords and an unknown keyword",
            format!("{a}{b}"),
            format!("host=127.0.0.1 port=1 password={a} password={b} {a}={b}"),
        ),
        (
            "a key=value password with a trailing backslash",
            format!("{a}\\"),
            format!("host=127.0.0.1 port=1 password='{a}\\"),
        ),
    ])
    .collect();
    let primary = with_database(&s.url, "postgres");
    let mut failures = Vec::new();
    for (what, pw, url) in &cases {
        // Every four characters of the password, as written.
        let chars: Vec<char> = pw.chars().collect();
        let parts: Vec<String> = chars.windows(4).map(|w| w.iter().collect()).collect();
        let check = |failures: &mut Vec<String>, where_: &str, text: &str| {
            if let Some(part) = parts.iter().find(|p| text.contains(p.as_str())) {
                failures.push(format!(
                    "{what}: {where_} shows {part:?} of the password:\n{}",
                    text.replace(a.as_str(), "<<A>>")
                        .replace(b.as_str(), "<<B>>")
                ));
            }
        };
        assert!(
            diesel::PgConnection::establish(url).is_err(),
            "{what}: libpq refuses the string"
        );
        let config = DbConfig::new(url).connection_timeout(Duration::from_millis(300));
        check(
            &mut failures,
            "the config",
            &format!("{config:?} {config:#?}"),
        );
        check(&mut failures, "redacted_url", &config.redacted_url());
        let err = failure(connect(&config), what);
        check(&mut failures, "the error of connect", &error_text(&err));
        let lazy = config.clone().min_idle(Some(0));
        match PoolOptions::new(&lazy).run_migrations(false).connect() {
            Ok(pool) => {
                let err = failure(checkout(&pool), what);
                check(&mut failures, "the checkout error", &error_text(&err));
            }
            Err(err) => check(
                &mut failures,
                "the error of PoolOptions::connect",
                &error_text(&err),
            ),
        }
        // A lazy pool, which opens nothing before it returns.
        match PoolOptions::new(&lazy).lazy(true).connect() {
            Ok(pool) => {
                let err = failure(pool.get(), what);
                check(&mut failures, "the bare checkout error", &error_text(&err));
                check(
                    &mut failures,
                    "that error as Error",
                    &error_text(&Error::from(err)),
                );
            }
            Err(err) => check(&mut failures, "the error of a lazy pool", &error_text(&err)),
        }
        let replicas = DbConfig::new(&primary)
            .replica_url(url.as_str())
            .connection_timeout(Duration::from_millis(300));
        check(&mut failures, "a replica config", &format!("{replicas:?}"));
        if let Err(err) = todo_store::replica::ReplicaRouter::connect(&replicas) {
            check(
                &mut failures,
                "the replica router's error",
                &error_text(&err),
            );
        }
        check(&mut failures, "the log", &captured());
    }
    assert!(
        failures.is_empty(),
        "{} leaks:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
