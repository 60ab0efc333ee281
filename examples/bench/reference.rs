//! The second floor: for every op, the statement a PostgreSQL engineer would write for
//! the same job, from the schema (migrations/) alone, not from the crate's SQL. pgbench
//! runs it (`-M prepared`) with the same inputs as the crate's own SQL, in the same
//! rounds; the crate is compared with the faster of the two. A statement of the crate's
//! that is slower than it needs to be (a plan the generic plan makes worse, a function
//! evaluated per row, a needless join) shows as a ratio above 1 against this one, which
//! a floor made of the crate's own SQL cannot show.
//!
//! The variables are those of the op's pick (`crate::pgbench::prefix`): `:uid`, `:tid`,
//! `:nid`, and so on. A page's size is a constant of the statement, [`PAGE_ROWS`], as a
//! hand-written page query has it: bound as a parameter (`LIMIT $2`), it can keep
//! PostgreSQL from ever settling on the statement's generic plan, and then every call is
//! planned again (the generic plan counts a tenth of the matching rows: more than a page
//! for users with many tasks, at 10M tasks for the open-tasks page). A reference with
//! that flaw hides the same flaw in the crate.

use crate::ops::{Op, METADATA_FILTER, PAGE};

/// The rows of a page: the page plus one, to tell whether another page follows, as any
/// keyset pager does.
const PAGE_ROWS: i64 = PAGE + 1;

/// A task as an application reads it: every column but the search vector.
const TASK: &str = "id, user_id, title, description, completed, priority, due_date, \
                    created_at, updated_at, version, metadata";

/// A habit as an application reads it.
const HABIT: &str =
    "id, user_id, name, description, schedule, is_active, created_at, updated_at, version";

