//! "Due today" in `TaskRepo::stats` is the UTC calendar day whatever the session's time
//! zone says, and `TaskRepo::stats_in_time_zone` counts the calendar day of a named IANA
//! zone. Every instant is taken from the server's clock, read once at the start of a
//! test; the crate judges "today" by the clock of its statement, milliseconds later, so
//! a test could only fail if a midnight fell within those milliseconds.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use diesel::connection::SimpleConnection;
use diesel::sql_types::Timestamptz;
use diesel::{Connection, RunQueryDsl};
use todo_store::testing::TestDb;
use todo_store::UserId;
use todo_store::{Error, NewTask, PgConnection, TaskRepo, TaskStats};

use crate::support::fixtures;

/// The server's `now()`: the start of the test's transaction.
fn server_now(conn: &mut PgConnection) -> DateTime<Utc> {
    diesel::select(diesel::dsl::sql::<Timestamptz>("now()"))
        .get_result(conn)
        .expect("now()")
}

/// Open tasks for `user_id` due at each of `instants`, and one done task due `now`.
fn tasks_due_at(
    conn: &mut PgConnection,
    user_id: UserId,
    instants: &[DateTime<Utc>],
    now: DateTime<Utc>,
) {
    let mut new: Vec<NewTask> = instants
        .iter()
        .map(|&at| NewTask::new("due").due_date(at))
        .collect();
    new.push(NewTask::new("done").due_date(now).completed(true));
    TaskRepo::create_many(conn, user_id, &new).expect("create_many");
}

/// The current calendar day in `zone`, as instants: local midnight to the next.
fn local_day(zone: Tz, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let today = now.with_timezone(&zone).date_naive();
    let midnight = |date: chrono::NaiveDate| {
        zone.from_local_datetime(&date.and_time(NaiveTime::MIN))
            .earliest()
            .expect("midnight exists in the zones of these tests")
            .with_timezone(&Utc)
    };
    (midnight(today), midnight(today.succ_opt().unwrap()))
}

/// The stats of `user_id` with the session's time zone set to `zone` for the rest of the
/// transaction (as a caller's own code might).
fn stats_with_session_zone(conn: &mut PgConnection, user_id: UserId, zone: &str) -> TaskStats {
    conn.batch_execute(&format!("SET LOCAL TIME ZONE '{zone}'"))
        .unwrap();
    TaskRepo::stats(conn, user_id).unwrap()
}

#[test]
fn due_today_is_the_utc_day_whatever_the_sessions_time_zone() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    conn.transaction::<_, Error, _>(|conn| {
        let now = server_now(conn);
        let (start, end) = local_day(Tz::UTC, now);
        let us = Duration::microseconds(1);
        // Two tasks on each edge of the UTC day and one just outside each: any other
        // 24-hour window that contains now() leaves out at least one edge pair and so
        // counts a different number.
        tasks_due_at(
            conn,
            user.id,
            &[start - us, start, start, now, end - us, end - us, end],
            now,
        );
        let utc = TaskRepo::stats(conn, user.id)?;
        assert_eq!(utc.due_today, 5, "{utc:?}");
        for zone in ["Pacific/Kiritimati", "Etc/GMT+12", "Asia/Kathmandu"] {
            let stats = stats_with_session_zone(conn, user.id, zone);
            assert_eq!(stats, utc, "with the session in {zone}");
        }
        Ok(())
    })
    .unwrap();
}

/// Zones around the world: whole, half and quarter hours, daylight saving on either
/// hemisphere (Lord Howe's is half an hour), and the two ends of the offsets.
const ZONES: &[&str] = &[
    "UTC",
    "Asia/Tokyo",
    "America/New_York",
    "Europe/Paris",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "Pacific/Kiritimati",
    "Etc/GMT+12",
];

#[test]
fn stats_in_time_zone_counts_the_calendar_day_of_that_zone() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let other = fixtures::user(&mut conn);
    conn.transaction::<_, Error, _>(|conn| {
        let now = server_now(conn);
        let us = Duration::microseconds(1);
        // For every zone, a task just before its day, at its first and last microsecond,
        // and at the next midnight; and one due now.
        let mut instants = vec![now];
        for name in ZONES {
            let (start, end) = local_day(name.parse().unwrap(), now);
            instants.extend([start - us, start, end - us, end]);
        }
        tasks_due_at(conn, user.id, &instants, now);
        tasks_due_at(conn, other.id, &instants, now);
        let mut counts = Vec::new();
        for name in ZONES {
            let zone: Tz = name.parse().unwrap();
            let (start, end) = local_day(zone, now);
            let expected = instants
                .iter()
                .filter(|&&at| start <= at && at < end)
                .count() as i64;
            // Its own first and last microsecond, and now, at least.
            assert!(expected >= 3, "{name}: {expected}");
            let stats = TaskRepo::stats_in_time_zone(conn, user.id, name)?;
            assert_eq!(
                stats.due_today, expected,
                "{name}: the day {start} .. {end}, now {now}: {stats:?}"
            );
            // Only "due today" depends on the zone.
            let utc = TaskRepo::stats(conn, user.id)?;
            assert_eq!(
                TaskStats {
                    due_today: utc.due_today,
                    ..stats.clone()
                },
                utc
            );
            // Nor does it follow the session's time zone.
            let in_kiritimati = {
                conn.batch_execute("SET LOCAL TIME ZONE 'Pacific/Kiritimati'")
                    .unwrap();
                let stats = TaskRepo::stats_in_time_zone(conn, user.id, name)?;
                conn.batch_execute("SET LOCAL TIME ZONE 'UTC'").unwrap();
                stats
            };
            assert_eq!(in_kiritimati, stats, "{name} in a Kiritimati session");
            counts.push((*name, stats.due_today));
        }
        // UTC's figure is stats()'s.
        assert_eq!(
            counts[0],
            ("UTC", TaskRepo::stats(conn, user.id)?.due_today)
        );
        Ok(())
    })
    .unwrap();
}

