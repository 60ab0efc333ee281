-- The numbers of a schedule (`v` and `n`) are checked by their value as a double, the
-- rule Schedule::from_json applies in Rust, so that the two accept exactly the same
-- JSON text.
--
-- Why the value, and why as a double. By the time any function sees a schedule, jsonb
-- has already normalized its numbers: '{"n":3e0}', '{"n":0.3e1}' and '{"n":3}' are one
-- and the same jsonb value (stored as 3), while '{"n":3.0}' keeps its scale (3.0). So
-- the CHECK cannot refuse 3e0 and keep 3: the spelling is gone. On the Rust side,
-- serde_json reads every number with a fraction or an exponent (3.0, 3e0, and
-- 3.0000000000000000001 alike) as the same f64, 3.0, correctly rounded (the crate
-- enables serde_json's float_roundtrip). Since 3e0 must be accepted (it is 3), 3.0 must
-- be too, and so must every number that reads as the double 3.0. The one rule both
-- sides can apply is therefore: the number, rounded to the nearest double as
-- PostgreSQL's float8 and serde_json both round, is the integer (1 for `v`, 1 to 365
-- for `n`). The range guard before the cast keeps float8 from overflowing on 1e1000 and
-- is wide enough never to refuse a number that rounds into the range.
--
-- Readers of `n` round its exact value (round(numeric)), which gives the same integer
-- as the double does: a number that rounds to the double k lies within half a unit in
-- the last place of k, far less than 0.5. The crate itself keeps writing plain integers.
CREATE OR REPLACE FUNCTION habit_schedule_is_valid(schedule jsonb) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    keys text[];
    v numeric;
    n numeric;
    start text;
    y int;
    m int;
    d int;
BEGIN
    IF jsonb_typeof(schedule) IS DISTINCT FROM 'object'
       OR jsonb_typeof(schedule -> 'v') IS DISTINCT FROM 'number'
       OR jsonb_typeof(schedule -> 'kind') IS DISTINCT FROM 'string' THEN
        RETURN false;
    END IF;
    -- Each guard its own IF: the cast to float8 must never see a number it overflows.
    v := (schedule -> 'v')::numeric;
    IF v NOT BETWEEN 0.5 AND 1.5 THEN
        RETURN false;
    END IF;
    IF v::float8 <> 1 THEN
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
        n := (schedule -> 'n')::numeric;
        start := schedule ->> 'start';
        IF n NOT BETWEEN 0.5 AND 365.5 THEN
            RETURN false;
        END IF;
        IF n::float8 <> trunc(n::float8) OR n::float8 < 1
           OR start !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
            RETURN false;
        END IF;
        y := substr(start, 1, 4)::int;
        m := substr(start, 6, 2)::int;
        d := substr(start, 9, 2)::int;
        RETURN y >= 1 AND m BETWEEN 1 AND 12
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

-- As before, but `n` may now be written 3.0 or 3e0: its exact value rounded (see
-- above) instead of its text cast to int.
CREATE OR REPLACE FUNCTION habit_is_due(schedule jsonb, day date) RETURNS boolean
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
            % round((schedule ->> 'n')::numeric)::int = 0
    ELSE false
END
$$;
