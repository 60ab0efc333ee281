//! [`UserRepo`]: create, read, update, delete and list users.

use diesel::dsl;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::Bool;

use super::bulk::{self, UserCopyRow};
use super::fragment::{self, Bind, Fragment};
use super::query::Page;
use super::sql_functions::clock_timestamp;
use super::user_query::{UserPagePlan, UserQuery};
use crate::error::{Error, Result};
use crate::models::{NewUser, User, UserId, UserPatch};
use crate::schema::users;

/// The comparison key of an email, around the SQL of the email: the SQL function
/// `email_key` (migration `2026-12-06-000001_email_nfkc_key`, the one definition of the
/// key): NFKD, `lower()`, then `ß`, `ſ` and the iota subscript U+0345 folded to `ss`, `s`
/// and `ι`, and `i` + U+0307 to `i`. Compared under the ICU collation `email_ci` (root,
/// secondary strength: case and compatibility forms ignored, accents not).
const KEY_OPEN: &str = "email_key(";
const KEY_CLOSE: &str = ")";

/// The key of the stored email with its collation: the expression of the unique index
/// `users_email_ci_key` (migration `2026-12-06-000001_email_nfkc_key`), written the
/// same way so that the planner matches it to the index
/// (`tests/integration/query_plans.rs` checks it does).
const STORED_EMAIL_KEY: &str = "(email_key(email) COLLATE email_ci)";

/// The key of the SQL expression `sql`, without the collation: a comparison with
/// [`STORED_EMAIL_KEY`] takes that side's explicit one.
#[cfg(any(test, feature = "seed"))]
fn email_key_of(sql: &str) -> String {
    format!("{KEY_OPEN}{sql}{KEY_CLOSE}")
}

/// `WHERE` the stored email is the same address as `email`, through the unique index.
fn same_email<'a>(email: &'a str) -> Fragment<'a, users::table, Bool> {
    fragment::sql(STORED_EMAIL_KEY)
        .sql(" = ")
        .sql(KEY_OPEN)
        .bind(Bind::Text(email))
        .sql(KEY_CLOSE)
}

/// The query behind [`UserRepo::find_by_email`].
pub(crate) fn find_by_email_query(
    email: &str,
) -> dsl::Select<dsl::Filter<users::table, Fragment<'_, users::table, Bool>>, dsl::AsSelect<User, Pg>>
{
    users::table
        .filter(same_email(email))
        .select(User::as_select())
}

/// Which of `emails` some user already has, each compared as [`UserRepo::create`]
/// compares them; returned as given. One query.
#[cfg(feature = "seed")]
pub(crate) fn taken_emails(conn: &mut PgConnection, emails: &[String]) -> Result<Vec<String>> {
    use diesel::sql_types::{Array, Text};
    #[derive(QueryableByName)]
    struct Taken {
        #[diesel(sql_type = Text)]
        email: String,
    }
    let sql = format!(
        "SELECT given AS email FROM unnest($1::text[]) AS given \
         WHERE EXISTS (SELECT 1 FROM users WHERE {STORED_EMAIL_KEY} = {})",
        email_key_of("given")
    );
    Ok(diesel::sql_query(sql)
        .bind::<Array<Text>, _>(emails)
        .load::<Taken>(conn)?
        .into_iter()
        .map(|t| t.email)
        .collect())
}

