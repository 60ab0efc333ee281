//! Every call into libc of this module, behind safe functions: the effective user, the
//! password database, signals and file locks. Nothing else here is `unsafe`.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Whether this process runs as root (effective uid 0).
pub(super) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The password database entry of an OS user.
pub(super) struct Passwd {
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// Looks `name` up in the password database (`getpwnam_r`); `None` when there is no
/// such user.
pub(super) fn getpwnam(name: &str) -> io::Result<Option<Passwd>> {
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
        return Ok(Some(Passwd {
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home,
        }));
    }
}

/// Whether a process with this pid exists (`kill(pid, 0)`; one of another user counts).
pub(super) fn process_exists(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for the process.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A signal [`send_signal`] sends.
#[derive(Debug, Clone, Copy)]
pub(super) enum Signal {
    /// SIGQUIT: the postmaster's immediate shutdown.
    Quit,
    /// SIGKILL.
    Kill,
}

/// Sends `signal` to `pid`, ignoring failure (the process may be gone already).
pub(super) fn send_signal(pid: i32, signal: Signal) {
    let signal = match signal {
        Signal::Quit => libc::SIGQUIT,
        Signal::Kill => libc::SIGKILL,
    };
    // SAFETY: sending a signal has no memory-safety preconditions.
    unsafe { libc::kill(pid, signal) };
}

/// Takes an exclusive `flock` on `file`, waiting for it (and retrying when a signal
/// interrupts the wait).
pub(super) fn lock_exclusive(file: &File) -> io::Result<()> {
    loop {
        // SAFETY: the descriptor is valid while `file` lives.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
