#!/bin/bash
# The seed example at 10M tasks against psql \copy of the same rows, in one run, on the
# crate's local PostgreSQL (target/todo-store-pg). Run from the repository's root after
# `cargo build --release --example seed`; it makes and drops its own database.
#
#   bash docs/bench/seed_vs_copy.sh            # 10,000 users x 1,000 tasks
#   USERS=1000 bash docs/bench/seed_vs_copy.sh
set -euo pipefail
USERS=${USERS:-10000}
TASKS=${TASKS_PER_USER:-1000}
HOST=$PWD/target/todo-store-pg
PSQL="psql -h $HOST -p 5432 -U postgres -X -q -v ON_ERROR_STOP=1"
DB=todo_store_seed_vs_copy
DIR=$PWD/target/bench/seed_vs_copy
mkdir -p "$DIR"
# Start the local PostgreSQL (the seed example does it) and leave it running.
./target/release/examples/seed --users 1 --tasks-per-user 1 --sessions-per-user 0 \
    --habits-per-user 0 --keep-running --quiet
$PSQL -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
URL="postgres:///$DB?host=$HOST&port=5432&user=postgres"

echo "== seed: $USERS users x $TASKS tasks"
/usr/bin/time -v ./target/release/examples/seed --database-url "$URL" --users "$USERS" \
    --tasks-per-user "$TASKS" 2> "$DIR/seed.time"
grep -E "Elapsed|Maximum resident" "$DIR/seed.time"
$PSQL -d $DB -c "CHECKPOINT"
$PSQL -d $DB -At -F ' ' -c "SELECT 'users', count(*) FROM users UNION ALL SELECT 'tasks', count(*) FROM tasks
    UNION ALL SELECT 'sessions', count(*) FROM sessions UNION ALL SELECT 'habits', count(*) FROM habits
    UNION ALL SELECT 'habit_check_ins', count(*) FROM habit_check_ins"
$PSQL -d $DB -At -c "SELECT 'database ' || pg_size_pretty(pg_database_size('$DB'))"

TABLES="users tasks sessions habits habit_check_ins"
columns() {
    $PSQL -d $DB -At -c "SELECT string_agg(column_name, ', ' ORDER BY ordinal_position)
        FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '$1'
        AND is_generated = 'NEVER'"
}
for t in $TABLES; do
    $PSQL -d $DB -c "\\copy $t ($(columns "$t")) TO '$DIR/$t.csv' WITH (FORMAT csv)"
done
$PSQL -d $DB -c "TRUNCATE users CASCADE" -c "CHECKPOINT" 2> /dev/null

echo "== \\copy of the same rows, one psql stream"
start=$(date +%s.%N)
for t in $TABLES; do
    s=$(date +%s.%N)
    $PSQL -d $DB -c "\\copy $t ($(columns "$t")) FROM '$DIR/$t.csv' WITH (FORMAT csv)"
    echo "$t $(echo "$(date +%s.%N) - $s" | bc) s"
done
$PSQL -d $DB -c "CHECKPOINT"
echo "\\copy total $(echo "$(date +%s.%N) - $start" | bc) s"
rm -f "$DIR"/*.csv
$PSQL -d postgres -c "DROP DATABASE $DB"
