//! Connection strings as libpq reads them, and their printable form.
//!
//! A connection string reaches libpq in one of two forms, a URI
//! (`postgres://user:secret@host/db?sslmode=require`) or key=value pairs
//! (`host=db password='s3 cret'`), and libpq's grammar for both has corners no other
//! parser shares: a URI's password may hold `#` or `?` unencoded, a key=value value may
//! hold a backslash-escaped space. So the crate never guesses: [`Conninfo::parse`] asks
//! libpq itself (`PQconninfoParse`, from the libpq diesel already links), and the
//! printable form is rebuilt from libpq's reading with every value libpq calls secret
//! (`password`, `sslpassword`: the options its `dispchar` marks `*`) replaced by `***`.
//! A string libpq cannot parse prints as a placeholder, since no one can say which part
//! of it is the password.
//!
//! This module is a leaf: it uses nothing of the crate's.

use std::ffi::{CStr, CString};
use std::fmt::Write as _;

/// What replaces a secret in printable text.
pub const MASK: &str = "***";

/// One option libpq found in a connection string.
#[derive(Clone, PartialEq, Eq)]
struct Setting {
    keyword: String,
    value: String,
    secret: bool,
}

/// A connection string as libpq reads it: the options it sets, in libpq's order.
#[derive(Clone, PartialEq, Eq)]
pub struct Conninfo {
    settings: Vec<Setting>,
    /// The URI scheme of the input (`postgres` or `postgresql`), when it was a URI.
    scheme: Option<&'static str>,
}

impl std::fmt::Debug for Conninfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Conninfo {
    /// libpq's reading of `text`.
    ///
    /// # Errors
    /// libpq's message when it cannot parse the string, cut before its first quote
    /// (libpq quotes the offending part of the string, which may be the password).
    pub fn parse(text: &str) -> Result<Self, String> {
        let c_text = CString::new(text)
            .map_err(|_| "the connection string contains a NUL character".to_owned())?;
        let mut errmsg: *mut std::os::raw::c_char = std::ptr::null_mut();
        // SAFETY: `c_text` is a valid NUL-terminated string for the call; `errmsg` is a
        // valid out pointer. libpq returns either NULL (and maybe sets `errmsg`) or an
        // array of options terminated by an entry with a NULL keyword, which stays
        // valid until PQconninfoFree.
        let options = unsafe { pq_sys::PQconninfoParse(c_text.as_ptr(), &mut errmsg) };
        if options.is_null() {
            let message = if errmsg.is_null() {
                "libpq could not parse the connection string (out of memory?)".to_owned()
            } else {
                // SAFETY: libpq set `errmsg` to a NUL-terminated string it allocated,
                // which we copy and then free with PQfreemem, as its docs require.
                let message = unsafe { CStr::from_ptr(errmsg) }
                    .to_string_lossy()
                    .into_owned();
                unsafe { pq_sys::PQfreemem(errmsg.cast()) };
                without_quoted_parts(&message)
            };
            return Err(message);
        }
        let mut settings = Vec::new();
        let mut entry = options;
        // SAFETY: `entry` walks the array libpq returned, up to its terminating entry
        // (NULL keyword); every non-NULL string in it is NUL-terminated. The array is
        // freed once, after the last read.
        unsafe {
            while !(*entry).keyword.is_null() {
                let option = &*entry;
                if !option.val.is_null() {
                    let secret = !option.dispchar.is_null()
                        && CStr::from_ptr(option.dispchar).to_bytes() == b"*";
                    settings.push(Setting {
                        keyword: CStr::from_ptr(option.keyword)
                            .to_string_lossy()
                            .into_owned(),
                        value: CStr::from_ptr(option.val).to_string_lossy().into_owned(),
                        secret,
                    });
                }
                entry = entry.add(1);
            }
            pq_sys::PQconninfoFree(options);
        }
        let scheme = if text.starts_with("postgresql://") {
            Some("postgresql")
        } else if text.starts_with("postgres://") {
            Some("postgres")
        } else {
            None
        };
        Ok(Conninfo { settings, scheme })
    }

