//! wrk: found (or installed), its Lua script written, a run and what it reports.
//!
//! The script is `requests.lua` (next to this file) after a few generated globals: the
//! users with their tokens and task ids, the mix's shares and the request bodies. Its
//! `done()` prints one line, `bench-result key=value ...`, which [`Figures`] reads:
//! requests, duration, p50 and p99 (from wrk's own histogram, the one `--latency`
//! prints), and every kind of failure wrk counts.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::pgbench::tail;
use crate::pinning::Pinning;
use crate::BoxResult;

use super::data::{UserPicks, CREATED_TITLE};

/// wrk's connections, over its threads: as the measurements in the issue were made.
pub const CONNECTIONS: u32 = 64;
pub const THREADS: u32 = 2;
/// A request slower than this is a timeout for wrk (it also sizes wrk's histogram).
const TIMEOUT: &str = "5s";

/// The mix's shares, in percent: 70 % reads (one task, the open-tasks page), 30 %
/// writes (a new task, a task marked completed with PATCH).
pub const MIX: [(&str, u32); 4] = [("get", 35), ("list", 35), ("create", 15), ("complete", 15)];

/// The mix's PATCH: marks the task completed (it may be already: still a write).
const PATCH_BODY: &str = r#"{"completed":true}"#;

/// The script's logic; the generated globals go before it.
const SCRIPT: &str = include_str!("requests.lua");

/// The wrk this run uses.
pub struct Wrk {
    path: PathBuf,
    /// `wrk 4.1.0 [epoll] ...`, its first line of `wrk -v`.
    pub version: String,
}

/// What a run asks wrk for.
pub struct Call<'a> {
    pub script: &'a Path,
    pub url: &'a str,
    /// The script's endpoint: get, list, create or mix.
    pub endpoint: &'a str,
    /// Count every response that is not 2xx (the warm-up; it slows wrk down).
    pub check: bool,
    pub duration: Duration,
    /// A heading for wrk's output in the log.
    pub title: String,
}

impl Wrk {
    /// wrk on PATH; else, as root, `apt-get install -y wrk` (Debian's); else an error
    /// that says how to get it.
    pub fn find_or_install() -> BoxResult<Wrk> {
        if let Some(path) = on_path("wrk") {
            return Ok(Wrk::at(path));
        }
        if !is_root() {
            return Err(
                "wrk not found: run scripts/setup (it installs wrk), or install wrk \
                        (apt-get install wrk)"
                    .into(),
            );
        }
        eprintln!("bench: wrk not found: apt-get install -y wrk");
        let install = || {
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends", "wrk"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .map_err(|e| format!("could not run apt-get ({e}): install wrk"))
        };
        if !install()?.success() {
            // A fresh machine may have no package lists yet.
            let _ = Command::new("apt-get").args(["update", "-qq"]).status();
            if !install()?.success() {
                return Err("apt-get install wrk failed: install wrk".into());
            }
        }
        on_path("wrk")
            .map(Wrk::at)
            .ok_or_else(|| "wrk was installed, yet it is not on PATH".into())
    }

