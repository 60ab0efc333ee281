-- Back to the key of 2026-12-02-000002_email_collation, under the same index name.
-- email_key() decomposes and folds before the same collation, which only adds foldings
-- to the old key's: addresses that are distinct under it are meant to be distinct under
-- the old key too. Should two not be, say which.
DO $$
DECLARE
    duplicated text;
BEGIN
    CREATE UNIQUE INDEX users_email_old_key
        ON users ((replace(replace(lower(email), 'ß', 'ss'), 'ſ', 's') COLLATE email_ci));
EXCEPTION WHEN unique_violation THEN
    GET STACKED DIAGNOSTICS duplicated = PG_EXCEPTION_DETAIL;
    RAISE EXCEPTION 'some users have emails that are one address under the previous comparison; merge or rename them, then revert again: %', duplicated;
END
$$;

DROP INDEX users_email_ci_key;
ALTER INDEX users_email_old_key RENAME TO users_email_ci_key;
DROP FUNCTION email_key(text);
