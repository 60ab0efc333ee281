//! The application's database role: docs/roles.sql, applied for a fresh role,
//! lets the runtime role use every repository and nothing more. It cannot drop, alter,
//! create or truncate tables, nor run the migrations: they belong to the owner role.
//! See docs/roles.md.

use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::sql_types::Text;
use diesel::{Connection, PgConnection, RunQueryDsl};
use todo_store::migrate::{pending_migrations, revert_all_migrations, run_migrations};
use todo_store::testing::TestDb;
use todo_store::PoolOptions;
use todo_store::{
    connect, DbConfig, Error, HabitPatch, HabitRepo, NewHabit, NewTask, NewUser, PgPool, Priority,
    Schedule, TaskPatch, TaskQuery, TaskRepo, UserPatch, UserRepo,
};
use uuid::Uuid;

/// docs/roles.sql with its placeholder names replaced.
fn roles_sql(runtime: &str, owner: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/roles.sql");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .replace("todo_app", runtime)
        .replace("todo_owner", owner)
}

/// The statements docs/roles.sql offers in comments, from `-- <first words>` to the
/// first line ending in `;`, uncommented.
fn commented_statements(sql: &str, first_words: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in sql.lines() {
        let Some(code) = line.strip_prefix("-- ") else {
            inside = false;
            continue;
        };
        if code.starts_with(first_words) {
            inside = true;
        }
        if inside {
            out.push_str(code);
            out.push('\n');
            if code.trim_end().ends_with(';') {
                inside = false;
            }
        }
    }
    assert!(!out.is_empty(), "docs/roles.sql offers `{first_words}`");
    out
}

/// A fresh runtime role for one TestDb, dropped (with its grants) at the end, also
/// when the test fails.
struct Runtime<'a> {
    db: &'a TestDb,
    name: String,
}

impl<'a> Runtime<'a> {
    /// Creates the role by applying docs/roles.sql as the TestDb's owner.
    fn apply(db: &'a TestDb) -> Self {
        let name = format!("todo_app_{}", &Uuid::new_v4().simple().to_string()[..12]);
        let runtime = Runtime { db, name };
        let owner = runtime.owner();
        db.conn()
            .batch_execute(&roles_sql(&runtime.name, &owner))
            .expect("docs/roles.sql applies");
        runtime
    }

    /// The role the TestDb connects as: owner of the tables, runs the migrations.
    fn owner(&self) -> String {
        diesel::select(sql::<Text>("current_user::text"))
            .get_result(&mut self.db.conn())
            .expect("current_user")
    }

    /// The TestDb's URL with the runtime role as user (the local cluster trusts it).
    fn url(&self) -> String {
        let mut url = url::Url::parse(self.db.url()).expect("TestDb's URL is a URL");
        url.set_username(&self.name).expect("a user name");
        url.to_string()
    }

    fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url()).expect("the runtime role connects")
    }

    fn pool(&self) -> PgPool {
        PoolOptions::new(&DbConfig::new(self.url()).pool_size(2))
            .run_migrations(false)
            .connect()
            .expect("a pool for the runtime role")
    }
}

impl Drop for Runtime<'_> {
    fn drop(&mut self) {
        let mut conn = self.db.conn();
        let role = &self.name;
        let result = conn.batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'; \
             DROP OWNED BY {role}; DROP ROLE {role}"
        ));
        if let Err(e) = result {
            eprintln!("could not drop role {role}: {e}");
        }
    }
}

