//! Which server the benchmark runs on, its client tools, and the benchmark's own
//! databases there.

use std::path::PathBuf;
use std::process::Command;

use crate::dev_database::DevServer;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Nullable, Text};
use todo_store::config::redact_url;
use todo_store::local_postgres::{LocalPostgres, ShutdownMode};

use crate::{Args, BoxResult};

/// The comment on every database this program creates; it drops no other. (It names
/// the benchmark's old single file: leftovers of runs before the split still match.)
const MARK: &str = "created by todo-store examples/bench.rs; dropped when it ends";

/// Where the benchmark runs: DATABASE_URL's server or the crate's local PostgreSQL.
// One value per run: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Server {
    Url {
        admin_url: String,
        bin_dir: PathBuf,
    },
    Local {
        pg: LocalPostgres,
        keep_running: bool,
        /// Settings set with ALTER SYSTEM for this run (`--production-server`), reset
        /// at the end.
        altered: Vec<String>,
    },
}

/// `--production-server`: what a production server of this machine's memory would be
/// configured with (shared_buffers a quarter of memory, effective_cache_size three
/// quarters, SSD costs, room for WAL and index builds), instead of the defaults.
fn production_settings() -> Vec<(&'static str, String)> {
    let mem_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:").map(str::to_owned))
        })
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(4096, |kb| kb / 1024);
    vec![
        ("shared_buffers", format!("{}MB", mem_mb / 4)),
        ("effective_cache_size", format!("{}MB", mem_mb * 3 / 4)),
        ("maintenance_work_mem", "1GB".to_owned()),
        ("work_mem", "16MB".to_owned()),
        ("max_wal_size", "8GB".to_owned()),
        ("random_page_cost", "1.1".to_owned()),
        ("effective_io_concurrency", "200".to_owned()),
    ]
}

impl Server {
    pub fn open(args: &Args) -> BoxResult<Server> {
        let dev = DevServer::open(None, |root| {
            eprintln!(
                "bench: no DATABASE_URL set: using the local PostgreSQL in {}",
                root.display()
            );
        })?;
        Ok(match dev {
            DevServer::Url(_) if args.production_server => {
                return Err(
                    "--production-server configures the local PostgreSQL (ALTER SYSTEM \
                            and a restart): unset DATABASE_URL"
                        .into(),
                )
            }
            DevServer::Url(url) => {
                eprintln!("bench: DATABASE_URL is set: using {}", redact_url(&url));
                Server::Url {
                    admin_url: url,
                    bin_dir: client_bin_dir()?,
                }
            }
            DevServer::Local(pg) => {
                let mut altered = Vec::new();
                if args.production_server {
                    let mut admin = PgConnection::establish(&pg.url("postgres"))?;
                    for (name, value) in production_settings() {
                        admin
                            .batch_execute(&format!("ALTER SYSTEM SET {name} = {}", lit(&value)))?;
                        altered.push(name.to_owned());
                    }
                    drop(admin);
                    eprintln!(
                        "bench: --production-server: restarting PostgreSQL with {}",
                        {
                            let s: Vec<String> = production_settings()
                                .into_iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect();
                            s.join(", ")
                        }
                    );
                    pg.restart(ShutdownMode::Fast)?;
                }
                Server::Local {
                    pg,
                    keep_running: args.keep_running,
                    altered,
                }
            }
        })
    }

    /// The database the benchmark connects to in order to create and drop its own.
    pub fn admin_url(&self) -> String {
        match self {
            Server::Url { admin_url, .. } => admin_url.clone(),
            Server::Local { pg, .. } => pg.url("postgres"),
        }
    }

    pub fn db_url(&self, db: &str) -> String {
        match self {
            Server::Url { admin_url, .. } => with_database(admin_url, db),
            Server::Local { pg, .. } => pg.url(db),
        }
    }

