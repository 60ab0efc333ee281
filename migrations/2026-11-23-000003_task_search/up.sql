-- Full-text search over title and description, per user.
--
-- btree_gin lets one GIN index lead with user_id, so a search only ever touches the
-- index entries of one user, however large the table grows. It is a trusted
-- extension (PostgreSQL 13+): a database owner may create it without superuser.
CREATE EXTENSION IF NOT EXISTS btree_gin;

-- The words of a task, stemmed ('english'), kept up to date by PostgreSQL itself.
-- Title words weigh more than description words in relevance ranking.
ALTER TABLE tasks ADD COLUMN search_vector tsvector NOT NULL
    GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, title), 'A') ||
        setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B')
    ) STORED;

-- Search within one user's tasks: `user_id = $1 AND search_vector @@ query`.
CREATE INDEX tasks_user_search_idx ON tasks USING gin (user_id, search_vector);

-- No index for sorting by title or updated_at: a user has at most about a thousand
-- tasks, which those (rarer) sorts read through a user_id index and sort in memory.
-- Each further index would slow every write of every task.
