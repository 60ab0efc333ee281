//! [`UserRepo`]: create, read, update, delete and list users.

use diesel::prelude::*;
use uuid::Uuid;

use super::bulk::{self, UserCopyRow};
use super::sql_functions::{clock_timestamp, lower};
use crate::error::{Error, Result};
use crate::models::{NewUser, User, UserPatch};
use crate::schema::users;

/// Largest page [`UserRepo::list`] returns.
pub const MAX_USERS_PER_PAGE: i64 = 1000;

/// Queries on users. Deleting a user deletes their tasks.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserRepo;

impl UserRepo {
    /// Creates a user and returns it, in one round trip.
    ///
    /// # Errors
    /// [`Error::Validation`] for a bad email, name or image;
    /// [`Error::Conflict`] with [`crate::ConflictKind::EmailTaken`] when another user has
    /// the same email, compared case-insensitively.
    pub fn create(conn: &mut PgConnection, new: &NewUser) -> Result<User> {
        super::call("user.create", None, conn, |conn| {
            let row = new.to_row(super::new_id())?;
            Ok(diesel::insert_into(users::table)
                .values(&row)
                .returning(User::as_returning())
                .get_result(conn)?)
        })
    }

    /// Creates all of `new` and returns them in the same order, with one `COPY` in one
    /// transaction (a savepoint inside a caller's transaction): all of them or none.
    ///
    /// # Errors
    /// [`Error::Validation`] naming the first bad item (`users[3].email`), before
    /// anything is written; [`Error::Conflict`] when an email is taken (by an existing
    /// user or by another item of `new`), and then nothing is written.
    pub fn create_many(conn: &mut PgConnection, new: &[NewUser]) -> Result<Vec<User>> {
        super::call("user.create_many", None, conn, |conn| {
            let rows = new
                .iter()
                .enumerate()
                .map(|(i, user)| {
                    user.to_row(super::new_id())
                        .map_err(|e| e.in_batch("users", i))
                })
                .collect::<Result<Vec<_>>>()?;
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            conn.transaction(|conn| {
                let now = bulk::transaction_now(conn)?;
                let copy_rows: Vec<_> = rows
                    .into_iter()
                    .map(|row| UserCopyRow::new(row, now, now))
                    .collect();
                bulk::copy_users(conn, &copy_rows)?;
                Ok(copy_rows.iter().map(UserCopyRow::to_user).collect())
            })
        })
    }

    /// The user with `id`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is none.
    pub fn get(conn: &mut PgConnection, id: Uuid) -> Result<User> {
        super::call("user.get", Some(id), conn, |conn| {
            users::table
                .find(id)
                .select(User::as_select())
                .get_result(conn)
                .optional()?
                .ok_or_else(|| Error::not_found("user", id))
        })
    }

    /// The user with `email`, compared case-insensitively; `None` when there is none.
    ///
    /// # Errors
    /// Only database errors.
    pub fn find_by_email(conn: &mut PgConnection, email: &str) -> Result<Option<User>> {
        super::call("user.find_by_email", None, conn, |conn| {
            if email.contains('\0') {
                // No stored email can contain NUL; PostgreSQL would reject the parameter.
                return Ok(None);
            }
            Ok(users::table
                .filter(lower(users::email).eq(lower(email.trim())))
                .select(User::as_select())
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
    pub fn update(conn: &mut PgConnection, id: Uuid, patch: &UserPatch) -> Result<User> {
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

    /// Deletes the user and, by cascade, all their tasks.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such user.
    pub fn delete(conn: &mut PgConnection, id: Uuid) -> Result<()> {
        super::call("user.delete", Some(id), conn, |conn| match diesel::delete(
            users::table.find(id),
        )
        .execute(conn)?
        {
            0 => Err(Error::not_found("user", id)),
            _ => Ok(()),
        })
    }

    /// Up to `limit` users (1 to 1000), oldest first, skipping `offset`.
    ///
    /// # Errors
    /// [`Error::Validation`] for a limit outside 1..=1000 or a negative offset.
    pub fn list(conn: &mut PgConnection, limit: i64, offset: i64) -> Result<Vec<User>> {
        super::call("user.list", None, conn, |conn| {
            if !(1..=MAX_USERS_PER_PAGE).contains(&limit) {
                return Err(Error::validation(
                    "limit",
                    format!("must be between 1 and {MAX_USERS_PER_PAGE}"),
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
