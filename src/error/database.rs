//! The mapping from diesel's errors to [`Error`]: the table of the schema's constraints
//! and what each means to a caller, and the recognition of a lost connection.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::{ConflictKind, Error};

/// The server's `time zone "..." not recognized` (`AT TIME ZONE` with a name it does
/// not know).
fn is_unknown_time_zone(message: &str) -> bool {
    message.starts_with("time zone \"") && message.ends_with("\" not recognized")
}

/// libpq refuses to send a statement with more bind parameters than the protocol
/// allows with the same error kind as a lost connection; that is no lost connection.
pub(super) fn is_protocol_limit(message: &str) -> bool {
    message.contains("number of parameters")
}

/// Whether `err` means the connection to the server is gone.
///
/// Diesel tags most of these `ClosedConnection` or `UnableToSendCommand`, but not all:
/// it says `ClosedConnection` only when libpq has already marked the connection bad.
/// With libpq 15, the first statement on a connection whose server crashed fails with
/// kind `Unknown` and libpq's own "server closed the connection unexpectedly"; only the
/// next one is refused outright (tests/faults.rs shows it). The messages
/// below are libpq's (not translated unless the client's locale asks) and the server's
/// FATAL ones (SQLSTATE 57P01-57P05, 25P03), each of which ends the session.
pub(crate) fn is_lost_connection(err: &DieselError) -> bool {
    const LOST: &[&str] = &[
        "server closed the connection unexpectedly",
        "no connection to the server",
        "could not receive data from server",
        "could not send data to server",
        "connection to server was lost",
        "lost synchronization with server",
        "SSL connection has been closed unexpectedly",
        "SSL SYSCALL error: EOF detected",
        "terminating connection",
        // 57P03, FATAL: a session the server will not serve (it is starting up,
        // shutting down, or in crash recovery).
        "the database system is",
    ];
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
        | DieselError::BrokenTransactionManager => true,
        DieselError::DatabaseError(DatabaseErrorKind::UnableToSendCommand, info) => {
            !is_protocol_limit(info.message())
        }
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            LOST.iter().any(|m| info.message().starts_with(m))
        }
        _ => false,
    }
}

/// Whether `err` is the server leaving its post: shutting down (SQLSTATE 57P01,
/// `terminating connection due to administrator command`, which `pg_terminate_backend`
/// also sends), restarting after a crash (57P02), or refusing sessions while it starts,
/// stops or recovers (57P03, `the database system is ...`). Each ends the session; after
/// a failover they come from the old primary. Fixed server texts, as above.
pub(crate) fn is_server_leaving(err: &DieselError) -> bool {
    const LEAVING: &[&str] = &[
        "terminating connection due to administrator command",
        "terminating connection because of crash of another server process",
        "the database system is",
    ];
    match err {
        DieselError::DatabaseError(_, info) => {
            LEAVING.iter().any(|m| info.message().starts_with(m))
        }
        _ => false,
    }
}

/// Whether `err` is a write the server refused because the transaction is read-only
/// (SQLSTATE 25006, `cannot execute ... in a read-only transaction`): on a hot standby,
/// on a server made read-only (`default_transaction_read_only`), or in a transaction the
/// caller made read-only.
pub(crate) fn is_read_only_refusal(err: &DieselError) -> bool {
    matches!(
        err,
        DieselError::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _)
    )
}

