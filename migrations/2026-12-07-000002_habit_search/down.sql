DROP INDEX habits_user_search_idx;
ALTER TABLE habits DROP COLUMN search_vector;
