//! The validation rules shared by inputs and patches. The migrations' CHECK constraints
//! hold the same rules, so rows written by other clients obey them too.

use std::ops::RangeInclusive;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

use crate::error::{Error, Result};

/// Longest task title, in characters (the column is `varchar(255)`).
pub const TITLE_MAX_CHARS: usize = 255;
/// Longest task description, in characters.
pub const DESCRIPTION_MAX_CHARS: usize = 10_000;
/// Longest user name, in characters.
pub const NAME_MAX_CHARS: usize = 100;
/// Longest email address, in characters (RFC 5321's path limit).
pub const EMAIL_MAX_CHARS: usize = 254;
/// Longest image URL, in characters.
pub const IMAGE_MAX_CHARS: usize = 2048;

/// The characters that show nothing on their own, as inclusive ranges of code points,
/// in ascending order: Unicode's White_Space and Default_Ignorable_Code_Point
/// properties, the control characters (general category Cc) and U+2800 BRAILLE
/// PATTERN BLANK. Unassigned code points inside these ranges are included: Unicode
/// reserves them as default-ignorable, so they will never be visible.
///
/// A title or a name must contain at least one character outside these ranges; an
/// email address must contain none of them. The schema's CHECK constraints spell out
/// the same ranges as a regular expression of code points (never a locale-dependent
/// class such as `[[:space:]]`), so the database enforces the same rule for every
/// client; a unit test keeps the migration's text and this table equal.
pub const INVISIBLE: &[RangeInclusive<char>] = &[
    // C0 controls (U+0009-000D are also white space) and SPACE.
    '\u{0000}'..='\u{0020}',
    // DELETE, C1 controls (U+0085 NEXT LINE is also white space), NO-BREAK SPACE.
    '\u{007F}'..='\u{00A0}',
    // SOFT HYPHEN.
    '\u{00AD}'..='\u{00AD}',
    // COMBINING GRAPHEME JOINER.
    '\u{034F}'..='\u{034F}',
    // ARABIC LETTER MARK.
    '\u{061C}'..='\u{061C}',
    // HANGUL CHOSEONG FILLER, HANGUL JUNGSEONG FILLER.
    '\u{115F}'..='\u{1160}',
    // OGHAM SPACE MARK.
    '\u{1680}'..='\u{1680}',
    // KHMER VOWEL INHERENT AQ and AA.
    '\u{17B4}'..='\u{17B5}',
    // MONGOLIAN FREE VARIATION SELECTORS and VOWEL SEPARATOR.
    '\u{180B}'..='\u{180F}',
    // EN QUAD to HAIR SPACE, ZERO WIDTH SPACE, ZERO WIDTH (NON-)JOINER, LRM, RLM.
    '\u{2000}'..='\u{200F}',
    // LINE and PARAGRAPH SEPARATOR, bidirectional embeddings and overrides,
    // NARROW NO-BREAK SPACE.
    '\u{2028}'..='\u{202F}',
    // MEDIUM MATHEMATICAL SPACE, WORD JOINER, invisible operators, bidirectional
    // isolates, deprecated format characters.
    '\u{205F}'..='\u{206F}',
    // BRAILLE PATTERN BLANK.
    '\u{2800}'..='\u{2800}',
    // IDEOGRAPHIC SPACE.
    '\u{3000}'..='\u{3000}',
    // HANGUL FILLER.
    '\u{3164}'..='\u{3164}',
    // VARIATION SELECTORS 1-16.
    '\u{FE00}'..='\u{FE0F}',
    // ZERO WIDTH NO-BREAK SPACE (the byte order mark).
    '\u{FEFF}'..='\u{FEFF}',
    // HALFWIDTH HANGUL FILLER.
    '\u{FFA0}'..='\u{FFA0}',
    // Reserved default-ignorable code points.
    '\u{FFF0}'..='\u{FFF8}',
    // SHORTHAND FORMAT CONTROLS.
    '\u{1BCA0}'..='\u{1BCA3}',
    // MUSICAL SYMBOL BEGIN BEAM to END PHRASE.
    '\u{1D173}'..='\u{1D17A}',
    // Tags and VARIATION SELECTORS 17-256, with their reserved neighbours.
    '\u{E0000}'..='\u{E0FFF}',
];

