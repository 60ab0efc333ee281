//! Test support shared by the integration tests; each test file takes it in with
//! `mod support;` and uses what it needs.
#![allow(dead_code)]

/// The api example as a process, and a raw HTTP client for it.
pub mod api_service;
/// The server process behind a connection: `backend_pid`, `terminate`, prepared statements.
pub mod backend;
/// Cursors edited behind a valid checksum.
pub mod cursor_forge;
/// The example programs built next to the tests.
pub mod examples;
/// Users and tasks to test with.
pub mod fixtures;
/// Private network namespaces, for real blackholes.
pub mod netns;
/// A Patroni cluster (etcd and three PostgreSQL nodes) for the failover tests.
pub mod patroni;
/// PgBouncer in transaction mode in front of a local cluster.
pub mod pgbouncer;
/// A fault-injecting TCP proxy.
pub mod proxy;
/// The one deterministic random generator.
pub mod rng;
/// A primary and its hot standby.
pub mod standby;
/// Certificates for the TLS tests.
pub mod tls;
/// An in-memory writer for tracing subscribers.
pub mod trace_capture;
/// Polling until the server has done something.
pub mod wait;
/// A model-checked workload for the fault tests.
pub mod workload;
