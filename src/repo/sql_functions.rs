//! SQL functions the queries use, declared once.

diesel::define_sql_function! {
    /// SQL `clock_timestamp()`: unlike `now()`, it moves within a transaction, so
    /// `updated_at` moves on every update.
    fn clock_timestamp() -> diesel::sql_types::Timestamptz;
}

diesel::define_sql_function! {
    /// SQL `statement_timestamp()`: the server's time when the current statement
    /// began. The crate's one clock for every expiry and due-date check: the same
    /// for every row a statement looks at (so a statement judges all rows at one
    /// instant, and the planner may use it in an index condition, as it is `STABLE`),
    /// and, unlike `now()` (the start of the transaction), it moves from statement to
    /// statement inside a caller's long transaction. Never the client's clock.
    fn statement_timestamp() -> diesel::sql_types::Timestamptz;
}

diesel::define_sql_function! {
    /// The migration's `habit_is_due(schedule, day)`: whether a habit of that
    /// (valid) schedule is due on that calendar day.
    fn habit_is_due(schedule: diesel::sql_types::Jsonb, day: diesel::sql_types::Date) -> diesel::sql_types::Bool;
}
