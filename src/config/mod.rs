//! [`DbConfig`]: where the database is and how the pool talks to it.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DATABASE_URL` | PostgreSQL URL (`postgres://user:password@host:5432/db?sslmode=require`) or key=value connection string; several hosts for a cluster (see *Several hosts* below) | required |
//! | `DATABASE_POOL_SIZE` | maximum connections in the pool | 10 |
//! | `DATABASE_MIN_IDLE` | connections kept open while idle | the pool size |
//! | `DATABASE_CONNECT_TIMEOUT_MS` | how long to wait for a connection (opening one, or a free one from the pool) | 5000 |
//! | `DATABASE_STATEMENT_TIMEOUT_MS` | server-side `statement_timeout` for every statement; 0 turns it off | 30000 |
//! | `DATABASE_APPLICATION_NAME` | `application_name` shown in `pg_stat_activity` | `todo-store` |
//! | `DATABASE_PGBOUNCER` | `true` behind a transaction-mode pooler (PgBouncer, Neon's `-pooler` endpoint): no prepared statements, no session `SET`s (see *Behind a connection pooler* below) | `false` |
//! | `DATABASE_REPLICA_URLS` | comma-separated URLs of read replicas, for [`crate::replica::ReplicaRouter`] | none |
//! | `DATABASE_TCP_USER_TIMEOUT_MS` | libpq `tcp_user_timeout`: how long sent data may go unacknowledged before the connection is dropped; 0 leaves it to the OS (about 15 min on Linux) | 20000 |
//! | `DATABASE_KEEPALIVES_IDLE_S` | libpq `keepalives_idle`: seconds of silence before the first TCP keepalive probe; 0 turns keepalives off | 10 |
//! | `DATABASE_KEEPALIVES_INTERVAL_S` | libpq `keepalives_interval`: seconds between unanswered probes | 5 |
//! | `DATABASE_KEEPALIVES_COUNT` | libpq `keepalives_count`: unanswered probes before the connection is dropped | 2 |
//!
//! `DbConfig::from_env` also reads a `.env` file (variables already set win), without
//! writing it into the process environment. This is the one table of the variables
//! (a test checks it against the names [`vars`] holds). Tests' own server,
//! `TEST_DATABASE_URL`, is read by `todo_store::testing::TestDb` (feature `testing`), not here.
//!
//! ## One name per setting: `x(value)` sets it, `get_x()` reads it
//!
//! Every setting of [`DbConfig`] has one name stem: [`DbConfig::pool_size`] sets it,
//! [`DbConfig::get_pool_size`] reads it, [`DbConfig::DEFAULT_POOL_SIZE`] is its
//! default; likewise `statement_timeout`, `keepalives_count`, `url` and the rest. The
//! same holds for the pool's builder ([`crate::PoolOptions::lazy`] and
//! [`crate::PoolOptions::get_lazy`]) and the query builders
//! ([`crate::TaskQuery::limit`], [`crate::TaskQuery::DEFAULT_LIMIT`],
//! [`crate::TaskQuery::MAX_LIMIT`], and the same three on [`crate::UserQuery`]).
//!
//! This is the convention of sqlx's `PoolOptions` (`max_connections(n)`,
//! `get_max_connections()`) and of the standard library's `std::process::Command`
//! (`current_dir(dir)`, `get_current_dir()`), for the same reason: a `DbConfig` is
//! both the builder and the built value (setters chain on the value itself, which is
//! then read, cloned and compared), so a getter cannot take its setter's name, and
//! `get_` says which of the two a call is. r2d2's convention (setters on a `Builder`,
//! getters of the same name on the built `Pool`) would need a second type, a
//! `DbConfigBuilder`, that adds nothing to a plain value. Values derived from the
//! settings keep plain names ([`DbConfig::redacted_url`],
//! [`DbConfig::libpq_parameters`]).
//!
//! The environment variables and the serde fields (feature `serde`) keep their names:
//! the serde fields are the variables' names without `DATABASE_`, in lower case
//! (`pool_size`, `connect_timeout_ms`, `keepalives_count`, ...).
//!
//! ## A silent server is an error within 20 seconds
//!
//! A server that stops answering without closing the connection (a NAT or load
//! balancer that forgot it, a link that went down, a host that froze) sends no reset.
//! With libpq's defaults a call then waits for the operating system's TCP
//! retransmission timeout, about 15 minutes on Linux, and a connection idle in the pool
//! is never found dead at all. So every connection gets, unless its URL sets them
//! itself (a parameter in `DATABASE_URL` wins), the libpq parameters of
//! [`DbConfig::libpq_parameters`]:
//!
//! - `keepalives=1`, `keepalives_idle=10`, `keepalives_interval=5`,
//!   `keepalives_count=2`: a connection that has heard nothing for 10 s sends a probe;
//!   two more unanswered 5 s apart and the kernel drops it, 20 s after the server's last
//!   word. This finds dead connections idle in the pool, and calls waiting for a reply
//!   (a long query); the probes also keep NATs and load balancers from forgetting idle
//!   connections (their idle timeouts are minutes).
//! - `tcp_user_timeout=20000`: data the client sent (a query) that stays
//!   unacknowledged for 20 s drops the connection. Keepalives are not sent while data
//!   is in flight, so this is the bound for a call whose query met the silence. On
//!   Linux it also bounds the keepalive probing above to the same 20 s.
//! - `connect_timeout`: the connection timeout ([`DbConfig::connection_timeout`],
//!   5 s by default) in whole seconds, at least 2 (libpq's minimum), so that opening a
//!   connection to a server that never answers gives up too, instead of holding one of
//!   the pool's connection threads for minutes. Not added when `PGCONNECT_TIMEOUT` is
//!   set: libpq reads that itself.
//!
//! Why 20 s: long enough that a congested but working link (retransmissions over a few
//! seconds, a server busy with a checkpoint) is never mistaken for a dead one, and a
//! query that runs for minutes is not affected at all (the server's kernel answers the
//! probes while the query runs); short enough that a request fails well within the
//! usual 30 to 60 s timeouts of HTTP clients and load balancers, rather than after 15
//! minutes. A dropped connection is an [`crate::Error::is_connection_lost`] error and
//! the pool discards it. The settings are TCP's: they do nothing on unix sockets, and
//! they apply to TLS connections unchanged.
//!
//! For a serverless endpoint that wakes from scale-to-zero (Neon: usually under a second
//! or two), the default 5 s connection timeout covers the wake-up; for slower wake-ups
//! raise `DATABASE_CONNECT_TIMEOUT_MS` (say 15000), which raises libpq's `connect_timeout`
//! with it. The measured bounds (a silent server mid-call, an idle connection, a cold
//! start) are in docs/guarantees.md.
//!
//! ## Several hosts: a Patroni cluster, failover
//!
//! `DATABASE_URL` may list the nodes of a cluster (Patroni, or any primary with hot
//! standbys), in either form libpq takes; libpq tries them in order:
//!
//! ```sh
//! DATABASE_URL=postgres://app:secret@db1:5432,db2:5432,db3:5432/todo?target_session_attrs=read-write
//! DATABASE_URL="host=db1,db2,db3 port=5432 user=app password=secret dbname=todo target_session_attrs=read-write"
//! ```
//!
//! - **Writes reach the primary.** With `target_session_attrs=read-write` libpq skips
//!   the hosts that are standbys (or read-only) and connects to the one that accepts
//!   writes. Its default, `any`, takes the first host that answers: after a failover,
//!   the old primary back as a standby, or a standby listed first, and every write of
//!   the pool then fails with `Error::ReadOnly`, though a new primary is up. So a pool
//!   meant for writes ([`crate::connect`], [`crate::PoolOptions`], the primary pool of
//!   [`crate::replica::ReplicaRouter`], `TestDb`) adds `target_session_attrs=read-write`
//!   when the URL lists several hosts and sets none; a value in the URL is kept (`any`
//!   included). A URL that names no host counts the hosts of `PGHOST` (or
//!   `PGHOSTADDR`), which libpq uses then, and `PGTARGETSESSIONATTRS` counts as a value;
//!   hosts from a service file (`service=`) are not seen, so set
//!   `target_session_attrs` there. The router's replica pools get `prefer-standby`
//!   instead (a standby if one answers, else whichever node does): writes never go
//!   there.
//! - **After a failover** the connections to the old primary fail (a lost connection,
//!   or `terminating connection due to administrator command`), or, if it stayed up
//!   read-only, their writes fail with `Error::ReadOnly`: the pool retires each such
//!   connection (see [`crate::pool`], `PoolStats::retired_not_primary`), and new ones
//!   find the new primary. [`crate::retry::retry_transaction`] runs the transaction
//!   again within [`crate::retry::RetryPolicy::failover_budget`], so a caller sees no
//!   error from a failover that ends within it.
//! - **One password, every host printed.** libpq sends the same user and password to
//!   every host. [`DbConfig::redacted_url`], `Debug` and the crate's errors print every
//!   host and port, never the password.
//! - **Checked before connecting.** [`DbConfig::validate`] refuses a port list that is
//!   neither one port for all hosts nor one per host, and a `target_session_attrs` libpq
//!   does not know (`any`, `read-write`, `read-only`, `primary`, `standby`,
//!   `prefer-standby`): libpq would refuse them only when connecting.
//! - **The connection timeout is per host.** libpq applies `connect_timeout` to each
//!   host in turn: a host that is down and refuses (a closed port) costs nothing, but
//!   one that never answers (a dead machine) takes the whole timeout before the next
//!   host is tried. A connection refused by every host is retried by the pool until
//!   [`DbConfig::connection_timeout`], then the checkout fails with `PoolTimeout`
//!   (naming libpq's last error); `retry_transaction` retries that too within the
//!   failover budget.
//!
//! **Behind one address instead.** HAProxy in front of Patroni, with health checks on
//! Patroni's REST API (`GET /primary` answers 200 on the leader only, `GET /replica` on
//! a running replica), gives one address for writes and one for reads: set
//! `DATABASE_URL` to the first and `DATABASE_REPLICA_URLS` to the second, with no
//! `target_session_attrs`. A failover then looks to the crate like its server
//! restarting behind the same address: connections are lost, and new ones reach the
//! new primary once HAProxy's check sees it (its `inter` interval, seconds). Patroni's
//! own timing is the same either way: a crashed PostgreSQL is replaced within a
//! `loop_wait` (10 s by default) and a few seconds, a whole node lost once its leader
//! key expires, up to its `ttl` (30 s by default) after the last renewal (see
//! [`crate::retry::RetryPolicy::DEFAULT_FAILOVER_BUDGET`]).
//!
//! ## In code, and the password
//!
//! `DbConfig::new(url)` with `.pool_size(n)`, `.min_idle(..)`, `.connection_timeout(d)`,
//! `.statement_timeout(..)`, `.application_name(..)`, `.pgbouncer(..)`,
//! `.replica_url(..)`, `.tcp_user_timeout(..)`, `.keepalives_idle(..)`,
//! `.keepalives_interval(d)` and `.keepalives_count(n)` builds the same as the variables
//! above. Neither its `Debug` output nor any error of the crate contains the password.
//! The printable form (`config.redacted_url()`) is rebuilt from libpq's own reading of the
//! string (`PQconninfoParse`): libpq takes `#` and `?` unencoded in a URL's password and a
//! backslash-escaped space in a key=value value, where other parsers would guess wrong;
//! every option libpq marks as secret (`password`, `sslpassword`) prints as `***`, and a
//! string libpq cannot parse prints as `***` with libpq's reason, every part libpq quotes
//! masked; `DbConfig::validate` (and so `connect`) refuses it as `Error::Config`, and no
//! such string is ever handed to libpq.
//!
//! ## Behind a connection pooler (PgBouncer, Neon's pooled endpoint)
//!
//! Set `DATABASE_PGBOUNCER=true` (or `DbConfig::pgbouncer(true)`) when `DATABASE_URL`
//! points at a pooler in **transaction mode**. That includes Neon's pooled endpoint (the
//! host with `-pooler` in its name), PgBouncer with `pool_mode = transaction`, and pgcat
//! or Supavisor in transaction mode. These poolers give each *transaction* a server
//! connection from a shared pool, so two statements of one client can run on two
//! different server connections. Don't set the switch for a direct connection, or for a
//! pooler in session mode: there it only costs you speed.
//!
//! ```sh
//! DATABASE_URL=postgres://app:secret@ep-quiet-tree-123456-pooler.eu-central-1.aws.neon.tech/todo?sslmode=require
//! DATABASE_PGBOUNCER=true
//! ```
//!
//! ```rust,no_run
//! let config = todo_store::DbConfig::new("postgres://app:secret@pooler.internal:6432/todo")
//!     .pgbouncer(true);
//! let pool = todo_store::connect(&config)?;
//! # Ok::<(), todo_store::Error>(())
//! ```
//!
//! **What the switch changes**
//!
//! - **Unnamed statements.** Diesel normally prepares each statement once per connection
//!   under a name (`__diesel_stmt_0`, …) and then only executes it. Behind a transaction
//!   pooler, that name exists on one server connection and not on the next. The result
//!   is `prepared statement "__diesel_stmt_0" does not exist`, or `... already exists`
//!   when another client's statement took the name. The tests show both through
//!   PgBouncer. With the switch on, the statement cache is off: each statement goes out
//!   unnamed, with its parameters, in one round trip (libpq's `PQsendQueryParams`). The
//!   round-trip count stays the same. The server parses and plans the statement every
//!   time (and always with its parameters' values: the generic-plan concerns of the
//!   list queries, in [`crate::TaskQuery`]'s docs, do not arise). Every statement pays
//!   this, the list and search queries included, which are otherwise prepared once per
//!   connection like the rest. Short statements such as `TaskRepo::get` pay a few tens of
//!   microseconds of server CPU each (on loopback here, about 30 µs became about 90 µs).
//!   Over a real network, the round trip is the larger cost.
//! - **No session `SET`s.** A `SET` sticks to the server connection it ran on, and other
//!   clients use that connection afterwards. With the switch on, the crate sets only
//!   `application_name`, and PgBouncer tracks and restores that per client, as it does
//!   diesel's own `SET TIME ZONE 'UTC'` and client encoding. Timestamps and "due today"
//!   therefore stay in UTC through the pooler. The tests check this against a client that
//!   shares the same server connections but uses another time zone.
//! - **`statement_timeout` is set on the role, not by the crate.** With the switch on,
//!   `DATABASE_STATEMENT_TIMEOUT_MS` is not applied. Set the timeout where every new
//!   server connection picks it up:
//!
//!   ```sql
//!   ALTER ROLE app SET statement_timeout = '30s';          -- or:
//!   ALTER ROLE app IN DATABASE todo SET statement_timeout = '30s';
//!   ```
//!
//!   Server connections opened after the change get the new timeout. With PgBouncer you
//!   may need `RECONNECT` on its admin console, or a restart, for the old ones. A
//!   cancelled statement is still `Error::StatementTimeout`.
//!
//! **Migrations through a pooler.** `connect` (and `run_migrations`) apply the pending
//! migrations in **one transaction** that first takes
//! `pg_advisory_xact_lock`. The lock is transaction-scoped, so a transaction pooler cannot
//! separate it from the migrations it protects. A session-level `pg_advisory_lock` could
//! be taken on one server connection and "held" by every client that later lands there.
//! Several instances starting at once through the pooler all succeed, and each migration
//! is applied once (tested through PgBouncer). Two consequences follow:
//!
//! - The pending migrations apply together or not at all.
//! - A migration that cannot run inside a transaction (`CREATE INDEX CONCURRENTLY`)
//!   cannot be embedded. Run it by hand over a direct connection.
//!
//! On Neon you can instead run migrations over the **direct** URL (the host without
//! `-pooler`), for example in a deploy step, and let the application connect through the
//! pooler:
//!
//! ```rust,no_run
//! use diesel::Connection;
//! let mut direct = todo_store::PgConnection::establish(&std::env::var("DIRECT_DATABASE_URL").unwrap())
//!     .expect("direct connection");
//! todo_store::run_migrations(&mut direct)?;
//! # Ok::<(), todo_store::Error>(())
//! ```
//!
//! `connect` then finds nothing pending.
//!
//! **Poolers that support prepared statements.** PgBouncer 1.21 added tracking of
//! *protocol-level* named prepared statements in transaction mode, enabled with
//! `max_prepared_statements` (see PgBouncer's configuration reference,
//! <https://www.pgbouncer.org/config.html#max_prepared_statements>). Neon's pooler runs
//! with it enabled. PgBouncer then rewrites each client's statement names to its own and
//! prepares them again on whichever server connection runs them. Diesel prepares with
//! `PQprepare` and executes with `PQsendQueryPrepared`, which are exactly those protocol
//! messages, so with the switch off, diesel's named statements **are expected to work**
//! on such a pooler and keep their planning savings. We can't test this here: the
//! PgBouncer our tests and CI run is Debian bookworm's 1.18, which predates the feature.
//!
//! The switch also controls the session `SET`s, and that part is still needed. With the
//! switch off, each new connection runs `SET statement_timeout`, and that value sticks to
//! whichever server connection ran it. This is harmless only if every client of that
//! database and role uses the same timeout. So:
//!
//! - Keep `DATABASE_PGBOUNCER=true` unless the planning cost has been measured and
//!   matters.
//! - If you turn the switch off on such a pooler, give every client of the role the same
//!   `DATABASE_STATEMENT_TIMEOUT_MS`.

