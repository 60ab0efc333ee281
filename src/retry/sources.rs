//! [`ConnectionSource`]: where [`retry_transaction`](super::retry_transaction) gets the
//! connection of each attempt (a pool, or one connection), and whether a lost
//! connection can be retried on a fresh one.

use diesel::PgConnection;

use crate::error::Result;

/// Where [`retry_transaction`](super::retry_transaction) gets its connection: an r2d2 pool of `PgConnection`s,
/// the crate's [`PgPool`](crate::PgPool) or your own (`&pool`: a connection per
/// attempt, so a lost connection can be retried on a fresh one), or one connection
/// (`&mut PgConnection`, `&mut` a pooled connection, or the connection of a
/// deadpool-diesel `interact` closure: every attempt on it, and a lost connection is
/// not retried). Sealed: implemented for these types only.
pub trait ConnectionSource: sealed::Sealed {
    /// Runs `attempt` on a connection; fails only when none can be had.
    #[doc(hidden)]
    fn with_connection<R>(&mut self, attempt: &mut dyn FnMut(&mut PgConnection) -> R) -> Result<R>;

    /// Whether each attempt gets a connection of its own.
    #[doc(hidden)]
    fn fresh_connection_per_attempt(&self) -> bool;

    /// Whether a pool has fewer connections open than it may: after a checkout timed
    /// out, the sign that it could not open them (the server is down, or refusing),
    /// rather than that all were in use.
    #[doc(hidden)]
    fn is_short_of_connections(&self) -> bool {
        false
    }
}

mod sealed {
    pub trait Sealed {}
    impl<M> Sealed for &r2d2::Pool<M> where M: r2d2::ManageConnection<Connection = diesel::PgConnection> {}
    impl Sealed for &mut diesel::PgConnection {}
    impl<M> Sealed for &mut r2d2::PooledConnection<M> where
        M: r2d2::ManageConnection<Connection = diesel::PgConnection>
    {
    }
}

/// Any r2d2 pool of `PgConnection`s: the crate's [`PgPool`](crate::PgPool), or one of your own (with
/// diesel's `ConnectionManager`, say).
impl<M> ConnectionSource for &r2d2::Pool<M>
where
    M: r2d2::ManageConnection<Connection = PgConnection>,
{
    fn with_connection<R>(&mut self, attempt: &mut dyn FnMut(&mut PgConnection) -> R) -> Result<R> {
        // A connection that failed with a lost-connection error is discarded when this
        // checkout is dropped (the crate's pool marks it; another pool pings it at the
        // next checkout), so the next attempt gets another.
        let mut conn = crate::pool::checkout(self)?;
        Ok(attempt(&mut conn))
    }

    fn fresh_connection_per_attempt(&self) -> bool {
        true
    }

    fn is_short_of_connections(&self) -> bool {
        self.state().connections < self.max_size()
    }
}

impl ConnectionSource for &mut PgConnection {
    fn with_connection<R>(&mut self, attempt: &mut dyn FnMut(&mut PgConnection) -> R) -> Result<R> {
        Ok(attempt(self))
    }

    fn fresh_connection_per_attempt(&self) -> bool {
        false
    }
}

impl<M> ConnectionSource for &mut r2d2::PooledConnection<M>
where
    M: r2d2::ManageConnection<Connection = PgConnection>,
{
    fn with_connection<R>(&mut self, attempt: &mut dyn FnMut(&mut PgConnection) -> R) -> Result<R> {
        Ok(attempt(self))
    }

    fn fresh_connection_per_attempt(&self) -> bool {
        false
    }
}
