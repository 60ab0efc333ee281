//! The integration tests that need nothing but [`TestDb`](todo_store::testing::TestDb),
//! in one binary: one link step, and one throwaway cluster for all of them. A module
//! per capability, named as the file it lives in (`users::...`, `queries::...`).
//!
//! Tests with a cluster of their own (faults, replicas, TLS, PgBouncer, local_postgres),
//! with process-wide state (the working directory, the environment, a global
//! subscriber: dotenv, secrets) or with a server beside them (Better Auth on Node) keep a
//! binary of their own in tests/.

#[path = "../support/mod.rs"]
mod support;

mod api;
mod async_pool;
mod demoted_primary;
mod due_today;
mod email_key;
mod exactly_once;
mod failover;
mod habits;
mod hostile;
mod invisible_text;
mod load;
mod metadata;
mod migrations;
mod operator_migrations;
mod pool;
mod prepared;
mod queries;
mod query_plans;
mod roles;
mod schedule_json;
mod search;
mod seed;
mod serde;
mod server_clock;
mod sessions;
mod tasks;
mod test_db;
mod tracing;
mod transactions;
mod users;
