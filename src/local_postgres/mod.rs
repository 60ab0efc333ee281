//! A PostgreSQL cluster started from the system's server binaries (feature `local-postgres`).
//!
//! Two kinds of cluster:
//!
//! - **Temporary** ([`LocalPostgres::start_temporary`]): a fresh cluster in
//!   `std::env::temp_dir()/todo-store-pg-<random>`, reachable on a private unix socket,
//!   tuned for speed (no fsync) and removed when the value drops. A watchdog process
//!   removes it too when the owning process dies without running destructors (SIGKILL,
//!   or a value kept in a `static`), and every new temporary cluster sweeps directories
//!   left by dead owners.
//! - **Persistent** ([`LocalPostgres::start_persistent`]): a cluster under a directory
//!   of your choice (e.g. `target/todo-store-pg`) that keeps its data between runs. A
//!   cluster found running is reused and left running.
//!
//! ```no_run
//! use todo_store::local_postgres::LocalPostgres;
//!
//! let pg = LocalPostgres::start_temporary()?;
//! let url = pg.url("postgres"); // postgres://postgres@localhost/postgres?host=%2Ftmp%2F...&port=5432
//! println!("connect with: {}", pg.psql_command("postgres"));
//! # let _ = url;
//! # Ok::<(), todo_store::local_postgres::LocalPostgresError>(())
//! ```
//!
//! The server binaries are found by [`find_bin_dir`]. PostgreSQL refuses to run as root:
//! when this process is root, the server and its tools run as the `postgres` OS user
//! (else `nobody`), and the directories created here are handed to that user.
//!
//! Authentication is `trust`: anyone who can reach the socket (a directory only the
//! server's OS user and root can enter) or, with [`LocalPostgresBuilder::listen_tcp`],
//! the loopback port, is a superuser. This is for tests and development only.
//!
//! ## Layout
//! - `handle`: [`LocalPostgres`] and [`ShutdownMode`]: URLs, commands, stop, start, Drop.
//! - `builder`: [`LocalPostgresBuilder`] and the settings file it writes.
//! - `start`: creating or adopting a temporary or persistent cluster.
//! - `bin_dir`: [`find_bin_dir`].
//! - `os_user`: running the server as another OS user when this process is root.
//! - `watchdog`: cleanup after owners that died without running Drop.
//! - `error`: [`LocalPostgresError`] and the messages of failed commands.
//! - `quote`: quoting for URLs, shells and postgresql.conf.
//! - `sys`: the calls into libc, the only `unsafe` code here.

mod bin_dir;
mod builder;
mod error;
mod handle;
mod os_user;
mod quote;
mod start;
mod sys;
mod watchdog;

pub use bin_dir::find_bin_dir;
pub use builder::LocalPostgresBuilder;
pub use error::LocalPostgresError;
pub use handle::{LocalPostgres, ShutdownMode};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<LocalPostgres>();
        check::<LocalPostgresError>();
    }
}
