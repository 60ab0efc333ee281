//! `timestamptz` columns read straight into `DateTime<Utc>`, for the rows that come by
//! the page (tasks, users).
//!
//! PostgreSQL sends a `timestamptz` as microseconds since 2000-01-01 UTC. Diesel's own
//! conversion adds them to a `NaiveDateTime` of that day, which chrono does by
//! calendar arithmetic; here the microseconds are shifted to the Unix epoch and handed
//! to [`DateTime::from_timestamp_micros`], which gives the same instant in about half
//! the time (a unit test compares the two over the whole range). A page of 50 tasks
//! has 150 of them. Used through `#[diesel(deserialize_as = ...)]`: the public fields
//! stay `DateTime<Utc>`.

use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::pg::{Pg, PgValue};
use diesel::sql_types::{Nullable, Timestamptz};

/// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// A non-null `timestamptz` (public only because diesel's derived `Queryable` names it;
/// unreachable from outside the crate).
#[derive(Debug, Clone, Copy, FromSqlRow)]
pub struct Timestamp(DateTime<Utc>);

/// A nullable `timestamptz`.
#[derive(Debug, Clone, Copy, FromSqlRow)]
pub struct OptionalTimestamp(Option<DateTime<Utc>>);

impl From<Timestamp> for DateTime<Utc> {
    fn from(value: Timestamp) -> Self {
        value.0
    }
}

impl From<OptionalTimestamp> for Option<DateTime<Utc>> {
    fn from(value: OptionalTimestamp) -> Self {
        value.0
    }
}

impl FromSql<Timestamptz, Pg> for Timestamp {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        decode(value.as_bytes()).map(Timestamp)
    }
}

impl FromSql<Nullable<Timestamptz>, Pg> for OptionalTimestamp {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        decode(value.as_bytes()).map(|t| OptionalTimestamp(Some(t)))
    }

    fn from_nullable_sql(value: Option<PgValue<'_>>) -> deserialize::Result<Self> {
        match value {
            Some(value) => Self::from_sql(value),
            None => Ok(OptionalTimestamp(None)),
        }
    }
}

/// The instant of PostgreSQL's binary `timestamptz`; `infinity`, `-infinity` and
/// anything else chrono cannot hold are an error, as with diesel's conversion.
fn decode(bytes: &[u8]) -> deserialize::Result<DateTime<Utc>> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| format!("a timestamptz is 8 bytes, got {}", bytes.len()))?;
    i64::from_be_bytes(bytes)
        .checked_add(PG_EPOCH_UNIX_MICROS)
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| "a timestamptz outside the range chrono can hold (infinity?)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeDelta};

    /// Diesel's conversion, to compare with.
    fn diesel_way(micros: i64) -> Option<DateTime<Utc>> {
        NaiveDate::from_ymd_opt(2000, 1, 1)?
            .and_hms_opt(0, 0, 0)?
            .checked_add_signed(TimeDelta::microseconds(micros))
            .map(|naive| naive.and_utc())
    }

    #[test]
    fn gives_the_instant_diesel_gives_over_the_whole_range() {
        let mut micros: Vec<i64> = vec![0, 1, -1, 999_999, -1_000_000, i64::MAX, i64::MIN];
        // From PostgreSQL's first day (4713 BC) to beyond chrono's last, in uneven steps.
        let mut x: i64 = -211_813_488_000_000_000;
        while x < i64::MAX - 987_654_321_987_655 {
            micros.push(x);
            x = x.saturating_add(987_654_321_987_655);
        }
        for m in micros {
            let ours = decode(&m.to_be_bytes()).ok();
            assert_eq!(ours, diesel_way(m), "{m} µs after 2000-01-01");
        }
    }

    #[test]
    fn infinity_and_a_short_value_are_errors() {
        assert!(decode(&i64::MAX.to_be_bytes()).is_err());
        assert!(decode(&i64::MIN.to_be_bytes()).is_err());
        assert!(decode(&[0; 4]).is_err());
    }
}
