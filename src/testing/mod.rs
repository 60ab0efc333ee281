//! Test support (feature `testing`): [`TestDb`], a fresh, migrated PostgreSQL database
//! per test.
//!
//! ```no_run
//! use todo_store::{testing::TestDb, NewUser, UserRepo};
//!
//! let db = TestDb::new();
//! let mut conn = db.conn();
//! let user = UserRepo::create(&mut conn, &NewUser::new("ada@example.com", "Ada")).unwrap();
//! assert_eq!(UserRepo::get(&mut conn, user.id).unwrap(), user);
//! ```
//!
//! **Which server.** `TEST_DATABASE_URL`, else `DATABASE_URL` (environment or `.env`),
//! when set: its role needs `CREATEDB`. A URL of several hosts (a cluster's, say
//! `postgres://h1,h2,h3/postgres`) reaches its primary: without a
//! `target_session_attrs` of its own it gets `read-write`, as the crate's pools give
//! it (see [`crate::config`]). Otherwise a throwaway cluster is started from
//! the system's PostgreSQL binaries (see [`crate::local_postgres`]) on a private unix
//! socket, shared by every test of the process and removed when the process ends.
//!
//! **How it is fast.** The migrations run once per process, into a template database;
//! each `TestDb` is a `CREATE DATABASE ... TEMPLATE` copy of it, dropped when the
//! `TestDb` drops. Databases are named `tstore_<process token>_<n>`; each process holds
//! an advisory lock on its token, so databases left by a crashed process (whose lock is
//! gone) are swept on the next run, while those of other running test binaries are left
//! alone. On an external server, the database of a test that panicked is kept for
//! inspection (its URL is printed) and swept on a later run.
//!
//! ## In your crate's tests
//!
//! ```toml
//! [dev-dependencies]
//! todo-store = { path = "...", features = ["testing"] }
//! ```
//!
//! ```rust,no_run
//! use todo_store::{testing::TestDb, NewUser, UserRepo};
//!
//! #[test]
//! fn creates_a_user() {
//!     let db = TestDb::new();
//!     let mut conn = db.conn();
//!     let user = UserRepo::create(&mut conn, &NewUser::new("ada@example.com", "Ada")).unwrap();
//!     assert_eq!(UserRepo::get(&mut conn, user.id).unwrap(), user);
//! }
//! ```
//!
//! When run as root, the throwaway cluster runs as the `postgres` OS user. Its server
//! runs with `fsync` and `synchronous_commit` off for speed: it is not for data you want
//! to keep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer};

use crate::config::{redact_url, DbConfig};
use crate::local_postgres::LocalPostgres;
use crate::pool::{checkout, PgPool, PoolOptions, PooledConn};

/// Environment variable naming the server for test databases (before `DATABASE_URL`).
pub const TEST_DATABASE_URL: &str = "TEST_DATABASE_URL";

/// Advisory-lock namespace (first key) of the per-process test token.
const LOCK_NAMESPACE: i32 = 0x7473_746f; // "tsto"
const NAME_PREFIX: &str = "tstore_";

