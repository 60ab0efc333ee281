//! Facts about the machine and the server, printed and written with the results.

use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::Text;

use crate::server::Server;
use crate::BoxResult;

/// The CPU model, cores, memory and OS of this machine.
pub fn machine_facts() -> Vec<(String, String)> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_owned()))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or("unknown".to_owned(), |kb| {
            format!("{:.1} GiB", kb / 1024.0 / 1024.0)
        });
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| {
            l.strip_prefix("PRETTY_NAME=")
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_owned());
    vec![
        ("cpu".to_owned(), cpu),
        ("cores".to_owned(), cores.to_string()),
        ("memory".to_owned(), memory),
        (
            "os".to_owned(),
            format!("{os}, kernel {}", read("/proc/sys/kernel/osrelease").trim()),
        ),
    ]
}

/// The 1-minute load average (other work on the machine makes numbers noisy).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn server_facts(conn: &mut PgConnection, server: &Server) -> BoxResult<Vec<(String, String)>> {
    #[derive(QueryableByName)]
    struct Facts {
        #[diesel(sql_type = Text)]
        version: String,
        #[diesel(sql_type = Text)]
        fsync: String,
        #[diesel(sql_type = Text)]
        synchronous_commit: String,
        #[diesel(sql_type = Text)]
        shared_buffers: String,
        #[diesel(sql_type = Text)]
        settings: String,
        #[diesel(sql_type = Text)]
        path: String,
    }
    let facts: Facts = sql_query(
        "SELECT split_part(version(), ' on ', 1) AS version, current_setting('fsync') AS fsync, \
         current_setting('synchronous_commit') AS synchronous_commit, \
         current_setting('shared_buffers') AS shared_buffers, \
         concat_ws(', ', 'effective_cache_size ' || current_setting('effective_cache_size'), \
         'work_mem ' || current_setting('work_mem'), \
         'maintenance_work_mem ' || current_setting('maintenance_work_mem'), \
         'max_wal_size ' || current_setting('max_wal_size'), \
         'random_page_cost ' || current_setting('random_page_cost'), \
         'plan_cache_mode ' || current_setting('plan_cache_mode')) AS settings, \
         CASE WHEN inet_server_addr() IS NULL THEN 'unix socket' \
         ELSE 'TCP ' || host(inet_server_addr()) || ':' || inet_server_port() END AS path",
    )
    .get_result(conn)?;
    Ok(vec![
        ("server".to_owned(), server.describe()),
        ("version".to_owned(), facts.version),
        ("connection".to_owned(), facts.path),
        ("fsync".to_owned(), facts.fsync),
        ("synchronous_commit".to_owned(), facts.synchronous_commit),
        ("shared_buffers".to_owned(), facts.shared_buffers),
        ("other settings".to_owned(), facts.settings),
    ])
}

/// The peak resident memory of this program (VmHWM), e.g. "41.2 MiB".
pub fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:").map(str::to_owned))
        })
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or("unknown".to_owned(), |kb| format!("{:.1} MiB", kb / 1024.0))
}
