//! [`DbConfig`]: where the database is and how the pool talks to it.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DATABASE_URL` | PostgreSQL URL (`postgres://user:password@host:5432/db?sslmode=require`) or key=value connection string | required |
//! | `DATABASE_POOL_SIZE` | maximum connections in the pool | 10 |
//! | `DATABASE_MIN_IDLE` | connections kept open while idle | the pool size |
//! | `DATABASE_CONNECT_TIMEOUT_MS` | how long to wait for a connection (opening one, or a free one from the pool) | 5000 |
//! | `DATABASE_STATEMENT_TIMEOUT_MS` | server-side `statement_timeout` for every statement; 0 turns it off | 30000 |
//! | `DATABASE_APPLICATION_NAME` | `application_name` shown in `pg_stat_activity` | `todo-store` |
//! | `DATABASE_PGBOUNCER` | `true` behind a transaction-mode pooler (PgBouncer, Neon's `-pooler` endpoint): no prepared statements, no session `SET`s | `false` |
//! | `DATABASE_REPLICA_URLS` | comma-separated URLs of read replicas, for [`crate::replica::ReplicaRouter`] | none |
//!
//! `DbConfig::from_env` reads a `.env` file first (variables already set win).

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};

/// Variable names read by [`DbConfig::from_env`].
pub mod vars {
    /// PostgreSQL connection URL (required).
    pub const DATABASE_URL: &str = "DATABASE_URL";
    /// Maximum number of pooled connections.
    pub const POOL_SIZE: &str = "DATABASE_POOL_SIZE";
    /// Connections kept open while idle.
    pub const MIN_IDLE: &str = "DATABASE_MIN_IDLE";
    /// Connection (and checkout) timeout in milliseconds.
    pub const CONNECT_TIMEOUT_MS: &str = "DATABASE_CONNECT_TIMEOUT_MS";
    /// Statement timeout in milliseconds; 0 disables it.
    pub const STATEMENT_TIMEOUT_MS: &str = "DATABASE_STATEMENT_TIMEOUT_MS";
    /// `application_name` of each connection.
    pub const APPLICATION_NAME: &str = "DATABASE_APPLICATION_NAME";
    /// `true` when connecting through a transaction-mode pooler.
    pub const PGBOUNCER: &str = "DATABASE_PGBOUNCER";
    /// Comma-separated read-replica URLs.
    pub const REPLICA_URLS: &str = "DATABASE_REPLICA_URLS";
}

/// How to reach the database and how to size the pool.
///
/// Its `Debug` output hides the password of the URL.
///
/// ```
/// use std::time::Duration;
/// use todo_store::DbConfig;
///
/// let config = DbConfig::new("postgres://app:s3cret@localhost/todo")
///     .pool_size(20)
///     .connection_timeout(Duration::from_secs(2))
///     .statement_timeout(Some(Duration::from_secs(10)));
/// assert_eq!(config.max_pool_size(), 20);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(try_from = "crate::serde_support::DbConfigSource")
)]
pub struct DbConfig {
    url: String,
    pool_size: u32,
    min_idle: Option<u32>,
    connection_timeout: Duration,
    statement_timeout: Option<Duration>,
    application_name: String,
    pgbouncer: bool,
    replica_urls: Vec<String>,
}

impl DbConfig {
    /// Default maximum pool size.
    pub const DEFAULT_POOL_SIZE: u32 = 10;
    /// Default connection timeout.
    pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default statement timeout.
    pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default `application_name`.
    pub const DEFAULT_APPLICATION_NAME: &'static str = "todo-store";

    /// A configuration for `url` with the defaults for everything else.
    pub fn new(url: impl Into<String>) -> Self {
        DbConfig {
            url: url.into(),
            pool_size: Self::DEFAULT_POOL_SIZE,
            min_idle: None,
            connection_timeout: Self::DEFAULT_CONNECTION_TIMEOUT,
            statement_timeout: Some(Self::DEFAULT_STATEMENT_TIMEOUT),
            application_name: Self::DEFAULT_APPLICATION_NAME.to_owned(),
            pgbouncer: false,
            replica_urls: Vec::new(),
        }
    }

