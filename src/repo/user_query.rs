//! [`UserQuery`]: which users [`crate::UserRepo::list_page`] returns, a page at a time,
//! by keyset pagination over the [`UserSort`] key and the id.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::Bool;
use uuid::Uuid;

use super::cursor::{fnv1a, Cursor, CursorSort, KeyKind, SortKey};
use super::fragment::{self, Bind};
use super::page_limit::PageLimit;
use super::query::Direction;
use crate::error::{Error, Result};
use crate::models::validate::EMAIL_MAX_CHARS;
use crate::models::User;
use crate::schema::users;

/// What to sort users by, ascending. Every sort breaks ties on the user id, so the
/// order is total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum UserSort {
    /// When the user was created, oldest first (the default).
    #[default]
    CreatedAt = 0,
}

impl UserSort {
    /// Every sort, in the order of their numbers (as [`crate::TaskSort::ALL`]).
    pub const ALL: [UserSort; 1] = [UserSort::CreatedAt];
}

/// A user cursor's header names its sort by this number (the same byte as
/// `TaskSort::CreatedAt`, so cursors made before `UserSort` existed stay valid; the
/// fingerprint keeps them apart from task cursors).
impl CursorSort for UserSort {
    fn number(self) -> u8 {
        self as u8
    }

    fn from_number(n: u8) -> Option<Self> {
        Self::ALL.get(n as usize).copied()
    }

    fn key_kind(self) -> KeyKind {
        match self {
            UserSort::CreatedAt => KeyKind::Timestamp,
        }
    }
}

/// Which users [`crate::UserRepo::list_page`] returns: oldest first (by `created_at`,
/// ties by id), optionally only those whose email starts with a prefix, a page at a
/// time. Unlike [`crate::UserRepo::list`]'s offset, a page costs the same however deep
/// it is, and paging is stable while users are added or removed.
///
/// ```no_run
/// use todo_store::{UserQuery, UserRepo};
/// # fn main() -> todo_store::Result<()> {
/// # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
/// # let mut conn = pool.get()?;
/// let query = UserQuery::new().email_prefix("ada").limit(100);
/// let mut page = UserRepo::list_page(&mut conn, &query)?;
/// while let Some(cursor) = page.next_cursor.take() {
///     page = UserRepo::list_page(&mut conn, &query.clone().after(&cursor))?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    pub(crate) email_prefix: Option<String>,
    pub(crate) sort: UserSort,
    pub(crate) limit: Option<i64>,
    pub(crate) after: Option<String>,
}

impl Default for UserQuery {
    fn default() -> Self {
        UserQuery {
            email_prefix: None,
            sort: UserSort::CreatedAt,
            limit: Some(Self::DEFAULT_LIMIT),
            after: None,
        }
    }
}

impl UserQuery {
    /// Page size when [`UserQuery::limit`] is not called.
    pub const DEFAULT_LIMIT: i64 = 50;
    /// Largest page size [`UserQuery::limit`] (and [`crate::UserRepo::list`]) accepts.
    pub const MAX_LIMIT: i64 = 1000;

    /// Every user, oldest first, 50 per page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only users whose email starts with `prefix`, compared lower-cased (PostgreSQL's
    /// `lower()`): `"Ada"` finds `ada@example.com` and `ADA.L@example.org`. An empty
    /// prefix selects everyone.
    pub fn email_prefix(mut self, prefix: &str) -> Self {
        self.email_prefix = Some(prefix.to_owned());
        self
    }

    /// Sort by `sort`, ascending (default: [`UserSort::CreatedAt`]).
    pub fn sort(mut self, sort: UserSort) -> Self {
        self.sort = sort;
        self
    }

    /// At most `n` users per page: 1 to [`UserQuery::MAX_LIMIT`] (1000; default
    /// [`UserQuery::DEFAULT_LIMIT`], 50). Other values make
    /// [`crate::UserRepo::list_page`] fail with [`Error::Validation`].
    pub fn limit<N: TryInto<i64>>(mut self, n: N) -> Self {
        self.limit = n.try_into().ok();
        self
    }

