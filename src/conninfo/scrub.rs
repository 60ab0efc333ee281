//! Printable text: a connection string with its secrets masked ([`redact`]), and free
//! text (error messages, log lines) with a known connection's secrets and anything
//! else that looks like a password removed ([`scrub`], [`redact_free_text`]).

use super::render::percent_encode;
use super::{Conninfo, MASK};

/// The printable form of a connection string: libpq's reading of it with its secrets
/// masked, or a placeholder when libpq cannot read it.
pub fn redact(text: &str) -> String {
    match Conninfo::parse(text) {
        // Nothing secret: the string as its owner wrote it.
        Ok(info) if info.secrets().next().is_none() => text.to_owned(),
        Ok(info) => info.redacted(),
        Err(reason) => format!("{MASK} (a connection string libpq cannot parse: {reason})"),
    }
}

/// libpq's message for a string it cannot parse, made printable. No text taken from
/// the string may pass: with the string unparsed, no one can say which part of it is
/// the password. libpq quotes the offending part (a percent-encoded token, a value, an
/// option, at times the whole URI) without escaping it, so a quote inside the password
/// would end a quoted part early: everything from the first double quote to the last
/// becomes [`MASK`] (an unpaired quote masks the rest), and so does anything after a
/// `://` up to white space, should a message ever name the string unquoted. What
/// remains is libpq's own wording: `invalid percent-encoded token: "***"`.
///
/// This is the one place the text of an unparseable connection string is cut out of a
/// message; every error about such a string starts from it ([`Conninfo::parse`]).
pub(crate) fn unparseable_reason(libpq_message: &str) -> String {
    let message = libpq_message.trim();
    let out = match (message.find('"'), message.rfind('"')) {
        (Some(first), Some(last)) if last > first => {
            format!("{}{MASK}{}", &message[..=first], &message[last..])
        }
        (Some(first), _) => format!("{}{MASK}", &message[..=first]),
        _ => message.to_owned(),
    };
    let mut masked = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(scheme_end) = rest.find("://") {
        masked.push_str(&rest[..scheme_end + 3]);
        masked.push_str(MASK);
        let tail = &rest[scheme_end + 3..];
        rest = &tail[tail.find(char::is_whitespace).unwrap_or(tail.len())..];
    }
    masked.push_str(rest);
    masked
}

/// `text` (an error message, a log line) with every secret of `info` removed, as given
/// and percent-encoded, and then anything else that looks like a password
/// ([`redact_free_text`]).
pub fn scrub(text: &str, info: Option<&Conninfo>) -> String {
    let mut out = text.to_owned();
    if let Some(info) = info {
        // Longest first, so a secret that contains another is removed whole.
        let mut secrets: Vec<String> = info
            .secrets()
            .flat_map(|s| [s.to_owned(), percent_encode(s)])
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for secret in secrets {
            if !secret.is_empty() {
                out = out.replace(&secret, MASK);
            }
        }
    }
    redact_free_text(&out)
}

/// Removes every password-looking value from free text that may quote a connection
/// string: `scheme://user:secret@`, `password=secret`, `password='se cret'`. A guess,
/// for text whose connection string is not known; [`scrub`] with the string's
/// [`Conninfo`] removes its secrets exactly.
pub fn redact_free_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // user:password@ inside any URL; libpq's grammar ends the credentials at the last
    // '@' before the first '/', so everything up to there may be password.
    while let Some(scheme_end) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme_end + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', ' ', '\n']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon]);
                out.push(':');
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    redact_keyword_password(&out)
}

