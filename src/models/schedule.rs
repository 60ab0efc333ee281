//! [`Schedule`]: when a habit is due, and its JSON shape in the `habits.schedule`
//! column.

use std::io::Write;

use chrono::{Datelike, NaiveDate, Weekday};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Jsonb;
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

/// When a habit is due.
///
/// Stored as JSONB of a versioned shape, version 1 (the migration's CHECK
/// `habit_schedule_is_valid` accepts exactly this, so rows other clients write obey it
/// too):
///
/// | schedule | JSON |
/// |---|---|
/// | `Daily` | `{"v":1,"kind":"daily"}` |
/// | `Weekly { days }` | `{"v":1,"kind":"weekly","days":["mon","thu"]}`: 1 to 7 distinct names out of `mon tue wed thu fri sat sun` (written Monday first) |
/// | `EveryNDays { n, start }` | `{"v":1,"kind":"every_n_days","n":3,"start":"2026-01-05"}`: `n` an integer from 1 to 365, `start` a date `YYYY-MM-DD` from 0001-01-01 to 9999-12-31 |
///
/// No other key, kind or version is accepted. A number (`v`, `n`) is taken by its value
/// rounded to the nearest double, as JSON readers in Rust and JavaScript read it: `3.0`
/// and `3e0` are 3, `3.5` and `"3"` are not numbers of the shape. The crate writes plain
/// integers.
///
/// ```
/// use chrono::{NaiveDate, Weekday};
/// use todo_store::Schedule;
///
/// let weekly = Schedule::Weekly { days: vec![Weekday::Thu, Weekday::Mon, Weekday::Thu] };
/// assert_eq!(
///     weekly.to_json().to_string(),
///     r#"{"days":["mon","thu"],"kind":"weekly","v":1}"#
/// );
/// let monday = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
/// assert!(weekly.is_due_on(monday));
/// assert!(!weekly.is_due_on(monday.succ_opt().unwrap()));
/// assert_eq!(Schedule::from_json(&weekly.to_json()).unwrap(), weekly.normalized().unwrap());
/// assert!(Schedule::Weekly { days: vec![] }.validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = Jsonb)]
pub enum Schedule {
    /// Every day.
    Daily,
    /// On these days of the week (at least one; duplicates and order do not matter).
    Weekly {
        /// The days it is due.
        days: Vec<Weekday>,
    },
    /// Every `n`-th day from `start` on: on `start`, `start + n`, `start + 2n`, ...
    EveryNDays {
        /// From 1 (every day) to 365.
        n: u32,
        /// The first day it is due, from 0001-01-01 to 9999-12-31.
        start: NaiveDate,
    },
}

/// The JSON names of the days, Monday first (ISO 8601's order, `isodow` in SQL).
const DAY_NAMES: [(Weekday, &str); 7] = [
    (Weekday::Mon, "mon"),
    (Weekday::Tue, "tue"),
    (Weekday::Wed, "wed"),
    (Weekday::Thu, "thu"),
    (Weekday::Fri, "fri"),
    (Weekday::Sat, "sat"),
    (Weekday::Sun, "sun"),
];

fn day_name(day: Weekday) -> &'static str {
    DAY_NAMES[day.num_days_from_monday() as usize].1
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::validation("schedule", reason)
}

impl Schedule {
    /// The version of the JSON shape that [`Schedule::to_json`] writes.
    pub const JSON_VERSION: u64 = 1;
    /// The largest `n` of [`Schedule::EveryNDays`].
    pub const MAX_EVERY_N_DAYS: u32 = 365;

    /// Checks every rule without touching the database.
    ///
    /// # Errors
    /// [`crate::Error::Validation`] on `schedule`: a weekly schedule without a day, `n`
    /// outside 1 to 365, or a start date outside the years 1 to 9999.
    pub fn validate(&self) -> Result<()> {
        self.normalized().map(|_| ())
    }