// This module holds `DbConfig`: its defaults, setters, getters and validation.
// Reading it from the environment and `.env` lives in `env`; the libpq network
// settings above (keepalives, `tcp_user_timeout`, `connect_timeout`) live in `libpq`.
mod env;
mod libpq;

#[cfg(any(feature = "testing", feature = "better-auth"))]
pub(crate) use env::env_var;
pub use env::vars;

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};

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
/// assert_eq!(config.get_pool_size(), 20);
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
    tcp_user_timeout: Option<Duration>,
    keepalives_idle: Option<Duration>,
    keepalives_interval: Duration,
    keepalives_count: u32,
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
    /// Default libpq `tcp_user_timeout` (see the [module docs](self)).
    pub const DEFAULT_TCP_USER_TIMEOUT: Duration = Duration::from_secs(20);
    /// Default libpq `keepalives_idle`.
    pub const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(10);
    /// Default libpq `keepalives_interval`.
    pub const DEFAULT_KEEPALIVES_INTERVAL: Duration = Duration::from_secs(5);
    /// Default libpq `keepalives_count`.
    pub const DEFAULT_KEEPALIVES_COUNT: u32 = 2;

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
            tcp_user_timeout: Some(Self::DEFAULT_TCP_USER_TIMEOUT),
            keepalives_idle: Some(Self::DEFAULT_KEEPALIVES_IDLE),
            keepalives_interval: Self::DEFAULT_KEEPALIVES_INTERVAL,
            keepalives_count: Self::DEFAULT_KEEPALIVES_COUNT,
        }
    }

    /// Sets the maximum number of pooled connections (at least 1).
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = size;
        self
    }

    /// The maximum number of pooled connections ([`DbConfig::pool_size`]).
    pub fn get_pool_size(&self) -> u32 {
        self.pool_size
    }

    /// Sets how many connections the pool keeps open while idle (`None`: the pool size).
    pub fn min_idle(mut self, min_idle: Option<u32>) -> Self {
        self.min_idle = min_idle;
        self
    }

    /// Connections kept open while idle (`None`: the pool size) ([`DbConfig::min_idle`]).
    pub fn get_min_idle(&self) -> Option<u32> {
        self.min_idle
    }

    /// Sets how long to wait for a connection: opening one, or a free one from the pool.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long to wait for a connection ([`DbConfig::connection_timeout`]).
    pub fn get_connection_timeout(&self) -> Duration {
        self.connection_timeout
    }

    /// Sets the server-side `statement_timeout` (`None` turns it off).
    pub fn statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// The server-side statement timeout, if any ([`DbConfig::statement_timeout`]).
    pub fn get_statement_timeout(&self) -> Option<Duration> {
        self.statement_timeout
    }

    /// Sets the `application_name` each connection reports to the server.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// The `application_name` of each connection ([`DbConfig::application_name`]).
    pub fn get_application_name(&self) -> &str {
        &self.application_name
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

    /// Whether the configuration is for a transaction-mode pooler
    /// ([`DbConfig::pgbouncer`]).
    pub fn get_pgbouncer(&self) -> bool {
        self.pgbouncer
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

    /// The read-replica URLs ([`DbConfig::replica_urls`], [`DbConfig::replica_url`]),
    /// passwords included: never log them.
    pub fn get_replica_urls(&self) -> &[String] {
        &self.replica_urls
    }

    /// The same configuration for `url` (e.g. a replica's), other settings kept and no
    /// replica URLs.
    pub fn with_url(&self, url: impl Into<String>) -> Self {
        DbConfig {
            url: url.into(),
            replica_urls: Vec::new(),
            ..self.clone()
        }
    }

    /// The connection URL ([`DbConfig::new`], [`DbConfig::with_url`]), password
    /// included: hand it to a driver, never to a log. [`DbConfig::redacted_url`] is
    /// the printable form.
    pub fn get_url(&self) -> &str {
        &self.url
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Checks the values against each other.
    ///
    /// # Errors
    /// [`Error::Config`] for a pool size of 0, a minimum idle count above the pool size,
    /// a zero connection timeout, keepalives with a zero interval or count, a TCP
    /// timeout libpq cannot hold (more than `i32::MAX` milliseconds or seconds), an
    /// application name with a NUL character, a URL (or replica URL) libpq cannot
    /// parse (the message quotes no part of it), or one libpq would refuse to connect
    /// with: several ports but not one per host, or an unknown `target_session_attrs`
    /// (see [Several hosts](self#several-hosts-a-patroni-cluster-failover)).
    pub fn validate(&self) -> Result<()> {
        if self.pool_size == 0 {
            return Err(Error::Config(
                format!("{} must be at least 1", vars::POOL_SIZE).into(),
            ));
        }
        if self.min_idle.is_some_and(|m| m > self.pool_size) {
            return Err(Error::Config(
                format!(
                    "{} ({}) must not exceed {} ({})",
                    vars::MIN_IDLE,
                    self.min_idle.unwrap_or_default(),
                    vars::POOL_SIZE,
                    self.pool_size
                )
                .into(),
            ));
        }
        if self.connection_timeout.is_zero() {
            return Err(Error::Config(
                format!("{} must be greater than 0", vars::CONNECT_TIMEOUT_MS).into(),
            ));
        }
        if self.keepalives_idle.is_some()
            && (self.keepalives_interval.is_zero() || self.keepalives_count == 0)
        {
            return Err(Error::Config(
                format!(
                    "with keepalives on, {} and {} must be greater than 0 (set {}=0 to turn \
                 keepalives off)",
                    vars::KEEPALIVES_INTERVAL_S,
                    vars::KEEPALIVES_COUNT,
                    vars::KEEPALIVES_IDLE_S
                )
                .into(),
            ));
        }
        let too_long = |d: Duration, unit_ms: u128| d.as_millis() / unit_ms > i32::MAX as u128;
        if self.tcp_user_timeout.is_some_and(|d| too_long(d, 1))
            || self.keepalives_idle.is_some_and(|d| too_long(d, 1000))
            || too_long(self.keepalives_interval, 1000)
            || self.keepalives_count > i32::MAX as u32
            || too_long(self.connection_timeout, 1000)
        {
            return Err(Error::Config(
                "a TCP timeout or keepalive setting is larger than libpq can hold".into(),
            ));
        }
        if self.application_name.contains('\0')
            || self.url.contains('\0')
            || self.replica_urls.iter().any(|u| u.contains('\0'))
        {
            return Err(Error::Config(
                "the URL and application name must not contain NUL characters".into(),
            ));
        }
        // Refused here, before any connection: libpq's own error for such a string
        // would quote it. The reason names no part of the string.
        let urls = std::iter::once((vars::DATABASE_URL, &self.url))
            .chain(self.replica_urls.iter().map(|u| (vars::REPLICA_URLS, u)));
        for (name, url) in urls {
            match crate::conninfo::Conninfo::parse(url) {
                Err(reason) => {
                    return Err(Error::Config(
                        format!(
                            "{name} is not a connection string libpq can read ({reason}): \
                             check its syntax, and percent-encode special characters of a \
                             URL's password"
                        )
                        .into(),
                    ))
                }
                Ok(info) => {
                    if let Some(problem) = info.multi_host_problem() {
                        return Err(Error::Config(
                            format!("{name} cannot be connected to: {problem}").into(),
                        ));
                    }
                }
            }
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
            .field("tcp_user_timeout", &self.tcp_user_timeout)
            .field("keepalives_idle", &self.keepalives_idle)
            .field("keepalives_interval", &self.keepalives_interval)
            .field("keepalives_count", &self.keepalives_count)
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
    fn several_hosts_are_valid_and_print_without_the_password() {
        for url in [
            "postgres://app:s3cret@h1:5432,h2:5433,h3:5434/todo?target_session_attrs=read-write",
            "postgres://app:s3cret@h1,h2,h3/todo",
            "host=h1,h2,h3 port=5432 user=app password=s3cret dbname=todo",
            "host=h1,h2 port=5432,5433 password=s3cret target_session_attrs=prefer-standby",
        ] {
            let config = DbConfig::new(url).replica_url(url);
            config.validate().unwrap_or_else(|e| panic!("{url}: {e}"));
            for printed in [config.redacted_url(), format!("{config:?}")] {
                assert!(!printed.contains("s3cret"), "{printed}");
                assert!(
                    printed.contains("h1") && printed.contains("h2"),
                    "{printed}"
                );
            }
        }
    }

    #[test]
    fn several_hosts_libpq_would_refuse_are_config_errors_naming_no_secret() {
        for (url, says) in [
            (
                "host=h1,h2,h3 port=1,2 password=s3cret",
                "2 ports for 3 hosts",
            ),
            (
                "postgres://app:s3cret@h1,h2/todo?port=1,2,3",
                "3 ports for 2 hosts",
            ),
            (
                "postgres://app:s3cret@h1,h2/todo?target_session_attrs=master",
                "target_session_attrs",
            ),
        ] {
            let err = DbConfig::new(url).validate().unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, Error::Config(_)), "{err:?}");
            assert!(text.contains(says) && !text.contains("s3cret"), "{text}");
            let err = DbConfig::new("postgres://h/db")
                .replica_url(url)
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains(vars::REPLICA_URLS), "{err}");
        }
    }
}
