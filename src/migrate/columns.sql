-- Every column of every table outside PostgreSQL's own schemas, diesel's bookkeeping
-- table left out: what a revert may drop. Names come quoted as SQL needs them.
SELECT c.oid::int8 AS table_oid,
       c.oid::regclass::text AS table_name,
       a.attnum::int4 AS column_number,
       quote_ident(a.attname) AS column_name,
       a.attgenerated <> '' AS generated,
       pg_get_expr(d.adbin, d.adrelid) AS default_value
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_%'
   AND c.relname <> '__diesel_schema_migrations'
