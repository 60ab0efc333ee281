//! [`LocalPostgresBuilder`], and the settings file it writes into the data directory
//! at each start of the server.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::bin_dir::find_bin_dir;
use super::error::{io_error, LocalPostgresError};
use super::handle::LocalPostgres;
use super::os_user::{run_as_user, write_file};
use super::quote::conf_quote;
use super::start;

/// The settings file written into the data directory at each start.
pub(super) const CONF_FILE: &str = "local_postgres.conf";
/// The line that makes postgresql.conf read [`CONF_FILE`] last.
const INCLUDE_LINE: &str = "include_if_exists = 'local_postgres.conf'";

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
        self.check_setting_names()?;
        let bin_dir = find_bin_dir()?;
        let run_as = run_as_user()?;
        match self.root.clone() {
            None => start::temporary(&self, bin_dir, run_as),
            Some(root) => start::persistent(&self, &root, bin_dir, run_as),
        }
    }

    pub(super) fn is_durable(&self) -> bool {
        self.durable.unwrap_or(self.root.is_some())
    }

    pub(super) fn wants_tcp(&self) -> bool {
        self.listen_tcp
    }

    fn check_setting_names(&self) -> Result<(), LocalPostgresError> {
        for (name, _) in &self.settings {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                return Err(LocalPostgresError::InvalidSetting { name: name.clone() });
            }
        }
        Ok(())
    }

    /// Writes `data/local_postgres.conf` of `pg` (and includes it from postgresql.conf).
    pub(super) fn write_conf(&self, pg: &LocalPostgres) -> Result<(), LocalPostgresError> {
        let conf = pg.data_dir.join(CONF_FILE);
        write_file(
            &conf,
            self.conf_text(pg).as_bytes(),
            0o600,
            pg.run_as.as_ref(),
        )?;
        include_conf(&pg.data_dir.join("postgresql.conf"))
    }

    /// The text of [`CONF_FILE`]: where `pg` listens, speed over durability unless
    /// durable, then the builder's own settings (the last of a name wins).
    fn conf_text(&self, pg: &LocalPostgres) -> String {
        let mut settings: Vec<(&str, String)> = vec![
            ("port", pg.port.to_string()),
            (
                "unix_socket_directories",
                pg.socket_dir.to_string_lossy().into_owned(),
            ),
            (
                "listen_addresses",
                if pg.tcp { "127.0.0.1" } else { "" }.to_owned(),
            ),
        ];
        if pg.temporary {
            settings.push(("max_connections", "200".to_owned()));
        }
        if !self.is_durable() {
            for name in ["fsync", "synchronous_commit", "full_page_writes"] {
                settings.push((name, "off".to_owned()));
            }
        }
        for (name, value) in &self.settings {
            settings.push((name, value.clone()));
        }
        let mut text = String::from(
            "# Written by todo_store::local_postgres at each start of the server: change the\n\
             # builder's settings instead of editing this file. The port is kept.\n",
        );
        for (name, value) in settings {
            let _ = writeln!(text, "{name} = {}", conf_quote(&value));
        }
        text
    }
}

/// Appends [`INCLUDE_LINE`] to `main_conf` (postgresql.conf) unless it is there.
fn include_conf(main_conf: &Path) -> Result<(), LocalPostgresError> {
    let existing = fs::read_to_string(main_conf)
        .map_err(io_error(format!("reading {}", main_conf.display())))?;
    if existing.lines().any(|line| line.trim() == INCLUDE_LINE) {
        return Ok(());
    }
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(main_conf)
        .map_err(io_error(format!("opening {}", main_conf.display())))?;
    file.write_all(
        format!("\n# Added by todo_store::local_postgres (its settings win):\n{INCLUDE_LINE}\n")
            .as_bytes(),
    )
    .map_err(io_error(format!("appending to {}", main_conf.display())))
}

/// The port kept in a persistent cluster's settings file.
pub(super) fn read_conf_port(conf: &Path) -> Option<u16> {
    let text = fs::read_to_string(conf).ok()?;
    text.lines().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        if name.trim() != "port" {
            return None;
        }
        value.trim().trim_matches('\'').parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_port_is_read_back() {
        let file = std::env::temp_dir().join(format!("lpg-conf-{}", std::process::id()));
        fs::write(&file, "# c\nport = '54321'\nlisten_addresses = ''\n").unwrap();
        assert_eq!(read_conf_port(&file), Some(54321));
        fs::remove_file(&file).unwrap();
    }
}