    /// A client program (pgbench, psql) set up for database `db`, and the connection
    /// argument to give it last: the same server and connection path as the crate.
    pub fn tool(&self, program: &str, db: &str) -> (Command, String) {
        match self {
            Server::Url { bin_dir, .. } => {
                let mut cmd = Command::new(bin_dir.join(program));
                let (target, password) = split_password(&self.db_url(db));
                if let Some(password) = password {
                    cmd.env("PGPASSWORD", password);
                }
                (cmd, target)
            }
            // PGHOST, PGPORT and PGUSER point at the cluster's socket.
            Server::Local { pg, .. } => (pg.command(program), db.to_owned()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Server::Url { admin_url, .. } => {
                format!("DATABASE_URL {}", redact_url(admin_url))
            }
            Server::Local { pg, .. } => format!(
                "local PostgreSQL in {} (unix socket {})",
                pg.data_dir().display(),
                pg.socket_dir().display()
            ),
        }
    }

    pub fn finish(self) {
        if let Server::Local {
            pg,
            keep_running,
            altered,
        } = self
        {
            reset_settings(&pg, &altered);
            if keep_running {
                eprintln!(
                    "bench: PostgreSQL keeps running: {}",
                    pg.psql_command("postgres")
                );
                pg.keep_running();
            } else if pg.was_already_running() {
                eprintln!("bench: the local PostgreSQL was already running: left running");
            } else {
                drop(pg);
            }
        }
    }
}

/// Undoes `--production-server`'s ALTER SYSTEM; restarts a server that stays up.
fn reset_settings(pg: &LocalPostgres, altered: &[String]) {
    if altered.is_empty() {
        return;
    }
    let reset = PgConnection::establish(&pg.url("postgres"))
        .map_err(|e| e.to_string())
        .and_then(|mut admin| {
            altered.iter().try_for_each(|name| {
                admin
                    .batch_execute(&format!("ALTER SYSTEM RESET {name}"))
                    .map_err(|e| e.to_string())
            })
        })
        .and_then(|()| pg.restart(ShutdownMode::Fast).map_err(|e| e.to_string()));
    if let Err(e) = reset {
        eprintln!("bench: could not reset the server's settings ({altered:?}): {e}");
    }
}

/// pgbench and psql for a DATABASE_URL server: next to the server binaries, else on PATH.
fn client_bin_dir() -> BoxResult<PathBuf> {
    let mut candidates: Vec<PathBuf> = todo_store::local_postgres::find_bin_dir()
        .into_iter()
        .collect();
    candidates.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    candidates
        .into_iter()
        .find(|dir| dir.join("pgbench").is_file() && dir.join("psql").is_file())
        .ok_or_else(|| {
            "pgbench and psql not found (they measure the floor): install PostgreSQL's \
             client programs"
                .into()
        })
}

/// `url` pointed at database `db`: the path of a URL, or `dbname=` of a key=value string.
fn with_database(url: &str, db: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.scheme().starts_with("postgres") => {
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .filter(|(k, _)| k != "dbname")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            parsed.set_path(&format!("/{db}"));
            if pairs.is_empty() {
                parsed.set_query(None);
            } else {
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        // libpq: the last of repeated keywords wins.
        _ => format!("{url} dbname={db}"),
    }
}

/// The URL without its password, and the password (for PGPASSWORD: not on a command line).
fn split_password(url: &str) -> (String, Option<String>) {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.scheme().starts_with("postgres") => match parsed.password() {
            Some(p) => {
                let password = percent_decode(p);
                let _ = parsed.set_password(None);
                (parsed.to_string(), Some(password))
            }
            None => (url.to_owned(), None),
        },
        _ => (url.to_owned(), None),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A database this program created; dropped (with `WITH (FORCE)`) when this drops.
pub struct BenchDb {
    admin_url: String,
    name: String,
    keep: bool,
}

impl BenchDb {
    /// Creates `name`. A leftover of an earlier run (it carries [`MARK`]) is dropped
    /// first; any other database of that name is left alone and is an error.
    pub fn create(server: &Server, name: &str, args: &Args) -> BoxResult<BenchDb> {
        let admin_url = server.admin_url();
        let mut admin = PgConnection::establish(&admin_url)?;
        drop_leftover(&mut admin, name)?;
        admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
        admin.batch_execute(&format!("COMMENT ON DATABASE {name} IS {}", lit(MARK)))?;
        apply_settings(&mut admin, name, args)?;
        Ok(BenchDb {
            admin_url,
            name: name.to_owned(),
            keep: args.keep_databases,
        })
    }
}

/// Drops database `name` if an earlier run of the benchmark left it; refuses any other.
fn drop_leftover(admin: &mut PgConnection, name: &str) -> BoxResult<()> {
    #[derive(QueryableByName)]
    struct Existing {
        #[diesel(sql_type = Nullable<Text>)]
        comment: Option<String>,
        #[diesel(sql_type = BigInt)]
        sessions: i64,
    }
    let existing: Option<Existing> = sql_query(
        "SELECT shobj_description(d.oid, 'pg_database') AS comment, \
         (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname) AS sessions \
         FROM pg_database d WHERE d.datname = $1",
    )
    .bind::<Text, _>(name)
    .get_result(admin)
    .optional()?;
    let Some(existing) = existing else {
        return Ok(());
    };
    if existing.comment.as_deref() != Some(MARK) {
        return Err(format!(
            "a database named {name} exists and was not created by this benchmark: \
             not touching it (drop or rename it, or use another server)"
        )
        .into());
    }
    if existing.sessions > 0 {
        return Err(format!(
            "{name} (left by an earlier run) has {} open sessions: is another \
             benchmark running on this server?",
            existing.sessions
        )
        .into());
    }
    admin.batch_execute(&format!("DROP DATABASE {name}"))?;
    Ok(())
}

/// `--db-setting` and `--log-statements`: `ALTER DATABASE ... SET` for database `name`.
fn apply_settings(admin: &mut PgConnection, name: &str, args: &Args) -> BoxResult<()> {
    let mut settings = args.db_setting.clone();
    if args.log_statements {
        settings.push("log_statement=all".to_owned());
    }
    for setting in &settings {
        let (key, value) = setting
            .split_once('=')
            .filter(|(k, _)| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            })
            .ok_or_else(|| format!("--db-setting {setting:?}: expected NAME=VALUE"))?;
        admin.batch_execute(&format!(
            "ALTER DATABASE {name} SET {key} = {}",
            lit(value.trim())
        ))?;
    }
    Ok(())
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("bench: kept database {} (--keep-databases)", self.name);
            return;
        }
        let dropped = PgConnection::establish(&self.admin_url)
            .map_err(|e| e.to_string())
            .and_then(|mut admin| {
                admin
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        self.name
                    ))
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = dropped {
            eprintln!("bench: could not drop {}: {e}", self.name);
        }
    }
}

/// A SQL string literal.
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
