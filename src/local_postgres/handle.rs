//! [`LocalPostgres`], the handle on a running cluster, and its lifecycle after the
//! start: URLs and commands for clients, stop, start, restart, and what Drop cleans up.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::builder::LocalPostgresBuilder;
use super::error::{command_error, describe, io_error, LocalPostgresError};
use super::os_user::OsUser;
use super::quote::{percent_encode, shell_quote};
use super::watchdog::kill_postmaster;

/// The database superuser created by initdb and used in every URL.
const SUPERUSER: &str = "postgres";
/// The port of clusters that listen on their private unix socket only.
pub(super) const DEFAULT_PORT: u16 = 5432;
/// Seconds pg_ctl waits for a start or a stop.
const PG_CTL_TIMEOUT_SECS: &str = "60";

/// How [`LocalPostgres::stop`] and [`LocalPostgres::restart`] shut the server down
/// (`pg_ctl -m smart|fast|immediate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Wait for every client to disconnect.
    Smart,
    /// Roll back open transactions, disconnect clients, shut down cleanly.
    Fast,
    /// Abort every process at once, like a crash: the next start runs crash recovery.
    Immediate,
}

impl ShutdownMode {
    fn as_str(self) -> &'static str {
        match self {
            ShutdownMode::Smart => "smart",
            ShutdownMode::Fast => "fast",
            ShutdownMode::Immediate => "immediate",
        }
    }
}

/// A running PostgreSQL cluster started from the system's binaries.
///
/// Dropping it stops a temporary cluster at once and removes its directory; a persistent
/// cluster is stopped (fast) unless [`LocalPostgres::keep_running`] was called or it was
/// already running when started. `LocalPostgres` is `Send + Sync`, so it can sit in a
/// `static OnceLock` (a temporary cluster there is removed by its watchdog when the
/// process exits).
#[derive(Debug)]
pub struct LocalPostgres {
    /// The directory holding data/, the log and (usually) the socket.
    pub(super) base_dir: PathBuf,
    pub(super) data_dir: PathBuf,
    pub(super) socket_dir: PathBuf,
    pub(super) log_file: PathBuf,
    pub(super) bin_dir: PathBuf,
    pub(super) port: u16,
    pub(super) tcp: bool,
    pub(super) temporary: bool,
    pub(super) already_running: bool,
    /// Persistent clusters: whether Drop stops the server.
    pub(super) stop_on_drop: bool,
    /// Set by keep_running: Drop does nothing.
    pub(super) keep: bool,
    /// The OS user the server runs as when this process is root.
    pub(super) run_as: Option<OsUser>,
    /// The watchdog of a temporary cluster.
    pub(super) watchdog: Mutex<Option<Child>>,
}

impl LocalPostgres {
    /// A builder for a temporary (default) or persistent cluster.
    pub fn builder() -> LocalPostgresBuilder {
        LocalPostgresBuilder::default()
    }

    /// Starts a throwaway cluster on a private unix socket; `builder().start()`.
    pub fn start_temporary() -> Result<LocalPostgres, LocalPostgresError> {
        Self::builder().start()
    }

    /// Starts, or reuses when running, the cluster kept in `root`;
    /// `builder().persistent(root).start()`.
    pub fn start_persistent(root: impl Into<PathBuf>) -> Result<LocalPostgres, LocalPostgresError> {
        Self::builder().persistent(root).start()
    }

