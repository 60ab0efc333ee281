-- Ids any client can omit: every table's id defaults to a UUIDv7 made by the server,
-- so rows written by other clients (Better Auth, psql, another service) get one too.
-- The crate still sends its own (uuid::Uuid::now_v7, the same layout): create_many's
-- COPY returns its rows without reading them back.
--
-- UUIDv7 (RFC 9562) leads with the Unix time in milliseconds, so new rows from either
-- side land at the right edge of the primary key index instead of at random pages.
-- PostgreSQL 15 has no uuidv7() (18 has); this is its layout, as PostgreSQL 18 makes
-- it (RFC 9562 method 3):
--
--   bytes 0-5   Unix time in milliseconds, big-endian
--   byte 6-7    version 7, then 12 bits of the sub-millisecond fraction, so ids made
--               in one session a microsecond or more apart are in order too
--   bytes 8-15  variant 10, then 62 random bits (from gen_random_uuid, a v4 whose
--               variant bits are already 10)
--
-- clock_timestamp(), not now(): the rows of one transaction get increasing times.
-- extract(epoch ...) is numeric (PostgreSQL 14+), exact to the microsecond.
--
-- A later migration that adds a table gives its id `DEFAULT uuid_v7()` too
-- (tests/migrations.rs checks that every id column has it).
CREATE FUNCTION uuid_v7() RETURNS uuid
    LANGUAGE sql VOLATILE PARALLEL SAFE
AS $$
    SELECT encode(
               overlay(uuid_send(gen_random_uuid())
                       PLACING int8send((floor(ms)::bigint << 16)
                                        | x'7000'::bigint
                                        | floor((ms - floor(ms)) * 4096)::bigint)
                       FROM 1 FOR 8),
               'hex')::uuid
      FROM (SELECT extract(epoch FROM clock_timestamp()) * 1000 AS ms) AS now_ms
$$;

COMMENT ON FUNCTION uuid_v7() IS
    'A time-ordered UUID (RFC 9562 version 7): Unix milliseconds, 12 bits of sub-millisecond time, 62 random bits.';

ALTER TABLE users ALTER COLUMN id SET DEFAULT uuid_v7();
ALTER TABLE tasks ALTER COLUMN id SET DEFAULT uuid_v7();
ALTER TABLE sessions ALTER COLUMN id SET DEFAULT uuid_v7();
