//! Typed ids: [`UserId`], [`TaskId`], [`HabitId`] and [`SessionId`], one type per
//! table, each a [`Uuid`] underneath.
//!
//! A function that takes a user and a task takes a `UserId` and a `TaskId`, so
//! arguments passed in the wrong order do not compile (they would otherwise run and
//! answer [`crate::Error::NotFound`]):
//!
//! ```no_run
//! # fn main() -> todo_store::Result<()> {
//! # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
//! # let mut conn = pool.get()?;
//! # let user = todo_store::UserRepo::create(&mut conn, &todo_store::NewUser::new("ada@example.com", "Ada"))?;
//! use todo_store::{NewTask, TaskRepo};
//!
//! let task = TaskRepo::create(&mut conn, user.id, &NewTask::new("Write the report"))?;
//! TaskRepo::get(&mut conn, user.id, task.id)?;
//! # Ok(())
//! # }
//! ```
//!
//! ```compile_fail,E0308
//! # fn main() -> todo_store::Result<()> {
//! # let pool = todo_store::connect(&todo_store::DbConfig::from_env()?)?;
//! # let mut conn = pool.get()?;
//! # let user = todo_store::UserRepo::create(&mut conn, &todo_store::NewUser::new("ada@example.com", "Ada"))?;
//! use todo_store::{NewTask, TaskRepo};
//!
//! let task = TaskRepo::create(&mut conn, user.id, &NewTask::new("Write the report"))?;
//! TaskRepo::get(&mut conn, task.id, user.id)?; // the ids swapped: does not compile
//! # Ok(())
//! # }
//! ```
//!
//! An id reads and writes as its UUID everywhere: in SQL (a `uuid` column, bound as a
//! UUID, so the statements are those of a bare [`Uuid`]), as text ([`Display`] writes
//! the hyphenated form, [`FromStr`] parses any form [`Uuid::parse_str`] takes) and,
//! with the feature `serde`, as the UUID's string. Convert with `From`: a request's
//! path segment parses straight into the id its handler needs.
//!
//! ```
//! use todo_store::TaskId;
//!
//! let id: TaskId = "0190c6e2-7a1b-7c3d-8e4f-5a6b7c8d9e0f".parse().unwrap();
//! assert_eq!(id.to_string(), "0190c6e2-7a1b-7c3d-8e4f-5a6b7c8d9e0f");
//! let uuid: uuid::Uuid = id.into();
//! assert_eq!(TaskId::from(uuid), id);
//! assert!("not a uuid".parse::<TaskId>().is_err());
//! ```
//!
//! [`Display`]: std::fmt::Display
//! [`FromStr`]: std::str::FromStr

use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Uuid as SqlUuid;
use uuid::Uuid;

/// Defines an id type over [`Uuid`] with every impl the crate's ids share.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// `Display` writes the hyphenated UUID; `FromStr` parses a UUID, failing with
        /// [`uuid::Error`]; with the feature `serde` it is the UUID's string.
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            diesel::expression::AsExpression,
            diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = SqlUuid)]
        #[cfg_attr(
            feature = "serde",
            derive(serde::Serialize, serde::Deserialize),
            serde(transparent)
        )]
        pub struct $name(Uuid);

        impl $name {
            /// The UUID underneath.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                $name(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;

            /// Any form [`Uuid::parse_str`] takes: hyphenated, simple, braced or URN.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }

        impl ToSql<SqlUuid, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <Uuid as ToSql<SqlUuid, Pg>>::to_sql(&self.0, out)
            }
        }

        impl FromSql<SqlUuid, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                <Uuid as FromSql<SqlUuid, Pg>>::from_sql(bytes).map($name)
            }
        }
    };
}

id_type! {
    /// The id of a [`crate::User`].
    UserId
}

id_type! {
    /// The id of a [`crate::Task`].
    TaskId
}

id_type! {
    /// The id of a [`crate::Habit`].
    HabitId
}

id_type! {
    /// The id of a [`crate::Session`] (the crate's own sessions; Better Auth's keep a
    /// bare [`Uuid`], [`crate::models::BetterAuthSession`]).
    SessionId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_the_uuids() {
        let uuid = Uuid::now_v7();
        let id = TaskId::from(uuid);
        assert_eq!(id.to_string(), uuid.to_string());
        assert_eq!(id.to_string().parse::<TaskId>().unwrap(), id);
        assert_eq!(uuid.simple().to_string().parse::<TaskId>().unwrap(), id);
        assert_eq!(*id.as_uuid(), uuid);
        assert_eq!(Uuid::from(id), uuid);
        assert!("".parse::<UserId>().is_err());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_form_is_the_uuids_string() {
        let uuid = Uuid::now_v7();
        let json = serde_json::to_string(&UserId::from(uuid)).unwrap();
        assert_eq!(json, format!("\"{uuid}\""));
        assert_eq!(serde_json::from_str::<UserId>(&json).unwrap(), uuid.into());
        assert!(serde_json::from_str::<UserId>("\"nope\"").is_err());
    }

    #[test]
    fn ids_order_as_their_uuids() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert!(HabitId::from(a) < HabitId::from(b));
    }
}
