-- Keyset pages of users, oldest first: UserRepo::list_page reads a range of this
-- index, (created_at, id) > (the cursor's), in order, for as many rows as a page holds.
CREATE INDEX users_created_idx ON users (created_at, id);
