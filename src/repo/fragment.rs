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
use diesel::sql_types::{BigInt, Date, Float, SqlType, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryResult;
use uuid::Uuid;

use crate::models::Priority;
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
}

#[derive(Debug, Clone)]
enum Part<'a> {
    Sql(Cow<'static, str>),
    Bind(Bind<'a>),
}

/// SQL text and bind values, an expression of SQL type `ST`.
#[derive(Debug, Clone)]
pub(crate) struct Fragment<'a, ST> {
    parts: Vec<Part<'a>>,
    sql_type: PhantomData<ST>,
}

/// A fragment starting with `sql`.
pub(crate) fn sql<'a, ST>(sql: impl Into<Cow<'static, str>>) -> Fragment<'a, ST> {
    Fragment {
        parts: vec![Part::Sql(sql.into())],
        sql_type: PhantomData,
    }
}

impl<'a, ST> Fragment<'a, ST> {
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

impl<ST> QueryFragment<Pg> for Fragment<'_, ST> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        for part in &self.parts {
            match part {
                Part::Sql(sql) => out.push_sql(sql),
                Part::Bind(Bind::Text(value)) => out.push_bind_param::<Text, _>(value)?,
                Part::Bind(Bind::Timestamp(value)) => {
                    out.push_bind_param::<Timestamptz, _>(value)?
                }
                Part::Bind(Bind::Uuid(value)) => out.push_bind_param::<SqlUuid, _>(value)?,
                Part::Bind(Bind::Priority(value)) => {
                    out.push_bind_param::<TaskPriority, _>(value)?
                }
                Part::Bind(Bind::Float(value)) => out.push_bind_param::<Float, _>(value)?,
                Part::Bind(Bind::BigInt(value)) => out.push_bind_param::<BigInt, _>(value)?,
                Part::Bind(Bind::Date(value)) => out.push_bind_param::<Date, _>(value)?,
            }
        }
        Ok(())
    }
}

/// No static id: diesel caches the statement under its SQL text.
impl<ST> QueryId for Fragment<'_, ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<ST: SqlType + TypedExpressionType> Expression for Fragment<'_, ST> {
    type SqlType = ST;
}

impl<ST, QS> AppearsOnTable<QS> for Fragment<'_, ST> where Self: Expression {}

impl<ST, QS> SelectableExpression<QS> for Fragment<'_, ST> where Self: Expression {}

impl<ST, GB> ValidGrouping<GB> for Fragment<'_, ST> {
    type IsAggregate = is_aggregate::Never;
}

/// A whole statement of hand-written SQL whose rows have SQL type `ST`, prepared once
/// per connection like a [`Fragment`] (diesel's own UPDATE and DELETE statements never
/// are): for writes that return rows, or `.execute(conn)` for a count of rows changed.
#[derive(Debug, Clone)]
pub(crate) struct Statement<'a, ST>(Fragment<'a, ST>);

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

/// The statement whose SQL and binds are `fragment`'s.
pub(crate) fn statement_of<ST>(fragment: Fragment<'_, ST>) -> Statement<'_, ST> {
    Statement(fragment)
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
