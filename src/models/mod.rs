//! Rows, inputs and their validation: one file per table.
//!
//! Read structs ([`User`], [`Task`], [`Habit`]) are what the repositories return.
//! Inputs ([`NewUser`], [`NewTask`], [`NewHabit`], [`UserPatch`], [`TaskPatch`],
//! [`HabitPatch`]) are plain structs with public fields; each checks itself before
//! anything is written. [`Schedule`] says when a habit is due, and is stored as JSON.
//! Ids have a type per table ([`UserId`], [`TaskId`], [`HabitId`], [`SessionId`]), so
//! a user's id cannot stand where a task's is expected.
//!
//! ## Validation rules
//!
//! Before any write, the same rules as the schema's CHECK constraints: titles are
//! trimmed, at most 255 characters and contain a visible character; descriptions at most
//! 10,000 characters; names are trimmed, at most 100 characters and contain a visible
//! character; emails plausible (one `@`, non-empty parts, no white space or invisible
//! character) and at most 254 characters; image URLs at most 2,048 characters; no NUL
//! character anywhere. Lengths count characters, not bytes; trimming removes Unicode
//! white space (`str::trim`). In patches, `None` leaves a field unchanged and
//! `Some(None)` clears a nullable one.
//!
//! *Invisible* is one explicit, locale-independent list of code points, [`INVISIBLE`]:
//! Unicode's White_Space (U+0009–000D, 0020, 0085, 00A0, 1680, 2000–200A, 2028, 2029,
//! 202F, 205F, 3000), Default_Ignorable_Code_Point (U+00AD, 034F, 061C, 115F–1160,
//! 17B4–17B5, 180B–180F, 200B–200F, 202A–202E, 2060–206F, 3164, FE00–FE0F, FEFF, FFA0,
//! FFF0–FFF8, 1BCA0–1BCA3, 1D173–1D17A, E0000–E0FFF), the control characters
//! (U+0000–001F, 007F–009F) and U+2800 BRAILLE PATTERN BLANK. A title of only zero-width
//! spaces, byte order marks, word joiners, Hangul fillers or soft hyphens is rejected;
//! one with a letter, digit, punctuation, emoji or any other character besides them is
//! accepted (`"\u{200b}x"` is). The CHECK constraints spell out the same ranges as `\u`
//! escapes in a regular expression, so rows that other clients write obey the rule too.
//!
//! Time zones (`TaskRepo::stats_in_time_zone`) are IANA names spelled as in the tz
//! database: `Area/Location` (`Europe/Paris`, `America/New_York`, `Etc/GMT+12`) or `UTC`;
//! POSIX rules (`UTC+3`, `EST5EDT,M3.2.0,M11.1.0`), abbreviations (`EST`, `CET`) and
//! legacy names without an area (`Japan`) are `Validation` on `time_zone`, checked before
//! any query.
//!
//! Task metadata is a JSON object (`Task::metadata`): at most [`METADATA_MAX_DEPTH`] (8)
//! levels deep, non-empty keys, no NUL, and at most [`METADATA_MAX_BYTES`] (16 KiB) as
//! PostgreSQL writes it as text ([`stored_text_len`]); a patch replaces it or merges
//! into it ([`MetadataChange`]).
//!
//! What makes two emails the same address is in `UserRepo`'s docs; habit names and
//! schedules in `HabitRepo`'s.

#[cfg(feature = "better-auth")]
mod better_auth_session;
mod habit;
mod ids;
pub(crate) mod metadata;
pub(crate) mod patch;
mod schedule;
pub(crate) mod session;
mod task;
mod task_stats;
mod timestamp;
mod user;
pub(crate) mod validate;

#[cfg(feature = "better-auth")]
#[cfg_attr(docsrs, doc(cfg(feature = "better-auth")))]
pub use better_auth_session::BetterAuthSession;
pub(crate) use habit::HabitChanges;
pub use habit::{Habit, HabitPatch, NewHabit, Streak};
pub use ids::{HabitId, SessionId, TaskId, UserId};
pub(crate) use metadata::JsonObject;
pub use metadata::{stored_text_len, MetadataChange, METADATA_MAX_BYTES, METADATA_MAX_DEPTH};
pub use schedule::Schedule;
pub use session::{NewSession, Session, TOKEN_BYTES, TOKEN_CHARS, USER_AGENT_MAX_CHARS};
pub use task::{NewTask, Priority, Task, TaskPatch};
pub(crate) use task::{TaskChanges, TaskRow};
pub use task_stats::TaskStats;
pub(crate) use user::UserRow;
pub use user::{NewUser, User, UserPatch};
pub use validate::{is_invisible, INVISIBLE};
