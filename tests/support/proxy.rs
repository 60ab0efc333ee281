//! A fault-injecting TCP proxy on loopback: it forwards every connection to a server
//! and, on command, adds latency, resets every connection, refuses new ones, or makes
//! new ones wait for a cold start. It stops (and resets what it still carries) when
//! dropped.
//!
//! ```ignore
//! let proxy = FaultProxy::start(pg_addr);
//! let pool = todo_store::connect(&DbConfig::new(proxy.url("postgres")))?;
//! proxy.set_latency(Duration::from_millis(200)); // each way
//! proxy.reset_all();                              // RST to both ends of every connection
//! ```
//!
//! Latency delays each chunk of bytes by the same amount in its direction without
//! limiting throughput: a reader thread stamps what it reads, a writer thread holds it
//! until the stamp plus the latency. A reset sets `SO_LINGER` to zero and closes both
//! sockets, so each end sees a TCP reset, as when a pooler or a load balancer drops a
//! connection.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the threads of the proxy look at their stop flags.
const POLL: Duration = Duration::from_millis(2);

/// A running proxy; see the [module docs](self).
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    upstream: SocketAddr,
    stop: AtomicBool,
    latency_us: AtomicU64,
    refuse: AtomicBool,
    wake: Mutex<Wake>,
    links: Mutex<HashMap<u64, Link>>,
    next_id: AtomicU64,
    accepted: AtomicU64,
}

/// The upstream as a scale-to-zero endpoint sees it.
#[derive(Debug, Clone, Copy)]
enum Wake {
    Awake,
    /// The next connection starts a wake-up that takes this long.
    Asleep(Duration),
    /// Waking up: connections wait until then.
    Waking(Instant),
}

/// The sockets of one forwarded connection, for resetting it from outside.
struct Link {
    client: TcpStream,
    upstream: Option<TcpStream>,
    killed: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards each connection to `upstream`.
    ///
    /// # Panics
    /// When it cannot listen.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        assert!(
            upstream.ip().is_loopback(),
            "the proxy forwards to loopback only"
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            upstream,
            stop: AtomicBool::new(false),
            latency_us: AtomicU64::new(0),
            refuse: AtomicBool::new(false),
            wake: Mutex::new(Wake::Awake),
            links: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("proxy-accept".into())
                .spawn(move || accept_loop(listener, addr, &shared))
                .expect("spawn the proxy")
        };
        FaultProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Where the proxy listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A libpq URL of `database` as user `postgres` through the proxy.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@{}/{database}", self.addr)
    }

    /// Adds `latency` to every chunk of bytes in each direction (so a round trip costs
    /// twice `latency`), for the connections open now and later.
    pub fn set_latency(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.shared.latency_us.store(us, Ordering::SeqCst);
    }

    /// Resets every connection the proxy carries now: both ends see a TCP reset.
    /// Returns how many there were.
    pub fn reset_all(&self) -> usize {
        let links: Vec<Link> = {
            let mut map = self.shared.links.lock().unwrap();
            map.drain().map(|(_, link)| link).collect()
        };
        let count = links.len();
        for link in links {
            link.kill();
        }
        count
    }

    /// While `on`, new connections are refused (nothing listens on the port: the client
    /// gets `ECONNREFUSED`); connections already open go on.
    pub fn refuse_new(&self, on: bool) {
        self.shared.refuse.store(on, Ordering::SeqCst);
        // The acceptor closes or reopens the port on its next turn.
        std::thread::sleep(POLL * 10);
    }

    /// A cold start, as of a serverless endpoint scaled to zero: the next connection
    /// wakes the upstream, which takes `delay`; that connection and every one arriving
    /// meanwhile are accepted at once but forwarded only when it is awake; later ones
    /// pass at once. `Duration::ZERO` wakes it now.
    pub fn delay_new(&self, delay: Duration) {
        *self.shared.wake.lock().unwrap() = if delay.is_zero() {
            Wake::Awake
        } else {
            Wake::Asleep(delay)
        };
    }

    /// Connections carried now.
    pub fn connections(&self) -> usize {
        self.shared.links.lock().unwrap().len()
    }

    /// Connections accepted since the start.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.reset_all();
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Link {
    /// A reset: linger zero, then wake the readers so that the threads drop their
    /// handles and the last close sends RST.
    fn kill(self) {
        self.killed.store(true, Ordering::SeqCst);
        for stream in std::iter::once(&self.client).chain(self.upstream.as_ref()) {
            set_linger_zero(stream);
            let _ = stream.shutdown(Shutdown::Read);
        }
    }
}

fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is a valid open socket for the lifetime of `stream`, and `linger`
    // is a valid `struct linger` whose size is passed with it.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::addr_of!(linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn accept_loop(listener: TcpListener, addr: SocketAddr, shared: &Arc<Shared>) {
    let mut listener = Some(listener);
    while !shared.stop.load(Ordering::SeqCst) {
        let refuse = shared.refuse.load(Ordering::SeqCst);
        if refuse {
            // Closing the listening socket makes the kernel refuse connections.
            listener = None;
        } else if listener.is_none() {
            // Reopen the same port (std sets SO_REUSEADDR); it was ours a moment ago.
            listener = TcpListener::bind(addr).ok();
        }
        let Some(l) = listener.as_ref() else {
            std::thread::sleep(POLL);
            continue;
        };
        l.set_nonblocking(true).expect("a non-blocking listener");
        match l.accept() {
            Ok((client, _)) => {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_nonblocking(false);
                let shared = Arc::clone(shared);
                let _ = std::thread::Builder::new()
                    .name("proxy-link".into())
                    .spawn(move || carry(client, &shared));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// One connection: waits out a cold start, connects upstream, and forwards both ways
/// until either side closes or the link is reset.
fn carry(client: TcpStream, shared: &Arc<Shared>) {
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let killed = Arc::new(AtomicBool::new(false));
    let Ok(client_handle) = client.try_clone() else {
        return;
    };
    shared.links.lock().unwrap().insert(
        id,
        Link {
            client: client_handle,
            upstream: None,
            killed: Arc::clone(&killed),
        },
    );
    let gone = || killed.load(Ordering::SeqCst) || shared.stop.load(Ordering::SeqCst);
    let awake_at = wake_time(shared);
    while Instant::now() < awake_at && !gone() {
        std::thread::sleep(POLL);
    }
    let upstream = match TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(2)) {
        Ok(upstream) if !gone() => upstream,
        _ => {
            if let Some(link) = shared.links.lock().unwrap().remove(&id) {
                link.kill();
            }
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    {
        let mut links = shared.links.lock().unwrap();
        match links.get_mut(&id) {
            Some(link) => link.upstream = upstream.try_clone().ok(),
            None => {
                // Reset while connecting.
                set_linger_zero(&upstream);
                return;
            }
        }
    }
    let back = {
        let (from, to) = (upstream.try_clone(), client.try_clone());
        let (shared, killed) = (Arc::clone(shared), Arc::clone(&killed));
        std::thread::spawn(move || {
            if let (Ok(from), Ok(to)) = (from, to) {
                pump(from, to, &shared, &killed);
            }
        })
    };
    pump(client, upstream, shared, &killed);
    let _ = back.join();
    shared.links.lock().unwrap().remove(&id);
}

/// When a connection arriving now may be forwarded (see [`FaultProxy::delay_new`]).
fn wake_time(shared: &Shared) -> Instant {
    let mut wake = shared.wake.lock().unwrap();
    let now = Instant::now();
    match *wake {
        Wake::Awake => now,
        Wake::Asleep(delay) => {
            *wake = Wake::Waking(now + delay);
            now + delay
        }
        Wake::Waking(at) if at <= now => {
            *wake = Wake::Awake;
            now
        }
        Wake::Waking(at) => at,
    }
}

/// A chunk of bytes and when it may be written on; `None` for the end of the stream.
type Chunk = (Instant, Option<Vec<u8>>);

/// Forwards `from` to `to` with the proxy's latency, until the end of `from`, an error,
/// or a reset.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Arc<Shared>, killed: &AtomicBool) {
    let (tx, rx) = mpsc::channel::<Chunk>();
    let from_handle = from.try_clone().ok();
    let reader = {
        let shared = Arc::clone(shared);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let latency = Duration::from_micros(shared.latency_us.load(Ordering::SeqCst));
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send((Instant::now() + latency, None));
                        return;
                    }
                    Ok(n) => {
                        if tx
                            .send((Instant::now() + latency, Some(buf[..n].to_vec())))
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        })
    };
    for (due, chunk) in rx {
        let wait = due.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        if killed.load(Ordering::SeqCst) {
            break;
        }
        match chunk {
            Some(bytes) => {
                if to.write_all(&bytes).is_err() {
                    // The other end is gone: stop reading this one too.
                    let _ = to.shutdown(Shutdown::Both);
                    if let Some(from) = &from_handle {
                        let _ = from.shutdown(Shutdown::Both);
                    }
                    break;
                }
            }
            None => {
                // The end of one direction is passed on as it came (a FIN).
                let _ = to.shutdown(Shutdown::Write);
                break;
            }
        }
    }
    let _ = reader.join();
}
