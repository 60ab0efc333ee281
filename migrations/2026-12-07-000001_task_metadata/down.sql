DROP INDEX tasks_user_metadata_idx;
DROP FUNCTION jsonb_merge_patch(jsonb, jsonb);
ALTER TABLE tasks DROP COLUMN metadata;