    /// The value of `keyword`, if the string sets it.
    pub fn get(&self, keyword: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|s| s.keyword == keyword)
            .map(|s| s.value.as_str())
    }

    /// The same connection with `keyword` set to `value` (e.g. another `dbname`).
    #[must_use]
    pub fn with(mut self, keyword: &str, value: &str) -> Self {
        match self.settings.iter_mut().find(|s| s.keyword == keyword) {
            Some(setting) => setting.value = value.to_owned(),
            None => self.settings.push(Setting {
                keyword: keyword.to_owned(),
                value: value.to_owned(),
                secret: is_secret_keyword(keyword),
            }),
        }
        self
    }

    /// The values libpq treats as secret (passwords), for scrubbing free text.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.settings
            .iter()
            .filter(|s| s.secret && !s.value.is_empty())
            .map(|s| s.value.as_str())
    }

    /// The connection string, secrets included, in the form of the input: what libpq
    /// reads from it is what it read from the input.
    pub fn to_connection_string(&self) -> String {
        self.render(false)
    }

    /// The printable form: as [`Conninfo::to_connection_string`], with every secret
    /// replaced by [`MASK`].
    pub fn redacted(&self) -> String {
        self.render(true)
    }

    fn render(&self, redact: bool) -> String {
        let value = |s: &Setting| -> String {
            if redact && s.secret {
                MASK.to_owned()
            } else {
                s.value.clone()
            }
        };
        match self.scheme {
            Some(scheme) => self.render_uri(scheme, &|s: &Setting| {
                if redact && s.secret {
                    MASK.to_owned()
                } else {
                    percent_encode(&s.value)
                }
            }),
            None => self
                .settings
                .iter()
                .map(|s| format!("{}={}", s.keyword, quote_value(&value(s))))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// The URI form; `value` gives each setting's value as it goes in the URI.
    fn render_uri(&self, scheme: &str, value: &dyn Fn(&Setting) -> String) -> String {
        let find = |keyword: &str| self.settings.iter().find(|s| s.keyword == keyword);
        let mut out = format!("{scheme}://");
        let mut in_query: Vec<&Setting> = Vec::new();
        let user = find("user");
        let password = find("password");
        if user.is_some() || password.is_some() {
            if let Some(user) = user {
                out.push_str(&value(user));
            }
            if let Some(password) = password {
                out.push(':');
                out.push_str(&value(password));
            }
            out.push('@');
        }
        // Hosts go in the authority when libpq's URI grammar can say them there: network
        // names or addresses, each with its port when there is one port per host.
        let host = find("host");
        let port = find("port");
        let mut host_in_authority = false;
        if let Some(host) = host {
            let hosts: Vec<&str> = host.value.split(',').collect();
            let ports: Vec<&str> = port.map_or(Vec::new(), |p| p.value.split(',').collect());
            let representable = hosts
                .iter()
                .all(|h| !h.is_empty() && !h.starts_with('/') && !h.starts_with('@'))
                && (ports.is_empty() || ports.len() == hosts.len());
            if representable {
                host_in_authority = true;
                let authority: Vec<String> = hosts
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        let h = if h.contains(':') {
                            format!("[{h}]")
                        } else {
                            percent_encode(h)
                        };
                        match ports.get(i).filter(|p| !p.is_empty()) {
                            Some(p) => format!("{h}:{}", percent_encode(p)),
                            None => h,
                        }
                    })
                    .collect();
                out.push_str(&authority.join(","));
            }
        }
        if let Some(dbname) = find("dbname") {
            out.push('/');
            out.push_str(&value(dbname));
        }
        for setting in &self.settings {
            let placed = match setting.keyword.as_str() {
                "user" | "password" | "dbname" => true,
                "host" | "port" => host_in_authority,
                _ => false,
            };
            if !placed {
                in_query.push(setting);
            }
        }
        for (i, setting) in in_query.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            let _ = write!(
                out,
                "{}={}",
                percent_encode(&setting.keyword),
                value(setting)
            );
        }
        out
    }
}

