//! Every time check of the crate (sessions alive or expired, Better Auth's cookies,
//! overdue tasks) is made by the database server's clock at the statement
//! (`statement_timestamp()`): not by the start of a caller's transaction, which stands
//! still while it is open, and not by this machine's clock, which may be minutes off.

use std::thread::sleep;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Timestamptz;
use todo_store::testing::TestDb;
use todo_store::{
    Error, NewSession, NewTask, PgConnection, SessionRepo, TaskQuery, TaskRepo, User,
};

use crate::support::fixtures;

/// How far ahead a short session's expiry (or a task's due date) lies when it is made:
/// room for a loaded machine to reach the transaction's first statement before it.
const LIFETIME: StdDuration = StdDuration::from_secs(3);
/// How long the transaction waits after its first statement before it checks: past
/// `LIFETIME`.
const WAIT: StdDuration = StdDuration::from_secs(4);

/// The server's clock now.
fn server_now(conn: &mut PgConnection) -> DateTime<Utc> {
    diesel::select(diesel::dsl::sql::<Timestamptz>("statement_timestamp()"))
        .get_result(conn)
        .unwrap()
}

/// A session of `user` that expires `LIFETIME` from now by the server's clock.
fn short_session(conn: &mut PgConnection, user: &User) -> (todo_store::Session, String) {
    let expires = server_now(conn) + Duration::from_std(LIFETIME).unwrap();
    SessionRepo::create(conn, user.id, &NewSession::new(expires)).unwrap()
}

#[test]
fn a_session_that_expires_during_a_callers_transaction_is_refused_and_never_revived() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let (session, token) = short_session(&mut conn, &user);

    conn.transaction::<_, Error, _>(|conn| {
        // The transaction's clock (`now()`) stops here.
        server_now(conn);
        sleep(WAIT);
        assert!(
            SessionRepo::authenticate(conn, &token)?.is_none(),
            "an expired session authenticates"
        );
        assert_eq!(
            SessionRepo::list(conn, user.id)?,
            Vec::new(),
            "an expired session is listed as active"
        );
        let later = Utc::now() + Duration::days(30);
        assert!(
            matches!(
                SessionRepo::touch(conn, user.id, session.id, later),
                Err(Error::NotFound { .. })
            ),
            "an expired session is revived"
        );
        assert_eq!(
            SessionRepo::revoke_all(conn, user.id)?,
            0,
            "an expired session counts as ended by revoke_all"
        );
        let before_revoke = server_now(conn);
        SessionRepo::revoke(conn, user.id, session.id)?;
        let revoked_at: Option<DateTime<Utc>> =
            diesel::sql_query("SELECT revoked_at AS at FROM sessions WHERE id = $1")
                .bind::<diesel::sql_types::Uuid, _>(session.id)
                .get_result::<At>(conn)?
                .at;
        assert!(
            revoked_at.is_some_and(|at| at >= before_revoke),
            "revoked_at is the statement's time, not the transaction's start: {revoked_at:?}"
        );
        Ok(())
    })
    .unwrap();

    // Committed: still dead, its expiry never moved.
    assert!(SessionRepo::authenticate(&mut conn, &token)
        .unwrap()
        .is_none());
    let expires_at: DateTime<Utc> =
        diesel::sql_query("SELECT expires_at AS at FROM sessions WHERE id = $1")
            .bind::<diesel::sql_types::Uuid, _>(session.id)
            .get_result::<At>(&mut conn)
            .unwrap()
            .at
            .unwrap();
    assert_eq!(expires_at, session.expires_at);
}

#[test]
fn a_purge_inside_a_transaction_deletes_the_sessions_that_expired_during_it() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let (_, token) = short_session(&mut conn, &user);
    conn.transaction::<_, Error, _>(|conn| {
        server_now(conn);
        sleep(WAIT);
        assert_eq!(SessionRepo::purge_expired(conn, 100)?, 1);
        Ok(())
    })
    .unwrap();
    assert!(SessionRepo::authenticate(&mut conn, &token)
        .unwrap()
        .is_none());
}

#[test]
fn a_task_that_falls_due_during_a_transaction_is_overdue_from_the_next_statement() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let due = server_now(&mut conn) + Duration::from_std(LIFETIME).unwrap();
    let task = TaskRepo::create(&mut conn, user.id, &NewTask::new("soon").due_date(due)).unwrap();
    conn.transaction::<_, Error, _>(|conn| {
        server_now(conn);
        sleep(WAIT);
        let overdue = TaskRepo::list(conn, user.id, &TaskQuery::new().overdue())?;
        assert_eq!(
            overdue.items.iter().map(|t| t.id).collect::<Vec<_>>(),
            vec![task.id]
        );
        assert_eq!(TaskRepo::stats(conn, user.id)?.overdue, 1);
        Ok(())
    })
    .unwrap();
}

