//! A PostgreSQL cluster started from the system's server binaries (feature `local-postgres`).
//!
//! Two kinds of cluster:
//!
//! - **Temporary** ([`LocalPostgres::start_temporary`]): a fresh cluster in
//!   `std::env::temp_dir()/todo-store-pg-<random>`, reachable on a private unix socket,
//!   tuned for speed (no fsync) and removed when the value drops. A watchdog process
//!   removes it too when the owning process dies without running destructors (SIGKILL,
//!   or a value kept in a `static`), and every new temporary cluster sweeps directories
//!   left by dead owners.
//! - **Persistent** ([`LocalPostgres::start_persistent`]): a cluster under a directory
//!   of your choice (e.g. `target/todo-store-pg`) that keeps its data between runs. A
//!   cluster found running is reused and left running.
//!
//! ```no_run
//! use todo_store::local_postgres::LocalPostgres;
//!
//! let pg = LocalPostgres::start_temporary()?;
//! let url = pg.url("postgres"); // postgres://postgres@localhost/postgres?host=%2Ftmp%2F...&port=5432
//! println!("connect with: {}", pg.psql_command("postgres"));
//! # let _ = url;
//! # Ok::<(), todo_store::local_postgres::LocalPostgresError>(())
//! ```
//!
//! The server binaries are found by [`find_bin_dir`]. PostgreSQL refuses to run as root:
//! when this process is root, the server and its tools run as the `postgres` OS user
//! (else `nobody`), and the directories created here are handed to that user.
//!
//! Authentication is `trust`: anyone who can reach the socket (a directory only the
//! server's OS user and root can enter) or, with [`LocalPostgresBuilder::listen_tcp`],
//! the loopback port, is a superuser. This is for tests and development only.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The database superuser created by initdb and used in every URL.
const SUPERUSER: &str = "postgres";
/// The port of clusters that listen on their private unix socket only.
const DEFAULT_PORT: u16 = 5432;
/// Name prefix of temporary cluster directories (swept when their owner is dead).
const TEMP_PREFIX: &str = "todo-store-pg-";
/// Name prefix of the data directories used when a persistent root is unreachable.
const FALLBACK_PREFIX: &str = "todo-store-pgdata-";
/// Name prefix of the short socket directories used when a path is too long.
const SOCKET_PREFIX: &str = "todo-store-pgsock-";
/// File in a temporary cluster's directory naming the owning process.
const OWNER_FILE: &str = "owner.pid";
/// The settings file written into the data directory at each start.
const CONF_FILE: &str = "local_postgres.conf";
/// The line that makes postgresql.conf read [`CONF_FILE`] last.
const INCLUDE_LINE: &str = "include_if_exists = 'local_postgres.conf'";
/// The longest unix socket path the kernel accepts (sun_path is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;
/// The socket file name with the longest possible port, to check path lengths.
const LONGEST_SOCKET_NAME: &str = "/.s.PGSQL.65535";
/// How many lines of a command's output or of the server log an error shows.
const TAIL_LINES: usize = 20;
/// Seconds pg_ctl waits for a start or a stop.
const PG_CTL_TIMEOUT_SECS: &str = "60";
/// How often a temporary start tries another TCP port when the chosen one was taken.
const PORT_ATTEMPTS: usize = 4;

/// The watchdog of a temporary cluster: `$1` is the owner's pid, `$2` the cluster's
/// directory. While the owner lives and the directory exists it sleeps; when the owner
/// is gone it stops the postmaster (SIGQUIT, SIGKILL after 10 s) and removes the
/// directory. A directory removed by the owner (Drop) ends it.
const WATCHDOG_SCRIPT: &str = r#"
trap '' HUP INT
alive() {
  if [ -r /proc/self/stat ]; then
    s=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null)
    [ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]
  else
    kill -0 "$1" 2>/dev/null
  fi
}
owner=$1
dir=$2
while alive "$owner" && [ -d "$dir" ]; do sleep 0.5; done
[ -d "$dir" ] || exit 0
pm=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)
case "$pm" in ''|*[!0-9]*) pm= ;; esac
if [ -n "$pm" ] && { [ ! -r /proc/self/stat ] || tr '\000' '\n' < "/proc/$pm/cmdline" 2>/dev/null | grep -qF -- "$dir/data"; }; then
  kill -QUIT "$pm" 2>/dev/null
  i=0
  while alive "$pm" && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  kill -KILL "$pm" 2>/dev/null
fi
rm -rf -- "$dir"
"#;

