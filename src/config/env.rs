//! Reading a [`DbConfig`] from variables: their names ([`vars`]), the parsing of
//! [`DbConfig::from_env`] and [`DbConfig::from_lookup`], and the `.env` file, read
//! once and never written into the process environment.

use std::time::Duration;

use super::DbConfig;
use crate::error::{Error, Result};

/// The variables of the `.env` file of the current directory or the nearest one above
/// it (as dotenvy finds it), read once and never written into the process environment:
/// changing the environment of a running, multi-threaded process is a data race.
///
/// # Errors
/// [`Error::Config`] when the file exists but cannot be read or parsed.
fn dotenv_file() -> Result<&'static std::collections::HashMap<String, String>> {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static DOTENV: OnceLock<std::result::Result<HashMap<String, String>, String>> = OnceLock::new();
    let loaded = DOTENV.get_or_init(|| {
        let iter = match dotenvy::dotenv_iter() {
            Ok(iter) => iter,
            Err(e) if e.not_found() => return Ok(HashMap::new()),
            Err(e) => return Err(format!("could not read .env: {e}")),
        };
        let mut vars = HashMap::new();
        for item in iter {
            let (key, value) = item.map_err(|e| format!("could not read .env: {e}"))?;
            // The first declaration wins, as when dotenvy loads the file.
            vars.entry(key).or_insert(value);
        }
        Ok(vars)
    });
    loaded.as_ref().map_err(|e| Error::Config(e.clone().into()))
}

/// `name` from the environment, else from the `.env` file (never written into the
/// environment); `None` when neither has it or the file cannot be read.
#[cfg(any(feature = "testing", feature = "better-auth"))]
pub(crate) fn env_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .or_else(|| dotenv_file().ok().and_then(|vars| vars.get(name).cloned()))
}

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
    /// libpq `tcp_user_timeout` in milliseconds; 0 leaves it to the OS.
    pub const TCP_USER_TIMEOUT_MS: &str = "DATABASE_TCP_USER_TIMEOUT_MS";
    /// libpq `keepalives_idle` in seconds; 0 turns TCP keepalives off.
    pub const KEEPALIVES_IDLE_S: &str = "DATABASE_KEEPALIVES_IDLE_S";
    /// libpq `keepalives_interval` in seconds.
    pub const KEEPALIVES_INTERVAL_S: &str = "DATABASE_KEEPALIVES_INTERVAL_S";
    /// libpq `keepalives_count`.
    pub const KEEPALIVES_COUNT: &str = "DATABASE_KEEPALIVES_COUNT";
}

impl DbConfig {
    /// Reads `.env` (if present), then the variables in the [module docs](crate::config).
    ///
    /// # Errors
    /// [`Error::Config`] when `DATABASE_URL` is missing, `.env` is malformed, or a
    /// number does not parse.
    pub fn from_env() -> Result<Self> {
        let dotenv = dotenv_file()?;
        Self::from_lookup(|name| {
            std::env::var(name)
                .ok()
                .or_else(|| dotenv.get(name).cloned())
        })
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
        if let Some(ms) = parse_var::<u64>(&lookup, vars::TCP_USER_TIMEOUT_MS)? {
            config = config.tcp_user_timeout((ms > 0).then(|| Duration::from_millis(ms)));
        }
        if let Some(s) = parse_var::<u64>(&lookup, vars::KEEPALIVES_IDLE_S)? {
            config = config.keepalives_idle((s > 0).then(|| Duration::from_secs(s)));
        }
        if let Some(s) = parse_var(&lookup, vars::KEEPALIVES_INTERVAL_S)? {
            config = config.keepalives_interval(Duration::from_secs(s));
        }
        if let Some(n) = parse_var(&lookup, vars::KEEPALIVES_COUNT)? {
            config = config.keepalives_count(n);
        }
        config.validate()?;
        Ok(config)
    }
}

fn parse_bool(name: &str, raw: &str) -> Result<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::Config(
            format!("{name}={raw:?} must be true or false").into(),
        )),
    }
}

fn parse_var<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match lookup(name) {
        None => Ok(None),
        Some(raw) if raw.trim().is_empty() => Ok(None),
        Some(raw) => raw.trim().parse().map(Some).map_err(|e| {
            Error::Config(crate::error::Detail::with_source(
                format!("{name}={raw:?} is not a valid non-negative number"),
                e,
            ))
        }),
    }
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
            ("DATABASE_TCP_USER_TIMEOUT_MS", "7000"),
            ("DATABASE_KEEPALIVES_IDLE_S", "3"),
            ("DATABASE_KEEPALIVES_INTERVAL_S", "1"),
            ("DATABASE_KEEPALIVES_COUNT", "4"),
        ];
        let config = DbConfig::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        assert_eq!(config.get_pool_size(), 7);
        assert_eq!(config.get_min_idle(), Some(2));
        assert_eq!(config.get_connection_timeout(), Duration::from_millis(1500));
        assert_eq!(config.get_statement_timeout(), None);
        assert_eq!(config.get_application_name(), "worker");
        assert!(config.get_pgbouncer());
        assert_eq!(config.get_replica_urls().len(), 2);
        assert_eq!(config.get_tcp_user_timeout(), Some(Duration::from_secs(7)));
        assert_eq!(config.get_keepalives_idle(), Some(Duration::from_secs(3)));
        assert_eq!(config.get_keepalives_interval(), Duration::from_secs(1));
        assert_eq!(config.get_keepalives_count(), 4);
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

    #[test]
    fn zero_turns_the_tcp_settings_off_and_nonsense_is_a_config_error() {
        let lookup = |extra: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                if name == "DATABASE_URL" {
                    return Some("postgres://h/d".to_owned());
                }
                extra
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let off = DbConfig::from_lookup(lookup(&[
            ("DATABASE_TCP_USER_TIMEOUT_MS", "0"),
            ("DATABASE_KEEPALIVES_IDLE_S", "0"),
        ]))
        .unwrap();
        let params = off.libpq_parameters();
        assert!(
            params.contains(&("keepalives", "0".to_owned())),
            "{params:?}"
        );
        assert!(params
            .iter()
            .all(|(k, _)| *k != "tcp_user_timeout" && *k != "keepalives_idle"));
        let err = DbConfig::from_lookup(lookup(&[("DATABASE_KEEPALIVES_COUNT", "0")])).unwrap_err();
        assert!(
            err.to_string().contains("DATABASE_KEEPALIVES_COUNT"),
            "{err}"
        );
        let err = DbConfig::from_lookup(lookup(&[("DATABASE_KEEPALIVES_INTERVAL_S", "soon")]))
            .unwrap_err();
        assert!(
            err.to_string().contains("DATABASE_KEEPALIVES_INTERVAL_S"),
            "{err}"
        );
    }
}
