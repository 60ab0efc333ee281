-- todo-store: the runtime role of the application. See docs/roles.md.
--
-- Two roles share the database:
--
--   todo_owner  owns the schema, the tables and the type; runs the migrations, at
--               deploy time only.
--   todo_app    the application at runtime: SELECT, INSERT, UPDATE and DELETE on
--               users, tasks, sessions, habits and habit_check_ins, and on Better Auth's auth_sessions,
--               auth_accounts and auth_verifications (docs/better-auth.md: the Better
--               Auth server may connect as this role too), USAGE on schema public,
--               SELECT on the migrations' bookkeeping table, and nothing else. It
--               cannot create, alter, drop or truncate anything.
--
-- Replace todo_app and todo_owner with your role names, then run this file as
-- todo_owner (or a superuser) in the application's database, after the migrations
-- have created the tables:
--
--   sed -e 's/todo_app/myapp_runtime/g' -e 's/todo_owner/myapp_owner/g' docs/roles.sql \
--     | psql "$OWNER_DATABASE_URL" -v ON_ERROR_STOP=1
--
-- The file can run again (after a migration, say). Creating the role needs CREATEROLE
-- (on Neon, create it in the console or with the API, and the file skips that step).
-- Give the role its password separately, so that it appears neither here nor in a
-- shell history: `\password todo_app` in psql.

BEGIN;

-- The role: may log in, nothing more.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'todo_app') THEN
        CREATE ROLE todo_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
    END IF;
END
$$;

-- Connect to this database (PUBLIC may by default; explicit in case that was revoked).
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO todo_app', current_database());
END
$$;

-- Reach the objects of schema public without creating any. Up to PostgreSQL 14 every
-- role (PUBLIC) may CREATE in schema public; from 15 on it may not. Take it away
-- either way: only the owner creates objects.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM todo_app;
GRANT USAGE ON SCHEMA public TO todo_app;

-- DML on the tables. Not TRUNCATE, REFERENCES or TRIGGER; no column list, so new
-- columns of these tables are covered.
REVOKE ALL ON TABLE users, tasks, sessions, habits, habit_check_ins,
    auth_sessions, auth_accounts, auth_verifications FROM todo_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE users, tasks, sessions, habits, habit_check_ins,
    auth_sessions, auth_accounts, auth_verifications TO todo_app;

-- The migrations' bookkeeping (diesel's table): read only, so that the application
-- can check at startup that no migration is pending. Never written by todo_app.
REVOKE ALL ON TABLE __diesel_schema_migrations FROM todo_app;
GRANT SELECT ON TABLE __diesel_schema_migrations TO todo_app;

-- The type task_priority, the collation email_ci, uuid_v7() (the ids' default) and the
-- functions the queries call (lower, websearch_to_tsquery, ts_rank_cd, the migrations'
-- email_key, habit_is_due and habit_schedule_is_valid, ...) are usable by PUBLIC by
-- default (collations have no privileges of their own): nothing to grant.

-- Optional hardening: PUBLIC may create temporary tables by default. This takes that
-- away from every role that does not own the database, todo_app included:
--
-- DO $$
-- BEGIN
--     EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
-- END
-- $$;

-- Default privileges. The grants above name the tables: a table that a later
-- migration adds gets no grant until this file (with the new table added) runs again.
-- To grant DML on every table that todo_owner creates from now on in schema public,
-- automatically, instead (per database; only for objects todo_owner creates after it
-- runs; the migrations table already exists, so it stays read-only):
--
-- ALTER DEFAULT PRIVILEGES FOR ROLE todo_owner IN SCHEMA public
--     GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO todo_app;
-- ALTER DEFAULT PRIVILEGES FOR ROLE todo_owner IN SCHEMA public
--     GRANT USAGE, SELECT ON SEQUENCES TO todo_app;

COMMIT;
