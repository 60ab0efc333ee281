//! The development server of the examples: the server named by a URL
//! (`--database-url`, else `DATABASE_URL` from the environment or `.env`), else the
//! crate's persistent PostgreSQL cluster under `target/todo-store-pg`, started or
//! reused (`todo_store::local_postgres`).
//!
//! The seed example and the benchmark both start here, so they find the same server
//! and the same data. It lives with them, not in the library: it is the examples' own
//! convenience, not something a user of the crate builds on. Each example includes it
//! with `#[path]`:
//!
//! ```ignore
//! #[path = "support/dev_database.rs"]
//! mod dev_database;
//!
//! let server = dev_database::DevServer::open(None, |root| {
//!     println!("No DATABASE_URL set: using a local PostgreSQL in {}", root.display());
//! })?;
//! let url = server.database_url("todo_dev")?;
//! ```

// Each example that includes this file uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::result::{ConnectionError, Error as DieselError};
use diesel::sql_types::{Bool, Text};

use todo_store::local_postgres::{LocalPostgres, LocalPostgresError};

/// The directory under `target/` that holds the persistent local cluster.
const LOCAL_CLUSTER_DIR: &str = "todo-store-pg";

/// Where a development program's database lives.
#[derive(Debug)]
pub enum DevServer {
    /// A server named by a URL: the one given, or `DATABASE_URL`.
    Url(String),
    /// The persistent local cluster under `target/` (see [`local_root`]).
    Local(LocalPostgres),
}

impl DevServer {
    /// The server to use: `explicit_url` (a command-line option, say) if given, else
    /// `DATABASE_URL` from the environment or `.env`; a blank URL counts as none. With
    /// neither, it starts (or reuses, when running) the persistent cluster in
    /// [`local_root`], calling `before_local_start` with that directory first: starting
    /// can take seconds, and a caller says what is happening.
    ///
    /// # Errors
    /// [`LocalPostgresError`] when the local cluster cannot start; its message says what
    /// to install or set (for example `PG_BINDIR` or `DATABASE_URL`).
    pub fn open(
        explicit_url: Option<&str>,
        before_local_start: impl FnOnce(&Path),
    ) -> Result<DevServer, LocalPostgresError> {
        if let Some(url) = configured_url(explicit_url) {
            return Ok(DevServer::Url(url));
        }
        let root = local_root();
        before_local_start(&root);
        LocalPostgres::start_persistent(root).map(DevServer::Local)
    }

    /// The URL to connect to: the configured URL as it is, or the URL of database
    /// `local_database` in the local cluster, which is created first when missing.
    ///
    /// # Errors
    /// [`DevDatabaseError`] when the local cluster's `postgres` database cannot be
    /// reached or the database cannot be created.
    pub fn database_url(&self, local_database: &str) -> Result<String, DevDatabaseError> {
        match self {
            DevServer::Url(url) => Ok(url.clone()),
            DevServer::Local(pg) => {
                create_database_if_missing(pg, local_database)?;
                Ok(pg.url(local_database))
            }
        }
    }

    /// The local cluster, when that is the server.
    pub fn local(&self) -> Option<&LocalPostgres> {
        match self {
            DevServer::Url(_) => None,
            DevServer::Local(pg) => Some(pg),
        }
    }

    /// The local cluster, when that is the server, to keep running or stop.
    pub fn into_local(self) -> Option<LocalPostgres> {
        match self {
            DevServer::Url(_) => None,
            DevServer::Local(pg) => Some(pg),
        }
    }
}

/// Why [`DevServer::database_url`] failed; the messages are diesel's own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevDatabaseError {
    /// The local cluster's `postgres` database could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectionError),
    /// Looking for the database or creating it failed.
    #[error(transparent)]
    Query(#[from] DieselError),
}

/// `explicit_url` if given, else `DATABASE_URL` from the environment or `.env`; `None`
/// when the chosen one is missing or blank.
pub fn configured_url(explicit_url: Option<&str>) -> Option<String> {
    explicit_url
        .map(str::to_owned)
        .or_else(|| env_var(todo_store::config::vars::DATABASE_URL))
        .filter(|url| !url.trim().is_empty())
}

/// `name` from the environment, else from the `.env` file of the current directory or
/// the nearest one above it (read, never written into the environment); `None` when
/// neither has it or the file cannot be read.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().or_else(|| {
        dotenvy::dotenv_iter()
            .ok()?
            .flatten()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    })
}

/// The `target/` directory of this checkout: `CARGO_TARGET_DIR` when set, else
/// `target/` next to the crate's `Cargo.toml`.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target")
}

/// Where the persistent local cluster keeps its data: `target/todo-store-pg`.
pub fn local_root() -> PathBuf {
    target_dir().join(LOCAL_CLUSTER_DIR)
}

/// Creates database `name` in the local cluster unless it exists.
fn create_database_if_missing(pg: &LocalPostgres, name: &str) -> Result<(), DevDatabaseError> {
    let mut admin = PgConnection::establish(&pg.url("postgres"))?;
    let exists: bool = diesel::select(
        sql::<Bool>("EXISTS (SELECT 1 FROM pg_database WHERE datname = ")
            .bind::<Text, _>(name)
            .sql(")"),
    )
    .get_result(&mut admin)?;
    if !exists {
        admin.batch_execute(&format!("CREATE DATABASE {}", quote_ident(name)))?;
    }
    Ok(())
}

/// `name` as a SQL identifier: in double quotes, unless it is a plain lowercase one.
fn quote_ident(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_url_wins_and_a_blank_one_counts_as_none() {
        assert_eq!(
            configured_url(Some("postgres://h/d")).as_deref(),
            Some("postgres://h/d")
        );
        assert_eq!(configured_url(Some("  ")), None);
    }

    #[test]
    fn identifiers_are_quoted_unless_plain() {
        assert_eq!(quote_ident("todo_dev"), "todo_dev");
        assert_eq!(quote_ident("Todo"), "\"Todo\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
