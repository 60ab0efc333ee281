//! The validation rules shared by inputs and patches. The migrations' CHECK constraints
//! hold the same rules, so rows written by other clients obey them too.

use chrono::{DateTime, Duration, TimeZone, Utc};

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

/// PostgreSQL text cannot hold NUL; reject it with a clear error instead of the server's.
pub(crate) fn no_nul(field: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::validation(field, "must not contain NUL characters"));
    }
    Ok(())
}

/// A required text: trimmed, non-empty, at most `max` characters, no NUL.
pub(crate) fn required_text<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str> {
    no_nul(field, value)?;
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Error::validation(
            field,
            "must not be empty or only whitespace",
        ));
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
/// whitespace, at most [`EMAIL_MAX_CHARS`] characters.
pub(crate) fn email(field: &str, value: &str) -> Result<String> {
    no_nul(field, value)?;
    let email = value.trim();
    at_most(field, email, EMAIL_MAX_CHARS)?;
    let plausible = match email.split_once('@') {
        Some((local, domain)) => !local.is_empty() && !domain.is_empty() && !domain.contains('@'),
        None => false,
    };
    if !plausible || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::validation(
            field,
            "must be an email address like name@example.com (one @, no spaces)",
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
        ] {
            assert!(email("email", bad).is_err(), "{bad:?}");
        }
        assert!(email("email", &format!("{}@x.io", "a".repeat(250))).is_err());
    }
}