    /// Reads `.env` (if present), then the variables in the [module docs](self).
    ///
    /// # Errors
    /// [`Error::Config`] when `DATABASE_URL` is missing, `.env` is malformed, or a
    /// number does not parse.
    pub fn from_env() -> Result<Self> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(Error::Config(format!("could not read .env: {e}"))),
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds a configuration from any variable source (the environment in
    /// [`DbConfig::from_env`]; a map in tests).
    ///
    /// # Errors
    /// As [`DbConfig::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let url = lookup(vars::DATABASE_URL)
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| {
                Error::Config(
                    "DATABASE_URL is not set: set it in the environment or in a .env file, \
                     e.g. DATABASE_URL=postgres://user:password@localhost:5432/todo"
                        .into(),
                )
            })?;
        let mut config = DbConfig::new(url);
        if let Some(n) = parse_var(&lookup, vars::POOL_SIZE)? {
            config = config.pool_size(n);
        }
        if let Some(n) = parse_var(&lookup, vars::MIN_IDLE)? {
            config = config.min_idle(Some(n));
        }
        if let Some(ms) = parse_var(&lookup, vars::CONNECT_TIMEOUT_MS)? {
            config = config.connection_timeout(Duration::from_millis(ms));
        }
        if let Some(ms) = parse_var::<u64>(&lookup, vars::STATEMENT_TIMEOUT_MS)? {
            config = config.statement_timeout((ms > 0).then(|| Duration::from_millis(ms)));
        }
        if let Some(name) = lookup(vars::APPLICATION_NAME) {
            config = config.application_name(name);
        }
        if let Some(raw) = lookup(vars::PGBOUNCER) {
            config = config.pgbouncer(parse_bool(vars::PGBOUNCER, &raw)?);
        }
        if let Some(raw) = lookup(vars::REPLICA_URLS) {
            config = config.replica_urls(raw.split(',').map(str::trim).filter(|u| !u.is_empty()));
        }
        config.validate()?;
        Ok(config)
    }

    /// Sets the maximum number of pooled connections (at least 1).
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = size;
        self
    }

    /// Sets how many connections the pool keeps open while idle (`None`: the pool size).
    pub fn min_idle(mut self, min_idle: Option<u32>) -> Self {
        self.min_idle = min_idle;
        self
    }

    /// Sets how long to wait for a connection: opening one, or a free one from the pool.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Sets the server-side `statement_timeout` (`None` turns it off).
    pub fn statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// Sets the `application_name` each connection reports to the server.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// Connect through a transaction-mode pooler (PgBouncer with `pool_mode =
    /// transaction`, Neon's pooled endpoint): statements are sent unnamed instead of
    /// prepared (a prepared statement lives on one server connection, and the pooler
    /// hands each transaction another), and `statement_timeout` is not `SET` on
    /// connections (it would stick to a server connection other clients then use); set
    /// it for the role instead: `ALTER ROLE app SET statement_timeout = '30s'`.
    /// `application_name`, the time zone and the encoding are tracked by PgBouncer and
    /// stay correct.
    pub fn pgbouncer(mut self, on: bool) -> Self {
        self.pgbouncer = on;
        self
    }

    /// Adds the URL of a read replica (see [`crate::replica::ReplicaRouter`]).
    pub fn replica_url(mut self, url: impl Into<String>) -> Self {
        self.replica_urls.push(url.into());
        self
    }

    /// Replaces the read-replica URLs.
    pub fn replica_urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.replica_urls = urls.into_iter().map(Into::into).collect();
        self
    }

    /// Whether the configuration is for a transaction-mode pooler.
    pub fn behind_pgbouncer(&self) -> bool {
        self.pgbouncer
    }

    /// The read-replica URLs, passwords included: never log them.
    pub fn replica_url_list(&self) -> &[String] {
        &self.replica_urls
    }

    /// The same configuration for `url` (e.g. a replica's), other settings kept.
    pub fn with_url(&self, url: impl Into<String>) -> Self {
        DbConfig {
            url: url.into(),
            replica_urls: Vec::new(),
            ..self.clone()
        }
    }

    /// The connection URL, password included: hand it to a driver, never to a log.
    /// [`DbConfig::redacted_url`] is the printable form.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// The maximum number of pooled connections.
    pub fn max_pool_size(&self) -> u32 {
        self.pool_size
    }

    /// Connections kept open while idle (`None`: the pool size).
    pub fn min_idle_connections(&self) -> Option<u32> {
        self.min_idle
    }

    /// How long to wait for a connection.
    pub fn connection_timeout_duration(&self) -> Duration {
        self.connection_timeout
    }

    /// The server-side statement timeout, if any.
    pub fn statement_timeout_duration(&self) -> Option<Duration> {
        self.statement_timeout
    }

    /// The `application_name` of each connection.
    pub fn application_name_str(&self) -> &str {
        &self.application_name
    }

    /// Checks the values against each other.
    ///
    /// # Errors
    /// [`Error::Config`] for a pool size of 0, a minimum idle count above the pool size,
    /// a zero connection timeout or an application name with a NUL character.
    pub fn validate(&self) -> Result<()> {
        if self.pool_size == 0 {
            return Err(Error::Config(format!(
                "{} must be at least 1",
                vars::POOL_SIZE
            )));
        }
        if self.min_idle.is_some_and(|m| m > self.pool_size) {
            return Err(Error::Config(format!(
                "{} ({}) must not exceed {} ({})",
                vars::MIN_IDLE,
                self.min_idle.unwrap_or_default(),
                vars::POOL_SIZE,
                self.pool_size
            )));
        }
        if self.connection_timeout.is_zero() {
            return Err(Error::Config(format!(
                "{} must be greater than 0",
                vars::CONNECT_TIMEOUT_MS
            )));
        }
        if self.application_name.contains('\0')
            || self.url.contains('\0')
            || self.replica_urls.iter().any(|u| u.contains('\0'))
        {
            return Err(Error::Config(
                "the URL and application name must not contain NUL characters".into(),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("url", &self.redacted_url())
            .field("pool_size", &self.pool_size)
            .field("min_idle", &self.min_idle)
            .field("connection_timeout", &self.connection_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("application_name", &self.application_name)
            .field("pgbouncer", &self.pgbouncer)
            .field(
                "replica_urls",
                &self
                    .replica_urls
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn parse_bool(name: &str, raw: &str) -> Result<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::Config(format!(
            "{name}={raw:?} must be true or false"
        ))),
    }
}

fn parse_var<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<T>>
where
    T::Err: fmt::Display,
{
    match lookup(name) {
        None => Ok(None),
        Some(raw) if raw.trim().is_empty() => Ok(None),
        Some(raw) => raw.trim().parse().map(Some).map_err(|e| {
            Error::Config(format!(
                "{name}={raw:?} is not a valid non-negative number: {e}"
            ))
        }),
    }
}

/// The URL or key=value connection string with its password (and any other value
/// libpq treats as secret) replaced by `***`, rebuilt from libpq's own reading of the
/// string; a string libpq cannot parse prints as a placeholder naming libpq's reason.
///
/// ```
/// use todo_store::config::redact_url;
/// assert_eq!(redact_url("postgres://app:pw@db:5432/todo"), "postgres://app:***@db:5432/todo");
/// // libpq reads `#` as part of a URL's password, and `\ ` as a space in a value.
/// assert_eq!(redact_url("postgres://app:p#w@db/todo"), "postgres://app:***@db/todo");
/// assert_eq!(redact_url(r"host=db password=p\ w"), "password=*** host=db");
/// ```
pub fn redact_url(url: &str) -> String {
    crate::conninfo::redact(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lookup_reads_every_variable() {
        let vars = [
            ("DATABASE_URL", "postgres://a:b@h/d"),
            ("DATABASE_POOL_SIZE", "7"),
            ("DATABASE_MIN_IDLE", "2"),
            ("DATABASE_CONNECT_TIMEOUT_MS", "1500"),
            ("DATABASE_STATEMENT_TIMEOUT_MS", "0"),
            ("DATABASE_APPLICATION_NAME", "worker"),
            ("DATABASE_PGBOUNCER", "true"),
            (
                "DATABASE_REPLICA_URLS",
                "postgres://r:pw1@a/d, postgres://r:pw2@b/d",
            ),
        ];
        let config = DbConfig::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        assert_eq!(config.max_pool_size(), 7);
        assert_eq!(config.min_idle_connections(), Some(2));
        assert_eq!(
            config.connection_timeout_duration(),
            Duration::from_millis(1500)
        );
        assert_eq!(config.statement_timeout_duration(), None);
        assert_eq!(config.application_name_str(), "worker");
        assert!(config.behind_pgbouncer());
        assert_eq!(config.replica_url_list().len(), 2);
        let debug = format!("{config:?}");
        assert!(!debug.contains("pw1") && !debug.contains("pw2"), "{debug}");
    }

    #[test]
    fn missing_url_and_bad_numbers_are_config_errors() {
        let err = DbConfig::from_lookup(|_| None).unwrap_err();
        assert!(
            matches!(err, Error::Config(ref m) if m.contains("DATABASE_URL")),
            "{err}"
        );
        let err = DbConfig::from_lookup(|name| match name {
            "DATABASE_URL" => Some("postgres://h/d".into()),
            "DATABASE_POOL_SIZE" => Some("many".into()),
            _ => None,
        })
        .unwrap_err();
        assert!(err.to_string().contains("DATABASE_POOL_SIZE"), "{err}");
    }
}