/// What went wrong starting or driving a local cluster; every message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalPostgresError {
    /// No PostgreSQL server binaries (initdb, pg_ctl, postgres) were found.
    #[error(
        "no PostgreSQL server binaries found (searched: {searched}): install PostgreSQL \
         (Debian/Ubuntu: `apt-get install postgresql`) or set DATABASE_URL to a running server"
    )]
    NotInstalled {
        /// Where the binaries were looked for.
        searched: String,
    },
    /// `PG_BINDIR` is set but does not hold the server binaries.
    #[error(
        "PG_BINDIR is set to {}, which does not contain initdb, pg_ctl and postgres: point \
         PG_BINDIR at a PostgreSQL server bin directory (`pg_config --bindir` prints one) or \
         unset it",
        path.display()
    )]
    InvalidBinDir {
        /// The value of `PG_BINDIR`.
        path: PathBuf,
    },
    /// A file system or process operation failed.
    #[error(
        "{action} failed: {source} (check that the path exists, is writable and the disk is \
         not full, or set DATABASE_URL to a running server)"
    )]
    Io {
        /// What was being done, with the path involved.
        action: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A PostgreSQL tool (initdb, pg_ctl, …) failed.
    #[error("`{command}` failed ({status}):\n{output}")]
    Command {
        /// The command line (and the OS user it ran as).
        command: String,
        /// Its exit status.
        status: String,
        /// The tail of its output and of the server log, with a hint when the cause is
        /// recognised.
        output: String,
    },
    /// Running as root, and no unprivileged OS user exists to run the server as.
    #[error(
        "running as root, but PostgreSQL refuses to run as root and neither a `postgres` nor a \
         `nobody` OS user exists to run it as: create one (`useradd --system --user-group \
         postgres`) or set DATABASE_URL to a running server"
    )]
    NoUnprivilegedUser,
    /// A name given to [`LocalPostgresBuilder::setting`] is not a configuration parameter name.
    #[error(
        "invalid PostgreSQL setting name {name:?}: use a postgresql.conf parameter name \
         (letters, digits, `_` and `.`, e.g. `max_connections`)"
    )]
    InvalidSetting {
        /// The rejected name.
        name: String,
    },
}

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

/// Configures and starts a [`LocalPostgres`]; from [`LocalPostgres::builder`].
#[derive(Debug, Clone, Default)]
pub struct LocalPostgresBuilder {
    root: Option<PathBuf>,
    durable: Option<bool>,
    listen_tcp: bool,
    settings: Vec<(String, String)>,
}

impl LocalPostgresBuilder {
    /// Keeps the cluster in `root` (data in `root/data`, log in `root/postgres.log`)
    /// instead of a temporary directory. initdb runs only when `root/data` holds no
    /// cluster yet; a cluster found running there is reused.
    ///
    /// `root` should be a directory dedicated to the cluster: when this process is root,
    /// it is handed (chown) to the server's OS user. When that user cannot reach `root`
    /// (e.g. under `/root`, mode 0700), the cluster lives in
    /// `/var/tmp/todo-store-pgdata-<hash of root>` instead, [`LocalPostgres::data_dir`]
    /// says so, and `root/DATA_LOCATION.txt` points there.
    ///
    /// The settings are written anew at each start. For a hot standby made with
    /// `pg_basebackup` from a temporary cluster, repeat the primary's
    /// `max_connections` (200) with [`LocalPostgresBuilder::setting`]: a standby
    /// refuses to start with a lower value than its primary.
    #[must_use]
    pub fn persistent(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }

    /// Whether the server flushes to disk. Off (the default for temporary clusters) sets
    /// `fsync`, `synchronous_commit` and `full_page_writes` off and runs initdb
    /// `--no-sync`: fast, and crash-safe against process crashes but not against OS
    /// crashes. On (the default for persistent clusters) keeps the server's defaults.
    #[must_use]
    pub fn durable(mut self, on: bool) -> Self {
        self.durable = Some(on);
        self
    }

    /// Also listen on 127.0.0.1, on a free port (default: the unix socket only). A
    /// persistent cluster keeps its port between runs unless another process took it;
    /// one found already running keeps the settings it was started with
    /// ([`LocalPostgres::tcp_url`] tells whether it listens on TCP).
    #[must_use]
    pub fn listen_tcp(mut self, on: bool) -> Self {
        self.listen_tcp = on;
        self
    }