/// A fresh, uniquely named database, dropped with this value.
///
/// `TestDb::new()` panics with a message that says what to install or set when no
/// server can be had: it is test support, and a test without a database cannot run.
pub struct TestDb {
    name: String,
    url: String,
    pool: Option<PgPool>,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

impl TestDb {
    /// A fresh database with every migration applied.
    ///
    /// # Panics
    /// When no PostgreSQL server can be reached or started, with what to do about it.
    pub fn new() -> Self {
        Self::create(true).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A fresh database without any migration applied (for testing migrations).
    ///
    /// # Panics
    /// As [`TestDb::new`].
    pub fn empty() -> Self {
        Self::create(false).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The pool of this database (pool size 10, statement timeout 30 s).
    pub fn pool(&self) -> &PgPool {
        self.pool
            .as_ref()
            .expect("the pool lives as long as the TestDb")
    }

    /// A connection from [`TestDb::pool`].
    ///
    /// # Panics
    /// When no connection can be had within the pool's timeout.
    pub fn conn(&self) -> PooledConn {
        checkout(self.pool()).unwrap_or_else(|e| panic!("TestDb {}: {e}", self.name))
    }

    /// The database's URL (for a second pool, a subprocess, psql).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A [`DbConfig`] for this database with the crate's defaults.
    pub fn config(&self) -> DbConfig {
        DbConfig::new(&self.url)
    }

    fn create(migrated: bool) -> Result<Self, String> {
        let server = server()?;
        let name = server.create_database(migrated)?;
        let url = server.database_url(&name);
        let config = DbConfig::new(&url)
            .pool_size(10)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(30));
        let pool = PoolOptions::new(&config)
            .run_migrations(false)
            .connect()
            .map_err(|e| format!("TestDb: {e}"))?;
        Ok(TestDb {
            name,
            url,
            pool: Some(pool),
        })
    }
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop(self.pool.take());
        let Ok(server) = server() else { return };
        if std::thread::panicking() && server.local.is_none() {
            eprintln!(
                "TestDb: kept the database of the failed test for inspection: {} \
                 (dropped by a later test run)",
                redact_url(&self.url)
            );
            return;
        }
        if let Err(e) = server.drop_database(&self.name) {
            eprintln!("TestDb: could not drop {}: {e}", self.name);
        }
    }
}

/// The server all TestDbs of this process live on.
struct Server {
    /// A URL of the server for the admin connection (as configured, or the local cluster's).
    base_url: String,
    /// Keeps the throwaway cluster alive for the life of the process.
    local: Option<LocalPostgres>,
    /// Creates and drops databases; holds this process's token lock.
    admin: Mutex<PgConnection>,
    token: u32,
    template: String,
    counter: AtomicU64,
}

fn server() -> Result<&'static Server, String> {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    SERVER
        .get_or_init(Server::start)
        .as_ref()
        .map_err(Clone::clone)
}

impl Server {
    fn start() -> Result<Server, String> {
        let configured = crate::config::env_var(TEST_DATABASE_URL)
            .or_else(|| crate::config::env_var(crate::config::vars::DATABASE_URL))
            .filter(|u| !u.trim().is_empty());
        let (base_url, local) = match configured {
            // Several hosts (a cluster's): the databases are created on its primary.
            Some(url) => (
                crate::conninfo::with_session_attrs_for_several_hosts(&url, "read-write"),
                None,
            ),
            None => {
                let local = LocalPostgres::start_temporary().map_err(|e| {
                    format!(
                        "TestDb: no database server for the tests. Set TEST_DATABASE_URL (or \
                         DATABASE_URL) to a PostgreSQL server whose role may CREATE DATABASE, \
                         or install PostgreSQL (Debian/Ubuntu: `apt-get install postgresql`) \
                         so a throwaway cluster can be started. Starting one failed: {e}"
                    )
                })?;
                (local.url("postgres"), Some(local))
            }
        };
        let reading = crate::conninfo::Conninfo::parse(&base_url);
        let mut admin = crate::pool::establish(&base_url, &reading).map_err(|e| {
            format!(
                "TestDb: could not connect to {}: {e}",
                redact_url(&base_url)
            )
        })?;
        let token = take_token(&mut admin)?;
        let mut server = Server {
            base_url,
            local,
            admin: Mutex::new(admin),
            token,
            template: String::new(),
            counter: AtomicU64::new(0),
        };
        server.sweep_leftovers();
        server.template = server.create_template()?;
        Ok(server)
    }

    fn admin(&self) -> std::sync::MutexGuard<'_, PgConnection> {
        self.admin
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn database_url(&self, database: &str) -> String {
        with_database(&self.base_url, database)
    }

    /// The template: migrated once per process, then copied by every TestDb.
    fn create_template(&self) -> Result<String, String> {
        let name = format!("{NAME_PREFIX}{:08x}_template", self.token);
        self.execute(&format!("CREATE DATABASE {name}"))?;
        let url = self.database_url(&name);
        let mut conn = crate::pool::establish(&url, &crate::conninfo::Conninfo::parse(&url))
            .map_err(|e| format!("TestDb: could not connect to {}: {e}", redact_url(&url)))?;
        crate::migrate::run_migrations(&mut conn)
            .map_err(|e| format!("TestDb: migrating the template database failed: {e}"))?;
        // No connection may remain on a template while it is copied.
        drop(conn);
        Ok(name)
    }

