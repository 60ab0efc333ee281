-- Habits get ids from the server too when a client omits them (as every table's id).
ALTER TABLE habits ALTER COLUMN id SET DEFAULT uuid_v7();
