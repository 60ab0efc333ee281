//! [`Fragment`]: a piece of SQL with typed bind values that diesel may prepare.
//!
//! Diesel's `dsl::sql` literals mark every statement containing them as unsafe to
//! cache, so such statements are parsed and planned on every call (about twice the
//! cost of a prepared list query, measured in the benchmark). The SQL the crate writes
//! by hand is fixed for a given query shape, so it is safe to cache: diesel keys
//! statements without a static query id by their SQL text. A `Fragment` is that SQL
//! without the flag. The replica router and the bulk path use it for their
//! per-request statements too, and [`Statement`] makes one a whole statement (the
//! habit repository's CTEs with INSERT or DELETE, which cannot be a sub-select).
//!
//! A fragment names the table whose columns it reads, and appears only in a query on
//! that table; [`SqlFile`] is the form of a long statement kept in a `.sql` file. When
//! to use which form, and what keeps them safe to cache: the module docs of `repo`.

use std::borrow::Cow;
use std::marker::PhantomData;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::expression::{
    is_aggregate, AppearsOnTable, Expression, SelectableExpression, TypedExpressionType,
    ValidGrouping,
};
use diesel::pg::Pg;
use diesel::pg::PgConnection;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::query_dsl::RunQueryDsl;
use diesel::query_source::{AppearsInFromClause, Once};
use diesel::sql_types::{
    Array, BigInt, Date, Float, Jsonb, SqlType, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel::QueryResult;
use diesel::Table;
use uuid::Uuid;

use crate::models::{JsonObject, Priority};
use crate::schema::sql_types::TaskPriority;

/// A bind value of a [`Fragment`].
#[derive(Debug, Clone)]
pub(crate) enum Bind<'a> {
    Text(&'a str),
    Timestamp(DateTime<Utc>),
    Uuid(Uuid),
    Priority(Priority),
    Float(f32),
    BigInt(i64),
    Date(NaiveDate),
    Jsonb(JsonObject<'a>),
    TextArray(&'a [String]),
}

#[derive(Debug, Clone)]
enum Part<'a> {
    Sql(Cow<'static, str>),
    Bind(Bind<'a>),
}

/// SQL text and bind values, an expression of SQL type `ST` that reads the columns of
/// table `T` (a diesel table type, such as `tasks::table`) or of none ([`NoTable`]).
///
/// A fragment appears only in a query whose FROM clause has its table: diesel's
/// `AppearsOnTable` and `SelectableExpression` hold for it as they do for `T`'s own
/// columns, so a task fragment in a users query does not compile.
#[derive(Debug, Clone)]
pub(crate) struct Fragment<'a, T, ST> {
    parts: Vec<Part<'a>>,
    types: PhantomData<(T, ST)>,
}

/// The "table" of a fragment that reads no table's columns (`now()`, a server
/// function): it may appear in any query, and in a `SELECT` without FROM.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoTable;

/// A fragment on table `T` starting with `sql`.
pub(crate) fn sql<'a, T, ST>(sql: impl Into<Cow<'static, str>>) -> Fragment<'a, T, ST> {
    Fragment {
        parts: vec![Part::Sql(sql.into())],
        types: PhantomData,
    }
}

impl<'a, T, ST> Fragment<'a, T, ST> {
    /// Appends SQL text.
    pub(crate) fn sql(mut self, sql: impl Into<Cow<'static, str>>) -> Self {
        self.parts.push(Part::Sql(sql.into()));
        self
    }

    /// Appends a bind parameter.
    pub(crate) fn bind(mut self, value: Bind<'a>) -> Self {
        self.parts.push(Part::Bind(value));
        self
    }
}

impl<T, ST> QueryFragment<Pg> for Fragment<'_, T, ST> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        for part in &self.parts {
            match part {
                Part::Sql(sql) => out.push_sql(sql),
                Part::Bind(bind) => push_bind(&mut out, bind)?,
            }
        }
        Ok(())
    }
}