/// The schema as text: every relation (with its grants), column, type and extension
/// in `public`, the schema's grants, and the row counts.
fn schema_digest(conn: &mut PgConnection) -> String {
    diesel::select(sql::<Text>(
        "concat_ws(E'\\n',
            (SELECT string_agg(c.relname || ':' || c.relkind::text || ':' || coalesce(c.relacl::text, ''),
                               ',' ORDER BY c.relname)
               FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace),
            (SELECT string_agg(c.relname || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod),
                               ',' ORDER BY c.relname, a.attnum)
               FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
              WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped),
            (SELECT string_agg(t.typname, ',' ORDER BY t.typname)
               FROM pg_type t WHERE t.typnamespace = 'public'::regnamespace),
            (SELECT string_agg(e.enumlabel::text, ',' ORDER BY e.enumsortorder)
               FROM pg_enum e WHERE e.enumtypid = 'task_priority'::regtype),
            (SELECT string_agg(e.extname, ',' ORDER BY e.extname) FROM pg_extension e),
            (SELECT string_agg(p.proname, ',' ORDER BY p.proname)
               FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace),
            (SELECT string_agg(n.nspname, ',' ORDER BY n.nspname) FROM pg_namespace n),
            (SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public'),
            (SELECT count(*)::text FROM users), (SELECT count(*)::text FROM tasks),
            (SELECT count(*)::text FROM __diesel_schema_migrations))",
    ))
    .get_result(conn)
    .expect("schema digest")
}

/// `result` is a permission error of the server.
#[track_caller]
fn assert_permission_denied<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, impl std::fmt::Display>,
) {
    match result {
        Ok(v) => panic!("{what}: the runtime role should not be allowed, got {v:?}"),
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains("permission denied") || message.contains("must be owner"),
                "{what}: expected a permission error, got: {message}"
            );
        }
    }
}