    /// The schedule as it is stored: the days of a weekly schedule deduplicated and
    /// sorted Monday first.
    ///
    /// # Errors
    /// As [`Schedule::validate`].
    pub fn normalized(&self) -> Result<Schedule> {
        match self {
            Schedule::Daily => Ok(Schedule::Daily),
            Schedule::Weekly { days } => {
                let mut days = days.clone();
                days.sort_by_key(|d| d.num_days_from_monday());
                days.dedup();
                if days.is_empty() {
                    return Err(invalid("a weekly schedule needs at least one day"));
                }
                Ok(Schedule::Weekly { days })
            }
            &Schedule::EveryNDays { n, start } => {
                if !(1..=Self::MAX_EVERY_N_DAYS).contains(&n) {
                    return Err(invalid("n of every_n_days must be from 1 to 365"));
                }
                if !(1..=9999).contains(&start.year()) {
                    return Err(invalid(
                        "the start of every_n_days must be a date from 0001-01-01 to 9999-12-31",
                    ));
                }
                Ok(Schedule::EveryNDays { n, start })
            }
        }
    }

    /// Whether a habit of this schedule is due on `day`: the rule the database applies
    /// (`habit_is_due`), in Rust. An [`Schedule::EveryNDays`] is never due before its
    /// start.
    pub fn is_due_on(&self, day: NaiveDate) -> bool {
        match self {
            Schedule::Daily => true,
            Schedule::Weekly { days } => days.contains(&day.weekday()),
            &Schedule::EveryNDays { n, start } => {
                let since = (day - start).num_days();
                n > 0 && since >= 0 && since % i64::from(n) == 0
            }
        }
    }

    /// The stored JSON of this schedule (see [`Schedule`]); weekly days deduplicated
    /// and sorted Monday first. An invalid schedule gives JSON that the database and
    /// [`Schedule::from_json`] reject.
    pub fn to_json(&self) -> Value {
        match self {
            Schedule::Daily => json!({"v": Self::JSON_VERSION, "kind": "daily"}),
            Schedule::Weekly { days } => {
                let mut sorted = days.clone();
                sorted.sort_by_key(|d| d.num_days_from_monday());
                sorted.dedup();
                let names: Vec<&str> = sorted.into_iter().map(day_name).collect();
                json!({"v": Self::JSON_VERSION, "kind": "weekly", "days": names})
            }
            Schedule::EveryNDays { n, start } => json!({
                "v": Self::JSON_VERSION,
                "kind": "every_n_days",
                "n": n,
                "start": start.format("%Y-%m-%d").to_string(),
            }),
        }
    }