#[cfg(feature = "better-auth")]
#[test]
fn a_better_auth_cookie_that_expires_during_a_transaction_is_refused() {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use todo_store::better_auth::{authenticate_cookie, BetterAuthSecret};

    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let secret = "a-better-auth-secret-of-32-characters-or-more";
    let token = "k2Vc9YqB3sZbT1nP8wLr4xHa6dFe0gJm";
    let expires = server_now(&mut conn) + Duration::from_std(LIFETIME).unwrap();
    diesel::sql_query(
        "INSERT INTO auth_sessions (expires_at, token, updated_at, user_id) \
         VALUES ($1, $2, now(), $3)",
    )
    .bind::<Timestamptz, _>(expires)
    .bind::<diesel::sql_types::Text, _>(token)
    .bind::<diesel::sql_types::Uuid, _>(user.id)
    .execute(&mut conn)
    .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(token.as_bytes());
    let cookie = format!("{token}.{}", STANDARD.encode(mac.finalize().into_bytes()));
    let secret = BetterAuthSecret::new(secret).unwrap();
    assert!(authenticate_cookie(&mut conn, &cookie, &secret)
        .unwrap()
        .is_some());

    conn.transaction::<_, Error, _>(|conn| {
        server_now(conn);
        sleep(WAIT);
        assert!(
            authenticate_cookie(conn, &cookie, &secret)?.is_none(),
            "an expired Better Auth session authenticates"
        );
        Ok(())
    })
    .unwrap();
}

/// A connection whose server clock, as the crate's statements see it, is `skew` off
/// this machine's: `statement_timestamp()` is shadowed by a function in `public`,
/// found first because the search path lists `pg_catalog` after it. (The crate never
/// reads this machine's clock for a time check, so skewing the server's is the same
/// test as skewing the client's.)
fn connection_with_server_clock_off_by(db: &TestDb, skew: &str) -> PgConnection {
    let mut conn = PgConnection::establish(db.url()).unwrap();
    diesel::sql_query(
        "CREATE OR REPLACE FUNCTION public.statement_timestamp() RETURNS timestamptz \
         LANGUAGE sql STABLE AS \
         $$ SELECT pg_catalog.statement_timestamp() \
            + current_setting('test.clock_skew')::interval $$",
    )
    .execute(&mut conn)
    .unwrap();
    conn.batch_execute(&format!(
        "SET test.clock_skew = '{skew}'; SET search_path = public, pg_catalog"
    ))
    .unwrap();
    // The shadowing works: the crate's statements will see the skewed clock.
    let seen = server_now(&mut conn);
    let real = Utc::now();
    assert!((seen - real).num_minutes().abs() >= 9, "{seen} vs {real}");
    conn
}

#[test]
fn expiry_is_judged_by_the_servers_clock_when_it_is_ahead_of_the_clients() {
    let db = TestDb::new();
    let user = fixtures::user(&mut db.conn());
    let mut conn = connection_with_server_clock_off_by(&db, "10 minutes");

    // Five minutes ahead by this machine's clock is five minutes ago by the server's.
    let client_soon = Utc::now() + Duration::minutes(5);
    assert!(matches!(
        SessionRepo::create(&mut conn, user.id, &NewSession::new(client_soon)),
        Err(Error::Validation { ref field, .. }) if field == "expires_at"
    ));
    let (session, token) = SessionRepo::create(
        &mut conn,
        user.id,
        &NewSession::new(Utc::now() + Duration::minutes(15)),
    )
    .unwrap();
    assert!(matches!(
        SessionRepo::touch(&mut conn, user.id, session.id, client_soon),
        Err(Error::Validation { ref field, .. }) if field == "expires_at"
    ));
    assert!(SessionRepo::authenticate(&mut conn, &token)
        .unwrap()
        .is_some());
    // A session alive by this machine's clock but expired by the server's is refused.
    diesel::sql_query(
        "UPDATE sessions SET created_at = $1 - interval '1 hour', last_seen_at = $1 - \
         interval '1 hour', expires_at = $1 WHERE id = $2",
    )
    .bind::<Timestamptz, _>(client_soon)
    .bind::<diesel::sql_types::Uuid, _>(session.id)
    .execute(&mut conn)
    .unwrap();
    assert!(SessionRepo::authenticate(&mut conn, &token)
        .unwrap()
        .is_none());
    assert!(SessionRepo::list(&mut conn, user.id).unwrap().is_empty());
}

#[test]
fn expiry_is_judged_by_the_servers_clock_when_it_is_behind_the_clients() {
    let db = TestDb::new();
    let user = fixtures::user(&mut db.conn());
    let mut conn = connection_with_server_clock_off_by(&db, "-10 minutes");

    // Five minutes ago by this machine's clock is five minutes ahead by the server's.
    let client_past = Utc::now() - Duration::minutes(5);
    let (session, token) =
        SessionRepo::create(&mut conn, user.id, &NewSession::new(client_past)).unwrap();
    assert!(SessionRepo::authenticate(&mut conn, &token)
        .unwrap()
        .is_some());
    let touched = SessionRepo::touch(
        &mut conn,
        user.id,
        session.id,
        Utc::now() - Duration::minutes(2),
    )
    .unwrap();
    assert!(touched.expires_at > session.expires_at);
    // Fifteen minutes ago here is in the past there too.
    assert!(matches!(
        SessionRepo::touch(
            &mut conn,
            user.id,
            session.id,
            Utc::now() - Duration::minutes(15)
        ),
        Err(Error::Validation { ref field, .. }) if field == "expires_at"
    ));
}

#[derive(QueryableByName)]
struct At {
    #[diesel(sql_type = diesel::sql_types::Nullable<Timestamptz>)]
    at: Option<DateTime<Utc>>,
}