/// Queries on users. Deleting a user deletes everything of theirs: tasks, sessions,
/// and Better Auth's sessions and accounts.
///
/// Keyset pages of users: `list_page(&UserQuery)` (oldest first, `.email_prefix(..)`,
/// `.limit(n)`, `.after(&cursor)`); `list(limit, offset)` and `count` too.
///
/// # What "the same email" means
///
/// Emails are stored as given (trimmed). Two emails are one address, so one account
/// (`Conflict(EmailTaken)` on create or update, and `find_by_email` finds the account
/// under either spelling), when they differ only in case or in compatibility form by
/// Unicode's rules (its *compatibility caseless matching*, definition D146, the matching
/// NFKC_Casefold gives):
///
/// | one account | why |
/// |---|---|
/// | `Ada@Example.COM`, `ada@example.com` | case |
/// | `Élodie@…`, `élodie@…`; `émile@…` precomposed, `e` + U+0301 | case; canonical equivalence |
/// | `ΟΔΟΣ@…`, `οδος@…`, `οδοσ@…` | Greek case, final sigma |
/// | `straße@…`, `STRASSE@…`, `strasse@…`; `ẞ`, `ß`, `ss` | full case folding of ß |
/// | `ſam@…`, `SAM@…` | long s folds to s |
/// | `ﬀ@…`, `FF@…`; `ﬁle@…`, `file@…` | ligatures |
/// | `ＡＤＡ@…`, `ada@…` | fullwidth forms |
/// | `ǅ`, `dž`; `İzmir@…`, `izmir@…` | titlecase digraph; capital dotted I lowercases to i (see below) |
/// | `ﬅop@…`, `stop@…`; `ẛx@…`, `ṡx@…`; `ᾳ@…`, `αι@…`; `𝐚𝐝𝐚@…`, `ada@…`; `K` (Kelvin sign), `k` | compatibility forms and case folding |
///
/// Different accounts: accents and other letters count (`é`/`e`, `ü`/`u`, `å`/`a`), the
/// Turkish dotless `ı` is not `i`, `ß` is not `s`, and look-alikes of other scripts stay
/// other letters (Latin `o`, Greek `ο`, Cyrillic `о`): no confusable-character mapping.
/// The rule is the unique index `users_email_ci_key`, so it holds for every client's
/// writes, raw SQL included. Its key is the SQL function `email_key(email)` (migration
/// `2026-12-06-000001_email_nfkc_key`, the one definition; the crate's lookups call it
/// too), compared under the ICU collation `email_ci` (root locale, secondary strength:
/// `und-u-ks-level2`, nondeterministic). `email_key` decomposes the address (NFKD: `ﬅ`
/// becomes `ſt`, `𝐚` becomes `a`), lower-cases it with `lower()`, and folds what ICU at
/// that strength would weigh like an accent: `ß` and `ſ` to `ss` and `s`, the iota
/// subscript U+0345 to `ι`, and `i` + U+0307 to `i`. A test checks every code point of
/// Unicode 14 against Unicode's definition (ICU4X as the reference). Code points assigned
/// later are folded as far as the server's tables know them (PostgreSQL 15's
/// `normalize()` has Unicode 14.0).
///
/// Beyond Unicode's rule, the index also makes one address of `İ`, `i` + U+0307 and
/// `i` (the first rule, `lower(email)`, made `İ` an `i`), and of what ICU weighs alike
/// without a compatibility mapping: decimal digits of one value in every script (`1`,
/// `١`, `१`), hiragana and katakana (`の`, `ノ`) and small kana, Hebrew final forms
/// (`ץ`, `צ`), combining letters and their letters (`ⷲ`, `ш`), and many combining marks
/// ICU ignores (Hebrew cantillation, Vedic signs). For uniqueness this only ever refuses
/// a look-alike. The server needs ICU (Debian's, Ubuntu's and the official images' builds
/// have it; the migration stops with an explanation where it is missing) and a UTF8
/// database. A migration that finds existing users who are one address under the rule
/// stops, names them all, and applies nothing; merge or rename them and migrate again.
/// After an ICU upgrade, PostgreSQL warns of a collation version mismatch: `REINDEX
/// INDEX users_email_ci_key`, then `ALTER COLLATION email_ci REFRESH VERSION`.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserRepo;

impl UserRepo {
    /// Creates a user and returns it, in one round trip. The email is stored as given
    /// (trimmed).
    ///
    /// Two emails are the same address, and so one account, when they differ only in
    /// case or in compatibility form by Unicode's rules, that is when Unicode's
    /// compatibility caseless matching (definition D146 of the standard, the matching
    /// NFKC_Casefold gives) makes them equal: `Ada@Example.com` and `ada@example.com`,
    /// `ΟΔΟΣ` and `οδος` (final sigma), `straße` and `STRASSE`, `ſ` and `S`, `ﬅ` and
    /// `st`, `ẛ` and `ṡ`, `ᾳ` and `αι`, `ﬀ` and `FF`, `𝐚` and `a`, the Kelvin sign and
    /// `k`, fullwidth `ＡＤＡ` and `ada`, a precomposed `é` and `e` + U+0301. Accents
    /// count: `é` and `e` are different addresses, as are look-alike letters of other
    /// scripts. The database enforces it, for any client's writes, with the unique index
    /// `users_email_ci_key` on the SQL function `email_key(email)` under the ICU
    /// collation `email_ci`; [`UserRepo`]'s docs ("What the same email means") have the
    /// whole rule.
    ///
    /// That index also makes one address of a few things Unicode's rule keeps apart:
    /// `İ`, `i` + U+0307 and `i`; and what ICU's collation weighs alike at secondary
    /// strength without a compatibility mapping: decimal digits of the same value in
    /// every script (`1`, `١`, `१`), hiragana and katakana (`の`, `ノ`), Hebrew final
    /// forms (`ץ`, `צ`), combining letters and their letters (`ⷲ`, `ш`), and characters
    /// it ignores (many combining marks: Hebrew cantillation, Vedic signs). Code points
    /// assigned after Unicode 14.0 are folded as far as the server's tables know them.
    ///
    /// A conflict is a failed statement: inside the caller's own transaction it aborts
    /// that transaction (wrap the call in a nested `conn.transaction(..)`, a savepoint,
    /// to carry on after it).
    ///
    /// Exactly once: called again with the same `new` (same id and content: a retry
    /// whose first attempt may have committed), it returns the user the first call
    /// created instead of a conflict (one more round trip, to read it).
    ///
    /// # Errors
    /// [`Error::Validation`] for a bad email, name or image;
    /// [`Error::Conflict`] with [`crate::ConflictKind::EmailTaken`] when another user has
    /// the same address, with [`crate::ConflictKind::IdInUse`] when a user with this id
    /// exists with other content.
    pub fn create(conn: &mut PgConnection, new: &NewUser) -> Result<User> {
        super::call("user.create", None, conn, |conn| {
            let row = new.to_row(new.id)?;
            crate::retry::exactly_once([crate::retry::RowKey::row("users", row.id)], || {
                let created = diesel::insert_into(users::table)
                    .values(&row)
                    .on_conflict(users::id)
                    .do_nothing()
                    .returning(User::as_returning())
                    .get_result(conn)
                    .optional()?;
                match created {
                    Some(user) => Ok(user),
                    // The id is taken: by this very user, created before?
                    None => users::table
                        .find(row.id)
                        .select(User::as_select())
                        .get_result(conn)
                        .optional()?
                        .filter(|user| row.is_stored_as(user))
                        .ok_or(Error::id_in_use("user")),
                }
            })
        })
    }