    /// An extra `postgresql.conf` setting, e.g. `setting("max_connections", "50")` or
    /// `setting("wal_level", "replica")`. Give the value unquoted (it is quoted for the
    /// file); later settings of the same name win, and these win over the defaults
    /// written by this module. Relative file paths (e.g. `ssl_cert_file`) are relative
    /// to [`LocalPostgres::data_dir`]. They take effect at each start of the server by
    /// this builder, not on a persistent cluster that was already running.
    #[must_use]
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Initialises (when needed) and starts the cluster, and waits until it accepts
    /// connections.
    pub fn start(self) -> Result<LocalPostgres, LocalPostgresError> {
        for (name, _) in &self.settings {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                return Err(LocalPostgresError::InvalidSetting { name: name.clone() });
            }
        }
        let bin_dir = find_bin_dir()?;
        let run_as = run_as_user()?;
        match self.root.clone() {
            None => start_temporary(&self, bin_dir, run_as),
            Some(root) => start_persistent(&self, &root, bin_dir, run_as),
        }
    }

    fn is_durable(&self) -> bool {
        self.durable.unwrap_or(self.root.is_some())
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
    base_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_file: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    tcp: bool,
    temporary: bool,
    already_running: bool,
    /// Persistent clusters: whether Drop stops the server.
    stop_on_drop: bool,
    /// Set by keep_running: Drop does nothing.
    keep: bool,
    /// The OS user the server runs as when this process is root.
    run_as: Option<OsUser>,
    /// The watchdog of a temporary cluster.
    watchdog: Mutex<Option<Child>>,
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
            cmd.uid(user.uid)
                .gid(user.gid)
                .env("HOME", &user.home)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
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

    fn new(base_dir: PathBuf, bin_dir: PathBuf, run_as: Option<OsUser>, temporary: bool) -> Self {
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
            cmd.uid(user.uid)
                .gid(user.gid)
                .env("HOME", &user.home)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
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

    fn pg_ctl_start(&self) -> Result<(), LocalPostgresError> {
        let mut cmd = self.pg_ctl();
        cmd.arg("-l").arg(&self.log_file).arg("start");
        self.run(cmd, true).map(drop)
    }

    /// Whether `pg_ctl status` finds the server running.
    fn pg_ctl_running(&self) -> bool {
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

    fn initdb(&self, durable: bool) -> Result<(), LocalPostgresError> {
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

    /// Writes `data/local_postgres.conf` (and includes it from postgresql.conf).
    fn write_conf(&self, builder: &LocalPostgresBuilder) -> Result<(), LocalPostgresError> {
        let mut settings: Vec<(&str, String)> = vec![
            ("port", self.port.to_string()),
            (
                "unix_socket_directories",
                self.socket_dir.to_string_lossy().into_owned(),
            ),
            (
                "listen_addresses",
                if self.tcp { "127.0.0.1" } else { "" }.to_owned(),
            ),
        ];
        if self.temporary {
            settings.push(("max_connections", "200".to_owned()));
        }
        if !builder.is_durable() {
            for name in ["fsync", "synchronous_commit", "full_page_writes"] {
                settings.push((name, "off".to_owned()));
            }
        }
        for (name, value) in &builder.settings {
            settings.push((name, value.clone()));
        }
        let mut text = String::from(
            "# Written by todo_store::local_postgres at each start of the server: change the\n\
             # builder's settings instead of editing this file. The port is kept.\n",
        );
        for (name, value) in settings {
            let _ = writeln!(text, "{name} = {}", conf_quote(&value));
        }
        let conf = self.data_dir.join(CONF_FILE);
        write_file(&conf, text.as_bytes(), 0o600, self.run_as.as_ref())?;

        let main_conf = self.data_dir.join("postgresql.conf");
        let existing = fs::read_to_string(&main_conf)
            .map_err(io_error(format!("reading {}", main_conf.display())))?;
        if !existing.lines().any(|line| line.trim() == INCLUDE_LINE) {
            let mut file = fs::OpenOptions::new()
                .append(true)
                .open(&main_conf)
                .map_err(io_error(format!("opening {}", main_conf.display())))?;
            file.write_all(
                format!(
                    "\n# Added by todo_store::local_postgres (its settings win):\n{INCLUDE_LINE}\n"
                )
                .as_bytes(),
            )
            .map_err(io_error(format!("appending to {}", main_conf.display())))?;
        }
        Ok(())
    }

    /// Writes the settings and starts the server; when the TCP port turns out to be
    /// taken and `retry_port`, tries again on another free port.
    fn configure_and_start(
        &mut self,
        builder: &LocalPostgresBuilder,
        retry_port: bool,
    ) -> Result<(), LocalPostgresError> {
        let mut attempt = 1;
        loop {
            self.write_conf(builder)?;
            match self.pg_ctl_start() {
                Ok(()) => return Ok(()),
                Err(e)
                    if retry_port && self.tcp && attempt < PORT_ATTEMPTS && is_port_clash(&e) =>
                {
                    attempt += 1;
                    self.port = free_port()?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes port, socket directory and TCP from the postmaster.pid of a running server.
    fn adopt_running(&mut self) {
        let Ok(text) = fs::read_to_string(self.data_dir.join("postmaster.pid")) else {
            return;
        };
        let lines: Vec<&str> = text.lines().collect();
        if let Some(port) = lines.get(3).and_then(|p| p.trim().parse().ok()) {
            self.port = port;
        }
        if let Some(dir) = lines.get(4).map(|d| d.trim()).filter(|d| !d.is_empty()) {
            self.socket_dir = PathBuf::from(dir);
        }
        let listen = lines.get(5).map(|l| l.trim()).unwrap_or("");
        self.tcp = matches!(listen, "*" | "0.0.0.0" | "127.0.0.1" | "localhost");
    }

    fn spawn_watchdog(&self) -> Result<(), LocalPostgresError> {
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("todo-store-pg-watchdog")
            .arg(std::process::id().to_string())
            .arg(&self.base_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .current_dir("/")
            .process_group(0)
            .spawn()
            .map_err(io_error("starting the cleanup watchdog (/bin/sh)"))?;
        *self
            .watchdog
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(child);
        Ok(())
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

fn start_temporary(
    builder: &LocalPostgresBuilder,
    bin_dir: PathBuf,
    run_as: Option<OsUser>,
) -> Result<LocalPostgres, LocalPostgresError> {
    let parents = temp_parents();
    for parent in &parents {
        sweep_stale_temp_dirs(parent);
    }
    // The socket goes into the directory, so its path must be short; and the server's
    // OS user must be able to reach it (TMPDIR may be under /root).
    let parent = parents
        .iter()
        .find(|p| {
            fits_socket_path(&p.join(format!("{TEMP_PREFIX}0123456789abcdef")))
                && run_as.as_ref().is_none_or(|user| user_can_enter(p, user))
        })
        .unwrap_or(&parents[parents.len() - 1]);
    let base = create_unique_dir(parent)?;
    // From here on, Drop removes `base` whatever fails.
    let mut pg = LocalPostgres::new(base, bin_dir, run_as, true);
    write_file(
        &pg.base_dir.join(OWNER_FILE),
        owner_stamp(std::process::id()).as_bytes(),
        0o644,
        None,
    )?;
    hand_over_dir(&pg.base_dir, pg.run_as.as_ref())?;
    pg.spawn_watchdog()?;
    pg.initdb(builder.is_durable())?;
    pg.tcp = builder.listen_tcp;
    if pg.tcp {
        pg.port = free_port()?;
    }
    pg.configure_and_start(builder, true)?;
    Ok(pg)
}

fn start_persistent(
    builder: &LocalPostgresBuilder,
    root: &Path,
    bin_dir: PathBuf,
    run_as: Option<OsUser>,
) -> Result<LocalPostgres, LocalPostgresError> {
    let root = std::path::absolute(root)
        .map_err(io_error(format!("making {} absolute", root.display())))?;
    fs::create_dir_all(&root).map_err(io_error(format!("creating {}", root.display())))?;
    let root =
        fs::canonicalize(&root).map_err(io_error(format!("resolving {}", root.display())))?;
    let base = match &run_as {
        Some(user) if !user_can_enter(root.parent().unwrap_or(&root), user) => {
            let dir = fallback_parent().join(format!(
                "{FALLBACK_PREFIX}{:016x}",
                fnv1a(root.as_os_str().as_bytes())
            ));
            fs::create_dir_all(&dir).map_err(io_error(format!("creating {}", dir.display())))?;
            hand_over_dir(&dir, Some(user))?;
            let note = format!(
                "The PostgreSQL cluster of this directory lives in {} because the OS user `{}` \
                 that runs the server cannot enter {}.\n",
                dir.display(),
                user.name,
                root.display()
            );
            let _ = fs::write(root.join("DATA_LOCATION.txt"), note);
            dir
        }
        Some(user) => {
            chown(&root, Some(user.uid), Some(user.gid)).map_err(io_error(format!(
                "handing {} to OS user {}",
                root.display(),
                user.name
            )))?;
            root.clone()
        }
        None => root.clone(),
    };
    let _lock = DirLock::acquire(&base.join(".lock"))?;
    let mut pg = LocalPostgres::new(base, bin_dir, run_as, false);
    if pg.data_dir.join("PG_VERSION").is_file() {
        if pg.pg_ctl_running() {
            pg.adopt_running();
            pg.already_running = true;
            return Ok(pg);
        }
    } else {
        pg.initdb(builder.is_durable())?;
    }
    if let (Some(user), true) = (&pg.run_as, pg.log_file.exists()) {
        let _ = chown(&pg.log_file, Some(user.uid), Some(user.gid));
    }
    pg.tcp = builder.listen_tcp;
    pg.port = match read_conf_port(&pg.data_dir.join(CONF_FILE)) {
        Some(port) => port,
        None if pg.tcp => free_port()?,
        None => DEFAULT_PORT,
    };
    if pg.tcp && TcpListener::bind(("127.0.0.1", pg.port)).is_err() {
        pg.port = free_port()?;
    }
    if !fits_socket_path(&pg.base_dir) {
        let parents = temp_parents();
        let parent = parents
            .iter()
            .find(|p| fits_socket_path(&p.join(format!("{SOCKET_PREFIX}0123456789abcdef"))))
            .unwrap_or(&parents[parents.len() - 1]);
        let dir = parent.join(format!(
            "{SOCKET_PREFIX}{:016x}",
            fnv1a(pg.data_dir.as_os_str().as_bytes())
        ));
        fs::create_dir_all(&dir).map_err(io_error(format!("creating {}", dir.display())))?;
        hand_over_dir(&dir, pg.run_as.as_ref())?;
        pg.socket_dir = dir;
    }
    let retry_port = pg.tcp;
    pg.configure_and_start(builder, retry_port)?;
    pg.stop_on_drop = true;
    Ok(pg)
}

/// Finds the PostgreSQL server binaries: `PG_BINDIR`, then `pg_config --bindir` (when
/// it holds initdb), then initdb on `PATH`, then the highest version of
/// `/usr/lib/postgresql/*/bin`, then `/usr/local/pgsql/bin`.
///
/// A directory qualifies when it holds executable `initdb`, `pg_ctl` and `postgres`.
pub fn find_bin_dir() -> Result<PathBuf, LocalPostgresError> {
    find_bin_dir_in(&BinSearch {
        pg_bindir: std::env::var_os("PG_BINDIR"),
        pg_config: Some(OsString::from("pg_config")),
        path: std::env::var_os("PATH"),
        versioned_parent: PathBuf::from("/usr/lib/postgresql"),
        fixed: vec![PathBuf::from("/usr/local/pgsql/bin")],
    })
}

/// The inputs of the binary search, so it can be tested without touching the environment.
struct BinSearch {
    pg_bindir: Option<OsString>,
    /// The pg_config program to run (None: skip).
    pg_config: Option<OsString>,
    path: Option<OsString>,
    /// Holds one directory per major version, each with a `bin` (Debian layout).
    versioned_parent: PathBuf,
    fixed: Vec<PathBuf>,
}

fn find_bin_dir_in(search: &BinSearch) -> Result<PathBuf, LocalPostgresError> {
    if let Some(dir) = search.pg_bindir.as_ref().filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if has_server_binaries(&dir) {
            Ok(dir)
        } else {
            Err(LocalPostgresError::InvalidBinDir { path: dir })
        };
    }
    let mut searched = vec!["PG_BINDIR (not set)".to_owned()];

    if let Some(program) = &search.pg_config {
        let name = Path::new(program).display();
        match Command::new(program)
            .arg("--bindir")
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => {
                let dir = PathBuf::from(OsStr::from_bytes(out.stdout.trim_ascii()));
                if has_server_binaries(&dir) {
                    return Ok(dir);
                }
                searched.push(format!(
                    "`{name} --bindir` ({}: no initdb there)",
                    dir.display()
                ));
            }
            Ok(_) => searched.push(format!("`{name} --bindir` (failed)")),
            Err(_) => searched.push(format!("`{name} --bindir` (no {name} on PATH)")),
        }
    }

    if let Some(path) = &search.path {
        if let Some(dir) = std::env::split_paths(path).find(|d| has_server_binaries(d)) {
            return Ok(dir);
        }
    }
    searched.push("PATH".to_owned());

    let mut versions: Vec<(Vec<u64>, PathBuf)> = fs::read_dir(&search.versioned_parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u64>>>()?;
            let bin = entry.path().join("bin");
            has_server_binaries(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Ok(dir);
    }
    searched.push(format!("{}/*/bin", search.versioned_parent.display()));

    for dir in &search.fixed {
        if has_server_binaries(dir) {
            return Ok(dir.clone());
        }
        searched.push(dir.display().to_string());
    }
    Err(LocalPostgresError::NotInstalled {
        searched: searched.join(", "),
    })
}

fn has_server_binaries(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"].iter().all(|name| {
        fs::metadata(dir.join(name))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// An OS user to run the server as.
#[derive(Debug, Clone)]
struct OsUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

/// The user to run the server and its tools as: None when not root.
fn run_as_user() -> Result<Option<OsUser>, LocalPostgresError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        let user =
            lookup_user(name).map_err(io_error(format!("looking up the OS user `{name}`")))?;
        if user.is_some() {
            return Ok(user);
        }
    }
    Err(LocalPostgresError::NoUnprivilegedUser)
}

fn lookup_user(name: &str) -> io::Result<Option<OsUser>> {
    let c_name = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: sysconf has no preconditions.
    let suggested = unsafe { libc::sysconf(libc::_SC_GETPW_R_SIZE_MAX) };
    let mut buf_len = usize::try_from(suggested)
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or(1024);
    loop {
        let mut buf = vec![0 as libc::c_char; buf_len];
        // SAFETY: passwd is a plain C struct for which all-zero is a valid value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call and buf_len is buf's length.
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf_len,
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf_len < 1 << 20 {
            buf_len *= 2;
            continue;
        }
        if result.is_null() {
            return match rc {
                0 | libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => Ok(None),
                _ => Err(io::Error::from_raw_os_error(rc)),
            };
        }
        let home = if pwd.pw_dir.is_null() {
            PathBuf::from("/")
        } else {
            // SAFETY: on success pw_dir points to a NUL-terminated string inside buf.
            let dir = unsafe { CStr::from_ptr(pwd.pw_dir) };
            PathBuf::from(OsStr::from_bytes(dir.to_bytes()))
        };
        return Ok(Some(OsUser {
            name: name.to_owned(),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home,
        }));
    }
}

/// Whether `user` can enter `dir` (and so traverse all its ancestors): tried for real,
/// with a process that changes to it after switching user.
fn user_can_enter(dir: &Path, user: &OsUser) -> bool {
    Command::new("/bin/sh")
        .args(["-c", "exit 0"])
        .current_dir(dir)
        .uid(user.uid)
        .gid(user.gid)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Makes `dir` private (0700) and, when root, the server user's.
fn hand_over_dir(dir: &Path, user: Option<&OsUser>) -> Result<(), LocalPostgresError> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_error(format!(
        "making {} private (mode 0700)",
        dir.display()
    )))?;
    if let Some(user) = user {
        chown(dir, Some(user.uid), Some(user.gid)).map_err(io_error(format!(
            "handing {} to OS user {}",
            dir.display(),
            user.name
        )))?;
    }
    Ok(())
}

fn write_file(
    path: &Path,
    contents: &[u8],
    mode: u32,
    user: Option<&OsUser>,
) -> Result<(), LocalPostgresError> {
    let action = || format!("writing {}", path.display());
    fs::write(path, contents).map_err(io_error(action()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_error(action()))?;
    if let Some(user) = user {
        chown(path, Some(user.uid), Some(user.gid)).map_err(io_error(action()))?;
    }
    Ok(())
}

/// The parents tried for temporary and socket directories: temp_dir, then /tmp.
fn temp_parents() -> Vec<PathBuf> {
    let temp = std::env::temp_dir();
    let temp = std::path::absolute(&temp).unwrap_or(temp);
    let mut parents = vec![temp];
    if parents[0] != Path::new("/tmp") && Path::new("/tmp").is_dir() {
        parents.push(PathBuf::from("/tmp"));
    }
    parents
}

/// Where persistent clusters go whose root the server user cannot reach.
fn fallback_parent() -> PathBuf {
    if Path::new("/var/tmp").is_dir() {
        PathBuf::from("/var/tmp")
    } else {
        std::env::temp_dir()
    }
}

fn fits_socket_path(dir: &Path) -> bool {
    dir.as_os_str().len() + LONGEST_SOCKET_NAME.len() <= MAX_SOCKET_PATH
}

fn create_unique_dir(parent: &Path) -> Result<PathBuf, LocalPostgresError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        let dir = parent.join(format!("{TEMP_PREFIX}{:016x}", hasher.finish()));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(format!("creating {}", dir.display()))(e)),
        }
    }
}

/// `"PID STARTTIME"`: identifies a process even when its pid is reused later.
fn owner_stamp(pid: u32) -> String {
    match process_start_time(pid) {
        Some(start) => format!("{pid} {start}\n"),
        None => format!("{pid}\n"),
    }
}

/// Field 22 of /proc/PID/stat: the process's start time in clock ticks since boot.
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Whether a process lives (zombies count as dead).
fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) if Path::new("/proc/self/stat").exists() => false,
        Err(_) => {
            // SAFETY: kill with signal 0 only checks for the process.
            let rc = unsafe { libc::kill(pid, 0) };
            rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        }
    }
}

/// Whether the owner recorded in a temporary directory's owner file still lives.
fn owner_alive(stamp: &str) -> bool {
    let mut parts = stamp.split_whitespace();
    let Some(pid) = parts.next().and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    let Ok(pid_i32) = i32::try_from(pid) else {
        return false;
    };
    if !process_alive(pid_i32) {
        return false;
    }
    match parts.next().and_then(|s| s.parse::<u64>().ok()) {
        Some(start) => process_start_time(pid).is_none_or(|now| now == start),
        None => true,
    }
}

/// Stops the postmaster of `data_dir` with SIGQUIT (SIGKILL after 10 s) when it is
/// still running; checks that the pid really is that postmaster.
fn kill_postmaster(data_dir: &Path) {
    let Some(pid) = fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()
        .and_then(|text| text.lines().next()?.trim().parse::<i32>().ok())
    else {
        return;
    };
    if pid <= 0 || !process_alive(pid) {
        return;
    }
    if let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) {
        let needle = data_dir.as_os_str().as_bytes();
        if !cmdline.windows(needle.len()).any(|w| w == needle) {
            return;
        }
    }
    // SAFETY: sending a signal has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGQUIT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(pid) {
        if Instant::now() > deadline {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes temporary cluster directories whose owning process is gone (killed before
/// its watchdog could clean up, or whose watchdog died too).
fn sweep_stale_temp_dirs(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let is_ours = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(TEMP_PREFIX));
        if !is_ours || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = entry.path();
        match fs::read_to_string(dir.join(OWNER_FILE)) {
            Ok(stamp) if owner_alive(&stamp) => continue,
            Ok(_) => {}
            // Without an owner file the directory is being created (for microseconds),
            // or half removed while a tool still wrote into it: removed once it is old.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|modified| modified.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(600));
                if !old {
                    continue;
                }
            }
            // Unreadable: another user's, not ours to judge.
            Err(_) => continue,
        }
        kill_postmaster(&dir.join("data"));
        let _ = fs::remove_dir_all(&dir);
    }
}

