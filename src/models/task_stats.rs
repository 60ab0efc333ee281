//! [`TaskStats`]: the counts a todo application's dashboard shows.

use std::collections::BTreeMap;

use super::Priority;

/// Counts over one user's tasks, from [`crate::TaskRepo::stats`] or
/// [`crate::TaskRepo::stats_in_time_zone`] (one query).
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskStats {
    /// All tasks.
    pub total: i64,
    /// Done tasks.
    pub completed: i64,
    /// Open tasks (`total - completed`).
    pub open: i64,
    /// Open tasks whose due date has passed, by the server's clock at the statement
    /// (`statement_timestamp()`).
    pub overdue: i64,
    /// Open tasks due during the current calendar day: in UTC from
    /// [`crate::TaskRepo::stats`], in the given time zone from
    /// [`crate::TaskRepo::stats_in_time_zone`].
    pub due_today: i64,
    /// All tasks by priority; every priority has an entry, zero included.
    pub by_priority: BTreeMap<Priority, i64>,
}

impl TaskStats {
    /// The number of tasks of `priority`.
    pub fn priority_count(&self, priority: Priority) -> i64 {
        self.by_priority.get(&priority).copied().unwrap_or(0)
    }
}
