DROP TABLE habit_check_ins;
DROP TABLE habits;
DROP FUNCTION habit_is_due(jsonb, date);
DROP FUNCTION habit_schedule_is_valid(jsonb);