    fn at(path: PathBuf) -> Wrk {
        // `wrk -v` prints its version, then its usage, and exits with 1.
        let version = Command::new(&path)
            .arg("-v")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .find(|l| l.starts_with("wrk "))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "wrk (version unknown)".to_owned());
        Wrk { path, version }
    }

    /// Runs wrk (on the server's CPUs when pinned); appends its output to `log`.
    pub fn run(
        &self,
        call: &Call<'_>,
        log: &Path,
        pinning: Option<&Pinning>,
    ) -> BoxResult<Figures> {
        let mut cmd = Command::new(&self.path);
        cmd.args(["-c", &CONNECTIONS.to_string(), "-t", &THREADS.to_string()])
            .arg("-d")
            .arg(format!("{}s", call.duration.as_secs().max(1)))
            .args(["--timeout", TIMEOUT, "--latency", "-s"])
            .arg(call.script)
            .arg(call.url)
            .arg("--")
            .arg(call.endpoint);
        if call.check {
            cmd.arg("check");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let output: std::io::Result<Output> = match pinning {
            Some(p) => p.on_server_cpus(|| cmd.output())?,
            None => cmd.output(),
        };
        let output = output.map_err(|e| format!("could not run {}: {e}", self.path.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        writeln!(file, "== {}\n{stdout}{stderr}", call.title)?;
        if !output.status.success() {
            return Err(format!("wrk failed ({}): {}", output.status, tail(&stderr, 6)).into());
        }
        Figures::read(&stdout).ok_or_else(|| {
            format!("wrk printed no bench-result line:\n{}", tail(&stdout, 8)).into()
        })
    }
}

/// Writes the script for `users` to `dir/requests.lua`.
pub fn write_script(dir: &Path, users: &[UserPicks]) -> BoxResult<PathBuf> {
    let mut text = String::from(
        "-- Generated by the benchmark's HTTP mode (examples/bench/http/wrk.rs): the users of\n\
         -- its database with their bearer tokens, valid until that database is dropped.\n\
         USERS = [[\n",
    );
    for user in users {
        text.push_str(&user.token);
        for id in &user.task_ids {
            let _ = write!(text, " {id}");
        }
        text.push('\n');
    }
    text.push_str("]]\nMIX = {");
    for (kind, share) in MIX {
        let _ = write!(text, " {{\"{kind}\", {share}}},");
    }
    let _ = writeln!(
        text,
        " }}\nCREATE_BODY = [[{{\"title\":\"{CREATED_TITLE}\"}}]]\nPATCH_BODY = [[{PATCH_BODY}]]\n"
    );
    text.push_str(SCRIPT);
    let path = dir.join("requests.lua");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// What one wrk run reports (its script's `bench-result` line).
#[derive(Debug, Clone)]
pub struct Figures {
    pub requests: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Responses with a status of 400 or more (wrk's own count).
    pub status_errors: u64,
    pub connect_errors: u64,
    pub read_errors: u64,
    pub write_errors: u64,
    /// Requests without an answer within [`TIMEOUT`].
    pub timeouts: u64,
    /// With `check`: responses that were not 2xx, and how many of each status
    /// (`422x6023,500x2`).
    pub unexpected: Option<(u64, String)>,
}

impl Figures {
    fn read(stdout: &str) -> Option<Figures> {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("bench-result "))?;
        let values: HashMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let n = |key: &str| values.get(key)?.parse::<u64>().ok();
        let unexpected = match values.get("checked") {
            Some(&"true") => Some((n("unexpected")?, values.get("statuses")?.to_string())),
            _ => None,
        };
        Some(Figures {
            requests: n("requests")?,
            seconds: n("duration_us")? as f64 / 1e6,
            p50_ms: n("p50_us")? as f64 / 1e3,
            p99_ms: n("p99_us")? as f64 / 1e3,
            status_errors: n("status")?,
            connect_errors: n("connect")?,
            read_errors: n("read")?,
            write_errors: n("write")?,
            timeouts: n("timeout")?,
            unexpected,
        })
    }

    pub fn req_per_s(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    /// What makes the run's figures meaningless, if anything: no request answered, a
    /// status other than 2xx (as the check counts them; a timed run has wrk's count of
    /// 400 and above), a connection that failed. Timeouts are load, not a fault: they
    /// are reported, not refused.
    pub fn fault(&self) -> Option<String> {
        if let Some((unexpected, statuses)) = &self.unexpected {
            if *unexpected > 0 {
                return Some(format!(
                    "{unexpected} responses were not 2xx (status x count: {statuses})"
                ));
            }
        }
        if self.status_errors > 0 {
            return Some(format!(
                "{} responses had a status of 400 or more",
                self.status_errors
            ));
        }
        let socket = self.connect_errors + self.read_errors + self.write_errors;
        if socket > 0 {
            return Some(format!(
                "socket errors: connect {}, read {}, write {}",
                self.connect_errors, self.read_errors, self.write_errors
            ));
        }
        (self.requests == 0).then(|| "no request was answered".to_owned())
    }
}

/// `name` in a directory of PATH, if there.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// Whether this process runs as root (its effective uid, from /proc/self/status).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| {
                let ids = l.strip_prefix("Uid:")?;
                ids.split_whitespace().nth(1).map(|euid| euid == "0")
            })
        })
        .unwrap_or(false)
}
