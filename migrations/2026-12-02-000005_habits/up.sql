-- Habits: what a user means to do on a schedule, and the days they did it.
--
-- A schedule is JSONB of one documented, versioned shape (src/models/habit.rs,
-- Schedule; README "Habits"). Version 1 has exactly these three kinds, each with
-- exactly these keys:
--
--   {"v": 1, "kind": "daily"}
--   {"v": 1, "kind": "weekly", "days": ["mon", "thu"]}
--       days: 1 to 7 distinct names out of mon tue wed thu fri sat sun, in any order
--       (the crate writes them Monday first)
--   {"v": 1, "kind": "every_n_days", "n": 3, "start": "2026-01-05"}
--       n: an integer from 1 to 365, written as one (not 3.0, not "3"); start: a
--       date YYYY-MM-DD from 0001-01-01 to 9999-12-31; due on start, start + n, ...
--
-- habit_schedule_is_valid is the CHECK of that shape and never raises: anything else
-- (another kind or version, a missing or extra key, a value of the wrong JSON type,
-- an unknown day name, 2026-02-30) is false. The IF guards come before every cast, so
-- no cast sees text it cannot read, and dates are checked by arithmetic (PostgreSQL 15
-- has no pg_input_is_valid).
CREATE FUNCTION habit_schedule_is_valid(schedule jsonb) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    keys text[];
    n text;
    start text;
    y int;
    m int;
    d int;
BEGIN
    IF jsonb_typeof(schedule) IS DISTINCT FROM 'object'
       OR jsonb_typeof(schedule -> 'v') IS DISTINCT FROM 'number'
       OR schedule ->> 'v' <> '1'
       OR jsonb_typeof(schedule -> 'kind') IS DISTINCT FROM 'string' THEN
        RETURN false;
    END IF;
    SELECT array_agg(k ORDER BY k) INTO keys FROM jsonb_object_keys(schedule) AS k;
    CASE schedule ->> 'kind'
    WHEN 'daily' THEN
        RETURN keys = ARRAY['kind', 'v'];
    WHEN 'weekly' THEN
        IF keys <> ARRAY['days', 'kind', 'v']
           OR jsonb_typeof(schedule -> 'days') <> 'array' THEN
            RETURN false;
        END IF;
        RETURN coalesce((
            SELECT count(*) BETWEEN 1 AND 7
                   AND count(DISTINCT e) = count(*)
                   AND bool_and(jsonb_typeof(e) = 'string'
                                AND e #>> '{}' IN ('mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'))
              FROM jsonb_array_elements(schedule -> 'days') AS e), false);
    WHEN 'every_n_days' THEN
        IF keys <> ARRAY['kind', 'n', 'start', 'v']
           OR jsonb_typeof(schedule -> 'n') <> 'number'
           OR jsonb_typeof(schedule -> 'start') <> 'string' THEN
            RETURN false;
        END IF;
        n := schedule ->> 'n';
        start := schedule ->> 'start';
        IF n !~ '^[1-9][0-9]{0,2}$' OR start !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
            RETURN false;
        END IF;
        y := substr(start, 1, 4)::int;
        m := substr(start, 6, 2)::int;
        d := substr(start, 9, 2)::int;
        RETURN n::int <= 365 AND y >= 1 AND m BETWEEN 1 AND 12
            AND d BETWEEN 1 AND CASE
                WHEN m = 2 AND (y % 4 = 0 AND y % 100 <> 0 OR y % 400 = 0) THEN 29
                WHEN m = 2 THEN 28
                WHEN m IN (4, 6, 9, 11) THEN 30
                ELSE 31
            END;
    ELSE
        RETURN false;
    END CASE;
END
$$;

-- Whether a habit of a valid schedule is due on day: the one definition that due_on
-- and the streak use. Weekdays come from isodow (1 = Monday), never from a
-- locale's day names. A single SQL expression without sub-queries, so that the
-- planner inlines it into the queries; make_date, not a cast to date, keeps it
-- IMMUTABLE (a cast from text depends on DateStyle).
CREATE FUNCTION habit_is_due(schedule jsonb, day date) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT CASE schedule ->> 'kind'
    WHEN 'daily' THEN true
    WHEN 'weekly' THEN
        schedule -> 'days'
            ? (ARRAY['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'])[extract(isodow FROM day)::int]
    WHEN 'every_n_days' THEN
        day >= make_date(substr(schedule ->> 'start', 1, 4)::int,
                         substr(schedule ->> 'start', 6, 2)::int,
                         substr(schedule ->> 'start', 9, 2)::int)
        AND (day - make_date(substr(schedule ->> 'start', 1, 4)::int,
                             substr(schedule ->> 'start', 6, 2)::int,
                             substr(schedule ->> 'start', 9, 2)::int))
            % (schedule ->> 'n')::int = 0
    ELSE false
END
$$;

-- The CHECK constraints repeat the crate's validation (src/models/habit.rs): names as
-- users' names (1 to 100 characters with a visible one: the same code points as
-- 2026-12-02-000001_visible_text, kept equal by a unit test), descriptions as tasks'.
CREATE TABLE habits (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        text        NOT NULL
                CONSTRAINT habits_name_valid
                CHECK (char_length(name) BETWEEN 1 AND 100
                       AND name ~ '[^\u0000-\u0020\u007F-\u00A0\u00AD\u034F\u061C\u115F-\u1160\u1680\u17B4-\u17B5\u180B-\u180F\u2000-\u200F\u2028-\u202F\u205F-\u206F\u2800\u3000\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A\U000E0000-\U000E0FFF]'),
    description text
                CONSTRAINT habits_description_valid CHECK (char_length(description) <= 10000),
    schedule    jsonb       NOT NULL
                CONSTRAINT habits_schedule_valid CHECK (habit_schedule_is_valid(schedule)),
    is_active   boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- Optimistic concurrency, as for tasks: HabitPatch.expected_version checks it.
    version     integer     NOT NULL DEFAULT 1
                CONSTRAINT habits_version_positive CHECK (version >= 1)
);

-- A user's habits in creation order (list, due_on), and the cascade from users.
CREATE INDEX habits_user_created_idx ON habits (user_id, created_at, id);

-- One row per habit and calendar day (the user's own day: the caller decides which).
-- The primary key serves check_in's ON CONFLICT, ranges of days of one habit
-- (check_ins, streak) and the cascade from habits.
CREATE TABLE habit_check_ins (
    habit_id   uuid        NOT NULL REFERENCES habits (id) ON DELETE CASCADE,
    day        date        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (habit_id, day)
);
