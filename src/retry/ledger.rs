//! What an attempt of [`retry_transaction`](super::retry_transaction) wrote, as far as
//! running it again is concerned: whether every write was exactly-once, and the rows
//! those writes name.
//!
//! The crate's connections see every statement (their instrumentation, `pool::health`),
//! and report each one here through [`note_statement`]. The crate's exactly-once calls
//! (the creates, sessions' included, a task's versioned update, `set_completed`, a
//! habit's `check_in` and `undo_check_in`) run their statements
//! inside [`exactly_once`], naming the rows they write. A statement outside such a call
//! makes the attempt *blind* unless it is one of the crate's own reads (a crate call
//! whose SQL is a `SELECT`): a statement of the caller's own, even a `SELECT` (it may
//! call a function that writes), or a crate write that cannot recognise its own
//! earlier commit (an unversioned update, a delete).
//!
//! The ledgers are kept per thread: an attempt and its closure run on one thread, and so
//! do the statements they send. A closure may still hand its connection to another
//! thread; the connection counts the statements sent from a thread other than the
//! attempt's ([`crate::pool::watch_attempt`]), and any such statement makes the attempt
//! blind. A ledger is open only while an attempt runs; without one, noting a statement
//! costs one thread-local read.

use std::cell::{Cell, RefCell};

/// What an exactly-once call writes, as a replay must write it again: the table, the
/// row's id, and what the call does to it when that can differ for one row (a task set
/// done or open, a habit's day checked in or not; 0 otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RowKey {
    table: &'static str,
    id: uuid::Uuid,
    what: i64,
}

impl RowKey {
    /// The row `id` of `table`.
    pub(crate) fn row(table: &'static str, id: impl Into<uuid::Uuid>) -> RowKey {
        RowKey::doing(table, id, 0)
    }

    /// The row `id` of `table`, and `what` the call does to it.
    pub(crate) fn doing(table: &'static str, id: impl Into<uuid::Uuid>, what: i64) -> RowKey {
        RowKey {
            table,
            id: id.into(),
            what,
        }
    }
}

#[derive(Debug, Default)]
struct Ledger {
    blind: bool,
    rows: Vec<RowKey>,
}

thread_local! {
    static LEDGERS: RefCell<Vec<Ledger>> = const { RefCell::new(Vec::new()) };
    static EXACTLY_ONCE: Cell<u32> = const { Cell::new(0) };
}

/// The ledger of one attempt, open until dropped. A ledger opened inside another (a
/// `retry_transaction` inside a closure) passes what it saw on to the outer one.
pub(super) struct Attempt(());

impl Attempt {
    /// Opens a ledger; `sees_statements` is whether the attempt's connection reports its
    /// statements (a connection without the crate's instrumentation cannot: its attempt
    /// is blind from the start).
    pub(super) fn open(sees_statements: bool) -> Attempt {
        LEDGERS.with(|l| {
            l.borrow_mut().push(Ledger {
                blind: !sees_statements,
                rows: Vec::new(),
            })
        });
        Attempt(())
    }

    /// Marks the attempt blind (its connection stopped reporting its statements).
    pub(super) fn mark_blind(&self) {
        LEDGERS.with(|l| {
            if let Some(top) = l.borrow_mut().last_mut() {
                top.blind = true;
            }
        });
    }

    /// Whether every write so far was exactly-once.
    pub(super) fn is_exactly_once(&self) -> bool {
        LEDGERS.with(|l| l.borrow().last().is_some_and(|top| !top.blind))
    }

    /// The rows the exactly-once writes so far name, sorted.
    pub(super) fn rows(&self) -> Vec<RowKey> {
        let mut rows = LEDGERS.with(|l| {
            l.borrow()
                .last()
                .map(|t| t.rows.clone())
                .unwrap_or_default()
        });
        rows.sort_unstable();
        rows
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        LEDGERS.with(|l| {
            let mut ledgers = l.borrow_mut();
            if let Some(done) = ledgers.pop() {
                if let Some(outer) = ledgers.last_mut() {
                    outer.blind |= done.blind;
                    outer.rows.extend(done.rows);
                }
            }
        });
    }
}

/// Runs `f`, an exactly-once write of `rows`: run again with the same input, it
/// recognises what an earlier run committed and returns it instead of writing twice.
/// Its statements do not make the attempt blind.
pub(crate) fn exactly_once<T>(rows: impl IntoIterator<Item = RowKey>, f: impl FnOnce() -> T) -> T {
    LEDGERS.with(|l| {
        if let Some(top) = l.borrow_mut().last_mut() {
            top.rows.extend(rows);
        }
    });
    EXACTLY_ONCE.with(|d| d.set(d.get() + 1));
    // Counted down even when `f` panics.
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            EXACTLY_ONCE.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
    let _leave = Leave;
    f()
}

/// Notes a statement that a connection of the crate is about to send:
/// `transaction_statement` for diesel's `BEGIN`/`COMMIT`/`ROLLBACK`/savepoints,
/// `in_crate_call` for a statement of one of the crate's calls, `sql` its text.
pub(crate) fn note_statement(
    transaction_statement: bool,
    in_crate_call: bool,
    sql: impl FnOnce() -> String,
) {
    if transaction_statement {
        return;
    }
    LEDGERS.with(|l| {
        let mut ledgers = l.borrow_mut();
        let Some(top) = ledgers.last_mut() else {
            return;
        };
        if top.blind || EXACTLY_ONCE.with(Cell::get) > 0 {
            return;
        }
        if !(in_crate_call && is_select(&sql())) {
            top.blind = true;
        }
    });
}

/// Whether `sql` is a `SELECT` (any case, after white space).
fn is_select(sql: &str) -> bool {
    sql.trim_start()
        .get(..6)
        .is_some_and(|word| word.eq_ignore_ascii_case("select"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_sees_blind_and_exactly_once_statements() {
        let select = || "SELECT 1".to_owned();
        let insert = || "INSERT INTO t VALUES (1)".to_owned();
        // No ledger open: nothing noted, nothing panics.
        note_statement(false, false, insert);

        let attempt = Attempt::open(true);
        note_statement(true, false, || "BEGIN".into());
        note_statement(false, true, select);
        note_statement(false, true, || "  select 2".into());
        let id = uuid::Uuid::now_v7();
        exactly_once([RowKey::row("tasks", id)], || {
            note_statement(false, true, insert)
        });
        assert!(attempt.is_exactly_once());
        assert_eq!(attempt.rows(), [RowKey::row("tasks", id)]);
        // The caller's own SELECT may call a function that writes.
        note_statement(false, false, select);
        assert!(!attempt.is_exactly_once());
        drop(attempt);

        let attempt = Attempt::open(true);
        note_statement(false, true, || "UPDATE tasks SET".into());
        assert!(!attempt.is_exactly_once());
        drop(attempt);

        assert!(!Attempt::open(false).is_exactly_once());
    }

    #[test]
    fn an_inner_ledger_passes_what_it_saw_to_the_outer_one() {
        let outer = Attempt::open(true);
        let id = uuid::Uuid::now_v7();
        {
            let _inner = Attempt::open(true);
            exactly_once([RowKey::row("users", id)], || {});
            note_statement(false, false, || "DELETE FROM t".into());
        }
        assert!(!outer.is_exactly_once());
        assert_eq!(outer.rows(), [RowKey::row("users", id)]);
    }
}
