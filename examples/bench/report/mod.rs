//! The results of a run, the targets they are held to, and their three renderings:
//! the terminal table, results.json and results.svg.

pub mod json;
pub mod svg;
pub mod table;

use crate::ops::Op;

#[derive(Debug, Clone)]
pub struct OpResult {
    pub op: Op,
    pub size: &'static str,
    pub iterations: usize,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub ops_per_s: f64,
    pub floors: Floors,
    pub floor_note: Option<String>,
    /// The crate's SQL as its floor runs it, and the hand-written reference.
    pub floor_sql: String,
    pub reference_sql: String,
    pub statements: Vec<String>,
    pub prepared: bool,
    /// Per round (adjacent in time): the crate's mean and the floor's, µs. The spread
    /// of their ratios shows the noise.
    pub rounds: Vec<(f64, f64)>,
    /// CPU time of the benchmark's thread per call (the crate's work, plus a little of
    /// the benchmark's own: picking the inputs).
    pub client_cpu_us: f64,
}

/// The two floors of an op, mean µs: pgbench running the crate's own SQL, and the
/// hand-written reference statement (`crate::reference`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Floors {
    pub own: Option<f64>,
    pub reference: Option<f64>,
}

impl Floors {
    /// The faster of the two.
    pub fn best(&self) -> Option<f64> {
        match (self.own, self.reference) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl OpResult {
    /// The floor the crate is held to: the faster of its two.
    pub fn floor_us(&self) -> Option<f64> {
        self.floors.best()
    }

    /// Mean over the faster floor.
    pub fn ratio(&self) -> Option<f64> {
        self.floor_us().map(|f| self.mean_us / f)
    }

    /// Mean over the reference floor alone.
    pub fn reference_ratio(&self) -> Option<f64> {
        self.floors.reference.map(|f| self.mean_us / f)
    }

    pub fn round_ratios(&self) -> Vec<f64> {
        self.rounds.iter().map(|(c, f)| c / f).collect()
    }

    /// "0.95-1.10": the lowest and highest ratio of a round.
    pub fn ratio_range(&self) -> String {
        let ratios = self.round_ratios();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(0.0, f64::max);
        if ratios.is_empty() {
            "-".to_owned()
        } else {
            format!("{lo:.2}-{hi:.2}")
        }
    }
}

#[derive(Debug, Clone)]
pub struct BulkResult {
    pub size: &'static str,
    pub rows: usize,
    pub crate_rows_per_s: f64,
    pub copy_rows_per_s: f64,
}

#[derive(Debug, Clone)]
pub struct ConcResult {
    pub size: &'static str,
    pub threads: usize,
    pub ops_per_s: f64,
    pub mean_us: f64,
    /// Cores busy on the whole machine (this program, the server, anything else), cores
    /// this program used, and cores stolen by the hypervisor, on average.
    pub busy_cores: f64,
    pub own_cores: f64,
    pub steal_cores: f64,
}

/// TaskRepo::get throughput over one pool of 10: 64 tokio tasks through `AsyncPool`,
/// and 10 OS threads on the synchronous API.
#[derive(Debug, Clone)]
pub struct AsyncResult {
    pub size: &'static str,
    pub async_ops_per_s: f64,
    pub threads_ops_per_s: f64,
}

#[derive(Debug, Clone)]
pub struct SizeInfo {
    pub label: &'static str,
    pub users: u32,
    pub tasks_per_user: u32,
    pub seed_secs: f64,
    pub seed_rows_per_s: f64,
    /// pg_database_size after the seed, the sessions and VACUUM (ANALYZE).
    pub db_bytes: i64,
    /// The seed against psql's `\copy` of the same rows (`--skip load` leaves it out).
    pub load: Option<LoadResult>,
}

/// The seed's rows loaded again by psql's `\copy`, seconds.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Users and tasks.
    pub rows: u64,
    pub seed_secs: f64,
    /// Into the tables with every index in place.
    pub copy_secs: f64,
    /// Into the tables without the task table's secondary indexes, and building them
    /// after.
    pub copy_bare_secs: f64,
    pub index_secs: f64,
    pub indexes: usize,
}

impl LoadResult {
    pub fn rows_per_s(&self, secs: f64) -> f64 {
        self.rows as f64 / secs
    }
}

#[derive(Default)]
pub struct Results {
    pub sizes: Vec<SizeInfo>,
    pub ops: Vec<OpResult>,
    pub bulk: Vec<BulkResult>,
    pub concurrency: Vec<ConcResult>,
    pub async_pool: Vec<AsyncResult>,
    pub server: Vec<(String, String)>,
    /// Per size: how client and server were placed during the single-connection part.
    pub pinning: Vec<(&'static str, String)>,
}

impl Results {
    /// Throughput of `c` over that of one thread at the same size.
    pub fn speedup(&self, c: &ConcResult) -> f64 {
        let one = self
            .concurrency
            .iter()
            .find(|o| o.size == c.size && o.threads == 1)
            .map_or(c.ops_per_s, |o| o.ops_per_s);
        c.ops_per_s / one
    }
}

pub struct Target {
    pub what: String,
    pub value: f64,
    pub limit: f64,
    /// true: value <= limit passes; false: value >= limit passes.
    pub at_most: bool,
}

impl Target {
    pub fn pass(&self) -> bool {
        if self.at_most {
            self.value <= self.limit
        } else {
            self.value >= self.limit
        }
    }
}

/// Client CPU per call of a 50-task list page at most this, µs (half of the 80 to
/// 120 µs measured before).
pub const LIST_CPU_TARGET_US: f64 = 60.0;

/// Every target the results can be held to.
pub fn targets(results: &Results) -> Vec<Target> {
    let mut out = Vec::new();
    let target = |what: String, value: f64, limit: f64, at_most: bool| Target {
        what,
        value,
        limit,
        at_most,
    };
    for r in results.ops.iter().filter(|r| r.op != Op::RoundTrip) {
        if let Some(ratio) = r.ratio() {
            let what = format!(
                "{} [{}] within 1.2x of the faster floor",
                r.op.label(),
                r.size
            );
            out.push(target(what, ratio, 1.2, true));
        }
        if let (Op::ListSearch, Some(ratio)) = (r.op, r.reference_ratio()) {
            let what = format!("search [{}] within 1.2x of the InitPlan reference", r.size);
            out.push(target(what, ratio, 1.2, true));
        }
        if matches!(r.op, Op::ListFirst | Op::ListNext) {
            let what = format!("{} [{}] client CPU per page, µs", r.op.label(), r.size);
            out.push(target(what, r.client_cpu_us, LIST_CPU_TARGET_US, true));
        }
    }
    for b in &results.bulk {
        let what = format!("create_many [{}] at least 0.9x of COPY's rows/s", b.size);
        out.push(target(
            what,
            b.crate_rows_per_s / b.copy_rows_per_s,
            0.9,
            false,
        ));
    }
    for size in results.sizes.iter().map(|s| s.label) {
        let at = |t: usize| {
            results
                .concurrency
                .iter()
                .find(|c| c.size == size && c.threads == t)
                .map(|c| c.ops_per_s)
        };
        if let (Some(one), Some(two)) = (at(1), at(2)) {
            let what = format!("pool throughput [{size}] at 2 threads at least 1.6x of 1 thread");
            out.push(target(what, two / one, 1.6, false));
        }
    }
    out
}

/// For the ops whose ratio must hold at every size: how the crate's mean and its
/// floor grew from the first size to the last (labels, crate growth, floor growth).
pub fn growth(results: &Results) -> Vec<(Op, &'static str, &'static str, f64, f64)> {
    let (Some(first), Some(last)) = (results.sizes.first(), results.sizes.last()) else {
        return Vec::new();
    };
    if first.label == last.label {
        return Vec::new();
    }
    let at = |op: Op, size: &str| results.ops.iter().find(|r| r.op == op && r.size == size);
    Op::ALL
        .into_iter()
        .filter(|op| op.growth_target())
        .filter_map(|op| {
            let (a, b) = (at(op, first.label)?, at(op, last.label)?);
            let floor = b.floor_us()? / a.floor_us()?;
            Some((op, first.label, last.label, b.mean_us / a.mean_us, floor))
        })
        .collect()
}

/// `n` with thousands separators: 1,000,000.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
