//! Cleaning up after owners that died: the watchdog process of each temporary cluster,
//! and the sweep of directories left by dead owners that every new temporary cluster
//! runs first.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::error::{io_error, LocalPostgresError};
use super::sys::{self, Signal};

/// Name prefix of temporary cluster directories (swept when their owner is dead).
pub(super) const TEMP_PREFIX: &str = "todo-store-pg-";
/// File in a temporary cluster's directory naming the owning process.
pub(super) const OWNER_FILE: &str = "owner.pid";

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

/// Starts the watchdog of the temporary cluster in `base_dir`, owned by this process:
/// in a process group of its own, so that signals to the owner's group (Ctrl-C) miss it.
pub(super) fn spawn(base_dir: &Path) -> Result<Child, LocalPostgresError> {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(WATCHDOG_SCRIPT)
        .arg("todo-store-pg-watchdog")
        .arg(std::process::id().to_string())
        .arg(base_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/")
        .process_group(0)
        .spawn()
        .map_err(io_error("starting the cleanup watchdog (/bin/sh)"))
}

/// `"PID STARTTIME"`: identifies a process even when its pid is reused later.
pub(super) fn owner_stamp(pid: u32) -> String {
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
        Err(_) => sys::process_exists(pid),
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
pub(super) fn kill_postmaster(data_dir: &Path) {
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
    sys::send_signal(pid, Signal::Quit);
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(pid) {
        if Instant::now() > deadline {
            sys::send_signal(pid, Signal::Kill);
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes temporary cluster directories whose owning process is gone (killed before
/// its watchdog could clean up, or whose watchdog died too).
pub(super) fn sweep_stale_temp_dirs(parent: &Path) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
