//! Migrations: revert and re-apply, concurrent runs, and the schema's invariants.

use diesel::prelude::*;
use diesel::sql_types::Text;
use todo_store::migrate::{pending_migrations, MIGRATIONS};
use todo_store::testing::TestDb;
use todo_store::{connect, revert_all_migrations, run_migrations, DbConfig, PoolOptions};

#[derive(QueryableByName, Debug, PartialEq)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

fn tables(conn: &mut PgConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' \
         AND tablename NOT LIKE '\\_\\_diesel%' ORDER BY 1",
    )
    .load::<Name>(conn)
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect()
}

fn types(conn: &mut PgConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT t.typname AS name FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         WHERE n.nspname = 'public' AND t.typtype = 'e' ORDER BY 1",
    )
    .load::<Name>(conn)
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect()
}

/// Every table of the migrated schema: the crate's, and Better Auth's (auth_*).
const ALL_TABLES: [&str; 8] = [
    "auth_accounts",
    "auth_sessions",
    "auth_verifications",
    "habit_check_ins",
    "habits",
    "sessions",
    "tasks",
    "users",
];

/// The functions of schema public that migrations made (not those of extensions).
fn functions(conn: &mut PgConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT proname::text AS name FROM pg_proc p \
         WHERE pronamespace = 'public'::regnamespace \
           AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') \
         ORDER BY 1",
    )
    .load::<Name>(conn)
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect()
}

#[test]
fn migrations_revert_completely_and_apply_again() {
    let db = TestDb::empty();
    let mut conn = PgConnection::establish(db.url()).unwrap();
    let applied = run_migrations(&mut conn).unwrap();
    let count = diesel_migrations::MigrationHarness::applied_migrations(&mut conn)
        .unwrap()
        .len();
    assert_eq!(applied.len(), count);
    assert_eq!(tables(&mut conn), ALL_TABLES);
    assert!(
        run_migrations(&mut conn).unwrap().is_empty(),
        "nothing left to apply"
    );

    let reverted = revert_all_migrations(&mut conn).unwrap();
    let mut expected = applied.clone();
    expected.reverse();
    assert_eq!(reverted, expected);
    assert!(tables(&mut conn).is_empty(), "down.sql left tables behind");
    assert!(types(&mut conn).is_empty(), "down.sql left types behind");
    assert!(
        functions(&mut conn).is_empty(),
        "down.sql left functions behind: {:?}",
        functions(&mut conn)
    );
    assert_eq!(pending_migrations(&mut conn).unwrap(), applied);

    assert_eq!(run_migrations(&mut conn).unwrap(), applied);
    assert_eq!(tables(&mut conn), ALL_TABLES);
}

#[test]
fn concurrent_migration_runs_apply_each_migration_once() {
    let db = TestDb::empty();
    let url = db.url().to_owned();
    let barrier = std::sync::Barrier::new(6);
    let results: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    let mut conn = PgConnection::establish(&url).unwrap();
                    barrier.wait();
                    run_migrations(&mut conn).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<String> = results.into_iter().flatten().collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(total, all.len(), "a migration was applied twice");
    let mut conn = PgConnection::establish(&url).unwrap();
    assert!(pending_migrations(&mut conn).unwrap().is_empty());
    assert_eq!(
        diesel_migrations::MigrationHarness::applied_migrations(&mut conn)
            .unwrap()
            .len(),
        total
    );
}

#[test]
fn connect_from_many_threads_on_an_empty_database_all_succeed() {
    let db = TestDb::empty();
    let config = DbConfig::new(db.url()).pool_size(2);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| connect(&config))).collect();
        for h in handles {
            h.join().unwrap().expect("connect");
        }
    });
    let mut conn = PgConnection::establish(db.url()).unwrap();
    assert!(pending_migrations(&mut conn).unwrap().is_empty());
}

#[test]
fn every_foreign_key_cascades_on_delete() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let not_cascading: Vec<Name> = diesel::sql_query(
        "SELECT conname::text AS name FROM pg_constraint \
         WHERE contype = 'f' AND confdeltype <> 'c'",
    )
    .load(&mut conn)
    .unwrap();
    assert!(not_cascading.is_empty(), "{not_cascading:?}");
}

