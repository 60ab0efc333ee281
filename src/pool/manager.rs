//! [`PgConnectionManager`]: how the pool opens a connection (the URL with the network
//! timeouts added, secrets kept out of its errors), sets it up ([`setup_connection`]),
//! and decides cheaply whether it may be handed out again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use diesel::connection::{CacheSize, SimpleConnection};
use diesel::r2d2::{ManageConnection, R2D2Connection};
use diesel::result::ConnectionError;
use diesel::{Connection, PgConnection, QueryResult};

use super::health::{health, ConnectionHealth, PoolLink, Reopen};
use super::schema_epoch::SchemaEpoch;
use super::RECENTLY_USED;
use crate::config::DbConfig;
use crate::conninfo::{self, Conninfo};
use crate::error::Result;

/// Opens PostgreSQL connections for the pool, sets each one up, and decides cheaply
/// whether a connection may be handed out again (see the [module docs](crate::pool)).
///
/// It is the connection manager of [`PgPool`](super::PgPool), named in the type of
/// [`PoolOptions::r2d2`](super::PoolOptions::r2d2)'s builder; pools on it are built by
/// [`PoolOptions`](super::PoolOptions) only, which gives it its counters.
pub struct PgConnectionManager {
    url: String,
    /// libpq's reading of `url` (to remove its secrets from connection errors exactly),
    /// or its printable reason for refusing it.
    reading: Result<Conninfo, String>,
    session: SessionSettings,
    /// Connections rolled back on return (see [`PoolStats::rolled_back_on_return`]).
    ///
    /// [`PoolStats::rolled_back_on_return`]: super::PoolStats::rolled_back_on_return
    pub(super) rolled_back_on_return: Arc<AtomicU64>,
    /// Connections retired because their server is no longer a writable primary (see
    /// [`PoolStats::retired_not_primary`]).
    ///
    /// [`PoolStats::retired_not_primary`]: super::PoolStats::retired_not_primary
    pub(super) retired_not_primary: Arc<AtomicU64>,
    /// What the pool is for.
    serves: Serves,
    /// Statements its connections sent (see [`PoolStats::statements`]).
    ///
    /// [`PoolStats::statements`]: super::PoolStats::statements
    pub(super) statements: Arc<AtomicU64>,
    /// The caller's customizer ([`PoolOptions::customizer`](super::PoolOptions::customizer)),
    /// run here, after the crate's setup, so that a connection opened outside r2d2 (the
    /// one renewed after a migration) gets it too.
    pub(super) customizer: Option<super::options::Customizer>,
}

/// What a pool's connections are for: it decides the `target_session_attrs` a URL of
/// several hosts gets when it sets none, and whether a connection whose server refused
/// a write as read-only is retired (see the [module docs](crate::pool)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Serves {
    /// The primary's pool: `read-write`; a connection to a server that is no longer
    /// a writable primary is retired.
    Writes,
    /// A pool of read replicas: `prefer-standby`; read-only servers are expected.
    Reads,
}

impl Serves {
    /// The `target_session_attrs` of a URL of several hosts that sets none.
    fn session_attrs(self) -> &'static str {
        match self {
            Serves::Writes => "read-write",
            Serves::Reads => "prefer-standby",
        }
    }
}

impl PgConnectionManager {
    /// A manager for `config`'s database, for a pool that serves `serves`.
    pub(super) fn new(config: &DbConfig, serves: Serves) -> Self {
        let url = connection_string(config, serves);
        PgConnectionManager {
            reading: Conninfo::parse(&url),
            url,
            session: SessionSettings::from_config(config),
            rolled_back_on_return: Arc::default(),
            retired_not_primary: Arc::default(),
            serves,
            statements: Arc::default(),
            customizer: None,
        }
    }

    /// libpq's reading of the URL, when it can read it.
    pub(super) fn conninfo(&self) -> Option<&Conninfo> {
        self.reading.as_ref().ok()
    }
}

