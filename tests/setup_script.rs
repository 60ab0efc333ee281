//! `scripts/setup`'s decisions, on fake machines: what it asks `apt-get install` for,
//! when it goes through sudo, and the advice it stops with.
//!
//! Each test builds a machine in a temporary directory: fake `apt-get`, `apt-cache`,
//! `dpkg-query`, `id` and `sudo` that log their arguments and answer as the real ones do
//! on that machine, and a root directory (the script's `SETUP_ROOT`) holding what is
//! installed: `node`, `npm`, `openssl`, `wrk` in its `usr/bin`, PgBouncer and PostgreSQL's
//! server where Debian puts them, and dpkg's status of each package. The fake `apt-get`
//! installs a package by copying its files into that root, refuses to run as anyone but
//! (fake) root, and refuses Debian's `npm` beside a `nodejs` that provides npm, as apt does.
//!
//! The script runs with `PATH=<fakes>:<root>/usr/local/bin:<root>/usr/bin:<base>`, where
//! `<base>` holds links to the few real commands it needs (bash, env, grep, sed, awk, and
//! cp for the fake apt-get), not `/usr/bin`: a machine that has run the script (CI) has a
//! real node, npm and sudo there, which would spoil the cases without them. Before each
//! run the test checks that `apt-get` resolves to the fake and that no probed command
//! resolves outside the temporary directory: the real `apt-get` never runs, and nothing
//! outside the temporary directory is touched. No network, no root.
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A `nodejs` package: what apt and dpkg say of it and what it installs.
#[derive(Clone, Copy)]
struct Nodejs {
    version: &'static str,
    node: &'static str,
    provides: &'static str,
    /// `Conflicts:` of its `apt-cache show` (NodeSource's names npm: it must not count).
    conflicts: &'static str,
    origin: &'static str,
    /// The npm it ships in `/usr/bin` (NodeSource's), if any.
    bundled_npm: Option<&'static str>,
}

const DEBIAN_12_NODEJS: Nodejs = Nodejs {
    version: "18.19.0+dfsg-6~deb12u2",
    node: "v18.19.0",
    provides: "node-types-node (= 18.19.0), nodejs-abi-108",
    conflicts: "",
    origin: "http://deb.debian.org/debian bookworm/main",
    bundled_npm: None,
};
const DEBIAN_13_NODEJS: Nodejs = Nodejs {
    version: "20.19.2+dfsg-1",
    node: "v20.19.2",
    provides: "node-types-node (= 20.19.2), nodejs-abi-115",
    conflicts: "",
    origin: "http://deb.debian.org/debian trixie/main",
    bundled_npm: None,
};
const NODESOURCE_20: Nodejs = Nodejs {
    version: "20.19.5-1nodesource1",
    node: "v20.19.5",
    provides: "nodejs-dev, nodejs-doc, nodejs-legacy, npm",
    conflicts: "nodejs-dev, nodejs-doc, nodejs-legacy, npm",
    origin: "https://deb.nodesource.com/node_20.x nodistro/main",
    bundled_npm: Some("10.8.2"),
};
/// Debian's own `npm` package (Debian 13's).
const DEBIAN_NPM: &str = "9.2.0";

/// Everything the script wants but Node.js and npm.
const ALL_BUT_NODE: [&str; 7] = [
    "postgresql",
    "libpq-dev",
    "pgbouncer",
    "openssl",
    "wrk",
    "patroni",
    "etcd-server",
];

/// What a machine has before the script runs.
struct Machine {
    uid: u32,
    sudo: bool,
    /// Installed packages among `ALL_BUT_NODE` and `npm`.
    installed: Vec<&'static str>,
    nodejs_installed: Option<Nodejs>,
    /// The `nodejs` apt would install (`Candidate:` of `apt-cache policy`).
    nodejs_candidate: Option<Nodejs>,
    /// Files of installed packages deleted since (relative to the root).
    deleted: Vec<&'static str>,
    /// A node outside dpkg's knowledge, in `/usr/local/bin` (a tarball, say).
    other_node: Option<&'static str>,
    /// Booted with systemd (`/run/systemd/system` exists).
    systemd: bool,
}

