DROP INDEX tasks_user_search_idx;
ALTER TABLE tasks DROP COLUMN search_vector;
DROP EXTENSION IF EXISTS btree_gin;
