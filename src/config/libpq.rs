//! The libpq network parameters of every connection: TCP keepalives,
//! `tcp_user_timeout` and `connect_timeout`, which turn a silent server into an error
//! within 20 seconds (the [`config` module docs](crate::config) say why these values).

use std::time::Duration;

use super::DbConfig;

impl DbConfig {
    /// Sets libpq's `tcp_user_timeout`: how long data sent to the server may stay
    /// unacknowledged before the connection is dropped (`None` leaves it to the
    /// operating system, about 15 minutes on Linux). Whole milliseconds; Linux only
    /// (libpq ignores it elsewhere). See the [module docs](crate::config).
    pub fn tcp_user_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.tcp_user_timeout = timeout;
        self
    }

    /// libpq's `tcp_user_timeout`, if set ([`DbConfig::tcp_user_timeout`]).
    pub fn get_tcp_user_timeout(&self) -> Option<Duration> {
        self.tcp_user_timeout
    }

    /// Sets libpq's `keepalives_idle`: how long a connection may hear nothing before it
    /// sends a TCP keepalive probe (`None` turns keepalives off). Whole seconds, rounded
    /// up.
    pub fn keepalives_idle(mut self, idle: Option<Duration>) -> Self {
        self.keepalives_idle = idle;
        self
    }

    /// libpq's `keepalives_idle` (`None`: keepalives off) ([`DbConfig::keepalives_idle`]).
    pub fn get_keepalives_idle(&self) -> Option<Duration> {
        self.keepalives_idle
    }

    /// Sets libpq's `keepalives_interval`: the time between unanswered probes. Whole
    /// seconds, rounded up.
    pub fn keepalives_interval(mut self, interval: Duration) -> Self {
        self.keepalives_interval = interval;
        self
    }

    /// libpq's `keepalives_interval` ([`DbConfig::keepalives_interval`]).
    pub fn get_keepalives_interval(&self) -> Duration {
        self.keepalives_interval
    }

    /// Sets libpq's `keepalives_count`: how many unanswered probes drop the connection.
    pub fn keepalives_count(mut self, count: u32) -> Self {
        self.keepalives_count = count;
        self
    }

    /// libpq's `keepalives_count` ([`DbConfig::keepalives_count`]).
    pub fn get_keepalives_count(&self) -> u32 {
        self.keepalives_count
    }

    /// The libpq connection parameters the pool gives every connection, unless the URL
    /// sets the same parameter itself (the URL wins): `connect_timeout` from the
    /// connection timeout, the TCP keepalive settings and `tcp_user_timeout`, as the
    /// [module docs](crate::config) explain.
    ///
    /// ```
    /// use std::time::Duration;
    /// use todo_store::DbConfig;
    ///
    /// let config = DbConfig::new("postgres://app@db/todo");
    /// let params = config.libpq_parameters();
    /// assert!(params.contains(&("tcp_user_timeout", "20000".to_owned())));
    /// assert!(params.contains(&("connect_timeout", "5".to_owned())));
    ///
    /// let off = config.keepalives_idle(None).tcp_user_timeout(None);
    /// assert!(off.libpq_parameters().contains(&("keepalives", "0".to_owned())));
    /// ```
    pub fn libpq_parameters(&self) -> Vec<(&'static str, String)> {
        let seconds = |d: Duration| d.as_millis().div_ceil(1000).max(1).to_string();
        let mut params = vec![(
            "connect_timeout",
            self.connection_timeout
                .as_millis()
                .div_ceil(1000)
                .max(2)
                .to_string(),
        )];
        match self.keepalives_idle {
            Some(idle) => params.extend([
                ("keepalives", "1".to_owned()),
                ("keepalives_idle", seconds(idle)),
                ("keepalives_interval", seconds(self.keepalives_interval)),
                ("keepalives_count", self.keepalives_count.to_string()),
            ]),
            None => params.push(("keepalives", "0".to_owned())),
        }
        if let Some(timeout) = self.tcp_user_timeout {
            params.push(("tcp_user_timeout", timeout.as_millis().max(1).to_string()));
        }
        params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_network_defaults_bound_a_silent_server_at_20_seconds() {
        let config = DbConfig::new("postgres://h/d");
        let params = config.libpq_parameters();
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("tcp_user_timeout"), Some("20000"));
        assert_eq!(get("keepalives"), Some("1"));
        // Idle 10 s, then two probes 5 s apart: 20 s, the same bound as in flight.
        assert_eq!(get("keepalives_idle"), Some("10"));
        assert_eq!(get("keepalives_interval"), Some("5"));
        assert_eq!(get("keepalives_count"), Some("2"));
        assert_eq!(get("connect_timeout"), Some("5"));
        // libpq's minimum connect_timeout is 2 s; partial seconds round up.
        let short = config
            .clone()
            .connection_timeout(Duration::from_millis(300));
        assert!(short
            .libpq_parameters()
            .contains(&("connect_timeout", "2".to_owned())));
        let odd = config
            .clone()
            .connection_timeout(Duration::from_millis(4500));
        assert!(odd
            .libpq_parameters()
            .contains(&("connect_timeout", "5".to_owned())));
    }
}