/// A free TCP port on 127.0.0.1 (free when asked: a start that loses a race retries).
fn free_port() -> Result<u16, LocalPostgresError> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(io_error("finding a free TCP port on 127.0.0.1"))
}

/// The port kept in a persistent cluster's settings file.
fn read_conf_port(conf: &Path) -> Option<u16> {
    let text = fs::read_to_string(conf).ok()?;
    text.lines().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        if name.trim() != "port" {
            return None;
        }
        value.trim().trim_matches('\'').parse().ok()
    })
}

fn is_port_clash(error: &LocalPostgresError) -> bool {
    matches!(error, LocalPostgresError::Command { output, .. }
        if output.contains("could not bind") || output.contains("Address already in use")
            || output.contains("could not create any TCP/IP sockets"))
}

/// An exclusive lock on a file, released on drop (serialises starts of one persistent
/// cluster by concurrent processes).
struct DirLock(#[allow(dead_code)] fs::File);

impl DirLock {
    fn acquire(path: &Path) -> Result<DirLock, LocalPostgresError> {
        let action = || format!("locking {}", path.display());
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_error(action()))?;
        loop {
            // SAFETY: the descriptor is valid while `file` lives.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(DirLock(file));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(io_error(action())(e));
            }
        }
    }
}

fn io_error(action: impl Into<String>) -> impl FnOnce(io::Error) -> LocalPostgresError {
    let action = action.into();
    move |source| LocalPostgresError::Io { action, source }
}