/// Whether `c` shows nothing on its own: it lies in one of the [`INVISIBLE`] ranges.
pub fn is_invisible(c: char) -> bool {
    INVISIBLE.iter().any(|range| range.contains(&c))
}

/// What a required text is told when it has nothing visible in it.
pub(crate) const NOTHING_VISIBLE: &str =
    "must contain a visible character (not only spaces or invisible characters such as zero-width spaces)";

/// The earliest instant PostgreSQL's timestamptz holds (4714-11-24 00:00 UTC BC), in
/// microseconds since 1970. (Its latest lies beyond chrono's.)
pub(crate) const PG_MIN_TIMESTAMP_MICROS: i64 = -210_866_803_200_000_000;

/// `at` as PostgreSQL will store it: whole microseconds, cut the way diesel sends it
/// (toward 2000-01-01, PostgreSQL's epoch). Outside PostgreSQL's range: Validation.
pub(crate) fn timestamp(field: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let out_of_range = || Error::validation(field, "is outside the dates PostgreSQL can store");
    let pg_epoch = Utc
        .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .ok_or_else(out_of_range)?;
    let micros = (at - pg_epoch)
        .num_microseconds()
        .ok_or_else(out_of_range)?;
    let stored = pg_epoch + Duration::microseconds(micros);
    if stored.timestamp_micros() < PG_MIN_TIMESTAMP_MICROS {
        return Err(out_of_range());
    }
    Ok(stored)
}

/// `day` if PostgreSQL's `date` holds it: from 4714-11-24 BC (chrono's year -4713, the
/// first day of the Julian day count) on. (Its latest date lies beyond chrono's.)
pub(crate) fn date(field: &str, day: NaiveDate) -> Result<NaiveDate> {
    const PG_MIN_DATE: Option<NaiveDate> = NaiveDate::from_ymd_opt(-4713, 11, 24);
    if PG_MIN_DATE.is_some_and(|min| day < min) {
        return Err(Error::validation(
            field,
            "is before 4714-11-24 BC, the earliest date PostgreSQL can store",
        ));
    }
    Ok(day)
}

/// PostgreSQL text cannot hold NUL; reject it with a clear error instead of the server's.
pub(crate) fn no_nul(field: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::validation(field, "must not contain NUL characters"));
    }
    Ok(())
}

/// A required text: trimmed (of Unicode white space, as [`str::trim`] does), with at
/// least one character that is not [`is_invisible`], at most `max` characters, no NUL.
pub(crate) fn required_text<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str> {
    no_nul(field, value)?;
    let trimmed = value.trim();
    if trimmed.chars().all(is_invisible) {
        return Err(Error::validation(field, NOTHING_VISIBLE));
    }
    at_most(field, trimmed, max)?;
    Ok(trimmed)
}

/// An optional text kept as given: at most `max` characters, no NUL.
pub(crate) fn optional_text<'a>(
    field: &str,
    value: Option<&'a str>,
    max: usize,
) -> Result<Option<&'a str>> {
    if let Some(value) = value {
        no_nul(field, value)?;
        at_most(field, value, max)?;
    }
    Ok(value)
}

