//! Finding the PostgreSQL server binaries (initdb, pg_ctl, postgres).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::LocalPostgresError;

/// Finds the PostgreSQL server binaries: `PG_BINDIR`, then `pg_config --bindir` (when
/// it holds initdb), then initdb on `PATH`, then the highest version of
/// `/usr/lib/postgresql/*/bin`, then `/usr/local/pgsql/bin`.
///
/// A directory qualifies when it holds executable `initdb`, `pg_ctl` and `postgres`.
pub fn find_bin_dir() -> Result<PathBuf, LocalPostgresError> {
    find_bin_dir_in(&BinSearch {
        pg_bindir: std::env::var_os("PG_BINDIR"),
        pg_config: Some(OsString::from("pg_config")),
        path: std::env::var_os("PATH"),
        versioned_parent: PathBuf::from("/usr/lib/postgresql"),
        fixed: vec![PathBuf::from("/usr/local/pgsql/bin")],
    })
}

/// The inputs of the binary search, so it can be tested without touching the environment.
struct BinSearch {
    pg_bindir: Option<OsString>,
    /// The pg_config program to run (None: skip).
    pg_config: Option<OsString>,
    path: Option<OsString>,
    /// Holds one directory per major version, each with a `bin` (Debian layout).
    versioned_parent: PathBuf,
    fixed: Vec<PathBuf>,
}

fn find_bin_dir_in(search: &BinSearch) -> Result<PathBuf, LocalPostgresError> {
    if let Some(dir) = search.pg_bindir.as_ref().filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if has_server_binaries(&dir) {
            Ok(dir)
        } else {
            Err(LocalPostgresError::InvalidBinDir { path: dir })
        };
    }
    let mut searched = vec!["PG_BINDIR (not set)".to_owned()];

    if let Some(program) = &search.pg_config {
        let name = Path::new(program).display();
        match Command::new(program)
            .arg("--bindir")
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => {
                let dir = PathBuf::from(OsStr::from_bytes(out.stdout.trim_ascii()));
                if has_server_binaries(&dir) {
                    return Ok(dir);
                }
                searched.push(format!(
                    "`{name} --bindir` ({}: no initdb there)",
                    dir.display()
                ));
            }
            Ok(_) => searched.push(format!("`{name} --bindir` (failed)")),
            Err(_) => searched.push(format!("`{name} --bindir` (no {name} on PATH)")),
        }
    }

    if let Some(path) = &search.path {
        if let Some(dir) = std::env::split_paths(path).find(|d| has_server_binaries(d)) {
            return Ok(dir);
        }
    }
    searched.push("PATH".to_owned());

    let mut versions: Vec<(Vec<u64>, PathBuf)> = fs::read_dir(&search.versioned_parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u64>>>()?;
            let bin = entry.path().join("bin");
            has_server_binaries(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Ok(dir);
    }
    searched.push(format!("{}/*/bin", search.versioned_parent.display()));

    for dir in &search.fixed {
        if has_server_binaries(dir) {
            return Ok(dir.clone());
        }
        searched.push(dir.display().to_string());
    }
    Err(LocalPostgresError::NotInstalled {
        searched: searched.join(", "),
    })
}

fn has_server_binaries(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"].iter().all(|name| {
        fs::metadata(dir.join(name))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::super::os_user::write_file;
    use super::*;

    fn bogus_search(pg_bindir: Option<&str>) -> BinSearch {
        BinSearch {
            pg_bindir: pg_bindir.map(OsString::from),
            pg_config: Some(OsString::from("/nonexistent/pg_config")),
            path: Some(OsString::from("/nonexistent/bin:/nonexistent/sbin")),
            versioned_parent: PathBuf::from("/nonexistent/postgresql"),
            fixed: vec![PathBuf::from("/nonexistent/pgsql/bin")],
        }
    }

    #[test]
    fn nothing_found_says_what_to_install_or_set() {
        let err = find_bin_dir_in(&bogus_search(None)).unwrap_err();
        assert!(
            matches!(err, LocalPostgresError::NotInstalled { .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("DATABASE_URL"), "{message}");
        for searched in [
            "PG_BINDIR",
            "pg_config --bindir",
            "PATH",
            "/nonexistent/postgresql/*/bin",
            "/nonexistent/pgsql/bin",
        ] {
            assert!(
                message.contains(searched),
                "{searched} missing in: {message}"
            );
        }
    }

    #[test]
    fn bogus_pg_bindir_is_reported_not_skipped() {
        let err = find_bin_dir_in(&bogus_search(Some("/nonexistent/pg"))).unwrap_err();
        assert!(
            matches!(err, LocalPostgresError::InvalidBinDir { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("/nonexistent/pg"), "{err}");
        // An empty PG_BINDIR counts as unset.
        let err = find_bin_dir_in(&bogus_search(Some(""))).unwrap_err();
        assert!(
            matches!(err, LocalPostgresError::NotInstalled { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn highest_version_wins_and_path_is_searched() {
        let root = std::env::temp_dir().join(format!("lpg-bins-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for version in ["9.6", "10", "15", "not-a-version"] {
            let bin = root.join("versions").join(version).join("bin");
            fs::create_dir_all(&bin).unwrap();
            for name in ["initdb", "pg_ctl", "postgres"] {
                write_file(&bin.join(name), b"#!/bin/sh\n", 0o755, None).unwrap();
            }
        }
        let mut search = bogus_search(None);
        search.versioned_parent = root.join("versions");
        assert_eq!(
            find_bin_dir_in(&search).unwrap(),
            root.join("versions/15/bin")
        );

        let on_path = root.join("versions/10/bin");
        search.path = Some(OsString::from(format!(
            "/nonexistent:{}",
            on_path.display()
        )));
        assert_eq!(find_bin_dir_in(&search).unwrap(), on_path);

        search.pg_bindir = Some(root.join("versions/9.6/bin").into_os_string());
        assert_eq!(
            find_bin_dir_in(&search).unwrap(),
            root.join("versions/9.6/bin")
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