impl Machine {
    /// Root, with sudo installed, nothing else.
    fn new() -> Self {
        Machine {
            uid: 0,
            sudo: true,
            installed: Vec::new(),
            nodejs_installed: None,
            nodejs_candidate: None,
            deleted: Vec::new(),
            other_node: None,
            systemd: false,
        }
    }
    fn with(mut self, packages: &[&'static str]) -> Self {
        self.installed.extend_from_slice(packages);
        self
    }
    fn without(mut self, package: &str) -> Self {
        self.installed.retain(|p| *p != package);
        self
    }
    fn nodejs(mut self, nodejs: Nodejs) -> Self {
        self.nodejs_installed = Some(nodejs);
        self
    }
    fn apt_offers(mut self, nodejs: Nodejs) -> Self {
        self.nodejs_candidate = Some(nodejs);
        self
    }
    fn deleted(mut self, path: &'static str) -> Self {
        self.deleted.push(path);
        self
    }
    fn user(mut self, sudo: bool) -> Self {
        self.uid = 1000;
        self.sudo = sudo;
        self
    }
    fn other_node(mut self, version: &'static str) -> Self {
        self.other_node = Some(version);
        self
    }
    fn systemd(mut self) -> Self {
        self.systemd = true;
        self
    }
}

/// The machine in a temporary directory, removed on drop.
struct Sandbox {
    dir: PathBuf,
    fakes: PathBuf,
    root: PathBuf,
    base: PathBuf,
    log: PathBuf,
}

/// `s` single-quoted for sh.
fn q(s: &Path) -> String {
    let s = s.to_str().expect("a UTF-8 temporary directory");
    assert!(
        !s.contains('\''),
        "a temporary directory without quotes: {s}"
    );
    format!("'{s}'")
}

fn write(path: &Path, text: &str, executable: bool) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    let mode = if executable { 0o755 } else { 0o644 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

const STATUS: &str = "var/lib/dpkg/fake-status";

const APT_GET: &str = r#"
printf '%s\n' "apt-get $*" >> @LOG@
if [ "$(id -u)" != 0 ]; then
  echo 'E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)' >&2
  exit 100
fi
[ "$1" = update ] && exit 0
install=
packages=
for a in "$@"; do
  case "$a" in
    install) install=1 ;;
    -*) ;;
    *)
      [ -n "$install" ] || { echo "fake apt-get: unexpected: $*" >&2; exit 2; }
      [ -d @PKGS@/"$a" ] || { echo "E: Unable to locate package $a" >&2; exit 100; }
      packages="$packages $a" ;;
  esac
done
[ -n "$install" ] || { echo "fake apt-get: unexpected: $*" >&2; exit 2; }
case "$packages " in
  *" npm "*)
    case "$packages " in
      *" nodejs "*) nodejs=@PKGS@/nodejs ;;
      *) nodejs=@ROOT@ ;;
    esac
    if [ -e "$nodejs/@STATUS@/nodejs.bundles-npm" ]; then
      echo 'The following packages have unmet dependencies:' >&2
      echo ' nodejs : Conflicts: npm' >&2
      echo 'E: Unable to correct problems, you have held broken packages.' >&2
      exit 100
    fi ;;
esac
for p in $packages; do cp -R @PKGS@/"$p"/. @ROOT@/ || exit 100; done
"#;

const APT_CACHE: &str = r#"
printf '%s\n' "apt-cache $*" >> @LOG@
case "$*" in
  'policy nodejs') printf '%s' @POLICY@ ;;
  @SHOW_ARGS@) printf '%s' @SHOW@ ;;
  'show nodejs='*) echo "E: Version '${2#nodejs=}' for 'nodejs' was not found" >&2; exit 100 ;;
  *) echo "fake apt-cache: unexpected: $*" >&2; exit 2 ;;
