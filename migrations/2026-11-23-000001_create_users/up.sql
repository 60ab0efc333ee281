-- Users mirror Better Auth's user table. The CHECK constraints repeat the crate's
-- validation rules, so rows written by other clients obey them too.
CREATE TABLE users (
    id             uuid        PRIMARY KEY,
    email          text        NOT NULL
                   CONSTRAINT users_email_valid
                   CHECK (char_length(email) <= 254 AND email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    name           text        NOT NULL
                   CONSTRAINT users_name_valid
                   CHECK (char_length(name) BETWEEN 1 AND 100 AND btrim(name) <> ''),
    email_verified boolean     NOT NULL DEFAULT false,
    image          text
                   CONSTRAINT users_image_valid CHECK (char_length(image) <= 2048),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Emails are unique case-insensitively; find_by_email looks up lower(email) through it.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