    /// A libpq URL of `database` as user `postgres` (no password) over the unix socket:
    /// `postgres://postgres@localhost/DB?host=%2Fsocket%2Fdir&port=PORT`. Diesel, psql
    /// and every libpq client accept it.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@localhost/{}?host={}&port={}",
            percent_encode(database.as_bytes()),
            percent_encode(self.socket_dir.as_os_str().as_bytes()),
            self.port
        )
    }

    /// A URL of `database` over TCP (`postgres://postgres@127.0.0.1:PORT/DB`) when the
    /// server listens on 127.0.0.1 ([`LocalPostgresBuilder::listen_tcp`]).
    pub fn tcp_url(&self, database: &str) -> Option<String> {
        self.tcp.then(|| {
            format!(
                "postgres://{SUPERUSER}@127.0.0.1:{}/{}",
                self.port,
                percent_encode(database.as_bytes())
            )
        })
    }

    /// A shell command that opens psql on `database`, e.g.
    /// `psql -h /tmp/todo-store-pg-1a2b -p 5432 -U postgres postgres`.
    pub fn psql_command(&self, database: &str) -> String {
        format!(
            "psql -h {} -p {} -U {SUPERUSER} {}",
            shell_quote(&self.socket_dir.to_string_lossy()),
            self.port,
            shell_quote(database)
        )
    }

    /// The directory holding the server's unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The server's port (the unix socket's number, and the TCP port with `listen_tcp`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory (`PGDATA`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory of the server binaries (initdb, pg_ctl, postgres, pgbench, …).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The server log (for a persistent cluster found running: where this module's
    /// servers log; the running one may log elsewhere).
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// Whether this is a throwaway cluster, removed on drop.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// Whether the persistent cluster was found running at start (it is then left
    /// running on drop).
    pub fn was_already_running(&self) -> bool {
        self.already_running
    }

    /// A [`Command`] for `bin_dir/program` (e.g. `pg_basebackup`, `pgbench`, `psql`)
    /// with `PGHOST`, `PGPORT` and `PGUSER` set to this cluster, run in the cluster's
    /// directory and, when this process is root, as the cluster's OS user (so it can
    /// read and write the cluster's files).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.env("PGHOST", &self.socket_dir)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", SUPERUSER)
            .current_dir(&self.base_dir);
        if let Some(user) = &self.run_as {
            user.apply_to(&mut cmd);
        }
        cmd
    }

    /// Stops the server (`pg_ctl stop -m MODE -w`) and waits until it is down.
    pub fn stop(&self, mode: ShutdownMode) -> Result<(), LocalPostgresError> {
        let mut cmd = self.pg_ctl();
        cmd.arg("-m").arg(mode.as_str()).arg("stop");
        self.run(cmd, true).map(drop)
    }

    /// Starts the server again after [`LocalPostgres::stop`] (same port and socket) and
    /// waits until it accepts connections.
    pub fn start(&self) -> Result<(), LocalPostgresError> {
        self.pg_ctl_start()
    }

    /// Restarts the server (`pg_ctl restart -m MODE -w`) and waits until it accepts
    /// connections again; with [`ShutdownMode::Immediate`] it runs crash recovery first.
    pub fn restart(&self, mode: ShutdownMode) -> Result<(), LocalPostgresError> {
        let mut cmd = self.pg_ctl();
        cmd.arg("-l")
            .arg(&self.log_file)
            .arg("-m")
            .arg(mode.as_str())
            .arg("restart");
        self.run(cmd, true).map(drop)
    }

    /// Gives the cluster up without stopping it: a persistent cluster stays up for later
    /// runs (reach it with [`LocalPostgres::psql_command`] or [`LocalPostgres::url`]).
    /// A temporary cluster lives on until this process exits, when its watchdog removes
    /// it.
    pub fn keep_running(mut self) {
        self.keep = true;
    }

    /// The handle of a cluster in `base_dir` (data, log and socket there), not started.
    pub(super) fn new(
        base_dir: PathBuf,
        bin_dir: PathBuf,
        run_as: Option<OsUser>,
        temporary: bool,
    ) -> Self {
        LocalPostgres {
            data_dir: base_dir.join("data"),
            socket_dir: base_dir.clone(),
            log_file: base_dir.join("postgres.log"),
            base_dir,
            bin_dir,
            port: DEFAULT_PORT,
            tcp: false,
            temporary,
            already_running: false,
            stop_on_drop: false,
            keep: false,
            run_as,
            watchdog: Mutex::new(None),
        }
    }

    /// A command for an internal tool run as the cluster's OS user, in C locale.
    fn tool(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.current_dir(&self.base_dir)
            .env("LC_ALL", "C")
            .env_remove("PGDATA")
            .stdin(Stdio::null());
        if let Some(user) = &self.run_as {
            user.apply_to(&mut cmd);
        }
        cmd
    }

    /// `pg_ctl -D data -w -t 60`, to which the caller adds the action.
    fn pg_ctl(&self) -> Command {
        let mut cmd = self.tool("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-w")
            .arg("-t")
            .arg(PG_CTL_TIMEOUT_SECS);
        cmd
    }

    /// `pg_ctl start`, logging to the cluster's log file.
    pub(super) fn pg_ctl_start(&self) -> Result<(), LocalPostgresError> {
        let mut cmd = self.pg_ctl();
        cmd.arg("-l").arg(&self.log_file).arg("start");
        self.run(cmd, true).map(drop)
    }

    /// Whether `pg_ctl status` finds the server running.
    pub(super) fn pg_ctl_running(&self) -> bool {
        let mut cmd = self.tool("pg_ctl");
        cmd.arg("status").arg("-D").arg(&self.data_dir);
        cmd.output().is_ok_and(|out| out.status.success())
    }

    /// Runs `cmd`; on failure, the error holds the tail of its output (and of the server
    /// log with `with_log`).
    fn run(&self, mut cmd: Command, with_log: bool) -> Result<Output, LocalPostgresError> {
        let described = describe(&cmd, self.run_as.as_ref());
        let output = cmd
            .output()
            .map_err(io_error(format!("running `{described}`")))?;
        if output.status.success() {
            return Ok(output);
        }
        let log = with_log.then_some(self.log_file.as_path());
        Err(command_error(
            described,
            output.status,
            &output,
            log,
            self.run_as.as_ref(),
        ))
    }

    /// Runs initdb on the data directory (`--no-sync` unless `durable`).
    pub(super) fn initdb(&self, durable: bool) -> Result<(), LocalPostgresError> {
        let mut cmd = self.tool("initdb");
        cmd.arg("-D").arg(&self.data_dir).args([
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "--encoding=UTF8",
            // Byte-order collation (the same everywhere), but Unicode-aware lower() and
            // text search, as on production servers with a UTF-8 locale.
            "--lc-collate=C",
            "--lc-ctype=C.UTF-8",
        ]);
        if !durable {
            cmd.arg("--no-sync");
        }
        self.run(cmd, false).map(drop)
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if self.temporary {
            if self.data_dir.join("postmaster.pid").exists() {
                let _ = self.stop(ShutdownMode::Immediate);
                kill_postmaster(&self.data_dir);
            }
            for attempt in 0..3 {
                match fs::remove_dir_all(&self.base_dir) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound && attempt < 2 => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => break,
                }
            }
            let watchdog = self
                .watchdog
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(mut child) = watchdog.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        } else if self.stop_on_drop {
            let _ = self.stop(ShutdownMode::Fast);
        }
    }
}