/// The command line for messages: program, arguments, and the OS user.
fn describe(cmd: &Command, user: Option<&OsUser>) -> String {
    let mut text = shell_quote(&cmd.get_program().to_string_lossy());
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&shell_quote(&arg.to_string_lossy()));
    }
    if let Some(user) = user {
        let _ = write!(text, " (as OS user {})", user.name);
    }
    text
}

fn command_error(
    command: String,
    status: ExitStatus,
    output: &Output,
    log: Option<&Path>,
    user: Option<&OsUser>,
) -> LocalPostgresError {
    let mut combined = String::from_utf8_lossy(&output.stdout).into_owned();
    combined.push_str(&String::from_utf8_lossy(&output.stderr));
    let mut text = format!(
        "--- its output (last {TAIL_LINES} lines) ---\n{}",
        tail(&combined)
    );
    if let Some(log) = log {
        match fs::read(log) {
            Ok(bytes) => {
                let _ = write!(
                    text,
                    "\n--- server log {} (last {TAIL_LINES} lines) ---\n{}",
                    log.display(),
                    tail(&String::from_utf8_lossy(&bytes))
                );
            }
            Err(e) => {
                let _ = write!(
                    text,
                    "\n--- server log {}: unreadable ({e}) ---",
                    log.display()
                );
            }
        }
    }
    if let Some(hint) = hint(&text, user) {
        let _ = write!(text, "\nhint: {hint}");
    }
    LocalPostgresError::Command {
        command,
        status: status.to_string(),
        output: text,
    }
}

