//! The seed's sessions and habits: a few logins per user (some expired, some revoked)
//! and habits with realistic schedules and about a year of check-ins with gaps.
//! Deterministic for a seed and a user index, from a random stream of their own (the
//! users' and tasks' data are the same with or without them).

use chrono::{DateTime, Duration as TimeDelta, NaiveDate, Utc, Weekday};
use diesel::prelude::*;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use sha2::{Digest, Sha256};

use super::{SeedExtras, SeedOptions};
use crate::error::Result;
use crate::models::{HabitId, Schedule, SessionId, UserId};
use crate::schema::{habit_check_ins, habits, sessions};

const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148",
    "todo-cli/1.4 (+https://example.com/cli)",
];

const HABITS: [(&str, Option<&str>); 10] = [
    ("Morning run", Some("5 km before breakfast")),
    ("Read 20 pages", None),
    ("Meditate", Some("Ten minutes, no phone")),
    ("Water the plants", None),
    ("Practice piano", Some("Scales first, then the piece")),
    ("Stretch", None),
    ("Journal", Some("Three lines about the day")),
    ("Call a friend", None),
    ("Learn Spanish", Some("One lesson in the app")),
    ("Floss", None),
];

/// A session as the seed writes it (its token is never known: nobody signs in with it).
#[derive(Debug, Insertable)]
#[diesel(table_name = sessions, treat_none_as_default_value = false)]
pub(super) struct SeedSessionRow {
    id: SessionId,
    user_id: UserId,
    token_hash: Vec<u8>,
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    revoked_at: Option<DateTime<Utc>>,
}

