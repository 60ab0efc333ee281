//! Running as another OS user: PostgreSQL refuses to run as root, so when this process
//! is root the server and its tools run as `postgres` (else `nobody`), and the files
//! and directories made here are handed to that user.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::{io_error, LocalPostgresError};
use super::sys;

/// An OS user to run the server as.
#[derive(Debug, Clone)]
pub(super) struct OsUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl OsUser {
    /// Makes `cmd` run as this user, with its `HOME`, `USER` and `LOGNAME`.
    pub(super) fn apply_to(&self, cmd: &mut Command) {
        cmd.uid(self.uid)
            .gid(self.gid)
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name);
    }
}

/// The user to run the server and its tools as: None when not root.
pub(super) fn run_as_user() -> Result<Option<OsUser>, LocalPostgresError> {
    if !sys::is_root() {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        let entry =
            sys::getpwnam(name).map_err(io_error(format!("looking up the OS user `{name}`")))?;
        if let Some(entry) = entry {
            return Ok(Some(OsUser {
                name: name.to_owned(),
                uid: entry.uid,
                gid: entry.gid,
                home: entry.home,
            }));
        }
    }
    Err(LocalPostgresError::NoUnprivilegedUser)
}

/// Whether `user` can enter `dir` (and so traverse all its ancestors): tried for real,
/// with a process that changes to it after switching user.
pub(super) fn user_can_enter(dir: &Path, user: &OsUser) -> bool {
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
pub(super) fn hand_over_dir(dir: &Path, user: Option<&OsUser>) -> Result<(), LocalPostgresError> {
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

/// Writes `contents` to `path` with `mode`, owned by `user` when given.
pub(super) fn write_file(
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
