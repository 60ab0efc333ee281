DROP INDEX users_created_idx;