/// A habit as the seed writes it, with its own timestamps.
#[derive(Debug, Insertable)]
#[diesel(table_name = habits, treat_none_as_default_value = false)]
pub(super) struct SeedHabitRow {
    id: HabitId,
    user_id: UserId,
    name: &'static str,
    description: Option<&'static str>,
    schedule: Schedule,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A check-in as the seed writes it.
#[derive(Debug, Insertable)]
#[diesel(table_name = habit_check_ins)]
pub(super) struct SeedCheckInRow {
    habit_id: HabitId,
    day: NaiveDate,
    created_at: DateTime<Utc>,
}

/// The sessions, habits and check-ins of one user.
#[derive(Debug, Default)]
pub(super) struct Extras {
    pub sessions: Vec<SeedSessionRow>,
    pub habits: Vec<SeedHabitRow>,
    pub check_ins: Vec<SeedCheckInRow>,
}

impl Extras {
    /// The `wanted` extras of user `index` (id `user_id`) of `options`.
    pub(super) fn generate(
        options: &SeedOptions,
        wanted: &SeedExtras,
        index: u32,
        user_id: UserId,
    ) -> Extras {
        let mut rng = Pcg64::seed_from_u64(
            options.seed ^ u64::from(index).wrapping_mul(0xd1b5_4a32_d192_ed03) ^ 0x5eed_e87a,
        );
        let mut extras = Extras::default();
        for _ in 0..wanted.sessions_per_user {
            extras
                .sessions
                .push(session(&mut rng, options.anchor, user_id));
        }
        let first = rng.random_range(0..HABITS.len());
        for n in 0..wanted.habits_per_user as usize {
            let (name, description) = HABITS[(first + n) % HABITS.len()];
            let habit = habit(&mut rng, options.anchor, user_id, name, description);
            extras
                .check_ins
                .extend(check_ins(&mut rng, &habit, options.anchor));
            extras.habits.push(habit);
        }
        extras
    }
}

fn session(rng: &mut Pcg64, anchor: DateTime<Utc>, user_id: UserId) -> SeedSessionRow {
    let created_at = anchor - TimeDelta::minutes(rng.random_range(5..60 * 24 * 60));
    // Thirty-day sessions: those older than a month have expired.
    let expires_at = created_at + TimeDelta::days(30);
    let seen_until = expires_at.min(anchor);
    let span = (seen_until - created_at).num_minutes().max(1);
    let last_seen_at = created_at + TimeDelta::minutes(rng.random_range(0..span));
    let revoked_at = rng
        .random_bool(0.2)
        .then(|| last_seen_at + TimeDelta::minutes(rng.random_range(1..60)));
    let secret: [u8; 32] = rng.random();
    let ip_address = if rng.random_bool(0.7) {
        format!("203.0.113.{}", rng.random_range(1..255))
    } else {
        format!("2001:db8::{:x}", rng.random_range(1..0xffffu32))
    };
    SeedSessionRow {
        id: super::v7_at(created_at, rng),
        user_id,
        token_hash: Sha256::digest(secret).to_vec(),
        expires_at,
        created_at,
        last_seen_at,
        ip_address: Some(ip_address),
        user_agent: Some(USER_AGENTS[rng.random_range(0..USER_AGENTS.len())].to_owned()),
        revoked_at,
    }
}

fn habit(
    rng: &mut Pcg64,
    anchor: DateTime<Utc>,
    user_id: UserId,
    name: &'static str,
    description: Option<&'static str>,
) -> SeedHabitRow {
    let created_at = anchor - TimeDelta::days(rng.random_range(300..420));
    let schedule = match rng.random_range(0..4) {
        0 | 1 => Schedule::Daily,
        2 => Schedule::Weekly {
            days: match rng.random_range(0..3) {
                0 => vec![Weekday::Mon, Weekday::Wed, Weekday::Fri],
                1 => vec![Weekday::Tue, Weekday::Thu],
                _ => vec![Weekday::Sat],
            },
        },
        _ => Schedule::EveryNDays {
            n: rng.random_range(2..5),
            start: created_at.date_naive(),
        },
    };
    let updated_at = created_at + TimeDelta::days(rng.random_range(0..200));
    SeedHabitRow {
        id: super::v7_at(created_at, rng),
        user_id,
        name,
        description: description.filter(|_| rng.random_bool(0.7)),
        schedule,
        is_active: rng.random_bool(0.85),
        created_at,
        updated_at,
    }
}

/// Check-ins on the habit's scheduled days from its creation to yesterday: most
/// days, with now and then a slump of a few days mostly missed.
fn check_ins(rng: &mut Pcg64, habit: &SeedHabitRow, anchor: DateTime<Utc>) -> Vec<SeedCheckInRow> {
    let mut rows = Vec::new();
    let mut slump: u32 = 0;
    let mut day = habit.created_at.date_naive();
    let today = anchor.date_naive();
    while day < today {
        if habit.schedule.is_due_on(day) {
            if slump == 0 && rng.random_bool(0.03) {
                slump = rng.random_range(3..10);
            }
            let keep = if slump > 0 { 0.1 } else { 0.85 };
            if rng.random_bool(keep) {
                let at = day.and_hms_opt(20, 0, 0).map_or(anchor, |t| t.and_utc());
                rows.push(SeedCheckInRow {
                    habit_id: habit.id,
                    day,
                    created_at: at + TimeDelta::minutes(rng.random_range(0..180)),
                });
            }
            slump = slump.saturating_sub(1);
        }
        day = day.succ_opt().unwrap_or(today);
    }
    rows
}

/// Writes the extras of a batch's new users, in statements small enough for the
/// protocol's limit of 65,535 parameters.
pub(super) fn write(conn: &mut PgConnection, extras: &[Extras]) -> Result<(u64, u64, u64)> {
    let sessions: Vec<&SeedSessionRow> = extras.iter().flat_map(|e| &e.sessions).collect();
    let habits: Vec<&SeedHabitRow> = extras.iter().flat_map(|e| &e.habits).collect();
    let check_ins: Vec<&SeedCheckInRow> = extras.iter().flat_map(|e| &e.check_ins).collect();
    for chunk in sessions.chunks(5_000) {
        diesel::insert_into(sessions::table)
            .values(chunk.to_vec())
            .execute(conn)?;
    }
    for chunk in habits.chunks(5_000) {
        diesel::insert_into(habits::table)
            .values(chunk.to_vec())
            .execute(conn)?;
    }
    for chunk in check_ins.chunks(15_000) {
        diesel::insert_into(habit_check_ins::table)
            .values(chunk.to_vec())
            .execute(conn)?;
    }
    Ok((
        sessions.len() as u64,
        habits.len() as u64,
        check_ins.len() as u64,
    ))
}
