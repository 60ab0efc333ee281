//! [`LocalPostgresError`], and the messages of failed commands: their output, the
//! server log's tail, and a hint when the cause is recognisable.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};

use super::os_user::OsUser;
use super::quote::shell_quote;

/// How many lines of a command's output or of the server log an error shows.
pub(super) const TAIL_LINES: usize = 20;

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
    /// A name given to [`LocalPostgresBuilder::setting`](super::LocalPostgresBuilder::setting)
    /// is not a configuration parameter name.
    #[error(
        "invalid PostgreSQL setting name {name:?}: use a postgresql.conf parameter name \
         (letters, digits, `_` and `.`, e.g. `max_connections`)"
    )]
    InvalidSetting {
        /// The rejected name.
        name: String,
    },
}

/// Maps an I/O error to [`LocalPostgresError::Io`] of `action` (what was being done).
pub(super) fn io_error(action: impl Into<String>) -> impl FnOnce(io::Error) -> LocalPostgresError {
    let action = action.into();
    move |source| LocalPostgresError::Io { action, source }
}

/// The command line for messages: program, arguments, and the OS user.
pub(super) fn describe(cmd: &Command, user: Option<&OsUser>) -> String {
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

/// A [`LocalPostgresError::Command`] for `command`, which exited with `status`: the
/// tail of its output (and of the server `log`), and a hint.
pub(super) fn command_error(
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
pub(super) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..].join("\n")
}
