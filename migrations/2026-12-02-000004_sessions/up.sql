-- Login sessions of users. The token a client presents is never stored: only its
-- SHA-256 hash, so a copy of this table (a backup, a replica, a leaked dump) lets no
-- one sign in. The CHECK constraints repeat the crate's validation.
CREATE TABLE sessions (
    id           uuid        PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   bytea       NOT NULL
                 CONSTRAINT sessions_token_hash_valid CHECK (octet_length(token_hash) = 32),
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    ip_address   text
                 CONSTRAINT sessions_ip_address_valid CHECK (char_length(ip_address) <= 45),
    user_agent   text
                 CONSTRAINT sessions_user_agent_valid CHECK (char_length(user_agent) <= 512),
    revoked_at   timestamptz,
    CONSTRAINT sessions_expiry_after_creation CHECK (expires_at > created_at)
);

-- authenticate: one lookup by the token's hash (also what makes hashes unique).
CREATE UNIQUE INDEX sessions_token_hash_key ON sessions (token_hash);

-- A user's sessions, newest first (list), and the cascade from users.
CREATE INDEX sessions_user_created_idx ON sessions (user_id, created_at DESC, id DESC);

-- purge_expired: the oldest expiries first, and the revoked ones.
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
CREATE INDEX sessions_revoked_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
