//! Which pooled connections may hold diesel's caches of a schema that a migration has
//! changed since: one counter per database, bumped by the crate's migration runs
//! ([`crate::migrate`]); a connection notes its database's count when it opens.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::conninfo::Conninfo;

/// A database's count of schema changes, shared by the connections to it.
#[derive(Debug, Clone)]
pub(super) struct SchemaEpoch(Arc<AtomicU64>);

impl SchemaEpoch {
    /// The counter of the database that `info` names (its hosts, port and name; the
    /// same for every user), made on first use.
    pub(super) fn of(info: Option<&Conninfo>) -> SchemaEpoch {
        static EPOCHS: Mutex<BTreeMap<String, Arc<AtomicU64>>> = Mutex::new(BTreeMap::new());
        let get = |keyword| info.and_then(|i| i.get(keyword)).unwrap_or("");
        let database = [get("host"), get("hostaddr"), get("port"), get("dbname")].join("\n");
        let mut epochs = EPOCHS.lock().unwrap_or_else(PoisonError::into_inner);
        SchemaEpoch(Arc::clone(epochs.entry(database).or_default()))
    }

    /// Schema changes so far.
    pub(super) fn now(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Records one more schema change.
    pub(super) fn advance(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databases_count_apart_and_users_of_one_database_together() {
        let parse = |url: &str| Conninfo::parse(url).unwrap();
        let a = SchemaEpoch::of(Some(&parse("postgres://u@h:5432/epoch_a")));
        let a_again = SchemaEpoch::of(Some(&parse("postgres://other@h:5432/epoch_a")));
        let b = SchemaEpoch::of(Some(&parse("postgres://u@h:5432/epoch_b")));
        let before = (a.now(), b.now());
        a.advance();
        assert_eq!(a_again.now(), before.0 + 1);
        assert_eq!(b.now(), before.1);
    }
}
