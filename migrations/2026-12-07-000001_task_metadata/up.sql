-- Task metadata: a JSON object of the application's own fields (where a task came
-- from, labels, an estimate, links), stored as jsonb.
--
-- The rules, one CHECK each so that a violation names its rule (PostgreSQL applies a
-- table's CHECK constraints in the order of their names; TaskPatch's validation in Rust
-- checks in the same order: depth, keys, object, size). src/models/metadata.rs applies
-- the same rules before any write, and tests/integration/metadata_json.rs proves the two
-- agree on generated values:
--   - a JSON object at the top, never an array, a scalar or null;
--   - at most 8 levels deep: the top object is level 1, an object or array inside it
--     level 2, ... (jsonpath's .**{8} is the ninth level: the top is level 0 there);
--   - every key of every object non-empty;
--   - at most 16 KiB (16384 bytes) as PostgreSQL writes it as text, octet_length of
--     metadata::text: `{"a": [1, 2]}` with its spaces, numbers as numeric writes them
--     (1e3 is 1000), what a client reads back. Bytes, not characters: a limit on
--     storage and on the wire.
-- NUL cannot be stored at all: jsonb refuses \u0000.
ALTER TABLE tasks ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}'
    CONSTRAINT tasks_metadata_depth
        CHECK (NOT jsonb_path_exists(metadata,
                   'strict $.**{8} ? (@.type() == "object" || @.type() == "array")'))
    CONSTRAINT tasks_metadata_keys
        CHECK (NOT jsonb_path_exists(metadata,
                   'strict $.** ? (@.type() == "object").keyvalue() ? (@.key == "")'))
    CONSTRAINT tasks_metadata_object
        CHECK (jsonb_typeof(metadata) = 'object')
    CONSTRAINT tasks_metadata_size
        CHECK (octet_length(metadata::text) <= 16384);

-- JSON Merge Patch (RFC 7396) of `target` by `patch`: a patch that is not an object
-- replaces the target; an object patch merges into the target (taken as {} when it is
-- not an object) key by key, recursively, a null value removing its key.
-- TaskRepo::update applies it in its one UPDATE (metadata = jsonb_merge_patch(metadata,
-- $n)); the CHECKs above then judge the result. plpgsql, not sql: a SQL function's
-- body cannot name the function itself when it is created.
CREATE FUNCTION jsonb_merge_patch(target jsonb, patch jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
BEGIN
    IF jsonb_typeof(patch) <> 'object' THEN
        RETURN patch;
    END IF;
    IF jsonb_typeof(target) <> 'object' THEN
        target := '{}';
    END IF;
    RETURN coalesce(
        (SELECT jsonb_object_agg(merged.key, merged.value)
           FROM (SELECT t.key, t.value
                   FROM jsonb_each(target) AS t
                  WHERE NOT patch ? t.key
                 UNION ALL
                 SELECT p.key, jsonb_merge_patch(coalesce(target -> p.key, 'null'), p.value)
                   FROM jsonb_each(patch) AS p
                  WHERE jsonb_typeof(p.value) <> 'null') AS merged),
        '{}');
END
$$;

-- Containment (metadata @> $1) and key filters (metadata ?& $1) within one user's
-- tasks: a GIN index that leads with user_id (btree_gin, created by the task search
-- migration), so a filter touches only that user's entries. Measured at 1,000 users x
-- 1,000 tasks: a page read ~170 buffers with it, ~1,000 without (the user's btree, every
-- task filtered); a GIN on metadata alone found all users' 40,000 matches first.
CREATE INDEX tasks_user_metadata_idx ON tasks USING gin (user_id, metadata);