/// Opens a connection to `url`, whose libpq reading is `reading`
/// ([`Conninfo::parse`]), with an error whose text holds no secret of `url`: every
/// connection the crate opens from a configured URL (the pools, TestDb) goes through
/// here.
///
/// A string libpq cannot parse is never handed to it: libpq would refuse it with a
/// message that quotes the string, password and all. The error is the printable reason
/// of the parse instead. For a string it can parse, the secrets libpq read from it are
/// removed from its connection errors exactly ([`conninfo::scrub`]).
pub(crate) fn establish(
    url: &str,
    reading: &std::result::Result<Conninfo, String>,
) -> std::result::Result<PgConnection, ConnectionError> {
    let info = match reading {
        Ok(info) => info,
        Err(reason) => {
            return Err(ConnectionError::BadConnection(format!(
                "libpq cannot parse the connection string ({reason}); check its syntax \
                 (percent-encode special characters of a URL's password)"
            )))
        }
    };
    PgConnection::establish(url).map_err(|err| {
        let text = err.to_string();
        let clean = conninfo::scrub(&text, Some(info));
        if clean == text {
            err
        } else {
            ConnectionError::BadConnection(clean)
        }
    })
}

impl PgConnectionManager {
    /// Opens a connection as [`ManageConnection::connect`] does, for
    /// [`super::health::renew_after_schema_change`].
    fn reopen(&self) -> Reopen {
        let manager = PgConnectionManager {
            url: self.url.clone(),
            reading: self.reading.clone(),
            session: self.session.clone(),
            rolled_back_on_return: Arc::clone(&self.rolled_back_on_return),
            retired_not_primary: Arc::clone(&self.retired_not_primary),
            serves: self.serves,
            statements: Arc::clone(&self.statements),
            customizer: self.customizer.clone(),
        };
        Arc::new(move || {
            manager.connect().map_err(|e| crate::Error::Connection {
                target: crate::config::redact_url(&manager.url),
                message: e.to_string(),
            })
        })
    }
}

impl std::fmt::Debug for PgConnectionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnectionManager")
            .field("url", &crate::config::redact_url(&self.url))
            .finish()
    }
}

impl ManageConnection for PgConnectionManager {
    type Connection = PgConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> std::result::Result<PgConnection, Self::Error> {
        let mut conn =
            establish(&self.url, &self.reading).map_err(diesel::r2d2::Error::ConnectionError)?;
        self.session
            .apply(
                &mut conn,
                Some(PoolLink {
                    epoch: SchemaEpoch::of(self.conninfo()),
                    reopen: self.reopen(),
                    statements: Arc::clone(&self.statements),
                    serves_writes: self.serves == Serves::Writes,
                }),
            )
            .map_err(diesel::r2d2::Error::QueryError)?;
        if let Some(customizer) = &self.customizer {
            customizer.on_acquire(&mut conn)?;
        }
        Ok(conn)
    }

    /// A connection whose caches a migration made stale is not handed out: r2d2
    /// closes it and opens another.
    fn is_valid(&self, conn: &mut PgConnection) -> std::result::Result<(), Self::Error> {
        if super::health::is_stale(conn) {
            return Err(diesel::r2d2::Error::QueryError(
                diesel::result::Error::QueryBuilderError(
                    "the schema changed since this connection was opened".into(),
                ),
            ));
        }
        let recently_used =
            health(conn).is_some_and(|h| !h.broken && h.returned.elapsed() < RECENTLY_USED);
        if recently_used {
            return Ok(());
        }
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    /// Whether `conn` must be discarded instead of going back to the pool: its server
    /// is gone, the thread is panicking, or diesel's transaction manager is in a
    /// transaction or an error. A connection on which the caller may have opened a
    /// transaction with plain SQL (`BEGIN` through `sql_query` or `batch_execute`,
    /// which diesel does not track) is rolled back first: one `ROLLBACK` round trip,
    /// which ends that transaction, failed or not, and is a no-op otherwise; it is
    /// discarded if that fails. No connection goes back to the pool inside a
    /// transaction. Nor does one whose server is no longer a writable primary (see
    /// `retire_if_not_primary` in `pool::health`).
    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        let (broken, roll_back) = match health(conn) {
            Some(h) => {
                h.returned = Instant::now();
                (h.broken, std::mem::take(&mut h.may_be_in_transaction))
            }
            None => (false, false),
        };
        if broken || std::thread::panicking() || conn.is_broken() || super::health::is_stale(conn) {
            self.count_not_primary(conn);
            return true;
        }
        if roll_back {
            self.rolled_back_on_return.fetch_add(1, Ordering::Relaxed);
            if conn.batch_execute("ROLLBACK").is_err() {
                return true;
            }
        }
        self.retires_not_primary(conn)
    }
}

