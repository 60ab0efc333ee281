//! How much of everything to do: the sizes, iterations and durations of a run.

use std::time::Duration;

use crate::ops::Op;
use crate::{Args, BoxResult};

/// One table size.
#[derive(Debug, Clone)]
pub struct SizeSpec {
    pub label: &'static str,
    pub users: u32,
    pub tasks_per_user: u32,
    /// Run unless `--sizes` names others; the others run only when named.
    pub default: bool,
}

const fn size(label: &'static str, users: u32, tasks_per_user: u32, default: bool) -> SizeSpec {
    SizeSpec {
        label,
        users,
        tasks_per_user,
        default,
    }
}

/// How much of everything to do.
#[derive(Debug, Clone)]
pub struct Profile {
    pub quick: bool,
    pub sizes: Vec<SizeSpec>,
    pub iterations: usize,
    pub warmup: usize,
    pub sample_users: usize,
    pub sample_tasks: usize,
    pub bulk_rows: usize,
    pub bulk_chunk: usize,
    pub threads: Vec<usize>,
    pub rounds: usize,
    pub conc_rounds: usize,
    pub conc_warmup: Duration,
    pub conc_duration: Duration,
    pub skip: Vec<String>,
    /// The single calls `--only` names (empty: every one).
    pub only: Vec<Op>,
}

/// The defaults of a mode, before the command line narrows them.
struct Preset {
    sizes: [SizeSpec; 4],
    iterations: usize,
    warmup: usize,
    sample_users: usize,
    sample_tasks: usize,
    bulk_rows: usize,
    bulk_chunk: usize,
    rounds: usize,
    conc_rounds: usize,
    conc_warmup: Duration,
    conc_duration: Duration,
}

/// `--quick`: small sizes and few iterations, for CI; the seeds' 1,000 tasks per user.
const QUICK: Preset = Preset {
    sizes: [
        size("S", 20, 1_000, true),
        size("L", 100, 1_000, true),
        size("XL", 1_000, 1_000, false),
        size("S100", 200, 100, false),
    ],
    iterations: 300,
    warmup: 50,
    sample_users: 100,
    sample_tasks: 1_000,
    bulk_rows: 10_000,
    bulk_chunk: 2_000,
    rounds: 2,
    conc_rounds: 1,
    conc_warmup: Duration::from_millis(250),
    conc_duration: Duration::from_millis(1_000),
};

/// The full run: the seeds' shapes, 1,000 tasks per user: S 100k tasks, L 1M, and
/// (named only: `--size xl`) XL 10M, the seeds' upper bound; S100 is the old profile of
/// 100 tasks per user (1,000 users), for comparison.
const FULL: Preset = Preset {
    sizes: [
        size("S", 100, 1_000, true),
        size("L", 1_000, 1_000, true),
        size("XL", 10_000, 1_000, false),
        size("S100", 1_000, 100, false),
    ],
    iterations: 4_000,
    warmup: 500,
    sample_users: 1_000,
    sample_tasks: 5_000,
    bulk_rows: 100_000,
    bulk_chunk: 10_000,
    rounds: 6,
    conc_rounds: 2,
    conc_warmup: Duration::from_secs(1),
    conc_duration: Duration::from_secs(5),
};

/// The parts of a run that `--skip` names.
const PARTS: [&str; 5] = ["ops", "bulk", "concurrency", "load", "async"];

impl Profile {
    pub fn new(args: &Args) -> BoxResult<Self> {
        let preset = if args.quick { QUICK } else { FULL };
        let sizes = chosen_sizes(preset.sizes, &args.sizes)?;
        for part in &args.skip {
            if !PARTS.contains(&part.as_str()) {
                return Err(format!(
                    "unknown part {part:?}: ops, bulk, concurrency, load or async"
                )
                .into());
            }
        }
        let only = args
            .only
            .iter()
            .map(|key| {
                let key = key.trim();
                Op::ALL
                    .into_iter()
                    .find(|op| op.key() == key)
                    .ok_or_else(|| {
                        let keys: Vec<&str> = Op::ALL.iter().map(|op| op.key()).collect();
                        format!("unknown op {key:?}: one of {}", keys.join(", "))
                    })
            })
            .collect::<Result<Vec<Op>, String>>()?;
        Ok(Profile {
            quick: args.quick,
            sizes,
            iterations: args.iterations.unwrap_or(preset.iterations).max(2),
            warmup: preset.warmup,
            sample_users: preset.sample_users,
            sample_tasks: preset.sample_tasks,
            bulk_rows: preset.bulk_rows,
            bulk_chunk: preset.bulk_chunk,
            threads: vec![1, 2, 4, 8],
            rounds: preset.rounds,
            conc_rounds: preset.conc_rounds,
            conc_warmup: preset.conc_warmup,
            conc_duration: preset.conc_duration,
            skip: args.skip.clone(),
            only,
        })
    }

    pub fn runs(&self, part: &str) -> bool {
        !self.skip.iter().any(|p| p == part)
    }

    /// Whether `op` is measured: named by `--only` (or no `--only`), or the floor of one
    /// that is.
    pub fn runs_op(&self, op: Op) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| *o == op || o.floor_of() == op)
    }

    /// Tasks one side (crate or floor) of the delete benchmark uses up.
    pub fn delete_budget(&self) -> usize {
        self.warmup + self.iterations + 8
    }
}

/// How much of an HTTP run (`--http`) to do: one size, the full run's shapes (S = 100
/// x 1,000, L = 1,000 x 1,000, ...) in both modes.
#[derive(Debug, Clone)]
pub struct HttpProfile {
    pub quick: bool,
    pub size: SizeSpec,
    /// Rounds; each runs every endpoint against every variant, the variants' order
    /// rotated from round to round.
    pub rounds: usize,
    /// wrk's warm-up before each timed run (it also checks every status).
    pub warmup: Duration,
    /// wrk's timed run.
    pub duration: Duration,
}

impl HttpProfile {
    /// L and 3 rounds of 15 s; with `--quick` S and one round of 2 s; `--sizes` names
    /// another size (one).
    pub fn new(args: &Args) -> BoxResult<Self> {
        let wanted = if args.sizes.is_empty() {
            vec![if args.quick { "S" } else { "L" }.to_owned()]
        } else {
            args.sizes.clone()
        };
        let size = match chosen_sizes(FULL.sizes, &wanted)?.as_slice() {
            [one] => one.clone(),
            _ => return Err("--http measures one size: name one with --sizes".into()),
        };
        let (rounds, warmup, duration) = if args.quick {
            (1, Duration::from_secs(1), Duration::from_secs(2))
        } else {
            (3, Duration::from_secs(5), Duration::from_secs(15))
        };
        Ok(HttpProfile {
            quick: args.quick,
            size,
            rounds,
            warmup,
            duration,
        })
    }
}

/// The sizes `--sizes` asks for (the default ones when it is empty), in their order.
fn chosen_sizes(sizes: [SizeSpec; 4], wanted: &[String]) -> BoxResult<Vec<SizeSpec>> {
    let wanted: Vec<String> = wanted.iter().map(|s| s.trim().to_uppercase()).collect();
    for w in &wanted {
        if !sizes.iter().any(|s| s.label == w) {
            return Err(format!("unknown size {w:?}: S, L, XL or S100").into());
        }
    }
    Ok(sizes
        .into_iter()
        .filter(|s| {
            if wanted.is_empty() {
                s.default
            } else {
                wanted.iter().any(|w| w == s.label)
            }
        })
        .collect())
}