/// Advice for failures whose cause is recognisable from the output.
fn hint(text: &str, user: Option<&OsUser>) -> Option<String> {
    if text.contains("Address already in use") || text.contains("could not bind") {
        return Some(
            "another server already uses this port or socket: stop it, or for a persistent \
             cluster with listen_tcp start again (a busy port is replaced by a free one)"
                .to_owned(),
        );
    }
    if text.contains("incompatible with server")
        || text.contains("was initialized by PostgreSQL version")
    {
        return Some(
            "the data directory belongs to another PostgreSQL major version: set PG_BINDIR to \
             that version's bin directory, or delete the data directory (its data is lost)"
                .to_owned(),
        );
    }
    if text.contains("Permission denied") {
        let who = user.map_or_else(
            || "this user".to_owned(),
            |u| format!("the OS user `{}`", u.name),
        );
        return Some(format!(
            "{who} runs the server: it must be able to enter and write the cluster's directories"
        ));
    }
    if text.contains("shared memory") || text.contains("No space left on device") {
        return Some(
            "free memory, /dev/shm or disk space, or lower shared_buffers with setting()"
                .to_owned(),
        );
    }
    if text.contains("Is server running?") {
        return Some("the server is not running: start it with LocalPostgres::start".to_owned());
    }
    if text.contains("is not empty") {
        return Some(
            "the data directory holds files but no cluster: remove it (or choose another root)"
                .to_owned(),
        );
    }
    None
}

