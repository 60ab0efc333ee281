DROP TABLE auth_verifications;
DROP TABLE auth_accounts;
DROP TABLE auth_sessions;