esac
"#;

const DPKG_QUERY: &str = r#"
printf '%s\n' "dpkg-query $*" >> @LOG@
if [ "$1" != -W ] || [ $# -ne 3 ]; then echo "fake dpkg-query: unexpected: $*" >&2; exit 2; fi
status=@ROOT@/@STATUS@/"$3"
if [ ! -f "$status" ]; then echo "dpkg-query: no packages found matching $3" >&2; exit 1; fi
case "$2" in
  '-f=${Status}') printf 'install ok installed' ;;
  '-f=${Provides}') provides=; IFS= read -r provides < "$status" || true; printf '%s' "$provides" ;;
  *) echo "fake dpkg-query: unexpected: $*" >&2; exit 2 ;;
esac
"#;

const ID: &str = r#"
printf '%s\n' "id $*" >> @LOG@
[ "$1" = -u ] || { echo "fake id: unexpected: $*" >&2; exit 2; }
echo "${FAKE_UID:-@UID@}"
"#;

/// systemctl: logs its call; changing a service needs root.
const SYSTEMCTL: &str = r#"
printf '%s\n' "systemctl $*" >> @LOG@
[ "${FAKE_UID:-@UID@}" = 0 ] || { echo "systemctl: access denied" >&2; exit 1; }
"#;

const SUDO: &str = r#"
printf '%s\n' "sudo $*" >> @LOG@
FAKE_UID=0
export FAKE_UID
exec "$@"
"#;

static SANDBOXES: AtomicUsize = AtomicUsize::new(0);

impl Sandbox {
    fn new(machine: &Machine) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "todo-store-setup-test-{}-{}",
            std::process::id(),
            SANDBOXES.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        let sandbox = Sandbox {
            fakes: dir.join("fakes"),
            root: dir.join("root"),
            base: dir.join("base"),
            log: dir.join("log"),
            dir,
        };
        fs::create_dir_all(&sandbox.fakes).unwrap();
        fs::create_dir_all(&sandbox.root).unwrap();
        fs::create_dir_all(&sandbox.base).unwrap();
        for tool in ["bash", "env", "grep", "sed", "awk", "cp"] {
            let real = ["/usr/bin", "/bin"]
                .iter()
                .map(|dir| Path::new(dir).join(tool))
                .find(|path| path.exists())
                .unwrap_or_else(|| panic!("{tool} in /usr/bin or /bin"));
            symlink(real, sandbox.base.join(tool)).unwrap();
        }

        // What apt can install, and what is installed.
        let pkgs = sandbox.dir.join("pkgs");
        for package in ALL_BUT_NODE.iter().chain(&["npm"]) {
            sandbox.lay_out(&pkgs.join(package), package, None);
        }
        if let Some(nodejs) = machine.nodejs_candidate {
            sandbox.lay_out(&pkgs.join("nodejs"), "nodejs", Some(nodejs));
        }
        for package in &machine.installed {
            sandbox.lay_out(&sandbox.root, package, None);
        }
        if let Some(nodejs) = machine.nodejs_installed {
            sandbox.lay_out(&sandbox.root, "nodejs", Some(nodejs));
        }
        for path in &machine.deleted {
            fs::remove_file(sandbox.root.join(path)).unwrap();
        }
        if let Some(version) = machine.other_node {
            sandbox.tool("usr/local/bin/node", &format!("echo {version}"));
        }
        if machine.systemd {
            fs::create_dir_all(sandbox.root.join("run/systemd/system")).unwrap();
        }

