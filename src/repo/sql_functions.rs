//! SQL functions the queries use, declared once.

diesel::define_sql_function! {
    /// SQL `clock_timestamp()`: unlike `now()`, it moves within a transaction, so
    /// `updated_at` moves on every update.
    fn clock_timestamp() -> diesel::sql_types::Timestamptz;
}
