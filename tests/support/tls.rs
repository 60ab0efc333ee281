//! Certificates for TLS tests, made at test time by the `openssl` command: a test CA,
//! a server certificate for `localhost` signed by it, and a second CA that signed
//! nothing.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The certificates and keys.
pub struct Certs {
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the TLS tests make their certificates with the `openssl` command, which \
                 could not run ({e}): install it (Debian/Ubuntu: apt-get install openssl; \
                 it comes with the postgresql packages)"
            )
        });
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// In `dir`: a CA, a server certificate for `localhost` (DNS name only) signed by it,
/// and another CA. The server's key is handed to `owner` (uid, gid) with mode 0600, as
/// PostgreSQL demands of its key file.
pub fn make_certs(dir: &Path, owner: (u32, u32)) -> Certs {
    fs::create_dir_all(dir).expect("a directory for the certificates");
    // The server's OS user must reach its files.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    for (name, subject) in [("ca", "todo-store test CA"), ("other-ca", "another CA")] {
        let (key, pem, subj) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN={subject}"),
        );
        let mut args = vec!["req", "-x509", "-nodes", "-days", "2"];
        args.extend(ec);
        args.extend([
            "-keyout",
            &key,
            "-out",
            &pem,
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(dir, &args);
    }
    let mut args = vec!["req", "-nodes"];
    args.extend(ec);
    args.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &args);
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("the extensions file");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
    let key = dir.join("server.key");
    chown(&key, Some(owner.0), Some(owner.1)).expect("the key handed to the server's user");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod 0600");
    for file in ["ca.pem", "other-ca.pem", "server.crt"] {
        fs::set_permissions(dir.join(file), fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    Certs {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        cert: dir.join("server.crt"),
        key,
    }
}
