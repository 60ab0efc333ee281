//! A primary cluster and a hot standby made from it with `pg_basebackup -R -X stream`,
//! streaming replication on unix sockets.

use std::fs;
use std::os::unix::fs::{chown, MetadataExt};
use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use todo_store::local_postgres::LocalPostgres;
use todo_store::replica::ReplicaRouter;
use todo_store::{DbConfig, User, UserRepo};

use super::fixtures;
use super::wait::wait_until;

/// How long replication may take in these tests before they give up.
pub const REPLICATION_DEADLINE: Duration = Duration::from_secs(15);
/// The application's database on the primary (and so on the standby).
pub const DB: &str = "todo";

/// A primary and its hot standby. Dropping it stops the standby and removes its
/// directory, then the primary (a temporary cluster) goes too.
pub struct Pair {
    standby: Option<LocalPostgres>,
    standby_root: PathBuf,
    primary: LocalPostgres,
}

impl Pair {
    /// A primary with the `todo` database, and a standby streaming from it.
    pub fn start() -> Pair {
        Self::start_with(&[])
    }

    /// As [`Pair::start`], with extra settings for the primary.
    pub fn start_with(primary_settings: &[(&str, &str)]) -> Pair {
        let mut builder = LocalPostgres::builder();
        for (name, value) in primary_settings {
            builder = builder.setting(name, value);
        }
        let primary = builder.start().expect("starting the primary");
        let mut admin = PgConnection::establish(&primary.url("postgres")).unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {DB}"))
            .unwrap();

        // The standby lives inside the primary's temporary directory, so that even a
        // killed test process leaves nothing behind (the primary's watchdog removes the
        // directory, and a postmaster whose lock file is gone shuts itself down); it is
        // owned by the clusters' OS user, who runs pg_basebackup and the server.
        let base = primary.data_dir().parent().unwrap();
        let standby_root = base.join("standby");
        fs::create_dir(&standby_root).unwrap();
        let owner = fs::metadata(primary.data_dir()).unwrap();
        chown(&standby_root, Some(owner.uid()), Some(owner.gid())).unwrap();
        let mut pair = Pair {
            standby: None,
            standby_root,
            primary,
        };

        let out = pair
            .primary
            .command("pg_basebackup")
            .arg("-D")
            .arg(pair.standby_root.join("data"))
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
            .output()
            .expect("running pg_basebackup");
        assert!(
            out.status.success(),
            "pg_basebackup failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(pair.standby_root.join("data/standby.signal").is_file());

        // A persistent cluster keeps the data it finds: the base backup, as a standby.
        // Its settings file is rewritten at start, and a standby refuses to run with
        // fewer connections than its primary (which a temporary cluster raises): give
        // it the primary's.
        let max_connections: String =
            diesel::select(sql::<Text>("current_setting('max_connections')"))
                .get_result(&mut pair.primary_conn())
                .unwrap();
        let standby = LocalPostgres::builder()
            .persistent(&pair.standby_root)
            .durable(false)
            .setting("max_connections", &max_connections)
            .start()
            .expect("starting the standby");
        assert_ne!(
            (standby.socket_dir(), standby.port()),
            (pair.primary.socket_dir(), pair.primary.port()),
            "the standby must listen somewhere else than the primary"
        );
        pair.standby = Some(standby);

        assert!(!in_recovery(&mut pair.primary_conn()));
        assert!(in_recovery(&mut pair.standby_conn()));
        // Wait until the standby streams from the primary.
        wait_for("the standby to stream from the primary", || {
            diesel::select(sql::<Bool>(
                "EXISTS (SELECT 1 FROM pg_stat_replication WHERE state = 'streaming')",
            ))
            .get_result::<bool>(&mut pair.primary_conn())
            .unwrap()
        });
        pair
    }

    pub fn standby(&self) -> &LocalPostgres {
        self.standby.as_ref().unwrap()
    }

    pub fn primary_conn(&self) -> PgConnection {
        PgConnection::establish(&self.primary.url(DB)).unwrap()
    }

    pub fn standby_conn(&self) -> PgConnection {
        PgConnection::establish(&self.standby().url(DB)).unwrap()
    }

    /// The primary with the standby as its replica; migrations run on the primary.
    pub fn config(&self) -> DbConfig {
        DbConfig::new(self.primary.url(DB))
            .pool_size(3)
            .replica_url(self.standby().url(DB))
    }

    /// A router for [`Pair::config`], with a user created on the primary and replicated.
    pub fn router_and_user(&self) -> (ReplicaRouter, User) {
        let router = ReplicaRouter::connect(&self.config()).unwrap();
        let user = fixtures::user(&mut router.write().unwrap());
        wait_for("the user on the replica", || {
            let mut conn = router.read().unwrap();
            in_recovery(&mut conn) && UserRepo::get(&mut conn, user.id).is_ok()
        });
        (router, user)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Stop the standby (a persistent cluster stops on drop), then remove it.
        drop(self.standby.take());
        let _ = fs::remove_dir_all(&self.standby_root);
        if !std::thread::panicking() {
            assert!(
                !self.standby_root.exists(),
                "{}",
                self.standby_root.display()
            );
        }
    }
}

/// Whether the connection's server is a standby.
pub fn in_recovery(conn: &mut PgConnection) -> bool {
    diesel::select(sql::<Bool>("pg_is_in_recovery()"))
        .get_result(conn)
        .unwrap()
}

/// Polls `done` until it is true, for at most [`REPLICATION_DEADLINE`].
pub fn wait_for(what: &str, done: impl FnMut() -> bool) {
    wait_until(what, REPLICATION_DEADLINE, done)
}