    /// Creates all of `new` and returns them in the same order, with one `COPY` in one
    /// transaction (a savepoint inside a caller's transaction): all of them or none.
    ///
    /// Exactly once, as [`UserRepo::create`]: the same batch again returns the users
    /// the first call created.
    ///
    /// # Errors
    /// [`Error::Validation`] naming the first bad item (`users[3].email`), before
    /// anything is written; [`Error::Conflict`] when an email is taken (by an existing
    /// user or by another item of `new`) or an id is (`IdInUse`), unless the batch is a
    /// repeat; then nothing is written.
    pub fn create_many(conn: &mut PgConnection, new: &[NewUser]) -> Result<Vec<User>> {
        super::call("user.create_many", None, conn, |conn| {
            let rows = new
                .iter()
                .enumerate()
                .map(|(i, user)| user.to_row(user.id).map_err(|e| e.in_batch("users", i)))
                .collect::<Result<Vec<_>>>()?;
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            let keys = rows
                .iter()
                .map(|row| crate::retry::RowKey::row("users", row.id));
            crate::retry::exactly_once(keys, || {
                let copied = conn.transaction(|conn| {
                    let now = bulk::transaction_now(conn)?;
                    let copy_rows: Vec<_> = rows
                        .iter()
                        .map(|row| UserCopyRow::new(row.clone(), now, now))
                        .collect();
                    bulk::copy_users(conn, &copy_rows)?;
                    Ok(copy_rows.iter().map(UserCopyRow::to_user).collect())
                });
                // A repeated batch fails on its ids or its emails, whichever index
                // the server checks first.
                let email_taken = matches!(
                    &copied,
                    Err(Error::Conflict {
                        kind: crate::ConflictKind::EmailTaken
                    })
                );
                match copied {
                    Err(e) if email_taken || bulk::is_duplicate_id(&e) => {
                        let ids: Vec<UserId> = rows.iter().map(|row| row.id).collect();
                        let stored: Vec<User> = users::table
                            .filter(users::id.eq_any(&ids))
                            .select(User::as_select())
                            .load(conn)?;
                        let repeat = bulk::stored_as(&rows, stored, |row, user: &User| {
                            (row.id == user.id).then(|| row.is_stored_as(user))
                        });
                        match repeat {
                            Some(users) => Ok(users),
                            None if email_taken => Err(e),
                            None => Err(Error::id_in_use("user")),
                        }
                    }
                    other => other,
                }
            })
        })
    }

    /// The user with `id`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is none.
    pub fn get(conn: &mut PgConnection, id: UserId) -> Result<User> {
        super::call("user.get", Some(id), conn, |conn| {
            users::table
                .find(id)
                .select(User::as_select())
                .get_result(conn)
                .optional()?
                .ok_or_else(|| Error::not_found("user", id))
        })
    }