/// `password=value` (any case, `sslpassword` too) with the value masked; a value runs
/// to the next unescaped white space or `&`, or is quoted with backslash escapes.
fn redact_keyword_password(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find("password") {
        let key_end = pos + found + "password".len();
        let after = &text[key_end..];
        let trimmed = after.trim_start();
        let Some(value) = trimmed.strip_prefix('=') else {
            out.push_str(&text[pos..key_end]);
            pos = key_end;
            continue;
        };
        let value = value.trim_start();
        let value_start = text.len() - value.len();
        let quoted = value.starts_with('\'');
        let mut end = value.len();
        let mut chars = value.char_indices().skip(usize::from(quoted));
        while let Some((i, c)) = chars.next() {
            if c == '\\' {
                chars.next();
            } else if quoted && c == '\'' {
                end = i + 1;
                break;
            } else if !quoted && (c.is_whitespace() || c == '&') {
                end = i;
                break;
            }
        }
        out.push_str(&text[pos..value_start]);
        out.push_str(MASK);
        pos = value_start + end;
    }
    out.push_str(&text[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_forms_keep_everything_but_the_secrets() {
        assert_eq!(
            redact("postgres://app:pw@db:5432/todo"),
            "postgres://app:***@db:5432/todo"
        );
        assert_eq!(
            redact("host=db password='p w' user=app"),
            "user=app password=*** host=db"
        );
        assert_eq!(
            redact("postgres://app@/todo?host=/run/pg&sslpassword=k"),
            "postgres://app@/todo?host=%2Frun%2Fpg&sslpassword=***"
        );
    }

    #[test]
    fn unparseable_strings_print_no_part_of_themselves() {
        for input in [
            "postgres://u:secret%zz@h/db",
            "host=h password='secret",
            "host=h password=secret bogus=1",
            "postgres://u:secret@h/db?bogus=1",
        ] {
            let printed = redact(input);
            assert!(!printed.contains("secret"), "{input} -> {printed}");
            assert!(printed.starts_with("*** (a connection string"), "{printed}");
        }
    }

    #[test]
    fn unparseable_reasons_keep_libpq_wording_and_nothing_quoted() {
        for (message, printable) in [
            (
                "invalid percent-encoded token: \"pw%ZZbad\"\n",
                "invalid percent-encoded token: \"***\"",
            ),
            (
                "missing \"=\" after \"secret\" in connection info string",
                "missing \"***\" in connection info string",
            ),
            ("unterminated: \"secret", "unterminated: \"***"),
            // libpq quotes without escaping: a quote inside the password.
            (
                "invalid percent-encoded token: \"Qz\"Tail%ZZ\"",
                "invalid percent-encoded token: \"***\"",
            ),
            (
                "bad URI postgres://u:secret@h/db here",
                "bad URI postgres://*** here",
            ),
        ] {
            assert_eq!(unparseable_reason(message), printable);
        }
    }

    #[test]
    fn scrub_removes_known_secrets_and_password_lookalikes() {
        let info = Conninfo::parse("postgres://u:s%2Fcr%23t@h/db").unwrap();
        let text = "failed: s/cr#t and s%2Fcr%23t, also password=other and postgres://a:b@c/d";
        let scrubbed = scrub(text, Some(&info));
        for leak in ["s/cr#t", "s%2Fcr%23t", "other", ":b@"] {
            assert!(!scrubbed.contains(leak), "{scrubbed}");
        }
        assert_eq!(redact_free_text("no secrets here"), "no secrets here");
        assert_eq!(
            redact_free_text("to postgres://app:s3cret@db.example/todo: refused"),
            "to postgres://app:***@db.example/todo: refused"
        );
        assert_eq!(redact_free_text("password=ab\\ cd x"), "password=*** x");
    }

    #[test]
    fn redacts_url_passwords_in_every_form() {
        for (input, secret) in [
            ("postgres://u:hunter2@h/db", "hunter2"),
            (
                "postgresql://u:hun%40ter@h:5/db?sslmode=require",
                "hun%40ter",
            ),
            (
                "postgres://u@h/db?password=hunter2&sslmode=require",
                "hunter2",
            ),
            ("host=h user=u password=hunter2 dbname=d", "hunter2"),
            ("host=h password = 'hun ter\\'2' dbname=d", "ter"),
            ("PASSWORD=hunter2", "hunter2"),
            ("postgres://app:hunter2@127.0.0.1:notaport/db", "hunter2"),
            ("postgres://app:hunter2@[::1/db", "hunter2"),
            ("postgres://app:hunter2@/db?host=/socket/dir", "hunter2"),
            ("postgres://app:hunter2@h1:5432,h2:5433/db", "hunter2"),
        ] {
            let redacted = redact(input);
            assert!(!redacted.contains(secret), "{input} -> {redacted}");
            assert!(redacted.contains("***"), "{input} -> {redacted}");
            assert!(!redact_free_text(input).contains(secret), "{input}");
        }
    }

    #[test]
    fn several_hosts_print_every_host_and_no_password() {
        assert_eq!(
            redact("postgres://app:s3cret@h1:5432,h2:5433,h3:5434/todo?target_session_attrs=read-write"),
            "postgres://app:***@h1:5432,h2:5433,h3:5434/todo?target_session_attrs=read-write"
        );
        assert_eq!(
            redact("host=h1,h2,h3 port=5432,5433,5434 user=app password=s3cret dbname=todo"),
            "user=app password=*** dbname=todo host=h1,h2,h3 port=5432,5433,5434"
        );
        // Hosts with different ports, some with none, and an IPv6 address.
        let printed = redact("postgresql://app:s3cret@h1,[::1]:5433,h3/todo");
        assert_eq!(printed, "postgresql://app:***@h1,[::1]:5433,h3/todo");
        // The percent-encoded form of the password is removed from free text too.
        let info = Conninfo::parse("postgres://app:s%40cret@h1:1,h2:2/todo").unwrap();
        let text = "connection to server at \"h1\" failed; s@cret s%40cret";
        assert!(!scrub(text, Some(&info)).contains("cret"));
    }

    #[test]
    fn keeps_urls_without_password_as_they_are() {
        let url = "postgres://postgres@localhost/todo?host=%2Ftmp";
        assert_eq!(redact(url), url);
        assert_eq!(redact_free_text("no secrets here"), "no secrets here");
    }
}
