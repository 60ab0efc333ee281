-- jsonb_merge_patch (RFC 7396), cheaper on the server: the same results, in two parts.
--
-- A patch of top-level keys only (no object anywhere below its top level) into
-- metadata without null values is the common merge: set some fields, remove others
-- with null. Its result is `target || patch` without the null fields, which only the
-- patch had, at its top level. That case is an expression of a SQL function, which
-- PostgreSQL inlines into the calling statement: no function call at all. Measured
-- with an UPDATE of one task: the plpgsql function took about 45-65 µs of server CPU
-- per call, against about 5 µs for this and for `(metadata || '{...}') - 'labels'`
-- written by hand.
--
-- Every other merge (objects to merge recursively, a target with null values or that
-- is not an object, a patch that is not an object) goes to jsonb_merge_patch_deep:
-- plpgsql whose statements are all simple expressions (no query per call, as the
-- UNION of the previous version was), recursing through jsonb_merge_patch for the
-- patch's object values only.
--
-- jsonb_merge_patch stays the name TaskRepo::update calls; it is no longer STRICT
-- (a strict SQL function is not inlined), so it returns NULL for a NULL argument itself.

CREATE FUNCTION jsonb_merge_patch_deep(target jsonb, patch jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    merged jsonb;
    keys jsonb;
    key text;
BEGIN
    IF jsonb_typeof(patch) <> 'object' THEN
        RETURN patch;
    END IF;
    IF jsonb_typeof(target) <> 'object' THEN
        target := '{}';
    END IF;
    -- The patch's values replace the target's; then its objects merge into the
    -- target's values of their keys, and its null values remove their keys.
    merged := target || patch;
    keys := jsonb_path_query_array(patch, 'strict $.keyvalue() ? (@.value.type() == "object").key');
    FOR i IN 0 .. jsonb_array_length(keys) - 1 LOOP
        key := keys ->> i;
        merged := jsonb_set(merged, ARRAY[key],
                            jsonb_merge_patch(coalesce(target -> key, 'null'), patch -> key));
    END LOOP;
    keys := jsonb_path_query_array(patch, 'strict $.keyvalue() ? (@.value == null).key');
    FOR i IN 0 .. jsonb_array_length(keys) - 1 LOOP
        merged := merged - (keys ->> i);
    END LOOP;
    RETURN merged;
END
$$;

-- jsonb_strip_nulls removes null object fields at every depth, but leaves null array
-- elements: with no object below the patch's top level and no null field anywhere in
-- the target, the only fields it removes are the patch's top-level nulls. (The WHEN
-- branches are tried in order: the paths run on two objects only.)
CREATE OR REPLACE FUNCTION jsonb_merge_patch(target jsonb, patch jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT CASE
    WHEN target IS NULL OR patch IS NULL THEN NULL
    WHEN jsonb_typeof(patch) <> 'object' OR jsonb_typeof(target) <> 'object'
        THEN jsonb_merge_patch_deep(target, patch)
    WHEN jsonb_path_exists(patch, 'strict $.*.** ? (@.type() == "object")')
         OR jsonb_path_exists(target, 'strict $.** ? (@.type() == "object").* ? (@ == null)')
        THEN jsonb_merge_patch_deep(target, patch)
    ELSE jsonb_strip_nulls(target || patch)
END
$$;
