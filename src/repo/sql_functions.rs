//! SQL functions the queries use, declared once.

diesel::define_sql_function! {
    /// SQL `clock_timestamp()`: unlike `now()`, it moves within a transaction, so
    /// `updated_at` moves on every update.
    fn clock_timestamp() -> diesel::sql_types::Timestamptz;
}

diesel::define_sql_function! {
    /// The migration's `habit_is_due(schedule, day)`: whether a habit of that
    /// (valid) schedule is due on that calendar day.
    fn habit_is_due(schedule: diesel::sql_types::Jsonb, day: diesel::sql_types::Date) -> diesel::sql_types::Bool;
}
