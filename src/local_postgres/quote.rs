//! Quoting: percent-encoding for URLs, a POSIX shell's quotes, postgresql.conf values.

use std::fmt::Write as _;

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(super) fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Quotes for a POSIX shell when needed.
pub(super) fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// A postgresql.conf value: single-quoted, with quotes and backslashes escaped (a value
/// given already quoted is kept).
pub(super) fn conf_quote(value: &str) -> String {
    if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\\', r"\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::super::error::{tail, TAIL_LINES};
    use super::*;

    #[test]
    fn quoting_and_encoding() {
        assert_eq!(percent_encode(b"/tmp/a b"), "%2Ftmp%2Fa%20b");
        assert_eq!(percent_encode(b"todo_dev-1.x~"), "todo_dev-1.x~");
        assert_eq!(conf_quote("on"), "'on'");
        assert_eq!(conf_quote(""), "''");
        assert_eq!(conf_quote("it's"), "'it''s'");
        assert_eq!(conf_quote(r"a\b"), r"'a\\b'");
        assert_eq!(conf_quote("'kept'"), "'kept'");
        assert_eq!(shell_quote("/tmp/x"), "/tmp/x");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(tail(&"x\n".repeat(30)).lines().count(), TAIL_LINES);
    }
}