#[test]
fn the_runtime_role_can_use_every_repository() {
    let db = TestDb::new();
    let runtime = Runtime::apply(&db);
    // The file runs again without error (after a migration, say).
    db.conn()
        .batch_execute(&roles_sql(&runtime.name, &runtime.owner()))
        .expect("docs/roles.sql applies twice");
    let pool = runtime.pool();
    let mut conn = pool.get().expect("a connection as the runtime role");
    let who: String = diesel::select(sql::<Text>("current_user::text"))
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(who, runtime.name);

    let user = UserRepo::create(&mut conn, &NewUser::new("ada@example.com", "Ada")).unwrap();
    assert_eq!(UserRepo::get(&mut conn, user.id).unwrap(), user);
    let found = UserRepo::find_by_email(&mut conn, "ADA@example.com").unwrap();
    assert_eq!(found.map(|u| u.id), Some(user.id));
    let patch = UserPatch {
        name: Some("Ada Lovelace".into()),
        ..UserPatch::default()
    };
    assert_eq!(
        UserRepo::update(&mut conn, user.id, &patch).unwrap().name,
        "Ada Lovelace"
    );
    assert_eq!(UserRepo::list(&mut conn, 10, 0).unwrap().len(), 1);
    let more = UserRepo::create_many(
        &mut conn,
        &[
            NewUser::new("b@example.com", "B"),
            NewUser::new("c@example.com", "C"),
        ],
    )
    .expect("COPY needs INSERT only");
    assert_eq!(UserRepo::count(&mut conn).unwrap(), 3);

    let task = TaskRepo::create(
        &mut conn,
        user.id,
        &NewTask::new("Write the notes").priority(Priority::High),
    )
    .unwrap();
    assert_eq!(TaskRepo::get(&mut conn, user.id, task.id).unwrap(), task);
    let batch = TaskRepo::create_many(
        &mut conn,
        user.id,
        &[NewTask::new("alpha report"), NewTask::new("bravo")],
    )
    .unwrap();
    let patch = TaskPatch {
        title: Some("Write the notes, again".into()),
        expected_version: Some(1),
        ..TaskPatch::default()
    };
    let updated = TaskRepo::update(&mut conn, user.id, task.id, &patch).unwrap();
    assert_eq!(updated.version, 2);
    TaskRepo::set_completed(&mut conn, user.id, task.id, true).unwrap();
    let page = TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(2)).unwrap();
    assert_eq!(page.items.len(), 2);
    let next = page.next_cursor.expect("a second page");
    let rest = TaskRepo::list(&mut conn, user.id, &TaskQuery::new().limit(2).after(&next)).unwrap();
    assert_eq!(rest.items.len(), 1);
    let search = TaskQuery::new().search("report");
    assert_eq!(
        TaskRepo::count_matching(&mut conn, user.id, &search).unwrap(),
        1
    );
    assert_eq!(TaskRepo::stats(&mut conn, user.id).unwrap().completed, 1);
    let ids: Vec<todo_store::TaskId> = batch.iter().map(|t| t.id).collect();
    assert_eq!(
        TaskRepo::set_completed_many(&mut conn, user.id, &ids, true).unwrap(),
        2
    );
    TaskRepo::delete(&mut conn, user.id, task.id).unwrap();

    let habit = HabitRepo::create(&mut conn, user.id, &NewHabit::new("Run", Schedule::Daily))
        .expect("habits need DML only, and the CHECK's function is PUBLIC");
    let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
    assert_eq!(HabitRepo::get(&mut conn, user.id, habit.id).unwrap(), habit);
    let patch = HabitPatch {
        name: Some("Run far".into()),
        expected_version: Some(1),
        ..HabitPatch::default()
    };
    assert_eq!(
        HabitRepo::update(&mut conn, user.id, habit.id, &patch)
            .unwrap()
            .version,
        2
    );
    assert!(HabitRepo::check_in(&mut conn, user.id, habit.id, day).unwrap());
    assert_eq!(
        HabitRepo::check_ins(&mut conn, user.id, habit.id, day, day).unwrap(),
        [day]
    );
    assert_eq!(HabitRepo::due_on(&mut conn, user.id, day).unwrap().len(), 1);
    assert_eq!(HabitRepo::list(&mut conn, user.id).unwrap().len(), 1);
    assert_eq!(
        HabitRepo::streak(&mut conn, user.id, habit.id, day)
            .unwrap()
            .current,
        1
    );
    assert!(HabitRepo::undo_check_in(&mut conn, user.id, habit.id, day).unwrap());
    HabitRepo::check_in(&mut conn, user.id, habit.id, day).unwrap();
    HabitRepo::delete(&mut conn, user.id, habit.id).unwrap();
    // Another habit left for the cascade from the user below.
    HabitRepo::create(&mut conn, user.id, &NewHabit::new("Read", Schedule::Daily)).unwrap();
    assert_eq!(
        TaskRepo::delete_many(&mut conn, user.id, &ids[..1]).unwrap(),
        1
    );
    // Sessions: every call.
    let (session, token) = todo_store::SessionRepo::create(
        &mut conn,
        user.id,
        &todo_store::NewSession::new(chrono::Utc::now() + chrono::Duration::days(1)),
    )
    .unwrap();
    assert!(todo_store::SessionRepo::authenticate(&mut conn, &token)
        .unwrap()
        .is_some());
    todo_store::SessionRepo::touch(
        &mut conn,
        user.id,
        session.id,
        chrono::Utc::now() + chrono::Duration::days(2),
    )
    .unwrap();
    assert_eq!(
        todo_store::SessionRepo::list(&mut conn, user.id)
            .unwrap()
            .len(),
        1
    );
    todo_store::SessionRepo::revoke(&mut conn, user.id, session.id).unwrap();
    assert_eq!(
        todo_store::SessionRepo::revoke_all(&mut conn, user.id).unwrap(),
        0
    );
    assert_eq!(
        todo_store::SessionRepo::purge_expired(&mut conn, 10).unwrap(),
        1
    );
    // What a Better Auth server connected as the runtime role writes: its rows, ids
    // left to the database's uuid_v7() default.
    conn.batch_execute(&format!(
        "INSERT INTO auth_sessions (user_id, token, expires_at, updated_at) \
           VALUES ('{id}', 'runtime-token', now() + interval '1 day', now()); \
         INSERT INTO auth_accounts (user_id, account_id, provider_id, updated_at) \
           VALUES ('{id}', '{id}', 'credential', now()); \
         INSERT INTO auth_verifications (identifier, value, expires_at) \
           VALUES ('email-verification', 'v', now() + interval '1 hour'); \
         UPDATE auth_sessions SET updated_at = now() WHERE user_id = '{id}'; \
         DELETE FROM auth_verifications",
        id = user.id
    ))
    .expect("DML on Better Auth's tables");
    // Deleting a user cascades to their tasks and Better Auth rows (the foreign key
    // acts as the owner).
    UserRepo::delete(&mut conn, user.id).unwrap();
    assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 0);
    assert!(HabitRepo::list(&mut conn, user.id).unwrap().is_empty());
    let left: String = diesel::select(sql::<Text>(
        "(SELECT count(*) FROM auth_sessions)::text || (SELECT count(*) FROM auth_accounts)::text",
    ))
    .get_result(&mut *conn)
    .unwrap();
    assert_eq!(left, "00");
    for u in more {
        UserRepo::delete(&mut conn, u.id).unwrap();
    }
    // A caller's transaction works too.
    conn.transaction(|conn| {
        let u = UserRepo::create(conn, &NewUser::new("t@example.com", "T"))?;
        TaskRepo::create(conn, u.id, &NewTask::new("inside"))?;
        Err::<(), Error>(Error::validation("test", "roll back"))
    })
    .unwrap_err();
    assert_eq!(UserRepo::count(&mut conn).unwrap(), 0);
}

