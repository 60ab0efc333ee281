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
    pub floor_us: Option<f64>,
    pub floor_note: Option<String>,
    pub floor_sql: String,
    pub statements: Vec<String>,
    pub prepared: bool,
    /// Per round (adjacent in time): the crate's mean and the floor's, µs. The spread
    /// of their ratios shows the noise.
    pub rounds: Vec<(f64, f64)>,
    /// CPU time of the benchmark's thread per call (the crate's work, plus a little of
    /// the benchmark's own: picking the inputs).
    pub client_cpu_us: f64,
}

impl OpResult {
    pub fn ratio(&self) -> Option<f64> {
        self.floor_us.map(|f| self.mean_us / f)
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

#[derive(Debug, Clone)]
pub struct SizeInfo {
    pub label: &'static str,
    pub users: u32,
    pub tasks_per_user: u32,
    pub seed_secs: f64,
    pub seed_rows_per_s: f64,
}

#[derive(Default)]
pub struct Results {
    pub sizes: Vec<SizeInfo>,
    pub ops: Vec<OpResult>,
    pub bulk: Vec<BulkResult>,
    pub concurrency: Vec<ConcResult>,
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

/// Every target the results can be held to.
pub fn targets(results: &Results) -> Vec<Target> {
    let mut out = Vec::new();
    for r in results.ops.iter().filter(|r| r.op != Op::RoundTrip) {
        if let Some(ratio) = r.ratio() {
            out.push(Target {
                what: format!("{} [{}] within 1.2x of its floor", r.op.label(), r.size),
                value: ratio,
                limit: 1.2,
                at_most: true,
            });
        }
    }
    for b in &results.bulk {
        out.push(Target {
            what: format!("create_many [{}] at least 0.8x of COPY's rows/s", b.size),
            value: b.crate_rows_per_s / b.copy_rows_per_s,
            limit: 0.8,
            at_most: false,
        });
    }
    for op in Op::ALL.into_iter().filter(|op| op.growth_target()) {
        let at = |size: &str| results.ops.iter().find(|r| r.op == op && r.size == size);
        if let (Some(s), Some(l)) = (at("S"), at("L")) {
            out.push(Target {
                what: format!("{} grows at most 1.3x from S to L", op.label()),
                value: l.mean_us / s.mean_us,
                limit: 1.3,
                at_most: true,
            });
        }
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
            out.push(Target {
                what: format!("pool throughput [{size}] at 2 threads at least 1.6x of 1 thread"),
                value: two / one,
                limit: 1.6,
                at_most: false,
            });
        }
    }
    out
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