impl PgConnectionManager {
    /// Whether `conn`, coming back to the pool, is retired because its server refused a
    /// write as read-only and is no longer a writable primary (one round trip to ask,
    /// only after such a refusal); counted.
    fn retires_not_primary(&self, conn: &mut PgConnection) -> bool {
        let refused = health(conn).is_some_and(|h| h.refused_as_read_only);
        if refused && super::health::retire_if_not_primary(conn) {
            self.count_not_primary(conn);
            return true;
        }
        false
    }

    /// Counts `conn`, being discarded, in [`super::PoolStats::retired_not_primary`]
    /// if its server is no longer a writable primary.
    fn count_not_primary(&self, conn: &mut PgConnection) {
        if health(conn).is_some_and(|h| h.not_primary) {
            self.retired_not_primary.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What is set on every new connection, in one round trip.
#[derive(Debug, Clone)]
struct SessionSettings {
    sql: String,
    /// Behind a transaction-mode pooler: no named prepared statements.
    unnamed_statements: bool,
}

impl SessionSettings {
    fn from_config(config: &DbConfig) -> Self {
        let name = config.get_application_name().replace('\'', "''");
        // PgBouncer tracks application_name per client; statement_timeout it does not,
        // so behind it a SET would stick to a server connection others then use.
        let sql = if config.get_pgbouncer() {
            format!("SET application_name = '{name}'")
        } else {
            let timeout_ms = config
                .get_statement_timeout()
                .map_or(0, |d| d.as_millis().max(1));
            format!("SET statement_timeout = {timeout_ms}; SET application_name = '{name}'")
        };
        SessionSettings {
            sql,
            unnamed_statements: config.get_pgbouncer(),
        }
    }

    /// Sets `conn` up: its statement cache, the session settings (one round trip) and
    /// the health notes in its instrumentation slot, chained to diesel's default
    /// instrumentation.
    fn apply(&self, conn: &mut PgConnection, pooled: Option<PoolLink>) -> QueryResult<()> {
        if self.unnamed_statements {
            conn.set_prepared_statement_cache_size(CacheSize::Disabled);
        }
        conn.batch_execute(&self.sql)?;
        conn.set_instrumentation(ConnectionHealth::chained_to(
            diesel::connection::get_default_instrumentation(),
            pooled,
        ));
        Ok(())
    }
}

/// Applies the crate's per-connection setup to `conn`, a connection of a pool that is
/// not the crate's (your own r2d2 pool's `CustomizeConnection`, deadpool-diesel's
/// post-create hook): `statement_timeout` and `application_name` from `config` (only
/// `application_name` behind PgBouncer, with the statement cache off), and the
/// instrumentation that notes lost connections for [`has_lost_server`](super::has_lost_server) and traces each
/// statement at debug level. Call it on a fresh connection: it takes diesel's one
/// instrumentation slot, passing every event on to diesel's default instrumentation
/// (`diesel::connection::set_default_instrumentation`) if the application set one; an
/// instrumentation set on the connection itself before this call is replaced, and one
/// set after it replaces the crate's (the crate then asks the server instead, see
/// [`has_lost_server`](super::has_lost_server)).
///
/// ```no_run
/// use diesel::r2d2::CustomizeConnection;
/// use todo_store::{DbConfig, PgConnection};
///
/// #[derive(Debug)]
/// struct Setup(DbConfig);
///
/// impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for Setup {
///     fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
///         todo_store::pool::setup_connection(conn, &self.0)
///             .map_err(|e| diesel::r2d2::Error::QueryError(diesel::result::Error::QueryBuilderError(e.into())))
///     }
/// }
/// ```
///
/// # Errors
/// [`Error::Database`](crate::Error::Database) when the server refuses the settings.
pub fn setup_connection(conn: &mut PgConnection, config: &DbConfig) -> Result<()> {
    Ok(SessionSettings::from_config(config).apply(conn, None)?)
}

/// The string each connection of `config`'s pool is opened with: the URL, plus the
/// network timeouts of [`DbConfig::libpq_parameters`] that it does not set itself (the
/// URL wins; `connect_timeout` is left to libpq when `PGCONNECT_TIMEOUT` is set), plus,
/// for a URL of several hosts without `target_session_attrs`, the one the pool
/// `serves` needs ([`Serves`]). A URL libpq cannot parse is kept as it is: opening it
/// fails with libpq's own reason.
fn connection_string(config: &DbConfig, serves: Serves) -> String {
    let url =
        conninfo::with_session_attrs_for_several_hosts(config.get_url(), serves.session_attrs());
    let from_env = std::env::var_os("PGCONNECT_TIMEOUT").is_some();
    let params = config.libpq_parameters();
    let defaults: Vec<(&str, &str)> = params
        .iter()
        .filter(|(keyword, _)| !(from_env && *keyword == "connect_timeout"))
        .map(|(keyword, value)| (*keyword, value.as_str()))
        .collect();
    conninfo::with_defaults(&url, &defaults).unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_get_the_network_timeouts_unless_the_url_sets_them() {
        let config = DbConfig::new("postgres://app:pw@db/todo?keepalives_idle=30");
        let url = connection_string(&config, Serves::Writes);
        let info = Conninfo::parse(&url).unwrap();
        assert_eq!(info.get("keepalives_idle"), Some("30"), "{url}");
        assert_eq!(info.get("tcp_user_timeout"), Some("20000"), "{url}");
        assert_eq!(info.get("keepalives_count"), Some("2"), "{url}");
        assert_eq!(info.get("password"), Some("pw"), "{url}");
        let manager = PgConnectionManager::new(&config, Serves::Writes);
        assert_eq!(manager.url, url);
        assert!(!format!("{manager:?}").contains("pw"));
    }

    #[test]
    fn several_hosts_ask_for_a_primary_for_writes_and_prefer_standbys_for_reads() {
        let config = DbConfig::new("postgres://app:pw@h1:5432,h2:5433/todo");
        let attrs = |serves| {
            Conninfo::parse(&connection_string(&config, serves))
                .unwrap()
                .get("target_session_attrs")
                .map(str::to_owned)
        };
        assert_eq!(attrs(Serves::Writes).as_deref(), Some("read-write"));
        assert_eq!(attrs(Serves::Reads).as_deref(), Some("prefer-standby"));
        // An explicit value is kept, and one host gets nothing.
        let any = DbConfig::new("host=h1,h2 target_session_attrs=any password=pw");
        let url = connection_string(&any, Serves::Writes);
        assert_eq!(
            Conninfo::parse(&url).unwrap().get("target_session_attrs"),
            Some("any")
        );
        let one = connection_string(&DbConfig::new("postgres://h1/todo"), Serves::Writes);
        assert_eq!(
            Conninfo::parse(&one).unwrap().get("target_session_attrs"),
            None
        );
    }

    #[test]
    fn a_string_libpq_cannot_parse_never_reaches_it_nor_the_error() {
        // PoolOptions refuses it in validate(); the manager refuses it too.
        let manager = PgConnectionManager::new(
            &DbConfig::new("postgres://app:s3cr%zzet@db/todo"),
            Serves::Writes,
        );
        let text = format!("{manager:?}");
        assert!(!text.contains("s3cr"), "{text}");
        let err = manager.connect().map(drop).unwrap_err().to_string();
        assert!(
            !err.contains("s3cr") && err.contains("libpq cannot parse"),
            "{err}"
        );
    }
}