        let fill = |text: &str| {
            text.replace("@LOG@", &q(&sandbox.log))
                .replace("@PKGS@", &q(&pkgs))
                .replace("@ROOT@", &q(&sandbox.root))
                .replace("@STATUS@", STATUS)
                .replace("@UID@", &machine.uid.to_string())
        };
        let fake = |name: &str, body: String| {
            write(&sandbox.fakes.join(name), &format!("#!/bin/sh{body}"), true)
        };
        fake("apt-get", fill(APT_GET));
        fake("dpkg-query", fill(DPKG_QUERY));
        fake("id", fill(ID));
        fake("systemctl", fill(SYSTEMCTL));
        if machine.sudo {
            fake("sudo", fill(SUDO));
        }
        let installed = machine.nodejs_installed.map_or("(none)", |n| n.version);
        let (policy, show_args, show) = match machine.nodejs_candidate {
            Some(n) => (
                format!(
                    "nodejs:\n  Installed: {installed}\n  Candidate: {v}\n  Version table:\n     {v} 500\n        500 {o} amd64 Packages\n",
                    v = n.version,
                    o = n.origin
                ),
                format!("'show nodejs={}'", n.version),
                format!(
                    "Package: nodejs\nVersion: {}\nArchitecture: amd64\nProvides: {}\n{}Description: Node.js event-based server-side javascript engine\n\n",
                    n.version,
                    n.provides,
                    if n.conflicts.is_empty() {
                        String::new()
                    } else {
                        format!("Conflicts: {}\n", n.conflicts)
                    }
                ),
            ),
            None => (
                format!("nodejs:\n  Installed: {installed}\n  Candidate: (none)\n  Version table:\n"),
                // A pattern no argument list matches.
                "'never matched'".to_string(),
                String::new(),
            ),
        };
        assert!(!policy.contains('\'') && !show.contains('\''));
        fake(
            "apt-cache",
            fill(APT_CACHE)
                .replace("@POLICY@", &format!("'{policy}'"))
                .replace("@SHOW_ARGS@", &show_args)
                .replace("@SHOW@", &format!("'{show}'")),
        );
        sandbox
    }

    /// An executable under `dir` that logs its call and runs `body`.
    fn tool_in(&self, dir: &Path, path: &str, body: &str) {
        let name = Path::new(path).file_name().unwrap().to_str().unwrap();
        let text = format!(
            "#!/bin/sh\nprintf '%s\\n' \"{name} $*\" >> {}\n{body}\n",
            q(&self.log)
        );
        write(&dir.join(path), &text, true);
    }

    fn tool(&self, path: &str, body: &str) {
        self.tool_in(&self.root, path, body);
    }

    /// The files of `package` (and its dpkg status) laid out under `dir`.
    fn lay_out(&self, dir: &Path, package: &str, nodejs: Option<Nodejs>) {
        let mut provides = "";
        match (package, nodejs) {
            ("postgresql", _) => self.tool_in(dir, "usr/lib/postgresql/17/bin/initdb", ""),
            ("libpq-dev", _) => write(&dir.join("usr/include/postgresql/libpq-fe.h"), "", false),
            ("pgbouncer", _) => self.tool_in(dir, "usr/sbin/pgbouncer", ""),
            ("openssl", _) => self.tool_in(dir, "usr/bin/openssl", ""),
            ("wrk", _) => self.tool_in(dir, "usr/bin/wrk", ""),
            ("patroni", _) => self.tool_in(dir, "usr/bin/patroni", ""),
            ("etcd-server", _) => self.tool_in(dir, "usr/bin/etcd", ""),
            ("npm", _) => self.tool_in(dir, "usr/bin/npm", &format!("echo {DEBIAN_NPM}")),
            ("nodejs", Some(n)) => {
                self.tool_in(dir, "usr/bin/node", &format!("echo {}", n.node));
                if let Some(npm) = n.bundled_npm {
                    self.tool_in(dir, "usr/bin/npm", &format!("echo {npm}"));
                    write(&dir.join(STATUS).join("nodejs.bundles-npm"), "", false);
                }
                provides = n.provides;
            }
            _ => panic!("no such package: {package}"),
        }
        write(
            &dir.join(STATUS).join(package),
            &format!("{provides}\n"),
            false,
        );
    }

    fn path(&self) -> String {
        [
            self.fakes.clone(),
            self.root.join("usr/local/bin"),
            self.root.join("usr/bin"),
            self.base.clone(),
        ]
        .iter()
        .map(|p| p.to_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join(":")
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.base.join("bash"));
        command
            .arg(program)
            .env_clear()
            .env("PATH", self.path())
            .env("SETUP_ROOT", &self.root)
            .env("LC_ALL", "C")
            .current_dir(&self.dir);
        command
    }

    /// Runs `bash scripts/setup` on the machine, once `apt-get` is known to be the fake.
    fn run(&self) -> Outcome {
        let probe = self
            .command("-c")
            .arg(
                "for c in apt-get apt-cache dpkg-query id sudo systemctl node npm openssl wrk initdb pgbouncer \
                 patroni etcd; do \
                 command -v $c || true; done",
            )
            .output()
            .unwrap();
        assert!(probe.status.success());
        let found = String::from_utf8(probe.stdout).unwrap();
        let mut found = found.lines();
        assert_eq!(
            found.next(),
            self.fakes.join("apt-get").to_str(),
            "apt-get must be the fake"
        );
        for path in found {
            assert!(
                path.starts_with(self.dir.to_str().unwrap()),
                "{path} is not the sandbox's"
            );
        }

        let _ = fs::remove_file(&self.log);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/setup");
        let output = self
            .command(script.to_str().unwrap())
            .output()
            .expect("bash runs");
        Outcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            log: fs::read_to_string(&self.log)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect(),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// Every call of a fake or installed tool, in order.
    log: Vec<String>,
}

