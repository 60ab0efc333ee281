-- Back to lower(email). Every pair of emails that is distinct under the new rule is
-- distinct under lower() too, so the old index can always be built again.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
DROP INDEX users_email_ci_key;
DROP COLLATION email_ci;
