//! Each node's Patroni configuration file.

use std::path::Path;

use super::{Node, Timings};

/// A node's Patroni configuration: bootstrap in synchronous mode, pg_rewind for a
/// former primary (wal_log_hints), trust on loopback, no watchdog device.
pub(super) fn patroni_config(node: &Node, t: Timings, etcd_port: u16, bin_dir: &Path) -> String {
    let Timings {
        ttl,
        loop_wait,
        retry_timeout,
    } = t;
    let (name, dir, pg, api) = (&node.name, node.dir.display(), node.pg_port, node.api_port);
    let bin = bin_dir.display();
    format!(
        r#"scope: todo-store
name: {name}
log:
  level: INFO
restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api}
etcd:
  host: 127.0.0.1:{etcd_port}
bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {loop_wait}
    retry_timeout: {retry_timeout}
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    primary_start_timeout: 0
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: 'on'
        max_connections: 100
        fsync: 'off'
  initdb:
  - encoding: UTF8
  - locale: C.UTF-8
  - auth: trust
  pg_hba:
  - host all all 127.0.0.1/32 trust
  - host replication all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {dir}/data
  bin_dir: {bin}
  pgpass: {dir}/pgpass
  authentication:
    superuser:
      username: postgres
    replication:
      username: postgres
    rewind:
      username: postgres
  parameters:
    unix_socket_directories: '{dir}'
watchdog:
  mode: off
"#
    )
}
