//! Starting a cluster: a temporary one in a fresh directory, or a persistent one in a
//! root of the caller's (reused when running), with their directories, ports and lock.

use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::builder::{read_conf_port, LocalPostgresBuilder, CONF_FILE};
use super::error::{io_error, LocalPostgresError};
use super::handle::{LocalPostgres, DEFAULT_PORT};
use super::os_user::{hand_over_dir, user_can_enter, write_file, OsUser};
use super::sys;
use super::watchdog::{self, OWNER_FILE, TEMP_PREFIX};
use crate::checksum::fnv1a;

/// Name prefix of the data directories used when a persistent root is unreachable.
const FALLBACK_PREFIX: &str = "todo-store-pgdata-";
/// Name prefix of the short socket directories used when a path is too long.
const SOCKET_PREFIX: &str = "todo-store-pgsock-";
/// The longest unix socket path the kernel accepts (sun_path is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;
/// The socket file name with the longest possible port, to check path lengths.
const LONGEST_SOCKET_NAME: &str = "/.s.PGSQL.65535";
/// How often a temporary start tries another TCP port when the chosen one was taken.
const PORT_ATTEMPTS: usize = 4;

/// Starts a temporary cluster: sweeps directories of dead owners, creates a fresh one,
/// starts its watchdog, runs initdb and starts the server.
pub(super) fn temporary(
    builder: &LocalPostgresBuilder,
    bin_dir: PathBuf,
    run_as: Option<OsUser>,
) -> Result<LocalPostgres, LocalPostgresError> {
    let parents = temp_parents();
    for parent in &parents {
        watchdog::sweep_stale_temp_dirs(parent);
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
        watchdog::owner_stamp(std::process::id()).as_bytes(),
        0o644,
        None,
    )?;
    hand_over_dir(&pg.base_dir, pg.run_as.as_ref())?;
    let child = watchdog::spawn(&pg.base_dir)?;
    *pg.watchdog
        .get_mut()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(child);
    pg.initdb(builder.is_durable())?;
    pg.tcp = builder.wants_tcp();
    if pg.tcp {
        pg.port = free_port()?;
    }
    configure_and_start(&mut pg, builder, true)?;
    Ok(pg)
}

/// Starts the persistent cluster of `root`, or adopts it when it is running already.
pub(super) fn persistent(
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
    let base = persistent_base(&root, run_as.as_ref())?;
    let _lock = DirLock::acquire(&base.join(".lock"))?;
    let mut pg = LocalPostgres::new(base, bin_dir, run_as, false);
    if pg.data_dir.join("PG_VERSION").is_file() {
        if pg.pg_ctl_running() {
            adopt_running(&mut pg);
            pg.already_running = true;
            return Ok(pg);
        }
    } else {
        pg.initdb(builder.is_durable())?;
    }
    if let (Some(user), true) = (&pg.run_as, pg.log_file.exists()) {
        let _ = chown(&pg.log_file, Some(user.uid), Some(user.gid));
    }
    pg.tcp = builder.wants_tcp();
    pg.port = match read_conf_port(&pg.data_dir.join(CONF_FILE)) {
        Some(port) => port,
        None if pg.tcp => free_port()?,
        None => DEFAULT_PORT,
    };
    if pg.tcp && TcpListener::bind(("127.0.0.1", pg.port)).is_err() {
        pg.port = free_port()?;
    }
    if !fits_socket_path(&pg.base_dir) {
        pg.socket_dir = short_socket_dir(&pg)?;
    }
    let retry_port = pg.tcp;
    configure_and_start(&mut pg, builder, retry_port)?;
    pg.stop_on_drop = true;
    Ok(pg)
}

/// The directory of the persistent cluster of `root` (absolute and resolved): `root`
/// itself, handed to the server's OS user when root; or, when that user cannot reach
/// it, a directory in [`fallback_parent`] named after it, which `root` points to.
fn persistent_base(root: &Path, run_as: Option<&OsUser>) -> Result<PathBuf, LocalPostgresError> {
    match run_as {
        Some(user) if !user_can_enter(root.parent().unwrap_or(root), user) => {
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
            Ok(dir)
        }
        Some(user) => {
            chown(root, Some(user.uid), Some(user.gid)).map_err(io_error(format!(
                "handing {} to OS user {}",
                root.display(),
                user.name
            )))?;
            Ok(root.to_path_buf())
        }
        None => Ok(root.to_path_buf()),
    }
}

/// A socket directory with a path short enough for the kernel, for a cluster whose own
/// directory is too deep: in a temporary parent, named after the data directory.
fn short_socket_dir(pg: &LocalPostgres) -> Result<PathBuf, LocalPostgresError> {
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
    Ok(dir)
}

/// Writes the settings and starts the server; when the TCP port turns out to be
/// taken and `retry_port`, tries again on another free port.
fn configure_and_start(
    pg: &mut LocalPostgres,
    builder: &LocalPostgresBuilder,
    retry_port: bool,
) -> Result<(), LocalPostgresError> {
    let mut attempt = 1;
    loop {
        builder.write_conf(pg)?;
        match pg.pg_ctl_start() {
            Ok(()) => return Ok(()),
            Err(e) if retry_port && pg.tcp && attempt < PORT_ATTEMPTS && is_port_clash(&e) => {
                attempt += 1;
                pg.port = free_port()?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Takes port, socket directory and TCP from the postmaster.pid of a running server.
fn adopt_running(pg: &mut LocalPostgres) {
    let Ok(text) = fs::read_to_string(pg.data_dir.join("postmaster.pid")) else {
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    if let Some(port) = lines.get(3).and_then(|p| p.trim().parse().ok()) {
        pg.port = port;
    }
    if let Some(dir) = lines.get(4).map(|d| d.trim()).filter(|d| !d.is_empty()) {
        pg.socket_dir = PathBuf::from(dir);
    }
    let listen = lines.get(5).map(|l| l.trim()).unwrap_or("");
    pg.tcp = matches!(listen, "*" | "0.0.0.0" | "127.0.0.1" | "localhost");
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

/// A free TCP port on 127.0.0.1 (free when asked: a start that loses a race retries).
fn free_port() -> Result<u16, LocalPostgresError> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(io_error("finding a free TCP port on 127.0.0.1"))
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
        sys::lock_exclusive(&file).map_err(io_error(action()))?;
        Ok(DirLock(file))
    }
}
