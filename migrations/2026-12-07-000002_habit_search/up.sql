-- Full-text search over habits' names and descriptions, per user: the same shape as
-- tasks' (2026-11-23-000003_task_search), so that a habit and a task that match a
-- search alike rank alike (SearchRepo::search ranks both together with ts_rank_cd).
--
-- The words of a habit, stemmed ('english', the configuration of tasks.search_vector
-- and of the crate's websearch_to_tsquery), kept up to date by PostgreSQL itself.
-- Name words weigh more than description words, as title words do for tasks.
ALTER TABLE habits ADD COLUMN search_vector tsvector NOT NULL
    GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, name), 'A') ||
        setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B')
    ) STORED;

-- Search within one user's habits: `user_id = $1 AND search_vector @@ query`. A GIN
-- index that leads with user_id (btree_gin, created by the task search migration)
-- touches the entries of one user only, however many habits there are in all.
CREATE INDEX habits_user_search_idx ON habits USING gin (user_id, search_vector);
