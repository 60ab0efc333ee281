-- The write mark of a task: the id of the versioned patch that wrote the row last
-- (TaskPatch::write_id), NULL until one does. TaskRepo::update with an expected
-- version sets it in the same UPDATE that bumps the version; when that UPDATE finds
-- the version moved, a row at exactly expected + 1 carrying the patch's own id is the
-- patch's earlier write (a retry after a COMMIT whose outcome was unknown), not another
-- writer's: every write of a task bumps its version. Nullable, no default: adding it
-- rewrites nothing.
ALTER TABLE tasks ADD COLUMN last_write uuid;