#[test]
fn every_constraint_the_error_mapping_names_exists() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let existing: Vec<String> = diesel::sql_query(
        "SELECT conname::text AS name FROM pg_constraint \
         UNION SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public'",
    )
    .load::<Name>(&mut conn)
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect();
    for name in todo_store::error::constraint_names() {
        assert!(
            existing.iter().any(|e| e == name),
            "constraint {name} is not in the schema"
        );
    }
}

#[test]
fn every_migration_has_a_down_sql() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            count += 1;
            let down = std::fs::read_to_string(path.join("down.sql")).unwrap_or_default();
            assert!(
                !down.trim().is_empty(),
                "{} has no down.sql",
                path.display()
            );
        }
    }
    let _ = MIGRATIONS;
    assert!(count >= 2);
}

/// The schema as the catalogs describe it: every column, constraint, index, enum type,
/// extension and function, one line each, sorted.
fn schema_snapshot(conn: &mut PgConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type \
                || coalesce(' default ' || column_default, '') \
                || coalesce(' generated ' || generation_expression, '') \
                || ' nullable ' || is_nullable AS name \
           FROM information_schema.columns WHERE table_schema = 'public' \
         UNION ALL SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' \
                || pg_get_constraintdef(oid) \
           FROM pg_constraint WHERE connamespace = 'public'::regnamespace \
         UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public' \
         UNION ALL SELECT 'type ' || typname FROM pg_type \
           WHERE typnamespace = 'public'::regnamespace AND typtype = 'e' \
         UNION ALL SELECT 'extension ' || extname FROM pg_extension \
         UNION ALL SELECT 'function ' || p.oid::regprocedure::text || ' ' || md5(p.prosrc) \
           FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace \
            AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') \
         ORDER BY 1",
    )
    .load::<Name>(conn)
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect()
}

#[test]
fn each_migrations_down_sql_restores_the_schema_before_it_exactly() {
    use diesel_migrations::MigrationHarness;
    let db = TestDb::empty();
    let mut conn = PgConnection::establish(db.url()).unwrap();
    while conn.has_pending_migration(MIGRATIONS).unwrap() {
        let before = schema_snapshot(&mut conn);
        let version = conn.run_next_migration(MIGRATIONS).unwrap().to_string();
        let after = schema_snapshot(&mut conn);
        assert_ne!(after, before, "migration {version} changed nothing");
        conn.revert_last_migration(MIGRATIONS).unwrap();
        assert_eq!(
            schema_snapshot(&mut conn),
            before,
            "the down.sql of {version} left the schema different from before its up.sql"
        );
        conn.run_next_migration(MIGRATIONS).unwrap();
        assert_eq!(schema_snapshot(&mut conn), after, "{version} again");
    }
}

/// The migration that makes titles and names need a visible character checks the rows
/// already there: one that breaks the rule (written under the older, weaker
/// constraints) fails the migration, which then changes nothing, until it is fixed.
#[test]
fn the_visible_text_migration_refuses_existing_rows_that_break_the_rule() {
    use diesel_migrations::MigrationHarness;
    let db = TestDb::empty();
    let mut conn = PgConnection::establish(db.url()).unwrap();
    let is_visible_text = |v: &str| v.replace('-', "").starts_with("20261202000001");
    // Everything before it.
    loop {
        let pending = conn.pending_migrations(MIGRATIONS).unwrap();
        let next = pending.first().expect("the visible text migration exists");
        if is_visible_text(&next.name().version().to_string()) {
            break;
        }
        conn.run_next_migration(MIGRATIONS).unwrap();
    }
    let before = schema_snapshot(&mut conn);
    for (insert, fix) in [
        (
            "INSERT INTO users (id, email, name) VALUES (gen_random_uuid(), 'a@b.c', E'\\u200B')",
            "DELETE FROM users",
        ),
        (
            "INSERT INTO users (id, email, name) VALUES (gen_random_uuid(), E'a\\u00A0b@c', 'A')",
            "DELETE FROM users",
        ),
        (
            "WITH u AS (INSERT INTO users (id, email, name) \
                        VALUES (gen_random_uuid(), 'a@b.c', 'A') RETURNING id) \
             INSERT INTO tasks (id, user_id, title) SELECT gen_random_uuid(), id, E'\\t' FROM u",
            "DELETE FROM users",
        ),
    ] {
        diesel::sql_query(insert).execute(&mut conn).unwrap();
        let err = conn.run_next_migration(MIGRATIONS).unwrap_err().to_string();
        assert!(err.contains("is violated by some row"), "{err}");
        assert_eq!(
            schema_snapshot(&mut conn),
            before,
            "a failed migration changed the schema"
        );
        diesel::sql_query(fix).execute(&mut conn).unwrap();
    }
    let version = conn.run_next_migration(MIGRATIONS).unwrap().to_string();
    assert!(is_visible_text(&version), "{version}");
}

