//! Users and tasks to test with.

use todo_store::{NewTask, NewUser, PgConnection, Task, TaskRepo, User, UserRepo};
use uuid::Uuid;

/// A user with a unique email.
pub fn user(conn: &mut PgConnection) -> User {
    let n = Uuid::now_v7().simple().to_string();
    UserRepo::create(
        conn,
        &NewUser::new(format!("user-{n}@example.com"), "Test User"),
    )
    .expect("create user")
}

/// A task titled `title` for `user`.
pub fn task(conn: &mut PgConnection, user: &User, title: &str) -> Task {
    TaskRepo::create(conn, user.id, &NewTask::new(title)).expect("create task")
}

/// Moves a session's expiry (and creation, to keep them ordered) into the past, as time
/// would.
pub fn expire_session(conn: &mut PgConnection, session_id: todo_store::SessionId) {
    use diesel::RunQueryDsl;
    diesel::sql_query(
        "UPDATE sessions SET created_at = now() - interval '2 hours', \
         expires_at = now() - interval '1 hour' WHERE id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(session_id)
    .execute(conn)
    .expect("expired");
}