/// `text` pointed at database `dbname`, everything else as written: in a URI the path
/// is replaced where libpq's grammar puts it (after the first `@` or `/` that ends the
/// credentials, and the host list up to `/` or `?`); a key=value string gets a `dbname`
/// at its end (libpq: the last of repeated keywords wins). If libpq would not read the
/// result as `text` with that one change (a `?dbname=` parameter, say), the string is
/// rebuilt from libpq's reading instead.
///
/// # Errors
/// libpq's reason when it cannot parse `text` (see [`Conninfo::parse`]).
#[cfg(any(test, feature = "testing"))]
pub fn with_dbname(text: &str, dbname: &str) -> Result<String, String> {
    let info = Conninfo::parse(text)?;
    let expected = info.clone().with("dbname", dbname);
    let candidate = match info.scheme {
        Some(scheme) => {
            let rest = &text[scheme.len() + 3..];
            let host_start = match rest.find(['@', '/']) {
                Some(i) if rest.as_bytes()[i] == b'@' => i + 1,
                _ => 0,
            };
            let host_end = rest[host_start..]
                .find(['/', '?'])
                .map_or(rest.len(), |i| host_start + i);
            let tail = &rest[host_end..];
            let params = tail.find('?').map_or("", |i| &tail[i..]);
            format!(
                "{scheme}://{}/{}{params}",
                &rest[..host_end],
                percent_encode(dbname)
            )
        }
        None => format!("{text} dbname={}", quote_value(dbname)),
    };
    let same = Conninfo::parse(&candidate).is_ok_and(|got| {
        got.get("dbname") == Some(dbname) && {
            let mut got = got.settings;
            let mut want = expected.settings.clone();
            got.sort_by(|a, b| a.keyword.cmp(&b.keyword));
            want.sort_by(|a, b| a.keyword.cmp(&b.keyword));
            got == want
        }
    });
    Ok(if same {
        candidate
    } else {
        expected.to_connection_string()
    })
}

/// `text` with each `(keyword, value)` of `defaults` that it does not set added at its
/// end, everything else as written: `&keyword=value` (or `?keyword=value`) after a
/// URI, ` keyword=value` after a key=value string. A keyword the string sets already
/// keeps the string's value. If libpq would not read the result as `text` plus the
/// added settings, the string is rebuilt from libpq's reading instead (as
/// [`with_dbname`] does).
///
/// `postgres://app@db/todo?keepalives_idle=30` with `keepalives_idle=10` and
/// `tcp_user_timeout=20000` is `postgres://app@db/todo?keepalives_idle=30&tcp_user_timeout=20000`.
///
/// # Errors
/// libpq's reason when it cannot parse `text` (see [`Conninfo::parse`]), or when libpq
/// does not know one of the keywords (an old libpq).
pub fn with_defaults(text: &str, defaults: &[(&str, &str)]) -> Result<String, String> {
    let info = Conninfo::parse(text)?;
    let missing: Vec<(&str, &str)> = defaults
        .iter()
        .copied()
        .filter(|(keyword, _)| info.get(keyword).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(text.to_owned());
    }
    let expected = missing
        .iter()
        .fold(info.clone(), |info, (k, v)| info.with(k, v));
    let reads_as_expected = |candidate: &str| {
        Conninfo::parse(candidate).is_ok_and(|got| {
            let mut got = got.settings;
            let mut want = expected.settings.clone();
            got.sort_by(|a, b| a.keyword.cmp(&b.keyword));
            want.sort_by(|a, b| a.keyword.cmp(&b.keyword));
            got == want
        })
    };
    let candidates: Vec<String> = match info.scheme {
        Some(_) => {
            let params = missing
                .iter()
                .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            vec![format!("{text}&{params}"), format!("{text}?{params}")]
        }
        None => {
            let params = missing
                .iter()
                .map(|(k, v)| format!("{k}={}", quote_value(v)))
                .collect::<Vec<_>>()
                .join(" ");
            vec![format!("{text} {params}")]
        }
    };
    if let Some(found) = candidates.into_iter().find(|c| reads_as_expected(c)) {
        return Ok(found);
    }
    let rebuilt = expected.to_connection_string();
    if reads_as_expected(&rebuilt) {
        Ok(rebuilt)
    } else {
        // The rebuilt string does not parse either: libpq does not know a keyword.
        Conninfo::parse(&rebuilt)
            .map(|_| rebuilt)
            .map_err(|e| format!("libpq does not take these settings: {e}"))
    }
}

/// libpq's password options, for settings added with [`Conninfo::with`].
fn is_secret_keyword(keyword: &str) -> bool {
    matches!(keyword, "password" | "sslpassword")
}

