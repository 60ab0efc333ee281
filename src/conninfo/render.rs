//! A [`Conninfo`] written back as a connection string, in the form of its input (URI
//! or key=value), with values quoted and encoded so that libpq reads them back the
//! same.

use std::fmt::Write as _;

use super::{Conninfo, Setting, MASK};

impl Conninfo {
    pub(super) fn render(&self, redact: bool) -> String {
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

/// A key=value value as libpq's grammar reads it back: bare when it holds no space,
/// quote or backslash, else quoted with those escaped.
pub(super) fn quote_value(value: &str) -> String {
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
pub(super) fn percent_encode(value: &str) -> String {
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