/// What a constraint of the schema means to a caller. The constraint names are those
/// of the migrations; keep the two in step (a test checks every name exists).
pub(crate) const CONSTRAINTS: &[(&str, Meaning)] = &[
    (
        "users_email_ci_key",
        Meaning::Conflict(ConflictKind::EmailTaken),
    ),
    (
        "users_email_valid",
        Meaning::Invalid(
            "email",
            "must be an address like name@example.com (one @, no spaces or invisible \
             characters) of at most 254 characters",
        ),
    ),
    (
        "users_name_valid",
        Meaning::Invalid(
            "name",
            "must be at most 100 characters and contain a visible character (not only \
             spaces or invisible characters such as zero-width spaces)",
        ),
    ),
    (
        "users_image_valid",
        Meaning::Invalid("image", "must be at most 2048 characters"),
    ),
    ("tasks_user_id_fkey", Meaning::Missing("user")),
    ("sessions_user_id_fkey", Meaning::Missing("user")),
    (
        "sessions_expiry_after_creation",
        Meaning::Invalid("expires_at", "must be in the future"),
    ),
    (
        "sessions_ip_address_valid",
        Meaning::Invalid("ip_address", "must be an IPv4 or IPv6 address"),
    ),
    (
        "sessions_user_agent_valid",
        Meaning::Invalid("user_agent", "must be at most 512 characters"),
    ),
    (
        "tasks_title_valid",
        Meaning::Invalid("title", crate::models::validate::NOTHING_VISIBLE),
    ),
    (
        "tasks_description_valid",
        Meaning::Invalid("description", "must be at most 10000 characters"),
    ),
    (
        "tasks_metadata_depth",
        Meaning::Invalid("metadata", crate::models::metadata::DEPTH_RULE),
    ),
    (
        "tasks_metadata_keys",
        Meaning::Invalid("metadata", crate::models::metadata::KEYS_RULE),
    ),
    (
        "tasks_metadata_object",
        Meaning::Invalid("metadata", crate::models::metadata::OBJECT_RULE),
    ),
    (
        "tasks_metadata_size",
        Meaning::Invalid("metadata", crate::models::metadata::SIZE_RULE),
    ),
    (
        "tasks_version_positive",
        Meaning::Invalid("version", "must be at least 1"),
    ),
    ("habits_user_id_fkey", Meaning::Missing("user")),
    (
        "habits_name_valid",
        Meaning::Invalid(
            "name",
            "must be at most 100 characters and contain a visible character (not only \
             spaces or invisible characters such as zero-width spaces)",
        ),
    ),
    (
        "habits_description_valid",
        Meaning::Invalid("description", "must be at most 10000 characters"),
    ),
    (
        "habits_schedule_valid",
        Meaning::Invalid(
            "schedule",
            "must be a schedule of the documented JSON shape (version 1: daily, weekly or \
             every_n_days; see todo_store::Schedule)",
        ),
    ),
    (
        "habits_version_positive",
        Meaning::Invalid("version", "must be at least 1"),
    ),
    ("habit_check_ins_habit_id_fkey", Meaning::Missing("habit")),
];

/// The names of the constraints (and unique indexes) this module gives a meaning to.
pub fn constraint_names() -> impl Iterator<Item = &'static str> {
    CONSTRAINTS.iter().map(|(name, _)| *name)
}

/// The meaning of a violated constraint.
#[derive(Debug, Clone)]
pub(crate) enum Meaning {
    Conflict(ConflictKind),
    Invalid(&'static str, &'static str),
    Missing(&'static str),
}

impl From<DieselError> for Error {
    fn from(err: DieselError) -> Self {
        if let DieselError::DatabaseError(kind, info) = &err {
            let known = info
                .constraint_name()
                .and_then(|name| CONSTRAINTS.iter().find(|(n, _)| *n == name));
            match (kind, known) {
                (_, Some((_, Meaning::Conflict(kind)))) => {
                    return Error::Conflict { kind: kind.clone() }
                }
                (_, Some((_, Meaning::Invalid(field, reason)))) => {
                    return Error::validation(*field, *reason)
                }
                (_, Some((_, Meaning::Missing(entity)))) => {
                    return Error::NotFound {
                        entity,
                        key: "referenced by this row".into(),
                    }
                }
                (DatabaseErrorKind::ReadOnlyTransaction, _) => {
                    return Error::ReadOnly {
                        message: info.message().to_owned(),
                    }
                }
                (DatabaseErrorKind::UniqueViolation, None) => {
                    return Error::Conflict {
                        kind: ConflictKind::Duplicate {
                            constraint: info.constraint_name().unwrap_or("unknown").to_owned(),
                        },
                    }
                }
                // SQLSTATE 22023 for a time zone name the server's time zone database
                // does not have: the name was checked before the query
                // (`TaskRepo::stats_in_time_zone`), so only a server with older tzdata
                // than the crate gets here. Fixed server text, as below.
                (DatabaseErrorKind::Unknown, None) if is_unknown_time_zone(info.message()) => {
                    return Error::validation(
                        "time_zone",
                        "is not in the database server's time zone database",
                    )
                }
                // SQLSTATE 57014 carries no kind of its own in diesel; the message is fixed
                // server text (lc_messages is English on the servers we support).
                (DatabaseErrorKind::Unknown, None)
                    if info.message().contains("statement timeout") =>
                {
                    return Error::StatementTimeout
                }
                _ => {}
            }
        }
        Error::Database(err)
    }
}
