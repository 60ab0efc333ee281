-- Better Auth's tables, in the shape its own migrator (better-auth 1.7, PostgreSQL,
-- advanced.database.generateId = "uuid") creates for the configuration in
-- docs/better-auth.md: the same columns, types, nullability, unique token and indexes,
-- with its camelCase fields mapped to snake_case names and its models to auth_*
-- tables (Better Auth's `session` would otherwise sit beside the crate's own
-- `sessions`). One migration history owns the whole schema; tests/better_auth.rs runs
-- Better Auth's schema check against it and fails when they disagree.
--
-- Better Auth writes these tables; the crate reads auth_sessions to authenticate its
-- cookie (todo_store::better_auth). Users are shared: Better Auth writes users through
-- the same table, and deleting a user deletes their Better Auth rows by cascade.
--
-- The only departure from Better Auth's own DDL: ids default to uuid_v7() instead of
-- gen_random_uuid(), time-ordered like every other id (the migrator does not compare
-- defaults).

-- Signed-in sessions. `token` is the value Better Auth signs into its cookie.
CREATE TABLE auth_sessions (
    id         uuid        NOT NULL DEFAULT uuid_v7() PRIMARY KEY,
    expires_at timestamptz NOT NULL,
    token      text        NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz NOT NULL,
    ip_address text,
    user_agent text,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE
);

-- Credentials and linked providers: the password hash of email sign-in
-- (provider_id 'credential'), OAuth tokens of social sign-in.
CREATE TABLE auth_accounts (
    id                       uuid        NOT NULL DEFAULT uuid_v7() PRIMARY KEY,
    account_id               text        NOT NULL,
    provider_id              text        NOT NULL,
    user_id                  uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    access_token             text,
    refresh_token            text,
    id_token                 text,
    access_token_expires_at  timestamptz,
    refresh_token_expires_at timestamptz,
    scope                    text,
    password                 text,
    created_at               timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at               timestamptz NOT NULL
);

-- One-time values: email verification, password reset, OAuth state.
CREATE TABLE auth_verifications (
    id         uuid        NOT NULL DEFAULT uuid_v7() PRIMARY KEY,
    identifier text        NOT NULL,
    value      text        NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- Better Auth's own index names, so that its migrator finds them.
CREATE INDEX auth_sessions_user_id_idx ON auth_sessions (user_id);
CREATE INDEX auth_accounts_user_id_idx ON auth_accounts (user_id);
CREATE INDEX auth_verifications_identifier_idx ON auth_verifications (identifier);