    /// Continue after the page whose [`crate::Page::next_cursor`] this is; the cursor
    /// must come from the same prefix and sort (the limit may change).
    pub fn after(mut self, cursor: &str) -> Self {
        self.after = Some(cursor.to_owned());
        self
    }

    /// A hash of what selects rows: a cursor is only valid for the prefix it was made
    /// for, and never for a task query (the tag byte differs from theirs).
    fn fingerprint(&self) -> u64 {
        let mut bytes = vec![b'U'];
        match &self.email_prefix {
            None => bytes.push(0),
            Some(prefix) => {
                bytes.push(1);
                bytes.extend_from_slice(&(prefix.len() as u64).to_be_bytes());
                bytes.extend_from_slice(prefix.as_bytes());
            }
        }
        fnv1a(&bytes)
    }
}

/// A boxed SELECT of users as [`User`] rows.
pub(crate) type UsersQuery<'a> =
    users::BoxedQuery<'a, Pg, diesel::dsl::SqlTypeOf<diesel::dsl::AsSelect<User, Pg>>>;

/// A [`UserQuery`], checked and ready to become SQL.
pub(crate) struct UserPagePlan<'q> {
    prefix: Option<&'q str>,
    sort: UserSort,
    pub limit: i64,
    cursor: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
    fingerprint: u64,
}

impl<'q> UserPagePlan<'q> {
    /// Checks `query`: limit, prefix and cursor.
    pub(crate) fn new(query: &'q UserQuery) -> Result<Self> {
        let limit = match query.limit {
            Some(n) if (1..=UserQuery::MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(Error::validation(
                    "limit",
                    format!("must be between 1 and {}", UserQuery::MAX_LIMIT),
                ))
            }
        };
        let prefix = query.email_prefix.as_deref().filter(|p| !p.is_empty());
        if let Some(prefix) = prefix {
            crate::models::validate::no_nul("email_prefix", prefix)?;
            if prefix.chars().nth(EMAIL_MAX_CHARS).is_some() {
                return Err(Error::validation(
                    "email_prefix",
                    format!("must be at most {EMAIL_MAX_CHARS} characters"),
                ));
            }
        }
        let fingerprint = query.fingerprint();
        let cursor = query
            .after
            .as_deref()
            .map(|c| {
                Cursor::decode(
                    c,
                    query.sort,
                    Direction::Asc,
                    fingerprint,
                    Uuid::nil().into(),
                )
            })
            .transpose()?
            .map(|c| match c.key {
                SortKey::Timestamp(t) => Ok((t, c.id)),
                _ => Err(Error::validation("cursor", "is malformed")),
            })
            .transpose()?;
        Ok(UserPagePlan {
            prefix,
            sort: query.sort,
            limit,
            cursor,
            fingerprint,
        })
    }

    /// The users of the page plus one (to tell whether another page follows), cut by a
    /// [`PageLimit`] so that the statement keeps one plan.
    pub(crate) fn page_query(&self) -> PageLimit<UsersQuery<'_>> {
        let mut query = users::table.select(User::as_select()).into_boxed();
        if let Some(prefix) = self.prefix {
            query = query.filter(
                fragment::sql::<users::table, Bool>("starts_with(lower(email), lower(")
                    .bind(Bind::Text(prefix))
                    .sql("))"),
            );
        }
        if let Some((created_at, id)) = self.cursor {
            query = query.filter(
                fragment::sql::<users::table, Bool>("(created_at, id) > (")
                    .bind(Bind::Timestamp(created_at))
                    .sql(", ")
                    .bind(Bind::Uuid(id))
                    .sql(")"),
            );
        }
        let query = match self.sort {
            UserSort::CreatedAt => query.order((users::created_at.asc(), users::id.asc())),
        };
        PageLimit::new(query, self.limit + 1)
    }

    /// The cursor that continues after `last`.
    pub(crate) fn cursor_after(&self, last: &User) -> String {
        let key = match self.sort {
            UserSort::CreatedAt => SortKey::Timestamp(last.created_at),
        };
        Cursor {
            sort: self.sort,
            direction: Direction::Asc,
            fingerprint: self.fingerprint,
            key,
            id: last.id.into(),
        }
        .encode(Uuid::nil().into())
    }
}