/// `bind` as the next parameter, of its SQL type.
fn push_bind<'b>(out: &mut AstPass<'_, 'b, Pg>, bind: &'b Bind<'_>) -> QueryResult<()> {
    match bind {
        Bind::Text(value) => out.push_bind_param::<Text, _>(value),
        Bind::Timestamp(value) => out.push_bind_param::<Timestamptz, _>(value),
        Bind::Uuid(value) => out.push_bind_param::<SqlUuid, _>(value),
        Bind::Priority(value) => out.push_bind_param::<TaskPriority, _>(value),
        Bind::Float(value) => out.push_bind_param::<Float, _>(value),
        Bind::BigInt(value) => out.push_bind_param::<BigInt, _>(value),
        Bind::Date(value) => out.push_bind_param::<Date, _>(value),
        Bind::Jsonb(value) => out.push_bind_param::<Jsonb, _>(value),
        Bind::TextArray(value) => out.push_bind_param::<Array<Text>, _>(value),
    }
}

/// No static id: diesel caches the statement under its SQL text.
impl<T, ST> QueryId for Fragment<'_, T, ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<T, ST: SqlType + TypedExpressionType> Expression for Fragment<'_, T, ST> {
    type SqlType = ST;
}

// On the table `T` only, as `T`'s columns are.
impl<T: Table, ST, QS> AppearsOnTable<QS> for Fragment<'_, T, ST>
where
    Self: Expression,
    QS: AppearsInFromClause<T, Count = Once>,
{
}

impl<T: Table, ST, QS> SelectableExpression<QS> for Fragment<'_, T, ST>
where
    Self: AppearsOnTable<QS>,
    QS: AppearsInFromClause<T, Count = Once>,
{
}

// A fragment of no table's columns appears anywhere.
impl<ST, QS> AppearsOnTable<QS> for Fragment<'_, NoTable, ST> where Self: Expression {}

impl<ST, QS> SelectableExpression<QS> for Fragment<'_, NoTable, ST> where Self: Expression {}

impl<T, ST, GB> ValidGrouping<GB> for Fragment<'_, T, ST> {
    type IsAggregate = is_aggregate::Never;
}

/// A whole statement of hand-written SQL whose rows have SQL type `ST`, prepared once
/// per connection like a [`Fragment`] (diesel's own UPDATE and DELETE statements never
/// are): for writes that return rows, or `.execute(conn)` for a count of rows changed.
#[derive(Debug, Clone)]
pub(crate) struct Statement<'a, ST>(Fragment<'a, NoTable, ST>);

/// A statement starting with `sql`.
pub(crate) fn statement<'a, ST>(sql: impl Into<Cow<'static, str>>) -> Statement<'a, ST> {
    Statement(self::sql(sql))
}

impl<'a, ST> Statement<'a, ST> {
    /// Appends SQL text.
    pub(crate) fn sql(self, sql: impl Into<Cow<'static, str>>) -> Self {
        Statement(self.0.sql(sql))
    }

    /// Appends a bind parameter.
    pub(crate) fn bind(self, value: Bind<'a>) -> Self {
        Statement(self.0.bind(value))
    }
}

impl<ST> QueryFragment<Pg> for Statement<'_, ST> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(out)
    }
}

/// No static id: diesel caches the statement under its SQL text.
impl<ST> QueryId for Statement<'_, ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<ST: SqlType> Query for Statement<'_, ST> {
    type SqlType = ST;
}

impl<ST> RunQueryDsl<PgConnection> for Statement<'_, ST> {}

/// The fixed SQL of a `.sql` file next to its module (read with `include_str!`), with
/// a static query id of its own (the type that implements this): prepared once per
/// connection, and diesel neither builds nor hashes its text to find it again. Its
/// parameters `$1`, `$2`, ... each stand once, numbered in the order they stand (the
/// file's comments name none), bound by [`FileStatement`] in that order.
pub(crate) trait SqlFile: 'static {
    /// The statement, `include_str!("….sql")`.
    const TEXT: &'static str;
    /// The SQL type of its rows.
    type SqlType: SqlType;
}

/// The statement of the [`SqlFile`] `F` with its bind values.
#[derive(Debug, Clone)]
pub(crate) struct FileStatement<'a, F> {
    binds: Vec<Bind<'a>>,
    file: PhantomData<F>,
}