/// The last [`TAIL_LINES`] lines of `text`.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..].join("\n")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Quotes for a POSIX shell when needed.
fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// A postgresql.conf value: single-quoted, with quotes and backslashes escaped (a value
/// given already quoted is kept).
fn conf_quote(value: &str) -> String {
    if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\\', r"\\").replace('\'', "''"))
}

/// FNV-1a: a hash that stays the same across Rust versions (it names directories).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bogus_search(pg_bindir: Option<&str>) -> BinSearch {
        BinSearch {
            pg_bindir: pg_bindir.map(OsString::from),
            pg_config: Some(OsString::from("/nonexistent/pg_config")),
            path: Some(OsString::from("/nonexistent/bin:/nonexistent/sbin")),
            versioned_parent: PathBuf::from("/nonexistent/postgresql"),
            fixed: vec![PathBuf::from("/nonexistent/pgsql/bin")],
        }
    }

    #[test]
    fn nothing_found_says_what_to_install_or_set() {
        let err = find_bin_dir_in(&bogus_search(None)).unwrap_err();
        assert!(
            matches!(err, LocalPostgresError::NotInstalled { .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("DATABASE_URL"), "{message}");
        for searched in [
            "PG_BINDIR",
            "pg_config --bindir",
            "PATH",
            "/nonexistent/postgresql/*/bin",
            "/nonexistent/pgsql/bin",
        ] {
            assert!(
                message.contains(searched),
                "{searched} missing in: {message}"
            );
        }
    }

    #[test]
    fn bogus_pg_bindir_is_reported_not_skipped() {
        let err = find_bin_dir_in(&bogus_search(Some("/nonexistent/pg"))).unwrap_err();
        assert!(
            matches!(err, LocalPostgresError::InvalidBinDir { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("/nonexistent/pg"), "{err}");
        // An empty PG_BINDIR counts as unset.
        let err = find_bin_dir_in(&bogus_search(Some(""))).unwrap_err();
        assert!(
            matches!(err, LocalPostgresError::NotInstalled { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn highest_version_wins_and_path_is_searched() {
        let root = std::env::temp_dir().join(format!("lpg-bins-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for version in ["9.6", "10", "15", "not-a-version"] {
            let bin = root.join("versions").join(version).join("bin");
            fs::create_dir_all(&bin).unwrap();
            for name in ["initdb", "pg_ctl", "postgres"] {
                write_file(&bin.join(name), b"#!/bin/sh\n", 0o755, None).unwrap();
            }
        }
        let mut search = bogus_search(None);
        search.versioned_parent = root.join("versions");
        assert_eq!(
            find_bin_dir_in(&search).unwrap(),
            root.join("versions/15/bin")
        );

        let on_path = root.join("versions/10/bin");
        search.path = Some(OsString::from(format!(
            "/nonexistent:{}",
            on_path.display()
        )));
        assert_eq!(find_bin_dir_in(&search).unwrap(), on_path);

        search.pg_bindir = Some(root.join("versions/9.6/bin").into_os_string());
        assert_eq!(
            find_bin_dir_in(&search).unwrap(),
            root.join("versions/9.6/bin")
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn quoting_and_encoding() {
        assert_eq!(percent_encode(b"/tmp/a b"), "%2Ftmp%2Fa%20b");
        assert_eq!(percent_encode(b"todo_dev-1.x~"), "todo_dev-1.x~");
        assert_eq!(conf_quote("on"), "'on'");
        assert_eq!(conf_quote(""), "''");
        assert_eq!(conf_quote("it's"), "'it''s'");
        assert_eq!(conf_quote(r"a\b"), r"'a\\b'");
        assert_eq!(conf_quote("'kept'"), "'kept'");
        assert_eq!(shell_quote("/tmp/x"), "/tmp/x");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(tail(&"x\n".repeat(30)).lines().count(), TAIL_LINES);
    }

    #[test]
    fn conf_port_is_read_back() {
        let file = std::env::temp_dir().join(format!("lpg-conf-{}", std::process::id()));
        fs::write(&file, "# c\nport = '54321'\nlisten_addresses = ''\n").unwrap();
        assert_eq!(read_conf_port(&file), Some(54321));
        fs::remove_file(&file).unwrap();
    }

    #[test]
    fn owner_stamps_identify_live_and_dead_processes() {
        assert!(owner_alive(&owner_stamp(std::process::id())));
        assert!(!owner_alive(&format!("{} 1\n", std::process::id())));
        assert!(!owner_alive("garbage"));
        let mut child = Command::new("/bin/true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!owner_alive(&format!("{pid}\n")));
    }

    #[test]
    fn send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<LocalPostgres>();
        check::<LocalPostgresError>();
    }
}
