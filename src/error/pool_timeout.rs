//! A checkout that timed out, as [`Error::PoolTimeout`].
//!
//! r2d2's error says neither the pool's size nor its timeout, so the pool notes both on
//! the calling thread as it gives up, and the conversion from `r2d2::Error` takes them
//! from there.

use std::time::Duration;

use super::Error;

pub(super) fn pool_timeout_message(
    max_size: u32,
    timeout: Duration,
    last_error: Option<&str>,
) -> String {
    let mut msg = String::from("timed out");
    if !timeout.is_zero() {
        msg.push_str(&format!(" after {timeout:?}"));
    }
    msg.push_str(" waiting for a database connection");
    if max_size > 0 {
        msg.push_str(&format!(" (pool size {max_size})"));
    }
    if let Some(e) = last_error.filter(|e| !e.is_empty()) {
        msg.push_str(&format!("; last connection error: {e}"));
    }
    msg.push_str(
        ": raise DATABASE_POOL_SIZE or DATABASE_CONNECT_TIMEOUT_MS, hold connections for less \
         time, or check that the server is reachable",
    );
    msg
}

impl From<r2d2::Error> for Error {
    /// A checkout (`pool.get()?`) that timed out. r2d2's error holds neither the pool's
    /// size nor its timeout; a pool built by the crate notes both on the calling thread
    /// as the checkout times out, and the conversion takes them from there. (An error
    /// converted on another thread, or from a pool built elsewhere, gives 0 for both.)
    fn from(err: r2d2::Error) -> Self {
        let (max_size, timeout) = take_pool_timeout().unwrap_or((0, Duration::ZERO));
        Error::PoolTimeout {
            max_size,
            timeout,
            last_error: last_connection_error(&err.to_string(), None),
        }
    }
}

/// The last connection error of an r2d2 error message (`timed out waiting for
/// connection: <last error>`), with the secrets of `info` (and anything that looks like
/// a password) removed.
pub(crate) fn last_connection_error(
    r2d2_message: &str,
    info: Option<&crate::conninfo::Conninfo>,
) -> Option<String> {
    r2d2_message
        .split_once(": ")
        .map(|(_, last)| crate::conninfo::scrub(last.trim(), info))
}

thread_local! {
    /// The size and timeout of the pool whose checkout last timed out on this thread,
    /// until the checkout's error is converted.
    static POOL_TIMEOUT: std::cell::Cell<Option<(u32, Duration)>> =
        const { std::cell::Cell::new(None) };
}

/// Notes, on the calling thread, that a checkout of a pool of `max_size` connections
/// timed out after `timeout` (called by the pool as it gives up).
pub(crate) fn note_pool_timeout(max_size: u32, timeout: Duration) {
    POOL_TIMEOUT.with(|slot| slot.set(Some((max_size, timeout))));
}

/// What [`note_pool_timeout`] noted last on this thread, once.
pub(crate) fn take_pool_timeout() -> Option<(u32, Duration)> {
    POOL_TIMEOUT.with(std::cell::Cell::take)
}
