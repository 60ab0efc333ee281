-- Titles and names must contain a visible character, and emails may contain no white
-- space or invisible character, for every client: the same rule as the crate's
-- validation (src/models/validate.rs, INVISIBLE; a unit test keeps the two equal).
--
-- "Invisible" is written out as code points: Unicode White_Space, Default_Ignorable_
-- Code_Point, the control characters and U+2800 BRAILLE PATTERN BLANK. Classes such as
-- [[:space:]] would depend on the database's locale (in the C locale they know ASCII
-- only). The \uXXXX escapes are code points in a UTF8 database, the encoding this
-- schema is made for.
--
-- Existing rows are checked: if a row breaks the rule, the migration fails and changes
-- nothing; fix that row first (the failing constraint's expression finds it).
ALTER TABLE users
    DROP CONSTRAINT users_email_valid,
    ADD CONSTRAINT users_email_valid
        CHECK (char_length(email) <= 254
               AND email ~ '^[^@\u0000-\u0020\u007F-\u00A0\u00AD\u034F\u061C\u115F-\u1160\u1680\u17B4-\u17B5\u180B-\u180F\u2000-\u200F\u2028-\u202F\u205F-\u206F\u2800\u3000\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A\U000E0000-\U000E0FFF]+@[^@\u0000-\u0020\u007F-\u00A0\u00AD\u034F\u061C\u115F-\u1160\u1680\u17B4-\u17B5\u180B-\u180F\u2000-\u200F\u2028-\u202F\u205F-\u206F\u2800\u3000\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A\U000E0000-\U000E0FFF]+$'),
    DROP CONSTRAINT users_name_valid,
    ADD CONSTRAINT users_name_valid
        CHECK (char_length(name) BETWEEN 1 AND 100
               AND name ~ '[^\u0000-\u0020\u007F-\u00A0\u00AD\u034F\u061C\u115F-\u1160\u1680\u17B4-\u17B5\u180B-\u180F\u2000-\u200F\u2028-\u202F\u205F-\u206F\u2800\u3000\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A\U000E0000-\U000E0FFF]');

ALTER TABLE tasks
    DROP CONSTRAINT tasks_title_valid,
    ADD CONSTRAINT tasks_title_valid
        CHECK (title ~ '[^\u0000-\u0020\u007F-\u00A0\u00AD\u034F\u061C\u115F-\u1160\u1680\u17B4-\u17B5\u180B-\u180F\u2000-\u200F\u2028-\u202F\u205F-\u206F\u2800\u3000\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A\U000E0000-\U000E0FFF]');
