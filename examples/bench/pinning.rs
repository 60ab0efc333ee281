//! Where the client and the server run, and the CPU time they use: every `libc` call
//! and every `unsafe` of the benchmark.
//!
//! In the HTTP mode (`--http --pin`) the client of PostgreSQL is the web service:
//! it takes the client's CPU, and wrk runs beside PostgreSQL's backends.

use std::path::Path;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{Array, Integer, Text};

use todo_store::PgPool;

/// Where the client and the server run during the single-connection measurements.
///
/// A loopback round trip costs about 3x more when client and server run on different
/// cores than on the same one, and the scheduler moves them around at will: unpinned, a
/// pgbench run and the crate's loop can land on different placements and their ratio
/// means little. So, when the server runs on this machine and this process may set its
/// processes' CPU affinity, the benchmark (and the pgbench and psql it starts) runs on
/// one core, and every server backend it measures on the others: the realistic,
/// different-core round trip, the same for the crate and its floor. `--no-pin` turns
/// it off; it is off anyway for the concurrency test.
pub struct Pinning {
    client: Vec<usize>,
    server: Vec<usize>,
    original: Vec<usize>,
    backends: Vec<i32>,
}

impl Pinning {
    /// The plan: the last CPU this process may use for the client, the others for the
    /// server.
    pub fn plan() -> Result<Pinning, String> {
        let original = get_affinity(0).map_err(|e| format!("sched_getaffinity: {e}"))?;
        if original.len() < 2 {
            return Err(format!("this process may only use {} CPU", original.len()));
        }
        let client = vec![*original.last().expect("two CPUs")];
        let server = original[..original.len() - 1].to_vec();
        Ok(Pinning {
            client,
            server,
            original,
            backends: Vec::new(),
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "client (this program, pgbench, psql) on CPU {}, server backends on CPU {}",
            list(&self.client),
            list(&self.server)
        )
    }

    /// Pins this thread (and so the threads and processes it starts from now on).
    pub fn pin_client(&self) -> std::io::Result<()> {
        set_affinity(0, &self.client)
    }

    /// Pins the backend of `conn`.
    pub fn pin_connection(&mut self, conn: &mut PgConnection) -> Result<(), String> {
        #[derive(QueryableByName)]
        struct Pid {
            #[diesel(sql_type = Integer)]
            pid: i32,
        }
        let pid = sql_query("SELECT pg_backend_pid() AS pid")
            .get_result::<Pid>(conn)
            .map_err(|e| e.to_string())?
            .pid;
        self.pin_backend(pid)
    }

    fn pin_backend(&mut self, pid: i32) -> Result<(), String> {
        // Only a server process of this machine: the pid could be another machine's.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "postgres" {
            return Err(format!(
                "the server's backend (pid {pid}) is not a process of this machine"
            ));
        }
        set_affinity(pid, &self.server).map_err(|e| format!("pinning backend {pid}: {e}"))?;
        self.backends.push(pid);
        Ok(())
    }

