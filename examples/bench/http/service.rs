//! The web service under test: examples/api.rs, built in release mode, started as a
//! fresh process for each run with a variant's environment, and its CPU time.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::pgbench::tail;
use crate::pinning::{process_cpu_seconds_of, Pinning};
use crate::BoxResult;

use super::Variant;

/// The service's pool (DATABASE_POOL_SIZE), as in the measurements of the issue.
pub const POOL_SIZE: u32 = 10;

/// How long a service may take to print where it listens (it opens its pool first).
const STARTUP: Duration = Duration::from_secs(60);

/// `cargo build --release --example api`: the path of the executable.
pub fn build() -> BoxResult<PathBuf> {
    eprintln!("bench: building the service: cargo build --release --example api");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--release", "--example", "api"])
        .args(["--message-format", "json-render-diagnostics"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if !output.status.success() {
        return Err("cargo build --release --example api failed (its errors are above)".into());
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "api")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo built examples/api.rs but named no executable".into())
}

/// A running service; killed when dropped.
pub struct Service {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Service {
    /// Starts `exe` on database `db_url` with `variant`'s environment (on the client's
    /// CPU when pinned); its stderr goes to `log`. Returns once it listens.
    pub fn start(
        exe: &Path,
        db_url: &str,
        variant: &Variant,
        log: &Path,
        pinning: Option<&Pinning>,
    ) -> BoxResult<Service> {
        let mut stderr = OpenOptions::new().create(true).append(true).open(log)?;
        writeln!(stderr, "== {} ({})", variant.name, variant.env_text())?;
        let mut cmd = Command::new(exe);
        cmd.env("DATABASE_URL", db_url)
            .env("DATABASE_POOL_SIZE", POOL_SIZE.to_string())
            .env("API_ADDR", "127.0.0.1:0")
            .envs(variant.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let child = match pinning {
            Some(p) => p.on_client_cpus(|| cmd.spawn())?,
            None => cmd.spawn(),
        }
        .map_err(|e| format!("could not start {}: {e}", exe.display()))?;
        let mut service = Service {
            child,
            addr: String::new(),
            log: log.to_owned(),
        };
        let stdout = service.child.stdout.take().ok_or("the service's stdout")?;
        let (first_line, listening) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = first_line.send(lines.next());
            // Whatever else it prints is read, so that it never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match listening.recv_timeout(STARTUP) {
            Ok(Some(Ok(line))) => line,
            Ok(_) => return Err(service.failure("it exited before it listened")),
            Err(_) => {
                return Err(
                    service.failure(&format!("it did not listen within {} s", STARTUP.as_secs()))
                )
            }
        };
        match line.strip_prefix("listening on http://") {
            Some(addr) => service.addr = addr.trim().to_owned(),
            None => {
                return Err(service.failure(&format!(
                    "its first line is {line:?}, not `listening on http://ADDR`"
                )))
            }
        }
        Ok(service)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its CPU time so far, user and system, seconds.
    pub fn cpu_seconds(&self) -> BoxResult<f64> {
        Ok(process_cpu_seconds_of(self.child.id())?)
    }

    /// An error about the service, with the end of its log.
    pub fn failure(&self, what: &str) -> Box<dyn std::error::Error> {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!(
            "the service ({}): {what}; the end of {}:\n{}",
            self.child.id(),
            self.log.display(),
            tail(&log, 12)
        )
        .into()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Nothing of it is kept: no need for a graceful shutdown.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
