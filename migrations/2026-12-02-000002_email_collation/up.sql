-- One rule for "the same email", for uniqueness and for find_by_email alike:
--
--   1. lower(email): what the previous index compared, so every pair of addresses that
--      was one account stays one (İ becomes i here on servers whose lower() is libc's);
--   2. ß and ſ folded to ss and s, as Unicode's full case folding does;
--   3. compared under email_ci, ICU's root collation at secondary strength: letters
--      that differ only in case or in compatibility form are equal (final sigma,
--      ligatures such as ﬀ, fullwidth letters, ẞ and ß, a precomposed é and e + U+0301),
--      accented letters are not (é <> e, ü <> u), and default-ignorable characters such
--      as U+200B are ignored.
--
-- ICU at secondary strength alone keeps ß <> ss and ſ <> s (it weighs them like
-- accents), hence step 2. The crate writes the same expression in UserRepo::find_by_email
-- (src/repo/user.rs), so that the lookup uses this index.

-- A nondeterministic ICU collation needs a server built with ICU (PostgreSQL's
-- --with-icu; Debian's, Ubuntu's, the official images' and the cloud services' are).
DO $$
BEGIN
    CREATE COLLATION email_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
EXCEPTION WHEN feature_not_supported THEN
    RAISE EXCEPTION 'todo-store compares emails with an ICU collation, and this PostgreSQL server was built without ICU support: %', SQLERRM
        USING HINT = 'Use a PostgreSQL built --with-icu (pg_config --configure shows it).';
END
$$;

-- Existing users that are one account under the new rule (say ΟΔΟΣ@x.gr and οδος@x.gr)
-- make the unique index impossible: say which, so that they can be merged or renamed.
DO $$
DECLARE
    duplicated text;
BEGIN
    CREATE UNIQUE INDEX users_email_ci_key
        ON users ((replace(replace(lower(email), 'ß', 'ss'), 'ſ', 's') COLLATE email_ci));
EXCEPTION WHEN unique_violation THEN
    GET STACKED DIAGNOSTICS duplicated = PG_EXCEPTION_DETAIL;
    RAISE EXCEPTION 'some users have emails that are one address under the new comparison (case and compatibility forms ignored); merge or rename them, then migrate again: %', duplicated
        USING HINT = 'SELECT array_agg(email) FROM users GROUP BY replace(replace(lower(email), ''ß'', ''ss''), ''ſ'', ''s'') COLLATE email_ci HAVING count(*) > 1 lists them.';
END
$$;

DROP INDEX users_email_lower_key;
