//! Starts Debian's `pgbouncer` in transaction mode in front of a [`LocalPostgres`].

use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::{chown, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::{CacheSize, SimpleConnection};
use diesel::{Connection, PgConnection};
use todo_store::local_postgres::LocalPostgres;

/// Server connections per database and user (`default_pool_size`).
pub const POOL_SIZE: usize = 2;

/// Where the binary is looked for (Debian installs it in /usr/sbin).
const CANDIDATES: &[&str] = &["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"];

/// Runs PgBouncer (`$@`) until the test process (`$1`) is gone or the run file
/// (`$2`) is removed, then stops it: no PgBouncer outlives the test, even when the
/// test process is killed.
const WATCHDOG: &str = r#"
owner=$1; run=$2; shift 2
"$@" &
pb=$!
trap 'kill -TERM "$pb" 2>/dev/null; exit 0' TERM INT HUP
while [ -d "/proc/$owner" ] && [ -e "$run" ] && [ -d "/proc/$pb" ]; do sleep 0.1; done
kill -TERM "$pb" 2>/dev/null
wait "$pb"
"#;

/// A running PgBouncer; stopped and its directory removed on drop.
pub struct PgBouncer {
    dir: PathBuf,
    port: u16,
    watchdog: Child,
}

impl PgBouncer {
    /// Starts PgBouncer with `pool_mode = transaction` on a free loopback port in
    /// front of every database of `pg`, for `users` (trust authentication).
    pub fn start(pg: &LocalPostgres, users: &[&str]) -> PgBouncer {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let binary = CANDIDATES
            .iter()
            .find(|p| std::path::Path::new(p).is_file())
            .unwrap_or_else(|| {
                panic!(
                    "pgbouncer is not installed (looked for {CANDIDATES:?}): \
                     apt-get install pgbouncer"
                )
            });
        // PgBouncer refuses to run as root: run it as the cluster's OS user, in a
        // directory of the cluster's (so it goes with the cluster, whatever happens).
        let meta = fs::metadata(pg.data_dir()).unwrap();
        let (uid, gid) = (meta.uid(), meta.gid());
        let as_other_user = fs::metadata("/proc/self").map_or(true, |m| m.uid() != uid);
        let give = |path: &std::path::Path| {
            if as_other_user {
                chown(path, Some(uid), Some(gid)).unwrap();
            }
        };

        let mut last_error = String::new();
        // A port found free may be taken before PgBouncer binds it: try another.
        for _attempt in 0..3 {
            let dir = pg.data_dir().parent().unwrap().join(format!(
                "pgbouncer-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&dir).unwrap();
            give(&dir);
            let auth: String = users.iter().map(|u| format!("\"{u}\" \"\"\n")).collect();
            write(&dir.join("userlist.txt"), &auth);
            give(&dir.join("userlist.txt"));
            let port = free_port();
            let conf = dir.join("pgbouncer.ini");
            write(
                &conf,
                &format!(
                    "[databases]\n\
                     * = host={socket} port={pg_port}\n\
                     [pgbouncer]\n\
                     listen_addr = 127.0.0.1\n\
                     listen_port = {port}\n\
                     unix_socket_dir =\n\
                     auth_type = trust\n\
                     auth_file = {dir}/userlist.txt\n\
                     pool_mode = transaction\n\
                     default_pool_size = {POOL_SIZE}\n\
                     min_pool_size = 0\n\
                     reserve_pool_size = 0\n\
                     max_client_conn = 200\n\
                     server_reset_query =\n\
                     server_login_retry = 1\n\
                     logfile = {dir}/pgbouncer.log\n\
                     pidfile = {dir}/pgbouncer.pid\n",
                    socket = pg.socket_dir().display(),
                    pg_port = pg.port(),
                    dir = dir.display(),
                ),
            );
            give(&conf);
            let run = dir.join("run");
            write(&run, "");
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c")
                .arg(WATCHDOG)
                .arg("pgbouncer-watchdog")
                .arg(std::process::id().to_string())
                .arg(&run)
                .arg(binary)
                .arg(&conf)
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0);
            if as_other_user {
                cmd.uid(uid).gid(gid);
            }
            let watchdog = cmd.spawn().expect("spawning pgbouncer");
            let bouncer = PgBouncer {
                dir,
                port,
                watchdog,
            };
            match bouncer.wait_ready() {
                Ok(()) => return bouncer,
                Err(e) => last_error = format!("{e}\n{}", bouncer.log_tail()),
            }
        }
        panic!("PgBouncer did not start: {last_error}");
    }

    /// The URL of `database` through PgBouncer as `user`.
    pub fn url(&self, user: &str, database: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{database}", self.port)
    }

    /// The last lines of PgBouncer's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("pgbouncer log:\n{tail}")
    }

    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let attempt = PgConnection::establish(&self.url("postgres", "postgres"))
                .map_err(|e| e.to_string())
                .and_then(|mut conn| {
                    conn.set_prepared_statement_cache_size(CacheSize::Disabled);
                    conn.batch_execute("SELECT 1").map_err(|e| e.to_string())
                });
            match attempt {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.dir.join("run"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.watchdog.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(None) = self.watchdog.try_wait() {
            let _ = self.watchdog.kill();
            let _ = self.watchdog.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn write(path: &std::path::Path, text: &str) {
    let mut file = fs::File::create(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
