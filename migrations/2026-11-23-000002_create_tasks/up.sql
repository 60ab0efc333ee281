-- Ordered low < medium < high, so ORDER BY priority sorts by importance.
CREATE TYPE task_priority AS ENUM ('low', 'medium', 'high');

CREATE TABLE tasks (
    id          uuid          PRIMARY KEY,
    user_id     uuid          NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       varchar(255)  NOT NULL
                CONSTRAINT tasks_title_valid CHECK (btrim(title) <> ''),
    description text
                CONSTRAINT tasks_description_valid CHECK (char_length(description) <= 10000),
    completed   boolean       NOT NULL DEFAULT false,
    priority    task_priority NOT NULL DEFAULT 'medium',
    due_date    timestamptz,
    created_at  timestamptz   NOT NULL DEFAULT now(),
    updated_at  timestamptz   NOT NULL DEFAULT now(),
    -- Optimistic concurrency: every update increments it; TaskPatch.expected_version checks it.
    version     integer       NOT NULL DEFAULT 1
                CONSTRAINT tasks_version_positive CHECK (version >= 1)
);

-- Every task query is per user. This index serves the default list (newest first),
-- keyset pagination on (created_at, id), count, and the ON DELETE CASCADE from users.
CREATE INDEX tasks_user_created_idx ON tasks (user_id, created_at DESC, id DESC);

-- Open/completed list views, newest first: the application's main screen.
CREATE INDEX tasks_user_completed_created_idx ON tasks (user_id, completed, created_at DESC, id DESC);

-- Due-date filters, the overdue view and sorting by due date.
CREATE INDEX tasks_user_due_idx ON tasks (user_id, due_date, id);

-- Priority filters and sorting by priority.
CREATE INDEX tasks_user_priority_idx ON tasks (user_id, priority, id);