#[test]
fn the_runtime_role_cannot_change_the_schema() {
    let db = TestDb::new();
    let runtime = Runtime::apply(&db);
    let before = schema_digest(&mut db.conn());
    let mut conn = runtime.conn();
    for statement in [
        "DROP TABLE tasks",
        "DROP TABLE users CASCADE",
        "DROP TABLE __diesel_schema_migrations",
        "ALTER TABLE tasks ADD COLUMN note text",
        "ALTER TABLE users DROP COLUMN image",
        "ALTER TABLE tasks DROP CONSTRAINT tasks_title_valid",
        "ALTER TABLE tasks DISABLE TRIGGER ALL",
        "ALTER TABLE users OWNER TO CURRENT_USER",
        "CREATE TABLE notes (id int)",
        "CREATE TABLE public.notes (id int)",
        "CREATE VIEW all_tasks AS SELECT * FROM tasks",
        "CREATE INDEX tasks_title_idx ON tasks (title)",
        "CREATE SCHEMA private",
        "CREATE EXTENSION pg_trgm",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "TRUNCATE tasks",
        "TRUNCATE users CASCADE",
        "ALTER TYPE task_priority ADD VALUE 'urgent'",
        "DROP TYPE task_priority CASCADE",
        "DROP INDEX tasks_user_search_idx",
        "INSERT INTO __diesel_schema_migrations (version) VALUES ('99999999999999')",
        "UPDATE __diesel_schema_migrations SET run_on = now()",
        "DELETE FROM __diesel_schema_migrations",
        "GRANT ALL ON tasks TO PUBLIC",
    ] {
        // GRANT without the grant option is a warning, not an error: check the schema
        // digest for it (and everything else) below.
        let result = conn.batch_execute(statement);
        if statement.starts_with("GRANT") {
            continue;
        }
        assert_permission_denied(statement, result);
    }
    // The migrations' own DDL, as the runtime role: the down migrations (the tables
    // exist), and the embedded migrations through the crate.
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut dirs: Vec<_> = std::fs::read_dir(&migrations)
        .expect("migrations/")
        .map(|e| e.expect("an entry").path())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty());
    for dir in dirs.iter().rev() {
        let down = std::fs::read_to_string(dir.join("down.sql")).expect("down.sql");
        let result = conn.transaction(|c| c.batch_execute(&down));
        assert_permission_denied(&format!("{}/down.sql", dir.display()), result);
    }
    assert_permission_denied("revert_all_migrations", revert_all_migrations(&mut conn));
    // Reading the bookkeeping is allowed (docs/roles.sql), writing it is not (above).
    conn.batch_execute("SELECT version FROM __diesel_schema_migrations")
        .expect("the runtime role reads which migrations ran");
    drop(conn);
    assert_eq!(
        schema_digest(&mut db.conn()),
        before,
        "the runtime role changed the schema"
    );
}

