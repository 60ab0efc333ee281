//! The schedule's JSON: the database's CHECK (`habit_schedule_is_valid`) and
//! `Schedule::from_json` accept exactly the same text, whatever its spelling.
//!
//! The two read JSON differently: jsonb normalizes numbers on input (`3e0` is stored as
//! 3, `3.0` stays 3.0, both keep an exact decimal) and keeps the last of duplicate keys;
//! serde_json reads any number with a fraction or an exponent as an f64 and keeps the
//! last duplicate too. The generated texts therefore spell numbers every way JSON
//! allows (exponents, fractions of zeros, leading zeros, negative zero, hundreds of
//! digits, values a hair from an integer) and repeat keys.

use diesel::sql_types::{Bool, Date, Text};
use diesel::{QueryableByName, RunQueryDsl};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use todo_store::testing::TestDb;
use todo_store::{HabitRepo, PgConnection, Schedule};

use crate::support::fixtures;

#[derive(QueryableByName)]
struct Verdict {
    #[diesel(sql_type = Bool)]
    ok: bool,
}

/// The CHECK's verdict on `text`, or None when PostgreSQL does not read it as JSON.
fn check_accepts(conn: &mut PgConnection, text: &str) -> Option<bool> {
    diesel::sql_query("SELECT habit_schedule_is_valid($1::jsonb) AS ok")
        .bind::<Text, _>(text)
        .get_result::<Verdict>(conn)
        .ok()
        .map(|v| v.ok)
}

/// `from_json`'s verdict on `text`, or None when serde_json does not read it as JSON.
fn from_json_accepts(text: &str) -> Option<Result<Schedule, todo_store::Error>> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    Some(Schedule::from_json(&value))
}

/// Any integer near the valid ranges, spelled one of many ways.
fn spelled_number() -> impl Strategy<Value = String> {
    spelled(prop_oneof![
        Just(0u64),
        Just(1u64),
        Just(3u64),
        Just(365u64),
        Just(366u64),
        0u64..400,
    ])
}

/// The integer `k` spelled one of many ways, most of them valid JSON.
fn spelled(k: impl Strategy<Value = u64> + Clone) -> impl Strategy<Value = String> {
    let spelling = (k, 0usize..8, 0usize..400, 0i32..6, any::<bool>());
    let spelled = spelling.prop_map(|(k, how, len, shift, upper)| {
        let e = if upper { "E" } else { "e" };
        let zeros = "0".repeat(len);
        let k_str = k.to_string();
        match how {
            // 3
            0 => k_str,
            // 3.000
            1 => format!("{k}.{}", "0".repeat(len.max(1))),
            // 3e0, 3E+0, 3e-0, 3e000
            2 => format!(
                "{k}{e}{}{}",
                ["", "+", "-"][len % 3],
                "0".repeat(1 + shift as usize)
            ),
            // 0.003e3, 0.3E1: the decimal point moved left, the exponent moves it back
            3 => format!(
                "0.{}{k}{e}{}",
                "0".repeat(shift as usize),
                shift as usize + k_str.len()
            ),
            // 300e-2, 30.0e-1: moved right, with the exponent moving it back
            4 => format!("{k}{}{e}-{shift}", "0".repeat(shift as usize)),
            // 3.000...0001: a hair above, up to hundreds of digits
            5 => format!("{k}.{zeros}1"),
            // 2.999...9: a hair below (the integer k, from below)
            6 if k > 0 => format!("{}.{}", k - 1, "9".repeat(len + 1)),
            // 3.00000000000000022204460492503130808472633361816406250 and friends:
            // k plus half a unit in the last place of a double, and just beside it
            _ => {
                let half_ulp = half_ulp_decimal(k);
                let tweak = ["", "1", "0000000000000000000000000000001"][len % 3];
                format!("{half_ulp}{tweak}")
            }
        }
    });
    prop_oneof![
        8 => spelled.clone(),
        // Negative, and negative zero.
        1 => spelled.prop_map(|s| format!("-{s}")),
        1 => prop_oneof![
            Just("-0".to_owned()),
            Just("-0.0".to_owned()),
            Just("-0e0".to_owned()),
            Just("0.0".to_owned()),
        ],
        // Leading zeros (JSON has none), and other texts that are not JSON numbers.
        1 => prop_oneof![
            (0u64..400).prop_map(|k| format!("0{k}")),
            (0u64..400).prop_map(|k| format!("00{k}.0")),
            Just("+1".to_owned()),
            Just(".1e1".to_owned()),
            Just("1.".to_owned()),
            Just("1e".to_owned()),
        ],
        // Far out of any range, and long plain integers.
        1 => prop_oneof![
            Just("1e400".to_owned()),
            Just("1e-400".to_owned()),
            Just("1e1000".to_owned()),
            (1usize..400).prop_map(|len| format!("1{}", "0".repeat(len))),
            Just("18446744073709551617".to_owned()),
            Just("9007199254740993".to_owned()),
        ],
        // A random JSON number.
        1 => "-?(0|[1-9][0-9]{0,25})(\\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?",
    ]
}

/// The decimal expansion of k + 2^(e-53), half a unit in the last place of the double
/// k (e its binary exponent): the exact halfway point between k and the next double.
fn half_ulp_decimal(k: u64) -> String {
    if k == 0 {
        return "0.0".to_owned();
    }
    let exponent = 63 - k.leading_zeros() as i64; // 2^exponent <= k
                                                  // Half an ulp is 2^-power = 5^power / 10^power, exactly.
    let power = 53 - exponent;
    let mut five = vec![1u32]; // little-endian decimal digits of 5^power
    for _ in 0..power {
        let mut carry = 0;
        for digit in five.iter_mut() {
            let v = *digit * 5 + carry;
            *digit = v % 10;
            carry = v / 10;
        }
        while carry > 0 {
            five.push(carry % 10);
            carry /= 10;
        }
    }
    let digits: String = five
        .iter()
        .rev()
        .map(|d| char::from(b'0' + *d as u8))
        .collect();
    format!("{k}.{}{digits}", "0".repeat(power as usize - digits.len()))
}

