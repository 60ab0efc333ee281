//! serde for the crate's types (feature `serde`): what does not fit a derive.
//!
//! Rows ([`crate::User`], [`crate::Task`], [`crate::Session`], [`crate::Page`],
//! [`crate::TaskStats`]) serialize with their field names, [`crate::Priority`] as
//! `"low"`/`"medium"`/`"high"`, timestamps as RFC 3339 and ids as hyphenated UUIDs.
//! Inputs ([`crate::NewUser`], [`crate::NewTask`], [`crate::UserPatch`],
//! [`crate::TaskPatch`]) deserialize from the same names, unknown fields refused; in a
//! patch an absent field leaves the value unchanged and `null` clears a nullable one.
//! Deserialized input is checked by the same validation as any other before a write.
//! [`TaskQueryParams`] is the query-string form of [`TaskQuery`], and a
//! [`DbConfig`] deserializes from a configuration file's table.
//!
//! In detail: `User`, `Task`, `Session`, `Page`, `TaskStats` serialize (ids as UUID
//! strings, timestamps as RFC 3339, `Priority` as `"low"`/`"medium"`/`"high"`);
//! `NewUser`, `NewTask`, `UserPatch`, `TaskPatch`, `Priority`, `TaskSort` (`"due_date"`,
//! ...) and `Direction` (`"asc"`, `"desc"`) deserialize. Unknown fields are refused, so a
//! typo is an error rather than a silent no-op. `TaskQueryParams` is the query string
//! `?completed=false&priority=high,medium&sort=due_date&direction=asc&limit=20&after=...`
//! (for axum's `Query`; `TaskQuery::try_from(params)`), with the metadata filters as
//! `metadata_contains={"source":"email"}` (a JSON object, URL-encoded) and
//! `metadata_has_key=source,labels`. `TaskPatch`'s `metadata` is `{"replace": {...}}`
//! or `{"merge": {...}}` (a JSON Merge Patch); its `write_id` (a UUID) is optional, a
//! fresh one when absent, as `NewTask`'s `id`: a client that sends its own can repeat
//! the request and have it applied once. `DbConfig` deserializes from a
//! configuration file's table with the keys `url`, `pool_size`, `statement_timeout_ms`,
//! ... (the environment variables of [`crate::config`] without `DATABASE_`, lower case),
//! its password still out of `Debug`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::DbConfig;
use crate::error::{Error, Result};
use crate::models::Priority;
use crate::repo::{Direction, TaskQuery, TaskSort};

/// For `Option<Option<T>>` fields with `#[serde(default)]`: a field that is present
/// is `Some`, whether its value is `null` (`Some(None)`) or not; an absent field stays
/// `None`.
pub(crate) fn present<'de, D, T>(
    deserializer: D,
) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// [`TaskQuery`] as a query string carries it (`?completed=false&priority=high,medium&
/// sort=due_date&direction=asc&limit=20&after=...`), for axum's `Query`, actix's
/// `web::Query` or `serde_urlencoded`; convert with `TaskQuery::try_from`.
///
/// ```
/// use todo_store::serde_support::TaskQueryParams;
/// use todo_store::TaskQuery;
///
/// let params: TaskQueryParams =
///     serde_urlencoded::from_str("completed=false&priority=high,medium&sort=due_date&direction=asc&limit=20")
///         .unwrap();
/// let query = TaskQuery::try_from(params).unwrap();
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskQueryParams {
    /// Only done (`true`) or open (`false`) tasks.
    pub completed: Option<bool>,
    /// Priorities, comma-separated: `high,medium`.
    pub priority: Option<String>,
    /// Due strictly before (RFC 3339).
    pub due_before: Option<DateTime<Utc>>,
    /// Due strictly after (RFC 3339).
    pub due_after: Option<DateTime<Utc>>,
    /// Only open tasks past their due date.
    pub overdue: Option<bool>,
    /// Created strictly before (RFC 3339).
    pub created_before: Option<DateTime<Utc>>,
    /// Created strictly after (RFC 3339).
    pub created_after: Option<DateTime<Utc>>,
    /// Web-search text.
    pub search: Option<String>,
    /// A JSON object the metadata must contain (`{"source":"email"}`, URL-encoded):
    /// [`TaskQuery::metadata_contains`].
    pub metadata_contains: Option<String>,
    /// Top-level metadata keys the task must have, comma-separated (`source,labels`;
    /// a key with a comma cannot be given here): [`TaskQuery::metadata_has_key`].
    pub metadata_has_key: Option<String>,
    /// `created_at`, `updated_at`, `due_date`, `priority`, `title` or `relevance`.
    pub sort: Option<TaskSort>,
    /// `asc` or `desc`.
    pub direction: Option<Direction>,
    /// Page size, 1 to 500.
    pub limit: Option<i64>,
    /// The previous page's `next_cursor`.
    pub after: Option<String>,
}