fn at_most(field: &str, value: &str, max: usize) -> Result<()> {
    // Count characters, not bytes, as PostgreSQL's char_length and varchar(n) do.
    if value.chars().nth(max).is_some() {
        return Err(Error::validation(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

/// A plausible email address: trimmed, one `@` with something on both sides, no
/// character that [`is_invisible`] (white space, controls, zero-width and other
/// invisible characters), at most [`EMAIL_MAX_CHARS`] characters.
pub(crate) fn email(field: &str, value: &str) -> Result<String> {
    no_nul(field, value)?;
    let email = value.trim();
    at_most(field, email, EMAIL_MAX_CHARS)?;
    let plausible = match email.split_once('@') {
        Some((local, domain)) => !local.is_empty() && !domain.is_empty() && !domain.contains('@'),
        None => false,
    };
    if !plausible || email.chars().any(is_invisible) {
        return Err(Error::validation(
            field,
            "must be an email address like name@example.com (one @, no spaces or invisible \
             characters)",
        ));
    }
    Ok(email.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_cut_to_microseconds_and_checked_against_postgresqls_range() {
        let t = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(
            timestamp("due", t).unwrap().timestamp_subsec_nanos(),
            123_456_000
        );
        assert!(timestamp("due", DateTime::<Utc>::MIN_UTC).is_err());
        assert!(timestamp("due", DateTime::<Utc>::MAX_UTC).is_ok());
        let earliest = DateTime::from_timestamp_micros(PG_MIN_TIMESTAMP_MICROS).unwrap();
        assert!(timestamp("due", earliest).is_ok());
        assert!(timestamp("due", earliest - Duration::microseconds(1)).is_err());
    }

    #[test]
    fn counts_characters_not_bytes() {
        let title = "é".repeat(255);
        assert!(required_text("title", &title, 255).is_ok());
        assert!(required_text("title", &format!("{title}é"), 255).is_err());
    }

    #[test]
    fn trims_and_rejects_blank() {
        assert_eq!(required_text("t", "  a b  ", 5).unwrap(), "a b");
        assert!(required_text("t", " \t\n ", 5).is_err());
        assert!(required_text("t", "a\0b", 5).is_err());
    }

    /// The `[^...]` class of the SQL regular expression for [`INVISIBLE`], with
    /// `\uXXXX` and `\UXXXXXXXX` escapes as PostgreSQL's regular expressions read them.
    fn sql_class(extra: &str) -> String {
        let escape = |c: char| match u32::from(c) {
            n @ 0..=0xFFFF => format!("\\u{n:04X}"),
            n => format!("\\U{n:08X}"),
        };
        let mut class = format!("[^{extra}");
        for range in INVISIBLE {
            class.push_str(&escape(*range.start()));
            if range.start() != range.end() {
                class.push('-');
                class.push_str(&escape(*range.end()));
            }
        }
        class.push(']');
        class
    }

    const VISIBLE_TEXT_UP: &str =
        include_str!("../../migrations/2026-12-02-000001_visible_text/up.sql");
    const HABITS_UP: &str = include_str!("../../migrations/2026-12-02-000005_habits/up.sql");

    #[test]
    fn the_habits_migration_spells_out_the_same_invisible_ranges() {
        let text = sql_class("");
        assert!(
            HABITS_UP.contains(&format!("name ~ '{text}'")),
            "habits_name_valid must use {text}"
        );
        assert_eq!(
            HABITS_UP.matches("[^").count(),
            1,
            "one class, no older copy"
        );
    }

    #[test]
    fn dates_before_postgresqls_first_day_are_rejected() {
        let first = NaiveDate::from_ymd_opt(-4713, 11, 24).unwrap();
        assert_eq!(date("day", first).unwrap(), first);
        assert!(date("day", first.pred_opt().unwrap()).is_err());
        assert!(date("day", NaiveDate::MIN).is_err());
        assert!(date("day", NaiveDate::MAX).is_ok());
    }

    #[test]
    fn the_migration_spells_out_the_same_invisible_ranges() {
        let (text, email) = (sql_class(""), sql_class("@"));
        assert!(
            VISIBLE_TEXT_UP.contains(&format!("title ~ '{text}'")),
            "tasks_title_valid must use {text}"
        );
        assert!(
            VISIBLE_TEXT_UP.contains(&format!("name ~ '{text}'")),
            "users_name_valid must use {text}"
        );
        assert!(
            VISIBLE_TEXT_UP.contains(&format!("email ~ '^{email}+@{email}+$'")),
            "users_email_valid must use {email}"
        );
        // No other bracket expression (an older copy of the ranges) hides in the file.
        let brackets = VISIBLE_TEXT_UP.matches("[^").count();
        assert_eq!(brackets, 4, "expected the four classes above and no other");
    }

    #[test]
    fn invisible_ranges_are_sorted_disjoint_and_cover_rusts_white_space_and_controls() {
        for pair in INVISIBLE.windows(2) {
            assert!(pair[0].start() <= pair[0].end(), "{:?}", pair[0]);
            assert!(
                u32::from(*pair[0].end()) + 1 < u32::from(*pair[1].start()),
                "{:?} and {:?} overlap or touch: merge them",
                pair[0],
                pair[1]
            );
        }
        // char::is_whitespace is White_Space and char::is_control is Cc.
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            if c.is_whitespace() || c.is_control() {
                assert!(is_invisible(c), "{c:?}");
            }
        }
        let named = [
            '\u{200B}',  // ZERO WIDTH SPACE
            '\u{FEFF}',  // ZERO WIDTH NO-BREAK SPACE (BOM)
            '\u{2060}',  // WORD JOINER
            '\u{3164}',  // HANGUL FILLER
            '\u{FFA0}',  // HALFWIDTH HANGUL FILLER
            '\u{115F}',  // HANGUL CHOSEONG FILLER
            '\u{00AD}',  // SOFT HYPHEN
            '\u{034F}',  // COMBINING GRAPHEME JOINER
            '\u{180E}',  // MONGOLIAN VOWEL SEPARATOR
            '\u{200D}',  // ZERO WIDTH JOINER
            '\u{202E}',  // RIGHT-TO-LEFT OVERRIDE
            '\u{2066}',  // LEFT-TO-RIGHT ISOLATE
            '\u{2800}',  // BRAILLE PATTERN BLANK
            '\u{FE0F}',  // VARIATION SELECTOR-16
            '\u{E0020}', // TAG SPACE
            '\u{E01EF}', // VARIATION SELECTOR-256
        ];
        for c in named {
            assert!(is_invisible(c), "{c:?}");
        }
        for c in [
            'a', '0', '!', '-', 'é', '中', 'ע', '😀', '\u{301}', '\u{2801}', '\u{FFFD}',
        ] {
            assert!(!is_invisible(c), "{c:?}");
        }
    }

    #[test]
    fn required_text_needs_a_visible_character() {
        for blank in [
            "",
            "\u{200B}",
            " \u{FEFF} ",
            "\u{2060}\u{3164}\u{AD}",
            "\u{115F}\u{1160}\u{FFA0}",
            "\u{2800}\u{2800}",
            "\u{202E}\u{200F}\u{61C}",
            "\u{FE0F}\u{E0041}\u{E007F}",
            "\u{1}\u{7F}\u{9F}",
        ] {
            let err = required_text("title", blank, 255).unwrap_err();
            assert!(
                err.to_string().contains("must contain a visible character"),
                "{blank:?}: {err}"
            );
        }
        for visible in [
            "a",
            "\u{200B}a\u{200B}",
            "e\u{301}",
            "中文",
            "עברית",
            "😀",
            "🏳\u{FE0F}\u{200D}🌈",
            "-",
        ] {
            assert_eq!(required_text("title", visible, 255).unwrap(), visible);
        }
        assert_eq!(required_text("t", " \u{200B}a ", 5).unwrap(), "\u{200B}a");
    }

    #[test]
    fn emails_need_one_at_and_no_spaces() {
        assert_eq!(
            email("email", " Ada@Example.com ").unwrap(),
            "Ada@Example.com"
        );
        for bad in [
            "",
            "ada",
            "@x",
            "ada@",
            "a@b@c",
            "a b@c",
            "a@b\u{a0}c",
            "a\0@b",
            "a\u{200B}b@c",
            "a@b\u{FEFF}",
            "\u{2060}a@b",
            "a@b\u{85}c",
            "a\u{1}@b",
        ] {
            assert!(email("email", bad).is_err(), "{bad:?}");
        }
        assert!(email("email", &format!("{}@x.io", "a".repeat(250))).is_err());
    }
}