    /// Reads the JSON shape of [`Schedule`], exactly as the database's CHECK does
    /// (a weekly schedule's days in any order, returned Monday first).
    ///
    /// # Errors
    /// [`crate::Error::Validation`] on `schedule` for anything else: not an object, a
    /// version other than 1, an unknown kind, a missing or extra key, a value of the
    /// wrong JSON type (`"n": "3"`), a number that is not a whole one (`"n": 3.5`), an
    /// unknown or repeated day name, a date that does not exist. Numbers count by their
    /// value (`"n": 3.0` and `"n": 3e0` are 3), because that is all the database's
    /// jsonb keeps of them.
    pub fn from_json(value: &Value) -> Result<Schedule> {
        let object = value
            .as_object()
            .ok_or_else(|| invalid("must be a JSON object"))?;
        if object.get("v").and_then(whole_number) != Some(Self::JSON_VERSION) {
            return Err(invalid(r#"must have "v": 1 (the version of its shape)"#));
        }
        let kind = object.get("kind").and_then(Value::as_str);
        let schedule = match kind {
            Some("daily") => {
                only_keys(object, &["kind", "v"])?;
                Schedule::Daily
            }
            Some("weekly") => {
                only_keys(object, &["days", "kind", "v"])?;
                Schedule::Weekly {
                    days: days_from_json(object.get("days"))?,
                }
            }
            Some("every_n_days") => {
                only_keys(object, &["kind", "n", "start", "v"])?;
                let n = object
                    .get("n")
                    .and_then(whole_number)
                    .filter(|n| (1..=u64::from(Self::MAX_EVERY_N_DAYS)).contains(n))
                    .ok_or_else(|| invalid("n of every_n_days must be an integer from 1 to 365"))?;
                let start = object
                    .get("start")
                    .and_then(Value::as_str)
                    .and_then(date_from_json)
                    .ok_or_else(|| {
                        invalid(
                            "the start of every_n_days must be a date YYYY-MM-DD from 0001-01-01 \
                             to 9999-12-31",
                        )
                    })?;
                Schedule::EveryNDays { n: n as u32, start }
            }
            _ => {
                return Err(invalid(
                    r#"must have "kind": "daily", "weekly" or "every_n_days""#,
                ))
            }
        };
        schedule.normalized()
    }
}

/// The integer a JSON number stands for: its value rounded to the nearest double (as
/// serde_json reads it, correctly rounded with its `float_roundtrip` feature), when that
/// double is a whole number from 0 to 2^53. So `3`, `3.0`, `3e0`, `0.3e1` and
/// `3.0000000000000000001` are all 3, and `3.5`, `"3"` and `-3` are none.
///
/// Why not "written as an integer": the database's CHECK sees jsonb, in which `3e0` is
/// already the number 3 (the spelling is gone), while serde_json reads `3e0` and `3.0`
/// as the same f64. The value as a double is the one rule both sides can apply to the
/// same text; the CHECK (`habit_schedule_is_valid`, migration
/// 2026-12-06-000002_schedule_check_number_values) casts to float8, which rounds the
/// same way.
fn whole_number(value: &Value) -> Option<u64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: every integer up to it is a double
    let double = value.as_f64()?;
    (double.fract() == 0.0 && (0.0..=EXACT).contains(&double)).then_some(double as u64)
}

/// The object has exactly `keys` (sorted).
fn only_keys(object: &Map<String, Value>, keys: &[&str]) -> Result<()> {
    let mut present: Vec<&str> = object.keys().map(String::as_str).collect();
    present.sort_unstable();
    if present != keys {
        return Err(invalid(format!(
            "this kind of schedule has exactly the keys {}",
            keys.join(", ")
        )));
    }
    Ok(())
}

/// 1 to 7 distinct day names.
fn days_from_json(days: Option<&Value>) -> Result<Vec<Weekday>> {
    let bad = || {
        invalid(
            "days of a weekly schedule must be 1 to 7 distinct names out of mon, tue, wed, \
             thu, fri, sat, sun",
        )
    };
    let names = days.and_then(Value::as_array).ok_or_else(bad)?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let day = DAY_NAMES
            .iter()
            .find(|(_, n)| Some(*n) == name.as_str())
            .map(|(d, _)| *d)
            .ok_or_else(bad)?;
        if out.contains(&day) {
            return Err(bad());
        }
        out.push(day);
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// `YYYY-MM-DD`, a day that exists, in the years 1 to 9999.
fn date_from_json(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && [0, 1, 2, 3, 5, 6, 8, 9]
            .iter()
            .all(|&i| b[i].is_ascii_digit());
    if !shape {
        return None;
    }
    let number = |range: std::ops::Range<usize>| text[range].parse::<u32>().ok();
    let year = i32::try_from(number(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, number(5..7)?, number(8..10)?).filter(|d| d.year() >= 1)
}

impl ToSql<Jsonb, Pg> for Schedule {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        // jsonb's binary format: a version byte, then the text.
        out.write_all(&[1])?;
        serde_json::to_writer(out, &self.to_json())?;
        Ok(IsNull::No)
    }
}

impl FromSql<Jsonb, Pg> for Schedule {
    /// The CHECK constraint admits only valid schedules, so this fails only for a
    /// schema that is not the crate's: an error, never a panic.
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        let value = <Value as FromSql<Jsonb, Pg>>::from_sql(bytes)?;
        Schedule::from_json(&value)
            .map_err(|e| format!("a stored habit schedule is not valid ({e}): {value}").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn every_schedule_reads_back_from_its_json() {
        for schedule in [
            Schedule::Daily,
            Schedule::Weekly {
                days: vec![Weekday::Sun, Weekday::Mon],
            },
            Schedule::EveryNDays {
                n: 365,
                start: day(1, 1, 1),
            },
            Schedule::EveryNDays {
                n: 1,
                start: day(9999, 12, 31),
            },
        ] {
            let json = schedule.to_json();
            assert_eq!(
                Schedule::from_json(&json).unwrap(),
                schedule.normalized().unwrap()
            );
        }
    }

    #[test]
    fn weekly_days_are_written_deduplicated_monday_first() {
        let schedule = Schedule::Weekly {
            days: vec![Weekday::Sun, Weekday::Thu, Weekday::Mon, Weekday::Thu],
        };
        assert_eq!(
            schedule.to_json(),
            json!({"v": 1, "kind": "weekly", "days": ["mon", "thu", "sun"]})
        );
    }

    #[test]
    fn bad_schedules_are_invalid() {
        for bad in [
            Schedule::Weekly { days: vec![] },
            Schedule::EveryNDays {
                n: 0,
                start: day(2026, 1, 5),
            },
            Schedule::EveryNDays {
                n: 366,
                start: day(2026, 1, 5),
            },
            Schedule::EveryNDays {
                n: u32::MAX,
                start: day(2026, 1, 5),
            },
            Schedule::EveryNDays {
                n: 3,
                start: day(0, 12, 31),
            },
            Schedule::EveryNDays {
                n: 3,
                start: day(10000, 1, 1),
            },
        ] {
            assert!(bad.validate().unwrap_err().is_validation(), "{bad:?}");
            assert!(Schedule::from_json(&bad.to_json()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn json_of_another_shape_is_invalid() {
        for bad in [
            json!(null),
            json!([]),
            json!("daily"),
            json!({}),
            json!({"kind": "daily"}),
            json!({"v": 2, "kind": "daily"}),
            json!({"v": 1.5, "kind": "daily"}),
            json!({"v": "1", "kind": "daily"}),
            json!({"v": 1, "kind": "monthly"}),
            json!({"v": 1, "kind": "daily", "extra": true}),
            json!({"v": 1, "kind": "weekly"}),
            json!({"v": 1, "kind": "weekly", "days": []}),
            json!({"v": 1, "kind": "weekly", "days": "mon"}),
            json!({"v": 1, "kind": "weekly", "days": ["Mon"]}),
            json!({"v": 1, "kind": "weekly", "days": ["mon", "mon"]}),
            json!({"v": 1, "kind": "weekly", "days": [1]}),
            json!({"v": 1, "kind": "every_n_days", "n": "3", "start": "2026-01-05"}),
            json!({"v": 1, "kind": "every_n_days", "n": 3.5, "start": "2026-01-05"}),
            json!({"v": 1, "kind": "every_n_days", "n": -3, "start": "2026-01-05"}),
            json!({"v": 1, "kind": "every_n_days", "n": 3}),
            json!({"v": 1, "kind": "every_n_days", "n": 3, "start": "2026-02-29"}),
            json!({"v": 1, "kind": "every_n_days", "n": 3, "start": "2026-1-5"}),
            json!({"v": 1, "kind": "every_n_days", "n": 3, "start": "+2026-01-05"}),
            json!({"v": 1, "kind": "every_n_days", "n": 3, "start": "0000-01-01"}),
            json!({"v": 1, "kind": "every_n_days", "n": 3, "start": 20260105}),
        ] {
            let err = Schedule::from_json(&bad).unwrap_err();
            assert!(err.is_validation(), "{bad}: {err}");
        }
        // Valid orders and leap days.
        let json = json!({"v": 1, "kind": "weekly", "days": ["sun", "mon"]});
        assert_eq!(
            Schedule::from_json(&json).unwrap(),
            Schedule::Weekly {
                days: vec![Weekday::Mon, Weekday::Sun]
            }
        );
        let json = json!({"v": 1, "kind": "every_n_days", "n": 7, "start": "2024-02-29"});
        assert!(Schedule::from_json(&json).is_ok());
        // Numbers by their value, as the database's jsonb keeps them.
        for text in [
            r#"{"v": 1.0, "kind": "every_n_days", "n": 7e0, "start": "2024-02-29"}"#,
            r#"{"v": 0.1e1, "kind": "every_n_days", "n": 0.7E+1, "start": "2024-02-29"}"#,
            r#"{"v": 1, "kind": "every_n_days", "n": 7.0000000000000000001, "start": "2024-02-29"}"#,
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                Schedule::from_json(&value).unwrap(),
                Schedule::from_json(&json).unwrap()
            );
        }
    }

    #[test]
    fn every_n_days_is_due_from_its_start_every_nth_day() {
        let schedule = Schedule::EveryNDays {
            n: 3,
            start: day(2026, 1, 5),
        };
        let due: Vec<u32> = (1..=14)
            .filter(|&d| schedule.is_due_on(day(2026, 1, d)))
            .collect();
        assert_eq!(due, [5, 8, 11, 14]);
    }
}