#[test]
fn the_runtime_role_cannot_run_the_migrations_on_an_empty_database() {
    // A role of docs/roles.sql (from a migrated database; roles are cluster-wide) on a
    // database without any table, where the migrations would create everything.
    let db = TestDb::new();
    let runtime = Runtime::apply(&db);
    let empty = TestDb::empty();
    // As docs/roles.sql does (PostgreSQL 14 and older let PUBLIC create in public).
    empty
        .conn()
        .batch_execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        .unwrap();
    let mut url = url::Url::parse(empty.url()).unwrap();
    url.set_username(&runtime.name).unwrap();
    let mut conn = PgConnection::establish(url.as_str()).expect("connects to the empty database");
    assert_permission_denied("run_migrations", run_migrations(&mut conn));
    let up = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"))
        .expect("migrations/")
        .map(|e| e.expect("an entry").path().join("up.sql"))
        .min()
        .expect("a first migration");
    let sql_text = std::fs::read_to_string(&up).expect("up.sql");
    let result = conn.transaction(|c| c.batch_execute(&sql_text));
    assert_permission_denied(&up.display().to_string(), result);
    drop(conn);
    let tables: String = diesel::select(sql::<Text>(
        "coalesce(string_agg(relname, ','), '') FROM pg_class WHERE relnamespace = 'public'::regnamespace",
    ))
    .get_result(&mut empty.conn())
    .unwrap();
    assert_eq!(tables, "", "the runtime role created something");
    drop(empty);
    drop(runtime);
}

/// The deployment of docs/roles.md: the owner migrates an empty database at deploy
/// time (`run_migrations` on an owner connection), docs/roles.sql runs, and the
/// application's pool for the runtime role (`PoolOptions::run_migrations(false)`) serves.
#[test]
fn the_owner_migrates_and_the_runtime_role_serves() {
    let db = TestDb::empty();
    let applied = run_migrations(&mut db.conn()).expect("the owner migrates");
    assert!(!applied.is_empty());
    let runtime = Runtime::apply(&db);
    let pool = runtime.pool();
    let mut conn = pool.get().expect("a runtime connection");
    let user = UserRepo::create(&mut conn, &NewUser::new("deploy@example.com", "D")).unwrap();
    TaskRepo::create(&mut conn, user.id, &NewTask::new("serve")).unwrap();
    assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 1);
    // The owner's later run finds nothing to do.
    assert_eq!(
        run_migrations(&mut db.conn()).unwrap(),
        Vec::<String>::new()
    );
}

/// docs/roles.md: `connect` runs pending migrations first; after the owner migrated,
/// the runtime role's `connect` should find nothing pending and hand out the pool.
#[test]
fn connect_as_the_runtime_role_finds_nothing_pending_after_the_owner_migrated() {
    let db = TestDb::new();
    let runtime = Runtime::apply(&db);
    let mut conn = runtime.conn();
    let pending = pending_migrations(&mut conn);
    assert!(
        matches!(&pending, Ok(p) if p.is_empty()),
        "pending_migrations as the runtime role: {pending:?}"
    );
    let pool = connect(&DbConfig::new(runtime.url()).pool_size(2));
    assert!(
        pool.is_ok(),
        "connect as the runtime role: {:?}",
        pool.err()
    );
}

/// The default privileges docs/roles.sql offers (commented out) do what it says: a
/// table the owner creates afterwards is open to the runtime role for DML only.
#[test]
fn the_offered_default_privileges_cover_the_owners_later_tables() {
    let db = TestDb::new();
    let runtime = Runtime::apply(&db);
    let owner = runtime.owner();
    let sql_text = roles_sql(&runtime.name, &owner);
    let defaults = commented_statements(&sql_text, "ALTER DEFAULT PRIVILEGES");
    let mut owner_conn = db.conn();
    owner_conn
        .batch_execute(&defaults)
        .expect("the default privileges apply");
    owner_conn
        .batch_execute(
            "CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text)",
        )
        .expect("the owner creates a table");
    let mut conn = runtime.conn();
    conn.batch_execute("INSERT INTO notes (body) VALUES ('x'); UPDATE notes SET body = 'y'; SELECT * FROM notes; DELETE FROM notes")
        .expect("DML on the owner's new table");
    assert_permission_denied("TRUNCATE notes", conn.batch_execute("TRUNCATE notes"));
    assert_permission_denied("DROP TABLE notes", conn.batch_execute("DROP TABLE notes"));
    drop(conn);
    // Cleanup of the grants happens with the role (DROP OWNED BY).
    owner_conn.batch_execute("DROP TABLE notes").unwrap();
}
