-- The previous jsonb_merge_patch (migration 2026-12-07-000001_task_metadata), exactly.
CREATE OR REPLACE FUNCTION jsonb_merge_patch(target jsonb, patch jsonb) RETURNS jsonb
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

DROP FUNCTION jsonb_merge_patch_deep(jsonb, jsonb);