/// The reference statement of `op`, as a pgbench line; `None` for the calibration row
/// and for ops compared with another op's floor.
pub fn sql(op: Op) -> Option<String> {
    let sql = match op {
        Op::RoundTrip | Op::HeldGet => return None,
        Op::UserCreate => "INSERT INTO users (id, email, name) VALUES (:nid, :nemail, :nname) \
             RETURNING *"
            .to_owned(),
        Op::UserGet => "SELECT * FROM users WHERE id = :uid".to_owned(),
        // The unique index is on this expression (migration email_nfkc_key): the lookup
        // has to spell it to use it.
        Op::UserFindByEmail => "SELECT * FROM users WHERE \
             (email_key(email) COLLATE email_ci) = email_key(:uemail)"
            .to_owned(),
        Op::UserListPage => format!(
            "SELECT * FROM users WHERE (created_at, id) > (:pcat, :pcid) \
             ORDER BY created_at, id LIMIT {PAGE_ROWS}"
        ),
        Op::SessionAuthenticate => "SELECT s.id, s.user_id, s.expires_at, s.created_at, \
             s.last_seen_at, s.ip_address, s.user_agent, s.revoked_at, u.* \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = :th AND s.revoked_at IS NULL AND s.expires_at > now()"
            .to_owned(),
        Op::TaskCreate => format!(
            "INSERT INTO tasks (id, user_id, title, priority) VALUES (:nid, :uid, :ntitle, \
             :prio) ON CONFLICT (id) DO NOTHING RETURNING {TASK}"
        ),
        Op::TaskGet => format!("SELECT {TASK} FROM tasks WHERE id = :tid AND user_id = :uid"),
        Op::TaskUpdate => format!(
            "UPDATE tasks SET title = :ntitle, version = version + 1, updated_at = now() \
             WHERE id = :tid AND user_id = :uid AND version = :ver RETURNING {TASK}"
        ),
        Op::TaskSetCompleted => format!(
            "UPDATE tasks SET completed = :c, version = version + 1, updated_at = now() \
             WHERE id = :tid AND user_id = :uid RETURNING {TASK}"
        ),
        Op::TaskDelete => "DELETE FROM tasks WHERE id = :tid AND user_id = :uid".to_owned(),
        // The open-tasks page, the application's main screen.
        Op::ListFirst => format!(
            "SELECT {TASK} FROM tasks WHERE user_id = :uid AND completed = false \
             ORDER BY created_at DESC, id DESC LIMIT {PAGE_ROWS}"
        ),
        Op::ListNext => format!(
            "SELECT {TASK} FROM tasks WHERE user_id = :uid AND completed = false \
             AND (created_at, id) < (:cat, :cid) ORDER BY created_at DESC, id DESC \
             LIMIT {PAGE_ROWS}"
        ),
        // The tsquery as an InitPlan: computed once, not per row under a generic plan.
        Op::ListSearch => format!(
            "SELECT {TASK} FROM tasks WHERE user_id = :uid \
             AND search_vector @@ (SELECT websearch_to_tsquery('english', :term)) \
             ORDER BY created_at DESC, id DESC LIMIT {PAGE_ROWS}"
        ),
        // Both tables' matches as one wide row each, ranked together: the tsquery an
        // InitPlan in every branch, the page cut after the union.
        Op::SearchAll => format!(
            "SELECT * FROM (\
             SELECT ts_rank_cd(search_vector, (SELECT websearch_to_tsquery('english', :term))) \
             AS rank, 0 AS kind, {TASK}, NULL::jsonb AS schedule, NULL::boolean AS is_active \
             FROM tasks WHERE user_id = :uid \
             AND search_vector @@ (SELECT websearch_to_tsquery('english', :term)) \
             UNION ALL \
             SELECT ts_rank_cd(search_vector, (SELECT websearch_to_tsquery('english', :term))), \
             1, id, user_id, name, description, NULL, NULL, NULL, created_at, updated_at, \
             version, NULL, schedule, is_active \
             FROM habits WHERE user_id = :uid \
             AND search_vector @@ (SELECT websearch_to_tsquery('english', :term))\
             ) AS hits ORDER BY rank DESC, kind DESC, id DESC LIMIT :lim"
        ),
        Op::ListMetadata => format!(
            "SELECT {TASK} FROM tasks WHERE user_id = :uid AND metadata @> '{METADATA_FILTER}' \
             ORDER BY created_at DESC, id DESC LIMIT {PAGE_ROWS}"
        ),
        // The patch of ops.rs (METADATA_PATCH) has top-level keys only: `||` adds or
        // replaces them, `-` removes the one set to null. What an engineer writes for
        // this patch, without a function.
        Op::TaskMergeMetadata => {
            format!(
                "UPDATE tasks SET metadata = (metadata || '{{\"estimate_minutes\": 45}}') - 'labels', \
                 version = version + 1, updated_at = now() \
                 WHERE id = :tid AND user_id = :uid RETURNING {TASK}"
            )
        }
        Op::CountMatching => {
            "SELECT count(*) FROM tasks WHERE user_id = :uid AND NOT completed".to_owned()
        }
        Op::Stats => "SELECT count(*), count(*) FILTER (WHERE completed), \
             count(*) FILTER (WHERE NOT completed AND due_date < now()), \
             count(*) FILTER (WHERE NOT completed AND due_date >= date_trunc('day', now(), 'UTC') \
             AND due_date < date_trunc('day', now(), 'UTC') + interval '1 day'), \
             count(*) FILTER (WHERE priority = 'low'), \
             count(*) FILTER (WHERE priority = 'medium'), \
             count(*) FILTER (WHERE priority = 'high') FROM tasks WHERE user_id = :uid"
            .to_owned(),
        Op::HabitCheckIn => "INSERT INTO habit_check_ins (habit_id, day) \
             SELECT id, :day::date FROM habits WHERE id = :hid AND user_id = :uid \
             ON CONFLICT DO NOTHING RETURNING true"
            .to_owned(),
        // Gaps and islands for the measured habit, a daily one: consecutive days share
        // day - row_number(). (A weekly schedule would number its scheduled days
        // instead; the crate's statement handles every schedule.)
        Op::HabitStreak => "WITH c AS (SELECT day, day - (row_number() OVER (ORDER BY day))::int \
             AS island FROM habit_check_ins WHERE habit_id = \
             (SELECT id FROM habits WHERE id = :hid AND user_id = :uid) AND day <= :today), \
             i AS (SELECT count(*) AS days, max(day) AS last FROM c GROUP BY island) \
             SELECT coalesce(max(days) FILTER (WHERE last >= :today::date - 1), 0) AS current, \
             coalesce(max(days), 0) AS longest FROM i"
            .to_owned(),
        Op::HabitDueOn => format!(
            "SELECT {HABIT} FROM habits WHERE user_id = :uid AND is_active \
             AND habit_is_due(schedule, :today) ORDER BY created_at, id"
        ),
    };
    Some(sql)
}
