//! TLS to PostgreSQL (Neon, the production host, requires it): a local cluster with a
//! certificate made at test time by the `openssl` command (a test CA, a server
//! certificate for `localhost`, and a second CA that signed nothing).
//!
//! - `sslmode=require` connects, and the session is encrypted (`pg_stat_ssl`);
//! - to a server without TLS, `sslmode=require` fails with an error that says SSL;
//! - `sslmode=verify-full` with the CA file and host `localhost` works; with the wrong
//!   CA, or a host name the certificate does not name, it fails.
//!
//! See docs/tls.md.

mod support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;
use std::time::Duration;

use diesel::dsl::sql;
use diesel::sql_types::Bool;
use diesel::{Connection, PgConnection, RunQueryDsl};
use todo_store::local_postgres::LocalPostgres;
use todo_store::{connect, DbConfig, Error, NewUser, UserRepo};

use support::tls::{make_certs, Certs};

/// A cluster without TLS, one with it, and the certificates.
struct Servers {
    // Fields drop in order: the TLS server before its certificates.
    tls: LocalPostgres,
    plain: LocalPostgres,
    certs: Certs,
}

fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let plain = LocalPostgres::builder()
            .listen_tcp(true)
            .start()
            .expect("a cluster without TLS");
        // The OS user the clusters run as (when this process is root, not root): the
        // owner of a data directory. The files live in the plain cluster's data
        // directory, removed with it when the process ends.
        let meta = fs::metadata(plain.data_dir()).expect("the data directory");
        let certs = make_certs(&plain.data_dir().join("tls"), (meta.uid(), meta.gid()));
        let tls = LocalPostgres::builder()
            .listen_tcp(true)
            .setting("ssl", "on")
            .setting("ssl_cert_file", &certs.cert.to_string_lossy())
            .setting("ssl_key_file", &certs.key.to_string_lossy())
            .start()
            .unwrap_or_else(|e| panic!("a cluster with TLS: {e}"));
        Servers { tls, plain, certs }
    })
}

/// `server`'s TCP URL of database `postgres` with `params` added.
fn url(server: &LocalPostgres, params: &str) -> String {
    let base = server.tcp_url("postgres").expect("listens on TCP");
    format!("{base}?{params}")
}

fn config(url: &str) -> DbConfig {
    DbConfig::new(url)
        .pool_size(2)
        .connection_timeout(Duration::from_secs(3))
}

/// Whether the session on `conn` is encrypted, by the server's account.
fn encrypted(conn: &mut PgConnection) -> bool {
    diesel::select(sql::<Bool>(
        "(SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
    ))
    .get_result(conn)
    .expect("pg_stat_ssl")
}

/// The error of connecting to `url` with the crate, which must fail (soon: the pool
/// retries until its connection timeout).
fn connect_error(url: &str) -> Error {
    match connect(&config(url).connection_timeout(Duration::from_secs(1))) {
        Ok(_) => panic!("connecting to {url} should fail"),
        Err(e) => e,
    }
}

#[test]
fn sslmode_require_connects_over_tls() {
    let s = servers();
    let pool = connect(&config(&url(&s.tls, "sslmode=require"))).expect("connects with TLS");
    let mut conn = pool.get().expect("a connection");
    assert!(
        encrypted(&mut conn),
        "pg_stat_ssl says the session is not encrypted"
    );
    // The repositories work over it.
    let user = UserRepo::create(&mut conn, &NewUser::new("tls@example.com", "TLS")).unwrap();
    assert_eq!(UserRepo::get(&mut conn, user.id).unwrap(), user);
    UserRepo::delete(&mut conn, user.id).unwrap();
    // The check can tell: the same server without TLS on the client's side.
    let mut plain =
        PgConnection::establish(&url(&s.tls, "sslmode=disable")).expect("connects without TLS");
    assert!(!encrypted(&mut plain), "sslmode=disable is not encrypted");
}

#[test]
fn sslmode_require_to_a_server_without_tls_fails_clearly() {
    let s = servers();
    let err = connect_error(&url(&s.plain, "sslmode=require"));
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("SSL"),
        "the error should say SSL: {message}"
    );
    assert!(
        message.contains("127.0.0.1"),
        "and name the host: {message}"
    );
    // Without TLS required, the same server is reachable: it is TLS that failed.
    PgConnection::establish(&url(&s.plain, "sslmode=prefer")).expect("prefer falls back");
}

#[test]
fn verify_full_with_the_ca_file_works_for_localhost() {
    let s = servers();
    let ca = s.certs.ca.to_string_lossy();
    let url = url(
        &s.tls,
        &format!("sslmode=verify-full&sslrootcert={ca}&host=localhost&hostaddr=127.0.0.1"),
    );
    let pool = connect(&config(&url)).expect("verify-full with the right CA");
    let mut conn = pool.get().expect("a connection");
    assert!(encrypted(&mut conn));
}

#[test]
fn verify_full_with_another_ca_fails() {
    let s = servers();
    let other = s.certs.other_ca.to_string_lossy();
    let err = connect_error(&url(
        &s.tls,
        &format!("sslmode=verify-full&sslrootcert={other}&host=localhost&hostaddr=127.0.0.1"),
    ));
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(
        err.to_string().contains("certificate verify failed"),
        "{err}"
    );
}

#[test]
fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let s = servers();
    let ca = s.certs.ca.to_string_lossy();
    // The certificate names localhost, not 127.0.0.1.
    let err = connect_error(&url(
        &s.tls,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ));
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(
        err.to_string().contains("does not match host name"),
        "{err}"
    );
    let mut conn =
        PgConnection::establish(&url(&s.tls, &format!("sslmode=verify-ca&sslrootcert={ca}")))
            .expect("verify-ca checks the chain only");
    assert!(encrypted(&mut conn));
}
