//! Private network namespaces, for a real blackhole: inside one (`unshare -n`, as
//! root) a test brings its own loopback up, runs its cluster and its client on it, and
//! takes the loopback down (`ip link set lo down`) for as long as it likes. Packets
//! then vanish without a reset, as when a NAT or a load balancer forgets a connection;
//! a proxy cannot do that (it can only close connections, and closing is an answer).
//! Only the namespace's own loopback is touched: the machine's network is not.
//!
//! A test runs its body in a namespace with [`in_private_network`], which runs the
//! test binary again under `unshare -n` with just that test selected. Where namespaces
//! are not allowed (not root, a container without `CAP_SYS_ADMIN`, no `unshare` or
//! `ip`), the test prints why it is skipped and returns.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set, in the re-run test binary, to the name of the test that runs inside.
const INNER_TEST: &str = "TODO_STORE_NETNS_TEST";

/// How long the run inside may take before it is killed and the test fails.
const INNER_TIMEOUT: Duration = Duration::from_secs(240);

/// Runs `body` in a private network namespace whose loopback is up. `test` is the
/// calling test function itself (its name selects it): the test binary runs again
/// under `unshare -n` with that one test selected (`--exact`), and there the call runs
/// `body`. Skips (prints why, and returns) where namespaces are not allowed.
///
/// ```ignore
/// #[test]
/// fn a_blackhole_in_a_network_namespace() {
///     in_private_network(a_blackhole_in_a_network_namespace, || { /* lo is up */ });
/// }
/// ```
///
/// # Panics
/// When the run inside fails, runs no test, or takes longer than 240 s.
pub fn in_private_network<T: Fn()>(test: T, body: impl FnOnce()) {
    drop(test);
    // The type name of a function item is its path: `wire_faults::the_test`.
    let path = std::any::type_name::<T>();
    let test_name = path.split_once("::").map_or(path, |(_, name)| name);
    if std::env::var(INNER_TEST).as_deref() == Ok(test_name) {
        set_loopback(true);
        body();
        return;
    }
    if let Err(reason) = namespaces_allowed() {
        eprintln!(
            "SKIPPED {test_name}: it needs a private network namespace (unshare -n, as root) \
             and none can be made here: {reason}"
        );
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new("unshare")
        .arg("-n")
        .arg("--")
        .arg(&exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER_TEST, test_name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the test binary under unshare -n");
    // Read both pipes on threads, so a full pipe never stalls the child.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the namespace run") {
            break Some(status);
        }
        if started.elapsed() > INNER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    eprintln!("--- {test_name} in a private network namespace ---\n{stdout}{stderr}---");
    let status = status.unwrap_or_else(|| panic!("{test_name} took longer than {INNER_TIMEOUT:?}"));
    assert!(
        status.success(),
        "{test_name} failed in the namespace: {status}"
    );
    assert!(
        stdout.contains("1 passed"),
        "{test_name}: the namespace run selected no test (is the name right?)"
    );
}

/// Brings the namespace's loopback up or takes it down.
///
/// # Panics
/// When `ip` fails, or when called outside a private namespace (it would take down
/// the machine's loopback).
pub fn set_loopback(up: bool) {
    assert!(
        std::env::var_os(INNER_TEST).is_some(),
        "set_loopback runs only inside in_private_network"
    );
    let state = if up { "up" } else { "down" };
    let out = Command::new("ip")
        .args(["link", "set", "lo", state])
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip link set lo {state}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether a private network namespace can be made here, and `ip` works in it.
fn namespaces_allowed() -> Result<(), String> {
    let out = Command::new("unshare")
        .args(["-n", "--", "ip", "link", "set", "lo", "up"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run unshare: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`unshare -n -- ip link set lo up` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