/// A key=value value as libpq's grammar reads it back: bare when it holds no space,
/// quote or backslash, else quoted with those escaped.
fn quote_value(value: &str) -> String {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_ascii_whitespace() || c == '\'' || c == '\\' || c == '=');
    if plain {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters, which libpq's URI
/// decoder reads back unchanged.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// `message` up to its first double quote: libpq quotes the part of the string it
/// could not read, which may be the password.
fn without_quoted_parts(message: &str) -> String {
    let cut = message.find('"').map_or(message, |i| &message[..i]);
    cut.trim().trim_end_matches(':').trim_end().to_owned()
}

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
    fn uri_passwords_are_read_as_libpq_reads_them() {
        for (input, password) in [
            ("postgres://u:hunter2@h/db", "hunter2"),
            ("postgres://u:hun%40ter@h:5/db?sslmode=require", "hun@ter"),
            ("postgres://u:pa#ss@h/db", "pa#ss"),
            ("postgres://u:pa?ss@h/db", "pa?ss"),
            ("postgres://u@h/db?password=a%26b&sslmode=require", "a&b"),
            ("postgresql://u:x@h1:5432,h2:5433/db", "x"),
        ] {
            let info = Conninfo::parse(input).unwrap();
            assert_eq!(info.get("password"), Some(password), "{input}");
            assert!(!info.redacted().contains(password), "{input}");
            // The rebuilt string means the same to libpq.
            let again = Conninfo::parse(&info.to_connection_string()).unwrap();
            assert_eq!(again.get("password"), Some(password), "{input}");
            assert!(again.settings == info.settings, "{input}");
        }
    }

    #[test]
    fn key_value_passwords_are_read_as_libpq_reads_them() {
        for (input, password) in [
            ("host=h password=ab\\ cd", "ab cd"),
            ("host=h password='p w' user=u", "p w"),
            ("host=h password = 'it\\'s' dbname=d", "it's"),
            ("host=h password=a&b", "a&b"),
        ] {
            let info = Conninfo::parse(input).unwrap();
            assert_eq!(info.get("password"), Some(password), "{input}");
            let redacted = info.redacted();
            assert!(redacted.contains("password=***"), "{redacted}");
            let again = Conninfo::parse(&info.to_connection_string()).unwrap();
            assert!(again.settings == info.settings, "{input}");
        }
    }

    #[test]
    fn another_database_keeps_the_rest_as_written() {
        for (input, expected) in [
            (
                "postgres://u:p@h:5432/app?sslmode=require",
                "postgres://u:p@h:5432/t1?sslmode=require",
            ),
            ("postgres://u:p#w@h/app", "postgres://u:p#w@h/t1"),
            ("postgres://u:p?w@h", "postgres://u:p?w@h/t1"),
            ("postgres://h/app?dbname=other", "postgres://h/t1"),
            ("host=h password=a\\ b", "host=h password=a\\ b dbname=t1"),
        ] {
            let got = with_dbname(input, "t1").unwrap();
            assert_eq!(got, expected, "{input}");
            let (before, after) = (
                Conninfo::parse(input).unwrap(),
                Conninfo::parse(&got).unwrap(),
            );
            assert_eq!(after.get("dbname"), Some("t1"));
            assert_eq!(after.get("password"), before.get("password"), "{input}");
        }
    }

    #[test]
    fn defaults_are_added_only_where_the_string_sets_nothing() {
        let defaults = [("tcp_user_timeout", "20000"), ("keepalives", "1")];
        for (input, expected) in [
            (
                "postgres://u:p@h/db",
                "postgres://u:p@h/db?tcp_user_timeout=20000&keepalives=1",
            ),
            (
                "postgres://u:p@h/db?sslmode=require",
                "postgres://u:p@h/db?sslmode=require&tcp_user_timeout=20000&keepalives=1",
            ),
            (
                "postgres://u:p@h/db?keepalives=0",
                "postgres://u:p@h/db?keepalives=0&tcp_user_timeout=20000",
            ),
            (
                "postgres://u:p?w@h/db",
                "postgres://u:p?w@h/db?tcp_user_timeout=20000&keepalives=1",
            ),
            (
                "host=h password='a b' tcp_user_timeout=5",
                "host=h password='a b' tcp_user_timeout=5 keepalives=1",
            ),
        ] {
            let got = with_defaults(input, &defaults).unwrap();
            assert_eq!(got, expected, "{input}");
            let (before, after) = (
                Conninfo::parse(input).unwrap(),
                Conninfo::parse(&got).unwrap(),
            );
            assert_eq!(after.get("password"), before.get("password"), "{input}");
        }
        // A string that sets everything is returned as it is.
        let full = "postgres://h/db?tcp_user_timeout=1&keepalives=0";
        assert_eq!(with_defaults(full, &defaults).unwrap(), full);
        assert!(with_defaults("host=h", &[("no_such_option", "1")]).is_err());
        assert!(with_defaults("host='h", &defaults).is_err());
    }

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
    fn keeps_urls_without_password_as_they_are() {
        let url = "postgres://postgres@localhost/todo?host=%2Ftmp";
        assert_eq!(redact(url), url);
        assert_eq!(redact_free_text("no secrets here"), "no secrets here");
    }
}