    /// The user with the address `email` (trimmed), compared as [`UserRepo::create`]
    /// compares emails for uniqueness (Unicode's compatibility caseless matching: case
    /// and compatibility forms ignored, accents not), through the same unique index;
    /// `None` when there is none. At most one user can match.
    ///
    /// # Errors
    /// Only database errors.
    pub fn find_by_email(conn: &mut PgConnection, email: &str) -> Result<Option<User>> {
        super::call("user.find_by_email", None, conn, |conn| {
            if email.contains('\0') {
                // No stored email can contain NUL; PostgreSQL would reject the parameter.
                return Ok(None);
            }
            Ok(find_by_email_query(email.trim())
                .get_result(conn)
                .optional()?)
        })
    }

    /// Applies `patch` and returns the updated user; `updated_at` moves even when the
    /// patch is empty.
    ///
    /// # Errors
    /// [`Error::Validation`] for bad values (nothing written), [`Error::NotFound`],
    /// [`Error::Conflict`] when the new email is taken.
    pub fn update(conn: &mut PgConnection, id: UserId, patch: &UserPatch) -> Result<User> {
        super::call("user.update", Some(id), conn, |conn| {
            let changes = patch.to_changeset()?;
            diesel::update(users::table.find(id))
                .set((&changes, users::updated_at.eq(clock_timestamp())))
                .returning(User::as_returning())
                .get_result(conn)
                .optional()?
                .ok_or_else(|| Error::not_found("user", id))
        })
    }

    /// Deletes the user and, by cascade, everything of theirs: their tasks, their
    /// sessions ([`crate::SessionRepo`]), and their Better Auth sessions and accounts
    /// (`auth_sessions`, `auth_accounts`: docs/better-auth.md), so they are signed out
    /// everywhere and can no longer sign in, in one statement.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such user.
    pub fn delete(conn: &mut PgConnection, id: UserId) -> Result<()> {
        super::call("user.delete", Some(id), conn, |conn| match diesel::delete(
            users::table.find(id),
        )
        .execute(conn)?
        {
            0 => Err(Error::not_found("user", id)),
            _ => Ok(()),
        })
    }

    /// Up to `limit` users (1 to [`UserQuery::MAX_LIMIT`], 1000), oldest first,
    /// skipping `offset`. The server reads and throws away the `offset` rows before the
    /// page: for paging through many users, [`UserRepo::list_page`] costs the same on
    /// every page.
    ///
    /// # Errors
    /// [`Error::Validation`] for a limit outside 1..=1000 or a negative offset.
    pub fn list(conn: &mut PgConnection, limit: i64, offset: i64) -> Result<Vec<User>> {
        super::call("user.list", None, conn, |conn| {
            if !(1..=UserQuery::MAX_LIMIT).contains(&limit) {
                return Err(Error::validation(
                    "limit",
                    format!("must be between 1 and {}", UserQuery::MAX_LIMIT),
                ));
            }
            if offset < 0 {
                return Err(Error::validation("offset", "must not be negative"));
            }
            Ok(users::table
                .order((users::created_at.asc(), users::id.asc()))
                .limit(limit)
                .offset(offset)
                .select(User::as_select())
                .load(conn)?)
        })
    }

    /// One page of users, oldest first (`created_at`, ties by id), by keyset pagination:
    /// each page is one indexed range read, however deep, and a walk through the pages
    /// returns every user that exists throughout it exactly once. See [`UserQuery`].
    ///
    /// # Errors
    /// [`Error::Validation`] for a limit outside 1..=1000, an email prefix longer than
    /// an email or holding NUL, or a cursor that is damaged or was made for another
    /// prefix.
    pub fn list_page(conn: &mut PgConnection, query: &UserQuery) -> Result<Page<User>> {
        super::call("user.list_page", None, conn, |conn| {
            let plan = UserPagePlan::new(query)?;
            let mut users: Vec<User> = plan.page_query().load(conn)?;
            let next_cursor = if users.len() as i64 > plan.limit {
                users.truncate(plan.limit as usize);
                users.last().map(|last| plan.cursor_after(last))
            } else {
                None
            };
            Ok(Page::new(users, next_cursor))
        })
    }

    /// The number of users.
    ///
    /// # Errors
    /// Only database errors.
    pub fn count(conn: &mut PgConnection) -> Result<i64> {
        super::call("user.count", None, conn, |conn| {
            Ok(users::table.count().get_result(conn)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_key_is_the_key_of_the_email_column_with_the_collation() {
        assert_eq!(
            STORED_EMAIL_KEY,
            format!("({} COLLATE email_ci)", email_key_of("email"))
        );
        let up = include_str!("../../migrations/2026-12-06-000001_email_nfkc_key/up.sql");
        assert!(
            up.contains(&format!("ON users ({STORED_EMAIL_KEY})")),
            "{up}"
        );
    }
}