impl Outcome {
    fn context(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}--- calls\n{}",
            self.code,
            self.stdout,
            self.stderr,
            self.log.join("\n")
        )
    }

    fn apt_get_calls(&self) -> Vec<&str> {
        self.log
            .iter()
            .filter(|l| l.starts_with("apt-get "))
            .map(String::as_str)
            .collect()
    }

    /// The packages of each `apt-get install`.
    fn installs(&self) -> Vec<Vec<&str>> {
        self.apt_get_calls()
            .into_iter()
            .filter_map(|call| {
                let mut words = call.split_whitespace().skip_while(|w| *w != "install");
                words.next()?;
                Some(words.filter(|w| !w.starts_with('-')).collect())
            })
            .collect()
    }

    /// Exits with `code`, asked `apt-get install` for exactly `packages` (in this order),
    /// once, or never when `packages` is empty.
    fn assert(&self, code: i32, packages: &[&str]) {
        assert_eq!(self.code, Some(code), "{}", self.context());
        let expected: Vec<Vec<&str>> = if packages.is_empty() {
            vec![]
        } else {
            vec![packages.to_vec()]
        };
        assert_eq!(self.installs(), expected, "{}", self.context());
    }

    fn assert_says(&self, phrase: &str) {
        assert!(
            self.stdout.contains(phrase) || self.stderr.contains(phrase),
            "expected {phrase:?}\n{}",
            self.context()
        );
    }

    fn assert_no_sudo(&self) {
        assert!(
            !self.log.iter().any(|l| l.starts_with("sudo ")),
            "{}",
            self.context()
        );
    }
}

const NODE_20_ADVICE: &str = "install NodeSource's node_20.x there";

#[test]
fn debian_12_with_nodesource_node_20_and_everything_present_installs_nothing() {
    let machine = Machine::new()
        .with(&ALL_BUT_NODE)
        .nodejs(NODESOURCE_20)
        .apt_offers(NODESOURCE_20);
    let outcome = Sandbox::new(&machine).run();
    outcome.assert(0, &[]);
    assert!(outcome.apt_get_calls().is_empty(), "{}", outcome.context());
    outcome.assert_says("present: postgresql libpq-dev pgbouncer openssl wrk patroni etcd-server");
    outcome.assert_says("node v20.19.5, npm 10.8.2");
}