    fn create_database(&self, migrated: bool) -> Result<String, String> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = format!("{NAME_PREFIX}{:08x}_{n}", self.token);
        let template = if migrated {
            &self.template
        } else {
            "template0"
        };
        self.execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))?;
        Ok(name)
    }

    fn drop_database(&self, name: &str) -> Result<(), String> {
        self.execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    }

    fn execute(&self, sql: &str) -> Result<(), String> {
        self.admin().batch_execute(sql).map_err(|e| {
            format!(
                "TestDb: `{sql}` failed on {}: {e}",
                redact_url(&self.base_url)
            )
        })
    }

    /// Drops the databases of test processes that are gone (their token lock is free).
    fn sweep_leftovers(&self) {
        let mut admin = self.admin();
        let names: Vec<String> = match diesel::dsl::sql::<diesel::sql_types::Text>(&format!(
            "SELECT datname FROM pg_database WHERE datname LIKE '{NAME_PREFIX}%'"
        ))
        .load(&mut *admin)
        {
            Ok(names) => names,
            Err(_) => return,
        };
        for name in names {
            let Some(token) = parse_token(&name) else {
                continue;
            };
            if token == self.token {
                continue;
            }
            if try_lock_token(&mut admin, token).unwrap_or(false) {
                // Two statements: DROP DATABASE cannot run in the implicit transaction
                // of a multi-statement string.
                if let Err(e) =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                {
                    eprintln!("TestDb: could not sweep {name}: {e}");
                }
                let _ = admin.batch_execute(&format!(
                    "SELECT pg_advisory_unlock({LOCK_NAMESPACE}, {})",
                    token as i32
                ));
            }
        }
    }
}

/// Picks a random token and holds its advisory lock on `admin` for the process's life.
fn take_token(admin: &mut PgConnection) -> Result<u32, String> {
    for _ in 0..16 {
        let token = (uuid::Uuid::new_v4().as_u128() & 0x7fff_ffff) as u32;
        if try_lock_token(admin, token)
            .map_err(|e| format!("TestDb: could not take an advisory lock: {e}"))?
        {
            return Ok(token);
        }
    }
    Err("TestDb: could not find a free test token".into())
}

fn try_lock_token(conn: &mut PgConnection, token: u32) -> QueryResult<bool> {
    diesel::sql_query("SELECT pg_try_advisory_lock($1, $2) AS locked")
        .bind::<Integer, _>(LOCK_NAMESPACE)
        .bind::<Integer, _>(token as i32)
        .get_result::<Locked>(conn)
        .map(|l| l.locked)
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

fn parse_token(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let (hex, _) = rest.split_once('_')?;
    u32::from_str_radix(hex, 16).ok()
}

/// `url` pointed at `database`: libpq's reading of `url` with another `dbname`, in the
/// form of `url` (so a password with `#` or a backslash-escaped space survives).
fn with_database(url: &str, database: &str) -> String {
    // A string libpq cannot parse: connecting refuses it later with a reason that
    // quotes no part of it (pool::establish).
    crate::conninfo::with_dbname(url, database)
        .unwrap_or_else(|_| format!("{url} dbname={database}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_carry_the_token() {
        assert_eq!(parse_token("tstore_0000beef_12"), Some(0xbeef));
        assert_eq!(parse_token("tstore_0000beef_template"), Some(0xbeef));
        assert_eq!(parse_token("todo"), None);
    }

    #[test]
    fn points_urls_at_another_database() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/app?sslmode=require", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=require"
        );
        assert_eq!(
            with_database(
                "postgres://postgres@localhost/postgres?host=%2Ftmp%2Fx",
                "t1"
            ),
            "postgres://postgres@localhost/t1?host=%2Ftmp%2Fx"
        );
        assert_eq!(
            with_database("host=h user=u", "t1"),
            "host=h user=u dbname=t1"
        );
    }
}

// Hidden: the plan checks of this crate's own integration tests
// (tests/integration/query_plans.rs, habits.rs) are its only users. It runs EXPLAIN on
// the crate's private queries, so it must live in the crate, and `pub` for an
// integration test to reach it; a downstream test has no use for it.
#[doc(hidden)]
pub mod plans;