impl TryFrom<TaskQueryParams> for TaskQuery {
    type Error = Error;

    /// The query; the limit, search and cursor are checked when the query runs.
    ///
    /// # Errors
    /// [`Error::Validation`] on `priority` for a name that is not `low`, `medium` or
    /// `high`; on `metadata_contains` for text that is not a JSON object.
    fn try_from(p: TaskQueryParams) -> Result<TaskQuery> {
        let mut query = TaskQuery::new();
        if let Some(completed) = p.completed {
            query = query.completed(completed);
        }
        for name in p.priority.iter().flat_map(|list| list.split(',')) {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            let priority = Priority::ALL
                .into_iter()
                .find(|p| p.to_string() == name)
                .ok_or_else(|| Error::validation("priority", "must be low, medium or high"))?;
            query = query.priority(priority);
        }
        let bounds = [
            (
                p.due_before,
                TaskQuery::due_before as fn(TaskQuery, DateTime<Utc>) -> TaskQuery,
            ),
            (p.due_after, TaskQuery::due_after),
            (p.created_before, TaskQuery::created_before),
            (p.created_after, TaskQuery::created_after),
        ];
        for (at, set) in bounds {
            if let Some(at) = at {
                query = set(query, at);
            }
        }
        if p.overdue == Some(true) {
            query = query.overdue();
        }
        if let Some(search) = &p.search {
            query = query.search(search);
        }
        if let Some(text) = &p.metadata_contains {
            let document = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
                .map_err(|_| Error::validation("metadata_contains", "must be a JSON object"))?;
            query = query.metadata_contains(document);
        }
        for key in p.metadata_has_key.iter().flat_map(|list| list.split(',')) {
            if !key.is_empty() {
                query = query.metadata_has_key(key);
            }
        }
        let direction = p.direction.unwrap_or_default();
        if let Some(sort) = p.sort {
            query = query.sort(sort, direction);
        } else if p.direction.is_some() {
            query = query.sort(TaskSort::default(), direction);
        }
        if let Some(limit) = p.limit {
            query = query.limit(limit);
        }
        if let Some(after) = &p.after {
            query = query.after(after);
        }
        Ok(query)
    }
}

/// The fields a [`DbConfig`] deserializes from (a `[database]` table of a TOML file,
/// a JSON object): the names of the environment variables without `DATABASE_`, in
/// lower case; only `url` is required. Never `Debug`: it holds the password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DbConfigSource {
    url: String,
    pool_size: Option<u32>,
    min_idle: Option<u32>,
    connect_timeout_ms: Option<u64>,
    /// 0 turns the statement timeout off.
    statement_timeout_ms: Option<u64>,
    application_name: Option<String>,
    pgbouncer: Option<bool>,
    replica_urls: Option<Vec<String>>,
    /// 0 leaves it to the operating system.
    tcp_user_timeout_ms: Option<u64>,
    /// 0 turns keepalives off.
    keepalives_idle_s: Option<u64>,
    keepalives_interval_s: Option<u64>,
    keepalives_count: Option<u32>,
}

impl TryFrom<DbConfigSource> for DbConfig {
    type Error = Error;

    fn try_from(s: DbConfigSource) -> Result<DbConfig> {
        let mut config = DbConfig::new(s.url);
        if let Some(n) = s.pool_size {
            config = config.pool_size(n);
        }
        if let Some(n) = s.min_idle {
            config = config.min_idle(Some(n));
        }
        if let Some(ms) = s.connect_timeout_ms {
            config = config.connection_timeout(std::time::Duration::from_millis(ms));
        }
        if let Some(ms) = s.statement_timeout_ms {
            config =
                config.statement_timeout((ms > 0).then(|| std::time::Duration::from_millis(ms)));
        }
        if let Some(name) = s.application_name {
            config = config.application_name(name);
        }
        if let Some(on) = s.pgbouncer {
            config = config.pgbouncer(on);
        }
        if let Some(urls) = s.replica_urls {
            config = config.replica_urls(urls);
        }
        let seconds = std::time::Duration::from_secs;
        if let Some(ms) = s.tcp_user_timeout_ms {
            config =
                config.tcp_user_timeout((ms > 0).then(|| std::time::Duration::from_millis(ms)));
        }
        if let Some(idle) = s.keepalives_idle_s {
            config = config.keepalives_idle((idle > 0).then(|| seconds(idle)));
        }
        if let Some(interval) = s.keepalives_interval_s {
            config = config.keepalives_interval(seconds(interval));
        }
        if let Some(count) = s.keepalives_count {
            config = config.keepalives_count(count);
        }
        config.validate()?;
        Ok(config)
    }
}