#[test]
fn a_missing_pgbouncer_is_the_only_package_installed() {
    let machine = Machine::new()
        .with(&ALL_BUT_NODE)
        .without("pgbouncer")
        .nodejs(NODESOURCE_20)
        .apt_offers(NODESOURCE_20);
    let outcome = Sandbox::new(&machine).run();
    outcome.assert(0, &["pgbouncer"]);
    outcome.assert_says("installing: pgbouncer");
    outcome.assert_no_sudo();
}

#[test]
fn debians_node_20_without_npm_gets_debians_npm_package() {
    let machine = Machine::new()
        .with(&ALL_BUT_NODE)
        .nodejs(DEBIAN_13_NODEJS)
        .apt_offers(DEBIAN_13_NODEJS);
    let outcome = Sandbox::new(&machine).run();
    outcome.assert(0, &["npm"]);
    outcome.assert_says("node v20.19.2, npm 9.2.0");
}

#[test]
fn without_node_debian_13s_node_20_is_installed_with_debians_npm() {
    let machine = Machine::new()
        .with(&ALL_BUT_NODE)
        .apt_offers(DEBIAN_13_NODEJS);
    let outcome = Sandbox::new(&machine).run();
    outcome.assert(0, &["nodejs", "npm"]);
    let updates = outcome
        .apt_get_calls()
        .iter()
        .filter(|c| c.contains("update"))
        .count();
    assert_eq!(updates, 1, "{}", outcome.context());
    outcome.assert_says("node v20.19.2, npm 9.2.0");
}

/// The README's old `apt-get install postgresql libpq-dev pgbouncer nodejs npm` fails
/// here: NodeSource's nodejs provides npm and conflicts with Debian's.
#[test]
fn nodesource_node_never_gets_debians_npm_beside_it() {
    let machine = Machine::new().with(&ALL_BUT_NODE).apt_offers(NODESOURCE_20);
    let outcome = Sandbox::new(&machine).run();
    outcome.assert(0, &["nodejs"]);
    outcome.assert_says("node v20.19.5, npm 10.8.2");
}

#[test]
fn without_node_and_only_node_18_from_apt_the_rest_is_installed_and_node_20_advised() {
    let machine = Machine::new()
        .with(&["openssl"])
        .apt_offers(DEBIAN_12_NODEJS);
    let outcome = Sandbox::new(&machine).run();
    outcome.assert(
        1,
        &[
            "postgresql",
            "libpq-dev",
            "pgbouncer",
            "wrk",
            "patroni",
            "etcd-server",
        ],
    );
    outcome.assert_says("the nodejs package here is 18.19.0+dfsg-6~deb12u2");
    outcome.assert_says(NODE_20_ADVICE);
    outcome.assert_says("Everything else is installed");
}

#[test]
fn without_node_and_no_nodejs_package_node_20_is_advised() {
    let machine = Machine::new().with(&ALL_BUT_NODE);
    let outcome = Sandbox::new(&machine).run();
    outcome.assert(1, &[]);
    outcome.assert_says("no nodejs package is available");
    outcome.assert_says(NODE_20_ADVICE);
}

#[test]
fn an_installed_node_18_is_reported_with_node_20_advice() {
    let machine = Machine::new()
        .with(&ALL_BUT_NODE)
        .with(&["npm"])
        .nodejs(DEBIAN_12_NODEJS)
        .apt_offers(DEBIAN_12_NODEJS);
    let outcome = Sandbox::new(&machine).run();
    outcome.assert(1, &[]);
    outcome.assert_says("Node.js v18.19.0 is installed");
    outcome.assert_says(NODE_20_ADVICE);
}

#[test]
fn nodesource_node_without_npm_is_told_to_reinstall_nodejs_never_given_debians_npm() {
    let machine = Machine::new()
        .with(&ALL_BUT_NODE)
        .nodejs(NODESOURCE_20)
        .apt_offers(NODESOURCE_20)
        .deleted("usr/bin/npm");
    let outcome = Sandbox::new(&machine).run();
    outcome.assert(1, &[]);
    outcome.assert_says("apt-get install --reinstall nodejs");
}