fn string_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#""daily""#),
        Just(r#""weekly""#),
        Just(r#""every_n_days""#),
        Just(r#""d\u0061ily""#),
        Just(r#""2026-01-05""#),
        Just(r#""2024-02-29""#),
        Just(r#""2026-02-29""#),
        Just(r#""mon""#),
        Just(r#""\u0000""#),
    ]
    .prop_map(str::to_owned)
}

fn days_value() -> impl Strategy<Value = String> {
    let day = prop_oneof![
        Just("mon"),
        Just("tue"),
        Just("thu"),
        Just("sun"),
        Just("m\\u006fn"),
        Just("Mon"),
    ];
    prop::collection::vec(day, 0..4).prop_map(|days| {
        let quoted: Vec<String> = days.iter().map(|d| format!("\"{d}\"")).collect();
        format!("[{}]", quoted.join(","))
    })
}

/// A schedule object as text: a valid skeleton of one kind, its numbers spelled any
/// way, sometimes a key repeated (with another value, before or after) or one extra.
fn schedule_text() -> impl Strategy<Value = String> {
    let kind = prop_oneof![Just("daily"), Just("weekly"), Just("every_n_days")];
    let any_value = prop_oneof![
        spelled_number(),
        string_value(),
        days_value(),
        Just("null".to_owned())
    ];
    let key = prop_oneof![
        Just("v"),
        Just("kind"),
        Just("n"),
        Just("days"),
        Just("start"),
        Just("x"),
    ];
    let extras = prop_oneof![
        2 => Just(vec![]),
        1 => prop::collection::vec((key, any_value, any::<bool>()), 1..3),
    ];
    (
        kind,
        prop_oneof![3 => spelled(Just(1)), 1 => spelled_number()],
        prop_oneof![3 => spelled(1u64..=365), 1 => spelled_number()],
        days_value(),
        extras,
        any::<u64>(),
    )
        .prop_map(|(kind, v, n, days, extra, order)| {
            let mut pairs: Vec<(String, String)> =
                vec![("v".into(), v), ("kind".into(), format!("\"{kind}\""))];
            match kind {
                "weekly" => pairs.push(("days".into(), days)),
                "every_n_days" => {
                    pairs.push(("n".into(), n));
                    pairs.push(("start".into(), r#""2026-01-05""#.into()));
                }
                _ => {}
            }
            // Shuffle deterministically by `order`, then add the extras: duplicates or
            // new keys, first or last.
            let len = pairs.len();
            pairs.rotate_left((order as usize) % len);
            for (key, value, first) in extra {
                if first {
                    pairs.insert(0, (key.into(), value));
                } else {
                    pairs.push((key.into(), value));
                }
            }
            let members: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", members.join(","))
        })
}

#[test]
fn the_check_and_from_json_agree_on_every_spelling_of_numbers_and_repeated_keys() {
    let db = TestDb::new();
    let conn = std::cell::RefCell::new(db.conn());
    let user = fixtures::user(&mut conn.borrow_mut());
    let config = ProptestConfig {
        cases: 1500,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let accepted = std::cell::Cell::new(0u32);
    let result = TestRunner::new(config).run(&schedule_text(), |text| {
        let mut guard = conn.borrow_mut();
        let conn: &mut PgConnection = &mut guard;
        // Texts one of the two does not read as JSON at all (1e400 for serde_json;
        // \u0000 for jsonb) have no verdict of the other to agree with.
        let (Some(check), Some(rust)) = (check_accepts(conn, &text), from_json_accepts(&text))
        else {
            return Ok(());
        };
        prop_assert_eq!(
            check,
            rust.is_ok(),
            "{}: CHECK vs from_json ({:?})",
            text,
            rust
        );
        if let Ok(schedule) = rust {
            accepted.set(accepted.get() + 1);
            // Stored as written, it reads back as the same schedule, and the
            // database's due days are the Rust ones.
            let id = insert(conn, &user, &text);
            let habit = HabitRepo::get(conn, user.id, id).unwrap();
            prop_assert_eq!(&habit.schedule, &schedule, "{}", text);
            for offset in 0..4 {
                let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap()
                    + chrono::Days::new(offset);
                prop_assert_eq!(
                    is_due(conn, &text, day),
                    schedule.is_due_on(day),
                    "{}",
                    text
                );
            }
        }
        Ok(())
    });
    result.unwrap();
    eprintln!(
        "{} of 1500 generated schedules accepted by both",
        accepted.get()
    );
    assert!(
        accepted.get() > 100,
        "only {} accepted schedules: the generator misses the valid shape",
        accepted.get()
    );
}

fn insert(conn: &mut PgConnection, user: &todo_store::User, text: &str) -> todo_store::HabitId {
    let id = todo_store::HabitId::from(uuid::Uuid::now_v7());
    diesel::sql_query(
        "INSERT INTO habits (id, user_id, name, schedule) VALUES ($1, $2, 'Raw', $3::jsonb)",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<diesel::sql_types::Uuid, _>(user.id)
    .bind::<Text, _>(text)
    .execute(conn)
    .expect(text);
    id
}

fn is_due(conn: &mut PgConnection, text: &str, day: chrono::NaiveDate) -> bool {
    diesel::sql_query("SELECT habit_is_due($1::jsonb, $2) AS ok")
        .bind::<Text, _>(text)
        .bind::<Date, _>(day)
        .get_result::<Verdict>(conn)
        .unwrap()
        .ok
}