impl<'a, F: SqlFile> FileStatement<'a, F> {
    /// `F`'s statement with `binds` for its parameters, in order.
    pub(crate) fn new(binds: Vec<Bind<'a>>) -> Self {
        FileStatement {
            binds,
            file: PhantomData,
        }
    }
}

/// `text` cut at its parameters: the SQL before `$1`, between `$1` and `$2`, ..., after
/// the last. `None` when the numbers do not run 1, 2, 3, ... in the order they stand.
pub(crate) fn split_at_parameters(text: &str) -> Option<Vec<&str>> {
    let mut pieces = Vec::new();
    let mut rest = text;
    let mut next = 1;
    while let Some(at) = rest.find('$') {
        let digits = rest[at + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        if digits == 0 || rest[at + 1..at + 1 + digits].parse::<usize>().ok()? != next {
            return None;
        }
        pieces.push(&rest[..at]);
        rest = &rest[at + 1 + digits..];
        next += 1;
    }
    pieces.push(rest);
    Some(pieces)
}

impl<F: SqlFile> QueryFragment<Pg> for FileStatement<'_, F> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // The unit test of every file checks its parameters; a file that breaks the rule
        // sends its text as it is, and the server refuses the count of binds.
        let Some(pieces) = split_at_parameters(F::TEXT) else {
            out.push_sql(F::TEXT);
            return Ok(());
        };
        let mut binds = self.binds.iter();
        for (i, piece) in pieces.iter().enumerate() {
            out.push_sql(piece);
            if i + 1 < pieces.len() {
                match binds.next() {
                    Some(bind) => push_bind(&mut out, bind)?,
                    None => {
                        return Err(diesel::result::Error::QueryBuilderError(
                            format!(
                                "{} parameters, {} binds",
                                pieces.len() - 1,
                                self.binds.len()
                            )
                            .into(),
                        ))
                    }
                }
            }
        }
        Ok(())
    }
}

impl<F: SqlFile> QueryId for FileStatement<'_, F> {
    type QueryId = F;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<F: SqlFile> Query for FileStatement<'_, F> {
    type SqlType = F::SqlType;
}

impl<F> RunQueryDsl<PgConnection> for FileStatement<'_, F> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{tasks, users};
    use diesel::sql_types::Bool;

    /// Compiles only when `F` appears on the table `QS`.
    fn appears_on<QS, F: AppearsOnTable<QS> + SelectableExpression<QS>>() {}

    /// Resolves (to its one impl) only when `F` does *not* appear on `users`: were a task
    /// fragment allowed in a users query, both impls would apply, and the call below
    /// would be ambiguous and fail to compile (static_assertions' `assert_not_impl_any`).
    trait AmbiguousIfOnUsers<A> {
        fn check() {}
    }
    impl<F: ?Sized> AmbiguousIfOnUsers<()> for F {}
    struct OnUsers;
    impl<F: ?Sized + AppearsOnTable<users::table>> AmbiguousIfOnUsers<OnUsers> for F {}

    /// The rule of `repo`'s module docs, checked by the compiler: a fragment appears on
    /// its own table (and one of no table's columns anywhere), never on another.
    #[test]
    fn a_fragment_appears_on_its_own_table_only() {
        appears_on::<tasks::table, Fragment<'static, tasks::table, Bool>>();
        appears_on::<users::table, Fragment<'static, users::table, Bool>>();
        appears_on::<users::table, Fragment<'static, NoTable, Bool>>();
        appears_on::<tasks::table, Fragment<'static, NoTable, Bool>>();
        <Fragment<'static, tasks::table, Bool> as AmbiguousIfOnUsers<_>>::check();
    }

    #[test]
    fn parameters_split_a_file_only_when_numbered_in_order() {
        assert_eq!(
            split_at_parameters("a = $1 AND b = $2::int"),
            Some(vec!["a = ", " AND b = ", "::int"])
        );
        assert_eq!(
            split_at_parameters("no parameters"),
            Some(vec!["no parameters"])
        );
        assert_eq!(split_at_parameters("a = $2 AND b = $1"), None);
        assert_eq!(split_at_parameters("a = $1 OR a = $1"), None);
        assert_eq!(split_at_parameters("a = $1 AND b = $10"), None);
        assert_eq!(split_at_parameters("costs $ 5"), None);
    }
}