#[test]
fn a_node_dpkg_does_not_know_without_npm_is_told_to_get_npm_with_it() {
    let machine = Machine::new()
        .with(&ALL_BUT_NODE)
        .apt_offers(DEBIAN_13_NODEJS)
        .other_node("v22.11.0");
    let outcome = Sandbox::new(&machine).run();
    outcome.assert(1, &[]);
    outcome.assert_says("has no npm beside it: install npm with that Node.js");
}

#[test]
fn a_user_with_sudo_updates_and_installs_through_sudo() {
    let machine = Machine::new()
        .user(true)
        .with(&ALL_BUT_NODE)
        .without("pgbouncer")
        .apt_offers(DEBIAN_13_NODEJS);
    let outcome = Sandbox::new(&machine).run();
    // The fake apt-get fails unless sudo made it root.
    outcome.assert(0, &["pgbouncer", "nodejs", "npm"]);
    let sudo: Vec<&str> = outcome
        .log
        .iter()
        .filter(|l| l.starts_with("sudo "))
        .map(String::as_str)
        .collect();
    assert_eq!(
        sudo,
        [
            "sudo apt-get update -qq",
            "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
             --no-install-recommends pgbouncer nodejs npm",
        ],
        "{}",
        outcome.context()
    );
}

#[test]
fn a_user_without_sudo_is_told_installing_needs_root() {
    let machine = Machine::new()
        .user(false)
        .with(&ALL_BUT_NODE)
        .without("pgbouncer")
        .nodejs(NODESOURCE_20)
        .apt_offers(NODESOURCE_20);
    let outcome = Sandbox::new(&machine).run();
    outcome.assert(1, &[]);
    assert!(outcome.apt_get_calls().is_empty(), "{}", outcome.context());
    outcome.assert_says("installing needs root: run scripts/setup as root, or install sudo");
}

#[test]
fn a_fresh_debian_13_gets_everything_and_a_second_run_installs_nothing() {
    let machine = Machine::new().apt_offers(DEBIAN_13_NODEJS);
    let sandbox = Sandbox::new(&machine);
    let first = sandbox.run();
    first.assert(
        0,
        &[
            "postgresql",
            "libpq-dev",
            "pgbouncer",
            "openssl",
            "wrk",
            "patroni",
            "etcd-server",
            "nodejs",
            "npm",
        ],
    );
    // No systemd here: no service to stop.
    assert!(
        !first.log.iter().any(|l| l.starts_with("systemctl")),
        "{}",
        first.context()
    );
    first.assert_no_sudo();
    let second = sandbox.run();
    second.assert(0, &[]);
    assert!(second.apt_get_calls().is_empty(), "{}", second.context());
    second.assert_says("present: postgresql libpq-dev pgbouncer openssl wrk patroni etcd-server");
    second.assert_says("node v20.19.2, npm 9.2.0");
}

/// etcd-server's package starts the machine's own etcd under systemd; the tests start
/// theirs, so the script stops it (and only when it has just installed it).
#[test]
fn a_missing_etcd_server_is_installed_and_its_service_stopped_under_systemd() {
    let machine = Machine::new()
        .systemd()
        .with(&ALL_BUT_NODE)
        .without("patroni")
        .without("etcd-server")
        .nodejs(NODESOURCE_20)
        .apt_offers(NODESOURCE_20);
    let sandbox = Sandbox::new(&machine);
    let outcome = sandbox.run();
    outcome.assert(0, &["patroni", "etcd-server"]);
    let systemctl: Vec<&String> = outcome
        .log
        .iter()
        .filter(|l| l.starts_with("systemctl"))
        .collect();
    assert_eq!(
        systemctl,
        ["systemctl disable --now etcd.service"],
        "{}",
        outcome.context()
    );
    let second = sandbox.run();
    second.assert(0, &[]);
    assert!(
        !second.log.iter().any(|l| l.starts_with("systemctl")),
        "{}",
        second.context()
    );
}
