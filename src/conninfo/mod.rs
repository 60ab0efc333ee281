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
//!
//! This module holds [`Conninfo`], libpq's reading of a string. The rest has a file
//! each: `parse` asks libpq (the one call into C), `render` writes a reading back as a
//! string, `rewrite` changes one setting of a string and keeps the rest as written,
//! and `scrub` makes strings and free text printable.

mod parse;
mod render;
mod rewrite;
mod scrub;

#[cfg(any(test, feature = "testing"))]
pub use rewrite::with_dbname;
pub use rewrite::{with_defaults, with_session_attrs_for_several_hosts};
pub use scrub::{redact, scrub};

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

    /// How many hosts the string lists (libpq's `host`, or `hostaddr` when only that
    /// is given, comma-separated): 0 when it names none (libpq's default host).
    pub fn host_count(&self) -> usize {
        self.list_len("host").max(self.list_len("hostaddr"))
    }

    /// The number of comma-separated entries of `keyword`'s value (0 when unset).
    fn list_len(&self, keyword: &str) -> usize {
        self.get(keyword).map_or(0, |v| v.split(',').count())
    }

    /// Why libpq would refuse to connect with this string although it parses it, for
    /// the settings of a multi-host string: a port list whose length is neither 1 nor
    /// the number of hosts, or a `target_session_attrs` libpq does not know. libpq
    /// says so only when connecting, quoting no secret but after every retry of the
    /// pool; this says it before. `None` when neither applies.
    pub fn multi_host_problem(&self) -> Option<String> {
        let hosts = self.host_count();
        let ports = self.list_len("port");
        if ports > 1 && ports != hosts.max(1) {
            return Some(format!(
                "it lists {ports} ports for {hosts} hosts: give one port for all hosts, or \
                 one per host"
            ));
        }
        match self.get("target_session_attrs") {
            Some(value) if !TARGET_SESSION_ATTRS.contains(&value) => Some(format!(
                "target_session_attrs must be one of {}",
                TARGET_SESSION_ATTRS.join(", ")
            )),
            _ => None,
        }
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
}

/// The values libpq (14 and later) takes for `target_session_attrs`.
pub const TARGET_SESSION_ATTRS: &[&str] = &[
    "any",
    "read-write",
    "read-only",
    "primary",
    "standby",
    "prefer-standby",
];

/// libpq's password options, for settings added with [`Conninfo::with`].
fn is_secret_keyword(keyword: &str) -> bool {
    matches!(keyword, "password" | "sslpassword")
}
