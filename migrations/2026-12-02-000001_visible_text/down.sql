-- The constraints as 2026-11-23-000001_create_users and 2026-11-23-000002_create_tasks
-- created them.
ALTER TABLE users
    DROP CONSTRAINT users_email_valid,
    ADD CONSTRAINT users_email_valid
        CHECK (char_length(email) <= 254 AND email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    DROP CONSTRAINT users_name_valid,
    ADD CONSTRAINT users_name_valid
        CHECK (char_length(name) BETWEEN 1 AND 100 AND btrim(name) <> '');

ALTER TABLE tasks
    DROP CONSTRAINT tasks_title_valid,
    ADD CONSTRAINT tasks_title_valid CHECK (btrim(title) <> '');
