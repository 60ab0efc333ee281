//! Realistic task metadata for the seed: where a task came from, labels, an estimate,
//! links, on a share of the tasks.
//!
//! Drawn from a generator of its own, seeded by the task's id, so adding metadata
//! changed none of the other seeded values (ids, titles, dates are what they were).

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use serde_json::{json, Map, Value};

use crate::models::TaskId;

/// Where a task came from, the first most often.
pub(super) const SOURCES: &[&str] = &["web", "mobile", "email", "calendar", "import", "slack"];

/// Labels a user files tasks under.
pub(super) const LABELS: &[&str] = &[
    "work", "home", "errand", "finance", "health", "family", "urgent", "someday", "reading",
    "travel", "garden", "car",
];

/// Hosts of the links a task carries.
const LINK_HOSTS: &[&str] = &[
    "docs.example.com",
    "tracker.example.org",
    "mail.example.net",
];

/// Percent of tasks with metadata.
pub(super) const SHARE_PERCENT: u32 = 40;

/// The metadata of the task `id`: `{}` for most, else a source and some of labels, an
/// estimate in minutes and links.
pub(super) fn generate(id: TaskId) -> Map<String, Value> {
    let mut rng = Pcg64::seed_from_u64(fold(id.as_uuid().as_u128()));
    let mut metadata = Map::new();
    if rng.random_range(0..100) >= SHARE_PERCENT {
        return metadata;
    }
    let source = match rng.random_range(0..10) {
        0..=3 => SOURCES[0],
        4..=5 => SOURCES[1],
        n => SOURCES[n as usize - 4],
    };
    metadata.insert("source".into(), json!(source));
    if rng.random_bool(0.6) {
        let count = rng.random_range(1..=3);
        let mut labels: Vec<&str> = (0..count)
            .map(|_| LABELS[rng.random_range(0..LABELS.len())])
            .collect();
        labels.sort_unstable();
        labels.dedup();
        metadata.insert("labels".into(), json!(labels));
    }
    if rng.random_bool(0.5) {
        let estimate = [15, 30, 45, 60, 90, 120, 240][rng.random_range(0..7)];
        metadata.insert("estimate_minutes".into(), json!(estimate));
    }
    if rng.random_bool(0.25) {
        let links: Vec<Value> = (0..rng.random_range(1..=2))
            .map(|_| {
                let host = LINK_HOSTS[rng.random_range(0..LINK_HOSTS.len())];
                let url = format!("https://{host}/{}", rng.random_range(1000..100_000));
                let title = if host.starts_with("docs") {
                    "Notes"
                } else {
                    "Ticket"
                };
                json!({"url": url, "title": title})
            })
            .collect();
        metadata.insert("links".into(), Value::Array(links));
    }
    metadata
}

fn fold(bits: u128) -> u64 {
    (bits as u64) ^ ((bits >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_of_tasks_has_metadata_that_validates() {
        let with: Vec<_> = (0..1000u128)
            .map(|i| {
                generate(TaskId::from(uuid::Uuid::from_u128(
                    i * 0x9e37_79b9_7f4a_7c15,
                )))
            })
            .filter(|m| !m.is_empty())
            .collect();
        assert!((300..500).contains(&with.len()), "{}", with.len());
        for m in &with {
            crate::models::metadata::check("metadata", m).unwrap();
            assert!(m.contains_key("source"));
        }
        let id = TaskId::from(uuid::Uuid::from_u128(7));
        assert_eq!(generate(id), generate(id));
    }
}
