//! A connection string with one thing changed (another database, added defaults) and
//! everything else as its owner wrote it, checked against libpq's reading.

use super::render::{percent_encode, quote_value};
use super::Conninfo;

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

/// `text` with `target_session_attrs=attrs` added when libpq would try several hosts
/// for it and no `target_session_attrs` is set; otherwise (one host, an explicit
/// value, a string libpq cannot parse) `text` as it is. libpq's default (`any`) takes
/// the first host that answers, which after a failover may be a standby: a pool meant
/// for writes asks for `read-write`, a pool of replicas for `prefer-standby`.
///
/// The hosts are the string's, or, when it names none, those of the environment that
/// libpq reads then (`PGHOST`, `PGHOSTADDR`); a value of `PGTARGETSESSIONATTRS` counts
/// as set. Hosts that come from a service file (`service=`) are not seen: set
/// `target_session_attrs` there.
pub fn with_session_attrs_for_several_hosts(text: &str, attrs: &str) -> String {
    with_session_attrs_in_env(text, attrs, |key| std::env::var(key).ok())
}

/// [`with_session_attrs_for_several_hosts`] with the environment `env`.
fn with_session_attrs_in_env(
    text: &str,
    attrs: &str,
    env: impl Fn(&str) -> Option<String>,
) -> String {
    let Ok(info) = Conninfo::parse(text) else {
        return text.to_owned();
    };
    let hosts = match info.host_count() {
        0 => ["PGHOST", "PGHOSTADDR"]
            .into_iter()
            .filter_map(&env)
            .map(|list| list.split(',').count())
            .max()
            .unwrap_or(0),
        listed => listed,
    };
    let attrs_set =
        info.get("target_session_attrs").is_some() || env("PGTARGETSESSIONATTRS").is_some();
    if hosts > 1 && !attrs_set {
        with_defaults(text, &[("target_session_attrs", attrs)]).unwrap_or_else(|_| text.to_owned())
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn several_hosts_get_session_attrs_unless_they_set_their_own() {
        let rw = |text: &str| with_session_attrs_for_several_hosts(text, "read-write");
        assert_eq!(
            rw("postgres://u:p@h1:5432,h2:5433/db"),
            "postgres://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write"
        );
        assert_eq!(
            rw("postgres://u:p@h1,h2/db?sslmode=require"),
            "postgres://u:p@h1,h2/db?sslmode=require&target_session_attrs=read-write"
        );
        assert_eq!(
            rw("host=h1,h2 port=1,2 password='a b'"),
            "host=h1,h2 port=1,2 password='a b' target_session_attrs=read-write"
        );
        for kept in [
            "postgres://u:p@h1/db",
            "host=h1 port=5432",
            "postgres://h1,h2/db?target_session_attrs=any",
            "host=h1,h2 target_session_attrs=prefer-standby",
            "postgres://u:p%zz@h1,h2/db",
        ] {
            assert_eq!(rw(kept), kept);
        }
    }

    #[test]
    fn hosts_from_the_environment_count_when_the_string_names_none() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |key: &str| {
                vars.iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let rw = |text: &str, vars| with_session_attrs_in_env(text, "read-write", env(vars));
        assert_eq!(
            rw("postgres:///db", &[("PGHOST", "h1,h2")]),
            "postgres:///db?target_session_attrs=read-write"
        );
        assert_eq!(
            rw("dbname=db", &[("PGHOSTADDR", "10.0.0.1,10.0.0.2")]),
            "dbname=db target_session_attrs=read-write"
        );
        for (kept, vars) in [
            ("postgres:///db", &[("PGHOST", "h1")][..]),
            ("postgres:///db", &[][..]),
            (
                "postgres:///db",
                &[("PGHOST", "h1,h2"), ("PGTARGETSESSIONATTRS", "any")][..],
            ),
            // The string's one host wins over the environment's list.
            ("postgres://h0/db", &[("PGHOST", "h1,h2")][..]),
        ] {
            assert_eq!(rw(kept, vars), kept, "{vars:?}");
        }
    }

    #[test]
    fn several_hosts_keep_their_list_and_password_through_rewrites() {
        let url = "postgres://u:p#w@h1:5432,h2:5433,[::1]:5434/app?target_session_attrs=read-write";
        let got = with_dbname(url, "t1").unwrap();
        assert_eq!(
            got,
            "postgres://u:p#w@h1:5432,h2:5433,[::1]:5434/t1?target_session_attrs=read-write"
        );
        let info = Conninfo::parse(&got).unwrap();
        assert_eq!(info.get("host"), Some("h1,h2,::1"));
        assert_eq!(info.get("port"), Some("5432,5433,5434"));
        assert_eq!(info.get("password"), Some("p#w"));
        let kv = with_dbname("host=h1,h2 port=5432,5433 password=s3", "t1").unwrap();
        let info = Conninfo::parse(&kv).unwrap();
        assert_eq!(info.get("host"), Some("h1,h2"));
        assert_eq!(info.get("dbname"), Some("t1"));
        assert_eq!(info.host_count(), 2);
    }
}