#[test]
fn users_that_become_one_address_under_the_email_rule_stop_its_migration_with_a_clear_error() {
    use diesel::sql_types::Uuid as SqlUuid;
    let db = TestDb::empty();
    let mut conn = PgConnection::establish(db.url()).unwrap();
    run_migrations(&mut conn).unwrap();
    // Back to lower(email), under which these two are different addresses: revert
    // down to the email migration, whatever came after it.
    let mut reverted_count = 0;
    loop {
        let reverted =
            diesel_migrations::MigrationHarness::revert_last_migration(&mut conn, MIGRATIONS)
                .unwrap()
                .to_string();
        reverted_count += 1;
        if reverted.starts_with("20261202000002") {
            break;
        }
        assert!(reverted.as_str() > "20261202000002", "{reverted}");
    }
    for email in ["οδος@example.gr", "ΟΔΟΣ@example.gr"] {
        diesel::sql_query("INSERT INTO users (id, email, name) VALUES ($1, $2, 'x')")
            .bind::<SqlUuid, _>(uuid::Uuid::now_v7())
            .bind::<Text, _>(email)
            .execute(&mut conn)
            .unwrap();
    }
    let err = run_migrations(&mut conn).unwrap_err().to_string();
    assert!(
        err.contains("one address under the new comparison") && err.contains("οδος@example.gr"),
        "{err}"
    );
    // Nothing of it was applied: the old index still holds, the migration is pending.
    assert_eq!(pending_migrations(&mut conn).unwrap().len(), reverted_count);
    let indexes: Vec<String> = diesel::sql_query(
        "SELECT indexname::text AS name FROM pg_indexes WHERE tablename = 'users' ORDER BY 1",
    )
    .load::<Name>(&mut conn)
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect();
    assert_eq!(indexes, ["users_email_lower_key", "users_pkey"]);
    // With one of them renamed, it applies.
    diesel::sql_query(
        "UPDATE users SET email = 'odos2@example.gr' WHERE email = 'ΟΔΟΣ@example.gr'",
    )
    .execute(&mut conn)
    .unwrap();
    assert_eq!(run_migrations(&mut conn).unwrap().len(), reverted_count);
}

#[derive(QueryableByName, Debug)]
struct IdColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    column_default: Option<String>,
}

/// Rows written by any client get an id from the server: every table's `id` defaults
/// to `uuid_v7()`. A migration that adds a table without it fails here.
#[test]
fn every_tables_id_defaults_to_uuid_v7() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let ids: Vec<IdColumn> = diesel::sql_query(
        "SELECT c.table_name::text AS table_name, c.column_default::text AS column_default \
           FROM information_schema.columns c \
           JOIN information_schema.tables t USING (table_schema, table_name) \
          WHERE c.table_schema = 'public' AND c.column_name = 'id' \
            AND t.table_type = 'BASE TABLE' AND c.table_name NOT LIKE '\\_\\_diesel%' \
          ORDER BY 1",
    )
    .load(&mut conn)
    .unwrap();
    let tables: Vec<&str> = ids.iter().map(|c| c.table_name.as_str()).collect();
    // habit_check_ins is keyed by (habit_id, day): it has no id of its own.
    for table in ALL_TABLES.into_iter().filter(|t| *t != "habit_check_ins") {
        assert!(
            tables.contains(&table),
            "{table} has no id column: {tables:?}"
        );
    }
    for id in &ids {
        assert_eq!(
            id.column_default.as_deref(),
            Some("uuid_v7()"),
            "{}.id should default to uuid_v7()",
            id.table_name
        );
    }
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: uuid::Uuid,
}

