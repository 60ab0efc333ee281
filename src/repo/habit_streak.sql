-- The streaks of one habit (HabitRepo::streak; the method in habit_sql.rs says how it
-- counts): (habit found, current streak, longest streak).
-- Parameters, each standing once and numbered in the order they stand: the habit's
-- id, its user's id, today (the user's calendar day). See fragment::SqlFile.
WITH habit AS (SELECT id, schedule FROM habits WHERE id = $1 AND user_id = $2),
-- The schedule, read once: its kind; for weekly ones, before[i + 1] = how many of its
-- days come before weekday i (0 = Monday) in a week, before[8] its days in a week; for
-- every_n_days ones, its start and n (rounded, as habit_is_due reads it).
s AS (
  SELECT id, $3::date AS today, schedule ->> 'kind' AS kind,
    ARRAY[0::bigint] || ARRAY(
      SELECT count(*) FILTER (WHERE schedule -> 'days' ? w.name) OVER (ORDER BY w.i)
      FROM unnest(ARRAY['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'])
        WITH ORDINALITY AS w(name, i)
    ) AS before,
    make_date(substr(schedule ->> 'start', 1, 4)::int, substr(schedule ->> 'start', 6, 2)::int,
      substr(schedule ->> 'start', 9, 2)::int) AS start,
    round((schedule ->> 'n')::numeric)::int AS every
  FROM habit
),
-- Each run of consecutive scheduled days checked in (an island of equal
-- number - row_number()): its length and the number of its last day. One branch per
-- kind of schedule; the other two are cut by a one-time filter on the kind.
lengths AS (
  SELECT count(*) AS length, max(number) AS last FROM (
    SELECT number, number - row_number() OVER (ORDER BY day) AS island FROM (
      SELECT c.day, (c.day - DATE '2000-01-03')::bigint AS number
      FROM habit_check_ins c
      WHERE c.habit_id = (SELECT id FROM s) AND c.day <= (SELECT today FROM s)
        AND (SELECT kind FROM s) = 'daily'
    ) daily
    UNION ALL
    SELECT number, number - row_number() OVER (ORDER BY day) AS island FROM (
      SELECT c.day,
        (c.day - DATE '2000-01-03' - w.weekday) / 7 * (SELECT before[8] FROM s)
          + (SELECT before FROM s)[w.weekday + 1] AS number
      FROM habit_check_ins c,
        -- The weekday of c.day, 0 for Monday (2000-01-03 was one), before 2000 too.
        LATERAL (SELECT ((c.day - DATE '2000-01-03') % 7 + 7) % 7 AS weekday) w
      WHERE c.habit_id = (SELECT id FROM s) AND c.day <= (SELECT today FROM s)
        AND (SELECT kind FROM s) = 'weekly'
        AND (SELECT before FROM s)[w.weekday + 2] > (SELECT before FROM s)[w.weekday + 1]
    ) weekly
    UNION ALL
    SELECT number, number - row_number() OVER (ORDER BY day) AS island FROM (
      SELECT c.day, ((c.day - (SELECT start FROM s)) / (SELECT every FROM s))::bigint AS number
      FROM habit_check_ins c
      WHERE c.habit_id = (SELECT id FROM s) AND c.day <= (SELECT today FROM s)
        AND (SELECT kind FROM s) = 'every_n_days'
        AND c.day >= (SELECT start FROM s)
        AND (c.day - (SELECT start FROM s)) % (SELECT every FROM s) = 0
    ) every_n_days
  ) numbered
  GROUP BY island
)
-- The current run is the one whose last number is at most one behind the number today
-- would have.
SELECT EXISTS (SELECT FROM habit),
  coalesce(max(length) FILTER (WHERE (
    SELECT CASE kind
      WHEN 'daily' THEN today - DATE '2000-01-03'
      WHEN 'weekly' THEN (today - DATE '2000-01-03' - ((today - DATE '2000-01-03') % 7 + 7) % 7)
        / 7 * before[8] + before[((today - DATE '2000-01-03') % 7 + 7) % 7 + 1]
      ELSE CASE WHEN today <= start THEN 0 ELSE (today - start + every - 1) / every END
    END FROM s
  ) - last <= 1), 0),
  coalesce(max(length), 0)
FROM lengths