    /// Pins the backend of the pgbench just started on `db` (pgbench waits in its first
    /// transaction for this). pgbench first opens a connection of its own to look at the
    /// server and closes it, then opens the client's: every pgbench backend that shows
    /// up during the first [`PIN_WINDOW`] is pinned.
    pub fn pin_pgbench_backend(&mut self, poll: &mut PgConnection, db: &str, started: Instant) {
        #[derive(QueryableByName)]
        struct Pid {
            #[diesel(sql_type = Integer)]
            pid: i32,
        }
        let mut seen = self.backends.clone();
        let mut pinned = 0;
        while started.elapsed() < PIN_WINDOW {
            let found = sql_query(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 \
                 AND application_name = 'pgbench' AND pid <> pg_backend_pid() \
                 AND pid <> ALL($2)",
            )
            .bind::<Text, _>(db)
            .bind::<Array<Integer>, _>(&seen)
            .load::<Pid>(poll);
            match found {
                Ok(pids) => {
                    for Pid { pid } in pids {
                        seen.push(pid);
                        // One that is gone already was the exiting first connection.
                        if Path::new(&format!("/proc/{pid}")).exists()
                            && self.pin_backend(pid).is_ok()
                        {
                            pinned += 1;
                        }
                    }
                }
                Err(e) => {
                    eprintln!("   (pgbench's backend not found: {e})");
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if pinned == 0 {
            eprintln!("   (pgbench's backend not found in time: not pinned)");
        }
    }

    /// The HTTP layout (`--http --pin`): the web service (PostgreSQL's client) on the
    /// client's CPU, PostgreSQL's backends and wrk on the others.
    pub fn describe_service(&self) -> String {
        format!(
            "pinned: the service on CPU {}, PostgreSQL's backends and wrk on CPU {}",
            list(&self.client),
            list(&self.server)
        )
    }

    /// Runs `start` with this thread on the client's CPUs: a process it starts
    /// inherits them, all its threads included.
    pub fn on_client_cpus<T>(&self, start: impl FnOnce() -> T) -> std::io::Result<T> {
        on_cpus(&self.client, &self.original, start)
    }

    /// Runs `start` with this thread on the server's CPUs (see [`Self::on_client_cpus`]).
    pub fn on_server_cpus<T>(&self, start: impl FnOnce() -> T) -> std::io::Result<T> {
        on_cpus(&self.server, &self.original, start)
    }

    /// Pins every backend connected to database `db` but `poll`'s own (a service's
    /// pool); returns how many.
    pub fn pin_backends_of(&mut self, poll: &mut PgConnection, db: &str) -> Result<usize, String> {
        #[derive(QueryableByName)]
        struct Pid {
            #[diesel(sql_type = Integer)]
            pid: i32,
        }
        let pids = sql_query(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 \
             AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
        )
        .bind::<Text, _>(db)
        .load::<Pid>(poll)
        .map_err(|e| e.to_string())?;
        for Pid { pid } in &pids {
            self.pin_backend(*pid)?;
        }
        Ok(pids.len())
    }

    /// Forgets the backends pinned so far: their processes have ended (with the
    /// service that had them), and their pids may be reused.
    pub fn forget_backends(&mut self) {
        self.backends.clear();
    }

    /// Back to the CPUs everything had.
    pub fn release(&mut self) {
        let _ = set_affinity(0, &self.original);
        for pid in self.backends.drain(..) {
            let _ = set_affinity(pid, &self.original);
        }
    }
}

/// How long after starting pgbench its backends are looked for (it sleeps a little
/// longer before its first statement).
pub const PIN_WINDOW: Duration = Duration::from_millis(60);

/// Pins this program to one core and the backends of every pool connection and of
/// `setup` to the others; on any failure, undoes it and says why.
pub fn pin_everything(
    pool: &PgPool,
    held: &mut PgConnection,
    setup: &mut PgConnection,
) -> Result<Pinning, String> {
    let mut pinning = Pinning::plan()?;
    let outcome = (|| {
        pinning.pin_connection(held)?;
        pinning.pin_connection(setup)?;
        // The pool's other connections (checkout + get takes one of them).
        let mut others = Vec::new();
        while let Some(c) = pool.try_get() {
            others.push(c);
        }
        for c in &mut others {
            pinning.pin_connection(c)?;
        }
        pinning
            .pin_client()
            .map_err(|e| format!("pinning this program: {e}"))
    })();
    match outcome {
        Ok(()) => Ok(pinning),
        Err(why) => {
            pinning.release();
            Err(why)
        }
    }
}

/// Runs `start` with this thread on `cpus`, then puts it back on `original`.
fn on_cpus<T>(cpus: &[usize], original: &[usize], start: impl FnOnce() -> T) -> std::io::Result<T> {
    set_affinity(0, cpus)?;
    let out = start();
    set_affinity(0, original)?;
    Ok(out)
}

/// CPU time of process `pid`, user and system, all its threads, in seconds: utime and
/// stime of /proc/PID/stat.
pub fn process_cpu_seconds_of(pid: u32) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("reading /proc/{pid}/stat: {e}"))?;
    // The command name, in parentheses, may hold spaces: count fields after it. utime
    // and stime are fields 14 and 15; the state, after the name, is field 3.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |field: usize| -> Result<f64, String> {
        fields
            .get(field - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|t| t as f64)
            .ok_or_else(|| format!("/proc/{pid}/stat has no field {field}"))
    };
    Ok((ticks(14)? + ticks(15)?) / clock_ticks_per_second())
}

/// The unit of the CPU times in /proc/PID/stat.
#[cfg(unix)]
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a configuration value; it takes no pointer.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(not(unix))]
fn clock_ticks_per_second() -> f64 {
    100.0
}

/// CPU time of the calling thread (zero where unsupported).
#[cfg(target_os = "linux")]
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, `ts`, which lives on this stack frame.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(not(target_os = "linux"))]
pub fn thread_cpu_time() -> Duration {
    Duration::ZERO
}

/// CPU time of this process, user and system, in seconds (zero if unavailable).
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: rusage is plain data (integers and timevals), for which all zeroes is a
    // valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills one rusage struct, `usage`, on this stack frame.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(usage.ru_utime) + tv(usage.ru_stime)
    } else {
        0.0
    }
}

fn list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(target_os = "linux")]
fn set_affinity(pid: i32, cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET stays within it (cpus come from
    // sched_getaffinity, below CPU_SETSIZE); the kernel reads `size` bytes of it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(target_os = "linux")]
fn get_affinity(pid: i32) -> std::io::Result<Vec<usize>> {
    // SAFETY: as in set_affinity; the kernel writes at most `size` bytes.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect())
    }
}

/// Elsewhere than Linux the benchmark does not pin.
#[cfg(not(target_os = "linux"))]
fn set_affinity(_pid: i32, _cpus: &[usize]) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "pinning is implemented for Linux only",
    ))
}

#[cfg(not(target_os = "linux"))]
fn get_affinity(_pid: i32) -> std::io::Result<Vec<usize>> {
    set_affinity(0, &[]).map(|()| Vec::new())
}