/// What `uuid_v7()` makes is an RFC 9562 version 7 UUID carrying the time it was made,
/// in the layout of the crate's own ids (`Uuid::now_v7`), so that the rows of either
/// side sort by creation together.
#[test]
fn ids_the_database_makes_are_time_ordered_uuid_v7s_like_the_crates() {
    use diesel::sql_types::Uuid as SqlUuid;
    let db = TestDb::new();
    let mut conn = db.conn();
    let mut made = Vec::new();
    for i in 0..50 {
        let before = uuid::Uuid::now_v7();
        let id = diesel::sql_query(format!(
            "INSERT INTO users (email, name) VALUES ('u{i}@example.com', 'U') RETURNING id"
        ))
        .get_result::<Id>(&mut conn)
        .unwrap()
        .id;
        let after = uuid::Uuid::now_v7();
        assert_eq!(id.get_version_num(), 7, "{id}");
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{id}");
        let ms = |u: uuid::Uuid| u.get_timestamp().unwrap().to_unix();
        assert!(
            ms(before) <= ms(id) && ms(id) <= ms(after),
            "{id}: made between {before} and {after}"
        );
        made.push((before, id));
    }
    // Statement after statement, in order, also within one millisecond (the 12 bits
    // after the version are the sub-millisecond time). The crate's own ids of the
    // same millisecond carry a random counter there instead, so the two sides sort
    // together to the millisecond.
    for pair in made.windows(2) {
        assert!(pair[0].1 < pair[1].1, "{} then {}", pair[0].1, pair[1].1);
    }
    // Tasks and sessions written without an id get one too.
    let user = made[0].1;
    for insert in [
        "INSERT INTO tasks (user_id, title) VALUES ($1, 'T') RETURNING id",
        "INSERT INTO sessions (user_id, token_hash, expires_at) \
         VALUES ($1, sha256('t'), now() + interval '1 day') RETURNING id",
        "INSERT INTO auth_sessions (user_id, token, expires_at, updated_at) \
         VALUES ($1, 't', now() + interval '1 day', now()) RETURNING id",
        "INSERT INTO auth_accounts (user_id, account_id, provider_id, updated_at) \
         VALUES ($1, 'a', 'credential', now()) RETURNING id",
    ] {
        let id = diesel::sql_query(insert)
            .bind::<SqlUuid, _>(user)
            .get_result::<Id>(&mut conn)
            .unwrap()
            .id;
        assert_eq!(id.get_version_num(), 7, "{insert}: {id}");
        assert!(id > user, "{insert}: {id}");
    }
}

/// A task created on `conn`: its insert binds a `task_priority`, whose OID diesel looks
/// up once per connection and keeps.
fn create_a_task(conn: &mut PgConnection, user_id: todo_store::UserId) -> todo_store::Result<()> {
    use todo_store::{NewTask, Priority, TaskRepo};
    TaskRepo::create(conn, user_id, &NewTask::new("t").priority(Priority::High)).map(drop)
}

#[test]
fn the_pooled_connection_that_recreated_a_type_by_migrating_goes_on_working() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = crate::support::fixtures::user(&mut conn);
    create_a_task(&mut conn, user.id).unwrap();

    // Down and up again: task_priority is dropped and created with a new OID.
    revert_all_migrations(&mut conn).unwrap();
    run_migrations(&mut conn).unwrap();

    let user = crate::support::fixtures::user(&mut conn);
    create_a_task(&mut conn, user.id).unwrap();
    assert_eq!(
        todo_store::TaskRepo::count_matching(&mut conn, user.id, &todo_store::TaskQuery::new())
            .unwrap(),
        1
    );
}

#[test]
fn the_pools_other_connections_are_retired_after_a_migration_recreated_a_type() {
    let db = TestDb::new();
    let (pool, metrics) = PoolOptions::new(
        &DbConfig::new(db.url())
            .pool_size(2)
            .connection_timeout(std::time::Duration::from_secs(5)),
    )
    .run_migrations(false)
    .connect_with_metrics()
    .unwrap();
    let user = crate::support::fixtures::user(&mut db.conn());
    // Both connections cache the enum's OID.
    let mut first = pool.get().unwrap();
    let mut second = pool.get().unwrap();
    create_a_task(&mut first, user.id).unwrap();
    create_a_task(&mut second, user.id).unwrap();
    drop(first);

    revert_all_migrations(&mut second).unwrap();
    run_migrations(&mut second).unwrap();
    let user = crate::support::fixtures::user(&mut second);
    drop(second);

    // Whichever connections the pool hands out now work.
    for _ in 0..3 {
        let mut a = pool.get().unwrap();
        let mut b = pool.get().unwrap();
        create_a_task(&mut a, user.id).unwrap();
        create_a_task(&mut b, user.id).unwrap();
    }
    assert!(
        metrics.snapshot().connections_closed >= 1,
        "the stale one closed"
    );
}
