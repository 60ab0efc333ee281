-- Back to numbers as their jsonb text: `v` and `n` had to be written as plain integers.
-- Rows this migration's rule let in with another spelling of the same number (3.0,
-- 3.0000000000000000001) are first rewritten as the integer they stand for, so that the
-- older habit_is_due, which casts the text of n to int, can read every row.
UPDATE habits
   SET schedule = schedule || jsonb_build_object('v', 1)
                  || CASE WHEN schedule ? 'n'
                          THEN jsonb_build_object('n', round((schedule ->> 'n')::numeric)::int)
                          ELSE '{}'::jsonb END
 WHERE schedule ->> 'v' <> '1'
    OR schedule ->> 'n' !~ '^[1-9][0-9]{0,2}$';

CREATE OR REPLACE FUNCTION habit_schedule_is_valid(schedule jsonb) RETURNS boolean
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
            % (schedule ->> 'n')::int = 0
    ELSE false
END
$$;