/// A worked example: a task due at 23:30 UTC tonight is due today in UTC, and tomorrow in
/// Tokyo (UTC+9, where it is 08:30 the next morning) while Tokyo's date is still the UTC
/// date, that is before 15:00 UTC; after that, Tokyo is already on tomorrow's date, and
/// the same task is due today there while a task due at 14:30 UTC today is not.
#[test]
fn a_task_due_late_in_the_utc_day_is_due_tomorrow_in_tokyo() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    conn.transaction::<_, Error, _>(|conn| {
        let now = server_now(conn);
        let (utc_midnight, _) = local_day(Tz::UTC, now);
        let late = utc_midnight + Duration::minutes(23 * 60 + 30);
        let early = utc_midnight + Duration::minutes(14 * 60 + 30);
        let mut due = vec![late];
        tasks_due_at(conn, user.id, &[late], now);
        assert_eq!(TaskRepo::stats(conn, user.id)?.due_today, 1);
        let tokyo_is_on_the_utc_date =
            now.with_timezone(&chrono_tz::Asia::Tokyo).date_naive() == now.date_naive();
        let in_tokyo = TaskRepo::stats_in_time_zone(conn, user.id, "Asia/Tokyo")?;
        if tokyo_is_on_the_utc_date {
            assert_eq!(in_tokyo.due_today, 0, "08:30 tomorrow in Tokyo");
        } else {
            assert_eq!(in_tokyo.due_today, 1, "08:30 today in Tokyo");
            tasks_due_at(conn, user.id, &[early], now);
            due.push(early);
            let in_tokyo = TaskRepo::stats_in_time_zone(conn, user.id, "Asia/Tokyo")?;
            assert_eq!(in_tokyo.due_today, 1, "23:30 yesterday in Tokyo");
            assert_eq!(TaskRepo::stats(conn, user.id)?.due_today, 2);
        }
        // Ten hours behind UTC: each task is due today in Honolulu when its local date
        // is Honolulu's date now (23:30 UTC is 13:30 of the same date there; 14:30 UTC,
        // added after 15:00 UTC, is 04:30 of the same date).
        let honolulu = chrono_tz::Pacific::Honolulu;
        let today_there = now.with_timezone(&honolulu).date_naive();
        let expected = due
            .iter()
            .filter(|at| at.with_timezone(&honolulu).date_naive() == today_there)
            .count();
        let in_honolulu = TaskRepo::stats_in_time_zone(conn, user.id, "Pacific/Honolulu")?;
        assert_eq!(in_honolulu.due_today, expected as i64);
        Ok(())
    })
    .unwrap();
}

#[test]
fn time_zones_that_are_not_iana_names_are_invalid_before_any_query() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let user = fixtures::user(&mut conn);
    let long = "Europe/".to_owned() + &"x".repeat(10_000);
    let invalid = [
        "",
        " ",
        "Mars/Olympus",
        "EST5EDT,M3.2.0,M11.1.0",
        "UTC+3",
        "XYZ+3",
        "<+03>-3",
        "EST",
        "CET",
        "PST8PDT",
        "GMT",
        "Japan",
        "Z",
        "+03:00",
        "europe/paris",
        " Europe/Paris",
        "Europe/Paris ",
        "Europe/Paris\0",
        "\0",
        "../../etc/passwd",
        "'; DROP TABLE tasks; --",
        long.as_str(),
    ];
    // Inside a transaction: had any of them reached the server, its error would have
    // aborted the transaction.
    conn.transaction::<_, Error, _>(|conn| {
        fixtures::task(conn, &user, "still here");
        for name in invalid {
            match TaskRepo::stats_in_time_zone(conn, user.id, name) {
                Err(Error::Validation { field, .. }) if field == "time_zone" => {}
                other => panic!(
                    "{:?}: expected Validation on time_zone, got {other:?}",
                    name.chars().take(40).collect::<String>()
                ),
            }
        }
        for name in [
            "UTC",
            "Europe/Paris",
            "America/New_York",
            "Etc/GMT+12",
            "America/Argentina/Buenos_Aires",
        ] {
            let stats = TaskRepo::stats_in_time_zone(conn, user.id, name)?;
            assert_eq!(stats.total, 1, "{name}");
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(TaskRepo::count(&mut conn, user.id).unwrap(), 1);
}

#[test]
fn a_zone_the_server_does_not_know_is_a_validation_error_from_the_server_too() {
    let db = TestDb::new();
    let mut conn = db.conn();
    // What the server says for a zone missing from its tzdata (here one that never
    // existed, sent around the crate's own check).
    let err = diesel::select(diesel::dsl::sql::<Timestamptz>(
        "now() AT TIME ZONE 'Mars/Olympus'",
    ))
    .get_result::<chrono::NaiveDateTime>(&mut conn)
    .map_err(Error::from)
    .unwrap_err();
    assert!(
        matches!(&err, Error::Validation { field, .. } if field == "time_zone"),
        "{err:?}"
    );
    // Other server errors about parameters are not mistaken for it.
    let err = diesel::select(diesel::dsl::sql::<Timestamptz>(
        "date_trunc('fortnight', now())",
    ))
    .get_result::<DateTime<Utc>>(&mut conn)
    .map_err(Error::from)
    .unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");
}
