-- "The same email" by Unicode's compatibility caseless matching, for every client (the
-- crate, Better Auth, raw SQL). The previous key (2026-12-02-000002_email_collation)
-- folded only the literal characters ß and ſ before ICU compared: compatibility forms
-- that ICU weighs like accents stayed apart (ﬅ and st, ẛ and ṡ, ₨ and rs, ᾳ and αι).
--
-- Two emails are one address when their email_key() values are equal under email_ci
-- (ICU's root collation at secondary strength). email_key() is:
--
--   1. normalize(email, NFKD): compatibility and canonical decomposition, Unicode's own
--      tables (ﬅ -> ſt, ẛ -> ſ + U+0307, ₨ -> Rs, 𝐚 -> a, ǅ -> Dž as D + z + U+030C);
--   2. lower(): what every key so far began with, so every pair of addresses that was
--      one account stays one (İ, decomposed to I + U+0307, becomes i + U+0307);
--   3. the foldings of Unicode's full case folding that ICU at secondary strength weighs
--      like accents: ß -> ss, ſ -> s, U+0345 (the iota subscript, ᾳ = α + U+0345) -> ι;
--   4. i + U+0307 -> i: İ has been i since the first key (lower() of a libc locale), and
--      Unicode folds İ to i + U+0307, so the two are one with i.
--
-- email_ci then ignores what remains of case and compatibility form, and accents count.
-- Beyond Unicode's rule, email_ci also makes one address of what ICU weighs alike at
-- secondary strength without a compatibility mapping (step 4 above is the other case):
-- decimal digits of one value in every script (1, ١, १), hiragana and katakana (の, ノ)
-- and small kana, Hebrew final forms (ץ, צ), combining letters and their letters (ⷲ, ш),
-- and characters it ignores (many combining marks: Hebrew cantillation, Vedic signs).
-- Grouping every code point of Unicode 14 (in a@b) by this key finds 448 groups that
-- Unicode's rule would split. For uniqueness, merging too much only refuses a look-alike.
-- The test tests/integration/email_key.rs checks, for every code point of Unicode 14
-- (the tables of PostgreSQL 15's normalize()), that this key makes an address one with
-- its compatibility caseless form (Unicode's definition D146).
--
-- One definition, used by the unique index and by every lookup (UserRepo::find_by_email
-- writes email_key(email) COLLATE email_ci = email_key($1), which the planner matches to
-- the index). It is IMMUTABLE because the index depends on it: change it only by a new
-- migration that rebuilds the index. normalize() and the \u escapes need a UTF8 database,
-- the encoding this schema is made for (see 2026-12-02-000001_visible_text).
CREATE FUNCTION email_key(email text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN replace(replace(replace(replace(lower(normalize(email, NFKD)),
        'ß', 'ss'), 'ſ', 's'), E'\u0345', 'ι'), E'i\u0307', 'i');

-- Existing users that are one address under the new key (say ﬅop@x.example and
-- stop@x.example) make the unique index impossible: list them all, so that they can be
-- merged or renamed. Nothing is applied then (the migration runs in one transaction).
DO $$
DECLARE
    duplicated text;
BEGIN
    CREATE UNIQUE INDEX users_email_nfkc_key ON users ((email_key(email) COLLATE email_ci));
EXCEPTION WHEN unique_violation THEN
    SELECT string_agg(same, '; ') INTO duplicated FROM (
        SELECT string_agg(email, ', ' ORDER BY email) AS same
          FROM users GROUP BY email_key(email) COLLATE email_ci HAVING count(*) > 1
    ) AS groups;
    RAISE EXCEPTION 'some users have emails that are one address under the new comparison (case and compatibility forms ignored); merge or rename them, then migrate again: %', duplicated
        USING HINT = 'SELECT array_agg(email) FROM users GROUP BY email_key(email) COLLATE email_ci HAVING count(*) > 1 lists them.';
END
$$;

DROP INDEX users_email_ci_key;
ALTER INDEX users_email_nfkc_key RENAME TO users_email_ci_key;
