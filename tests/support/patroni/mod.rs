//! A Patroni cluster started by the test itself: one etcd member and three PostgreSQL
//! nodes under Patroni (leader election in etcd, streaming replicas, synchronous mode),
//! all on 127.0.0.1 at free ports, data under a temporary directory.
//!
//! Debian's `patroni` (3.0) talks to etcd through python-etcd, etcd's v2 API, which
//! etcd 3.4 serves with `--enable-v2=true`. PostgreSQL and Patroni refuse root: when the
//! tests run as root, everything runs as the `postgres` OS user.
//!
//! Nothing outlives the test: one supervisor shell script, in a process group of its
//! own, starts etcd and the three Patronis and stops everything (Patroni, then each
//! postmaster by its `postmaster.pid`, which Patroni starts in a session of its own,
//! then etcd) and removes the directory when the test process is gone or when
//! [`Cluster`]'s drop removes the `run` file.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use serde_json::Value;

use config::patroni_config;
use rest::http;

mod config;
mod rest;

/// The application's database.
pub const DB: &str = "todo";
/// PostgreSQL nodes in the cluster.
pub const NODES: usize = 3;
/// What the cluster needs installed, and where.
const PATRONI: &str = "/usr/bin/patroni";
const ETCD: &str = "/usr/bin/etcd";

/// Patroni's failure detection: how long the leader key lives in etcd (`ttl`), how
/// often each Patroni runs its loop (`loop_wait`), how long it retries etcd and
/// PostgreSQL before demoting (`retry_timeout`), all in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    pub ttl: u32,
    pub loop_wait: u32,
    pub retry_timeout: u32,
}

impl Timings {
    /// Fast detection, for tests: ttl 10 s, loop_wait 2 s, retry_timeout 5 s.
    pub const FAST: Timings = Timings {
        ttl: 10,
        loop_wait: 2,
        retry_timeout: 5,
    };
    /// Patroni's defaults, as in production: ttl 30 s, loop_wait 10 s, retry_timeout 10 s.
    pub const PATRONI_DEFAULTS: Timings = Timings {
        ttl: 30,
        loop_wait: 10,
        retry_timeout: 10,
    };

    /// The longest a failover or a switchover should take with these timings: the
    /// leader key expiring, a loop to notice, and room for a slow machine.
    pub fn failover_deadline(&self) -> Duration {
        Duration::from_secs(u64::from(2 * self.ttl + 2 * self.loop_wait + 30))
    }
}

/// Starts etcd and the Patronis (`$5`...: their configuration files; each Patroni's
/// pid goes to `<node>.patroni-pid`), then waits until the test process (`$1`) is gone
/// or the run file is removed, starting a node's Patroni again when a `<node>.revive`
/// file appears, then stops everything and removes the directory (`$2`). `$3`, `$4`:
/// etcd's client and peer ports.
const SUPERVISOR: &str = r#"
trap '' HUP INT
owner=$1; dir=$2; client=$3; peer=$4; shift 4
alive() {
  s=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null)
  [ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]
}
etcd --name etcd0 --data-dir "$dir/etcd" \
  --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
  --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
  --initial-cluster "etcd0=http://127.0.0.1:$peer" --enable-v2=true >"$dir/etcd.log" 2>&1 &
etcd=$!
patronis=
start_patroni() {
  patroni "$1" >>"${1%.yml}.log" 2>&1 &
  patronis="$patronis $!"
  echo $! >"${1%.yml}.patroni-pid"
}
for config in "$@"; do start_patroni "$config"; done
while alive "$owner" && [ -e "$dir/run" ]; do
  for config in "$@"; do
    if [ -e "${config%.yml}.revive" ]; then
      rm -f -- "${config%.yml}.revive"
      start_patroni "$config"
    fi
  done
  sleep 0.2
