//! [`Conninfo::parse`]: libpq's own reading of a connection string, through
//! `PQconninfoParse`. This is the crate's one call into libpq's C API; every pointer it
//! touches stays in this file.

use std::ffi::{CStr, CString};

use super::{Conninfo, Setting};

impl Conninfo {
    /// libpq's reading of `text`.
    ///
    /// # Errors
    /// libpq's message when it cannot parse the string, with every part it quotes from
    /// the string masked ([`super::scrub::unparseable_reason`]): the offending part may
    /// be the password.
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
                super::scrub::unparseable_reason(&message)
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
    fn host_lists_are_counted_and_checked_as_libpq_connects_them() {
        for (input, hosts, problem) in [
            ("postgres://h/db", 1, false),
            ("postgres:///db", 0, false),
            ("postgres://h1:1,h2:2,h3:3/db", 3, false),
            ("postgres://h1,h2,h3:3/db", 3, false),
            ("postgres://h1,h2/db?port=5432", 2, false),
            ("host=h1,h2 port=1,2,3", 2, true),
            ("host=h1 port=1,2", 1, true),
            ("hostaddr=127.0.0.1,127.0.0.2", 2, false),
            (
                "postgres://h1,h2/db?target_session_attrs=read-write",
                2,
                false,
            ),
            (
                "postgres://h1,h2/db?target_session_attrs=prefer-standby",
                2,
                false,
            ),
            (
                "postgres://h1,h2/db?target_session_attrs=primary-ish",
                2,
                true,
            ),
        ] {
            let info = Conninfo::parse(input).unwrap();
            assert_eq!(info.host_count(), hosts, "{input}");
            assert_eq!(info.multi_host_problem().is_some(), problem, "{input}");
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
}