done
kill -KILL $patronis 2>/dev/null
postmasters=
for pidfile in "$dir"/*/data/postmaster.pid; do
  pm=$(head -n 1 "$pidfile" 2>/dev/null)
  case "$pm" in ''|*[!0-9]*) continue ;; esac
  if tr '\000' '\n' < "/proc/$pm/cmdline" 2>/dev/null | grep -qF -- "${pidfile%/postmaster.pid}"; then
    kill -QUIT "$pm" 2>/dev/null
    postmasters="$postmasters $pm"
  fi
done
i=0
for pm in $postmasters; do
  while alive "$pm" && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  kill -KILL "$pm" 2>/dev/null
done
kill -KILL "$etcd" 2>/dev/null
wait
rm -rf -- "$dir"
"#;

/// One PostgreSQL node and its Patroni.
#[derive(Debug, Clone)]
pub struct Node {
    /// Patroni's name of the node (`node0`, ...).
    pub name: String,
    /// PostgreSQL's port.
    pub pg_port: u16,
    /// Patroni's REST API port.
    pub api_port: u16,
    dir: PathBuf,
}

impl Node {
    /// This node alone, as the superuser.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.pg_port)
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The postmaster's pid, from `postmaster.pid`, when it runs.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        let pid: u32 = text.lines().next()?.trim().parse().ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let needle = self.data_dir().into_os_string().into_encoded_bytes();
        cmdline
            .windows(needle.len())
            .any(|w| w == needle.as_slice())
            .then_some(pid)
    }

    /// The pid of this node's Patroni, when it runs.
    pub fn patroni_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.dir.with_extension("patroni-pid")).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let config = self
            .dir
            .with_extension("yml")
            .into_os_string()
            .into_encoded_bytes();
        cmdline
            .windows(config.len())
            .any(|w| w == config.as_slice())
            .then_some(pid)
    }

    /// The last `lines` lines of this node's Patroni log (which holds PostgreSQL's too).
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.dir.with_extension("log"), lines)
    }
}

/// A member as Patroni's `GET /cluster` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// `leader`, `sync_standby` or `replica`.
    pub role: String,
    /// `running`, `starting`, `stopped`, `crashed`, ...
    pub state: String,
    pub timeline: Option<u64>,
}

impl Member {
    /// A running replica (synchronous or not).
    pub fn is_running_replica(&self) -> bool {
        (self.role == "replica" || self.role == "sync_standby") && self.state == "running"
    }
}

/// An event on the cluster: which node was leader, and when it happened.
#[derive(Debug, Clone)]
pub struct Event {
    /// The leader before the event.
    pub old_leader: String,
    /// When the kill was sent, or the switchover asked for.
    pub at: Instant,
}

/// A running etcd and three Patroni nodes; stopped and removed on drop.
pub struct Cluster {
    dir: PathBuf,
    nodes: Vec<Node>,
    timings: Timings,
    supervisor: Child,
}

impl Cluster {
    /// A cluster with [`Timings::FAST`]; `None` (with the reason printed) when patroni,
    /// etcd or PostgreSQL's server is not installed.
    pub fn start() -> Option<Cluster> {
        Self::start_with(Timings::FAST)
    }

    /// A cluster with the given timings, up and healthy: a leader, two replicas
    /// streaming from it (one synchronous), and the [`DB`] database.
    pub fn start_with(timings: Timings) -> Option<Cluster> {
        let bin_dir = match missing_packages() {
            Ok(bin_dir) => bin_dir,
            Err(reason) => {
                eprintln!("skipped: {reason}");
                return None;
            }
        };
        let cluster = Self::launch(timings, &bin_dir);
        let leader = cluster.wait_until_healthy(Duration::from_secs(90));
        let mut admin =
            PgConnection::establish(&leader.url("postgres")).expect("connecting to the leader");
        admin
            .batch_execute(&format!("CREATE DATABASE {DB}"))
            .expect("creating the database");
        Some(cluster)
    }

    fn launch(timings: Timings, bin_dir: &Path) -> Cluster {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "todo-store-patroni-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&dir).expect("creating the cluster's directory");
        let owner = os_user();
        let give = |path: &Path| {
            if let Some((uid, gid)) = owner {
                chown(path, Some(uid), Some(gid)).unwrap();
            }
        };
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        give(&dir);
        fs::write(dir.join("run"), "").unwrap();

        // Hold every port until all are chosen, so that no two are the same.
        let listeners: Vec<TcpListener> = (0..2 + 2 * NODES)
            .map(|_| TcpListener::bind(("127.0.0.1", 0)).unwrap())
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        drop(listeners);
        let (etcd_client, etcd_peer) = (ports[0], ports[1]);
        let nodes: Vec<Node> = (0..NODES)
            .map(|i| Node {
                name: format!("node{i}"),
                pg_port: ports[2 + 2 * i],
                api_port: ports[3 + 2 * i],
                dir: dir.join(format!("node{i}")),
            })
            .collect();
        let mut configs = Vec::new();
        for node in &nodes {
            fs::create_dir(&node.dir).unwrap();
            fs::set_permissions(&node.dir, fs::Permissions::from_mode(0o700)).unwrap();
            give(&node.dir);
            let config = node.dir.with_extension("yml");
            fs::write(&config, patroni_config(node, timings, etcd_client, bin_dir)).unwrap();
            give(&config);
            configs.push(config);
        }

        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("todo-store-patroni")
            .arg(std::process::id().to_string())
            .arg(&dir)
            .arg(etcd_client.to_string())
            .arg(etcd_peer.to_string())
            .args(&configs)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .current_dir(&dir)
            // Not in the test's group: a Ctrl-C reaches the test, whose death ends it.
            .process_group(0);
        if let Some((uid, gid)) = owner {
            command
                .uid(uid)
                .gid(gid)
                .env("HOME", &dir)
                .env("USER", "postgres")
                .env("LOGNAME", "postgres");
        }
        let supervisor = command.spawn().expect("starting the cluster's supervisor");
        Cluster {
            dir,
            nodes,
            timings,
            supervisor,
        }
    }

    /// The nodes, in the order of their names.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// The timings the cluster runs with.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Every node in one URL, for libpq to find the primary:
    /// `postgres://postgres@127.0.0.1:p0,127.0.0.1:p1,127.0.0.1:p2/todo?target_session_attrs=read-write`.
    pub fn url(&self) -> String {
        let nodes: Vec<&Node> = self.nodes.iter().collect();
        format!("{}?target_session_attrs=read-write", hosts_url(&nodes))
    }

    /// Every node in one URL, without `target_session_attrs`: libpq takes the first
    /// that answers, primary or standby. The current leader comes first, as in a
    /// deployment that listed its primary first.
    pub fn url_any_host(&self) -> String {
        let leader = self.leader().map(|l| l.name.clone());
        let mut nodes: Vec<&Node> = self.nodes.iter().collect();
        nodes.sort_by_key(|n| Some(&n.name) != leader.as_ref());
        hosts_url(&nodes)
    }

    /// The members as Patroni sees them, asked of the first node whose API answers.
    pub fn members(&self) -> Option<Vec<Member>> {
        self.nodes.iter().find_map(|node| {
            let (status, body) = http(node.api_port, "GET", "/cluster", None).ok()?;
            if status != 200 {
                return None;
            }
            let json: Value = serde_json::from_str(&body).ok()?;
            let members = json["members"].as_array()?;
            Some(
                members
                    .iter()
                    .map(|m| Member {
                        name: m["name"].as_str().unwrap_or_default().to_owned(),
                        role: m["role"].as_str().unwrap_or_default().to_owned(),
                        state: m["state"].as_str().unwrap_or_default().to_owned(),
                        timeline: m["timeline"].as_u64(),
                    })
                    .collect(),
            )
        })
    }

    /// The running leader, if there is one now.
    pub fn leader(&self) -> Option<&Node> {
        let members = self.members()?;
        let leader = members
            .iter()
            .find(|m| m.role == "leader" && m.state == "running")?;
        Some(self.node(&leader.name))
    }

    /// Waits for a running leader with two running replicas that stream from it, one
    /// of them synchronous; returns the leader.
    pub fn wait_until_healthy(&self, timeout: Duration) -> &Node {
        let mut leader = None;
        self.wait("a leader and two streaming replicas", timeout, || {
            leader = self.healthy_leader();
            leader.is_some()
        });
        leader.unwrap()
    }

    fn healthy_leader(&self) -> Option<&Node> {
        let members = self.members()?;
        let leader = members
            .iter()
            .find(|m| m.role == "leader" && m.state == "running")?;
        let replicas = members.iter().filter(|m| m.is_running_replica()).count();
        let sync = members.iter().any(|m| m.role == "sync_standby");
        if replicas != NODES - 1 || !sync {
            return None;
        }
        let leader = self.node(&leader.name);
        (streaming_replicas(leader) == Some(NODES as i64 - 1)).then_some(leader)
    }

    /// kill -9 of the leader's postmaster: an unplanned failover (Patroni is set to fail
    /// over rather than restart a crashed primary in place, `primary_start_timeout: 0`).
    pub fn kill_leader(&self) -> Event {
        let leader = self.leader().expect("a leader to kill");
        let pid = leader.postmaster_pid().expect("the leader's postmaster");
        let at = Instant::now();
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -KILL {pid} failed");
        Event {
            old_leader: leader.name.clone(),
            at,
        }
    }

    /// The whole leader node lost at once: kill -9 of its Patroni, then of its
    /// postmaster. Nothing releases the leader key, so the others wait for it to
    /// expire (`ttl`) before one takes over. The node stays down until [`Cluster::revive`].
    pub fn kill_leader_node(&self) -> Event {
        let leader = self.leader().expect("a leader to kill");
        let patroni = leader.patroni_pid().expect("the leader's Patroni");
        let postmaster = leader.postmaster_pid().expect("the leader's postmaster");
        let at = Instant::now();
        let status = Command::new("kill")
            .args(["-KILL", &patroni.to_string(), &postmaster.to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -KILL {patroni} {postmaster} failed");
        Event {
            old_leader: leader.name.clone(),
            at,
        }
    }

    /// Starts the Patroni of a node lost by [`Cluster::kill_leader_node`] again: it
    /// rejoins as a replica (rewound where its history diverged).
    pub fn revive(&self, name: &str) {
        let node = self.node(name);
        let path = node.dir.with_extension("revive");
        fs::write(&path, "").expect("asking the supervisor to start the node again");
        if let Some((uid, gid)) = os_user() {
            chown(&path, Some(uid), Some(gid)).unwrap();
        }
    }

    /// A planned switchover (Patroni's `POST /switchover`) to any healthy replica;
    /// returns once Patroni says it is done.
    pub fn switchover(&self) -> Event {
        let leader = self.leader().expect("a leader to switch over from");
        let body = format!(r#"{{"leader": "{}"}}"#, leader.name);
        let at = Instant::now();
        let (status, reply) = http(leader.api_port, "POST", "/switchover", Some(&body))
            .expect("asking Patroni for a switchover");
        assert_eq!(status, 200, "switchover refused: {reply}");
        Event {
            old_leader: leader.name.clone(),
            at,
        }
    }

    /// Waits for a running leader other than `old`; returns it.
    pub fn wait_for_new_leader(&self, old: &str) -> &Node {
        let mut leader = None;
        let what = format!("a leader other than {old}");
        self.wait(&what, self.timings.failover_deadline(), || {
            leader = self.leader().filter(|l| l.name != old);
            leader.is_some()
        });
        leader.unwrap()
    }

    /// Waits until `name` is a running replica streaming from the leader (after a
    /// failover: rewound by Patroni with pg_rewind where its history diverged).
    pub fn wait_for_replica(&self, name: &str) {
        let what = format!("{name} to stream from the leader as a replica");
        self.wait(&what, self.timings.failover_deadline(), || {
            let Some(members) = self.members() else {
                return false;
            };
            let Some(leader) = members.iter().find(|m| m.role == "leader") else {
                return false;
            };
            let replica = members
                .iter()
                .any(|m| m.name == name && m.is_running_replica());
            replica && streams_to(self.node(&leader.name), name)
        });
    }

    /// Polls `done` until it is true; panics with the nodes' logs after `timeout`.
    fn wait(&self, what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !done() {
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; members: {:?}\n{}",
                    self.members(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The tail of every node's log and etcd's.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out += &format!("--- {} ---\n{}\n", node.name, node.log_tail(30));
        }
        out + &format!("--- etcd ---\n{}\n", tail(&self.dir.join("etcd.log"), 10))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the Patroni cluster at the panic:\n{}", self.logs());
        }
        let _ = fs::remove_file(self.dir.join("run"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.supervisor.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(None) = self.supervisor.try_wait() {
            let _ = self.supervisor.kill();
            let _ = self.supervisor.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `postgres://postgres@127.0.0.1:p0,127.0.0.1:p1,.../todo`, in the order given.
fn hosts_url(nodes: &[&Node]) -> String {
    let hosts: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.pg_port))
        .collect();
    format!("postgres://postgres@{}/{DB}", hosts.join(","))
}

/// Why the cluster cannot start here, or PostgreSQL's server binaries.
fn missing_packages() -> Result<PathBuf, String> {
    for (binary, package) in [(PATRONI, "patroni"), (ETCD, "etcd-server")] {
        if !Path::new(binary).is_file() {
            return Err(format!(
                "{binary} is missing: install {package} (apt-get install patroni etcd-server, \
                 or scripts/setup)"
            ));
        }
    }
    todo_store::local_postgres::find_bin_dir()
        .map_err(|e| format!("no PostgreSQL server binaries: {e}"))
}

/// The OS user to run the cluster as: `postgres` when this process is root.
fn os_user() -> Option<(u32, u32)> {
    if fs::metadata("/proc/self").is_ok_and(|m| m.uid() != 0) {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("running id");
        assert!(
            out.status.success(),
            "running as root needs an OS user postgres"
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    Some((id("-u"), id("-g")))
}

/// Replicas streaming from `leader`, by `pg_stat_replication`.
fn streaming_replicas(leader: &Node) -> Option<i64> {
    let mut conn = PgConnection::establish(&leader.url("postgres")).ok()?;
    diesel::select(sql::<BigInt>(
        "(SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming')",
    ))
    .get_result(&mut conn)
    .ok()
}

/// Whether `replica` streams from `leader` (Patroni names each standby's
/// `application_name` after its member).
fn streams_to(leader: &Node, replica: &str) -> bool {
    let Ok(mut conn) = PgConnection::establish(&leader.url("postgres")) else {
        return false;
    };
    diesel::select(sql::<BigInt>(&format!(
        "(SELECT count(*) FROM pg_stat_replication \
         WHERE state = 'streaming' AND application_name = '{replica}')"
    )))
    .get_result::<i64>(&mut conn)
    .is_ok_and(|n| n == 1)
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
