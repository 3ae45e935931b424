#!/usr/bin/env bash
# Amanah vs PostgreSQL + pgcrypto, same machine, same run, same concurrency.
#
# Starts a throwaway PostgreSQL cluster (temporary directory, loopback port; stopped and removed
# on exit, also on failure), then runs the equivalent workloads with pgbench:
#   insert: one row per transaction, 5 pgp_sym_encrypt columns (name, email, phone, NIK, birth
#           date) + 3 hmac() blind-index columns with unique indexes (Amanah's create: 5 fields,
#           3 blind-indexed, all unique), synchronous_commit = on (durable, like Amanah)
#   lookup: by the email hmac column, decrypting all 5 columns
# once with pgcrypto's default options and once tuned ('cipher-algo=aes256, s2k-mode=1'),
# then `amanah bench` create and lookup against Amanah on the same PostgreSQL cluster (its own
# database, one `amanah serve`; SKIP_AMANAH_PG=1 skips it) and on SQLite, and prints the ratios
# for each store.
#
# Usage: scripts/compare-pgcrypto.sh            (after `cargo build --release -p amanah -p amanah-bench`)
# Environment: CONNECTIONS (64), SECONDS_PER_RUN (10), SEED (10000 subjects for lookups),
#              PORT (55439), AMANAH (target/release/amanah), PG_BIN (found automatically).
set -euo pipefail

CONNECTIONS=${CONNECTIONS:-64}
SECS=${SECONDS_PER_RUN:-10}
SEED=${SEED:-10000}
PORT=${PORT:-55439}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AMANAH=${AMANAH:-$ROOT/target/release/amanah}

die() { echo "error: $*" >&2; exit 1; }

[ -x "$AMANAH" ] || die "$AMANAH not found: run cargo build --release -p amanah -p amanah-bench first (or set AMANAH)"
# `amanah bench` runs the load tool beside the binary (or on PATH).
[ -x "$(dirname "$AMANAH")/amanah-bench" ] || command -v amanah-bench >/dev/null 2>&1 \
  || die "amanah-bench not found next to $AMANAH nor on PATH: run cargo build --release -p amanah-bench first"
if [ -z "${PG_BIN:-}" ]; then
  if command -v initdb >/dev/null 2>&1; then
    PG_BIN=$(dirname "$(readlink -f "$(command -v initdb)")")
  else
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  fi
fi
for tool in initdb pg_ctl psql pgbench; do
  [ -x "$PG_BIN/$tool" ] || command -v "$tool" >/dev/null 2>&1 || die "$tool not found (set PG_BIN)"
done
tool() { if [ -x "$PG_BIN/$1" ]; then echo "$PG_BIN/$1"; else command -v "$1"; fi; }
PSQL=$(tool psql); PGBENCH=$(tool pgbench)

WORK=$(mktemp -d /tmp/amanah-pgcrypto.XXXXXX)
# PostgreSQL refuses to run as root: run the server as the postgres user then.
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root needs a postgres user to own the cluster"
  chown postgres "$WORK"
  as_owner() { runuser -u postgres -- "$@"; }
else
  as_owner() { "$@"; }
fi
SERVE_PID=""
cleanup() {
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null
  as_owner "$(tool pg_ctl)" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

echo "== PostgreSQL $("$PSQL" --version | awk '{print $3}') + pgcrypto on 127.0.0.1:$PORT, $CONNECTIONS connections, ${SECS}s per run"
as_owner "$(tool initdb)" -D "$WORK/pg" -U bench --auth=trust -E UTF8 >"$WORK/initdb.log" 2>&1 \
  || { cat "$WORK/initdb.log"; die "initdb failed"; }
as_owner "$(tool pg_ctl)" -D "$WORK/pg" -l "$WORK/pg/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$WORK -c max_connections=$((CONNECTIONS + 20)) -c shared_buffers=256MB -c fsync=on -c synchronous_commit=on" \
  start >/dev/null || { cat "$WORK/pg/server.log" 2>/dev/null; die "PostgreSQL did not start"; }

export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=bench PGDATABASE=postgres
KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
HKEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
"$PSQL" -q -c "CREATE EXTENSION pgcrypto" >/dev/null 2>&1 \
  || die "the pgcrypto extension is not available (Debian: apt-get install postgresql-contrib)"
"$PSQL" -q -v ON_ERROR_STOP=1 <<SQL
ALTER DATABASE postgres SET bench.key = '$KEY';
ALTER DATABASE postgres SET bench.hkey = '$HKEY';
ALTER DATABASE postgres SET bench.opts = '';
CREATE SEQUENCE ids;
CREATE TABLE subjects (
  id bigint PRIMARY KEY,
  full_name bytea NOT NULL, email bytea NOT NULL, whatsapp bytea NOT NULL,
  nik bytea NOT NULL, birth_date bytea NOT NULL,
  email_idx bytea NOT NULL UNIQUE, whatsapp_idx bytea NOT NULL UNIQUE, nik_idx bytea NOT NULL UNIQUE
);
-- One subject's row from its number n, encrypted with the options in bench.opts.
CREATE FUNCTION enc(t text) RETURNS bytea LANGUAGE sql AS
  \$\$ SELECT CASE WHEN current_setting('bench.opts') = '' THEN pgp_sym_encrypt(t, current_setting('bench.key'))
              ELSE pgp_sym_encrypt(t, current_setting('bench.key'), current_setting('bench.opts')) END \$\$;
CREATE FUNCTION bidx(t text) RETURNS bytea LANGUAGE sql AS
  \$\$ SELECT hmac(t, current_setting('bench.hkey'), 'sha256') \$\$;
SQL

cat >"$WORK/insert.sql" <<'SQL'
INSERT INTO subjects
SELECT n, enc('Budi Santoso'), enc('b' || n || '@bench.example.id'), enc('+62812' || lpad(n::text, 8, '0')),
       enc('3174' || lpad((n % 9999 + 1)::text, 4, '0') || '251299' || lpad((n % 9999 + 1)::text, 4, '0')),
       enc('1999-12-25'),
       bidx('b' || n || '@bench.example.id'), bidx('+62812' || lpad(n::text, 8, '0')), bidx('3174' || n)
FROM (SELECT nextval('ids') AS n) v;
SQL
cat >"$WORK/lookup.sql" <<SQL
\\set n random(1, $SEED)
SELECT pgp_sym_decrypt(full_name, k), pgp_sym_decrypt(email, k), pgp_sym_decrypt(whatsapp, k),
       pgp_sym_decrypt(nik, k), pgp_sym_decrypt(birth_date, k)
FROM subjects, (SELECT current_setting('bench.key') AS k) c
WHERE email_idx = bidx('b' || :n || '@bench.example.id');
SQL

tps() { awk '/^tps = / {printf "%.0f", $3; exit}'; }
pg_run() { # script -> tps
  "$PGBENCH" -n -c "$CONNECTIONS" -j 2 -T "$SECS" -f "$WORK/$1" 2>"$WORK/pgbench.err" | tps
}
declare -A PG
for variant in default tuned; do
  opts=""; [ "$variant" = tuned ] && opts="cipher-algo=aes256, s2k-mode=1"
  "$PSQL" -q -v ON_ERROR_STOP=1 -c "ALTER DATABASE postgres SET bench.opts = '$opts'" \
    -c "TRUNCATE subjects" -c "SELECT setval('ids', 1, false)" >/dev/null
  # Seed the lookup set (numbers 1..SEED) in one statement, then measure inserts after it.
  "$PSQL" -q -v ON_ERROR_STOP=1 -c "SELECT setval('ids', $SEED)" \
    -c "INSERT INTO subjects SELECT n, enc('Budi Santoso'), enc('b' || n || '@bench.example.id'), enc('+62812' || lpad(n::text, 8, '0')), enc('3174000000000000'), enc('1999-12-25'), bidx('b' || n || '@bench.example.id'), bidx('+62812' || lpad(n::text, 8, '0')), bidx('3174' || n) FROM generate_series(1, $SEED) n" \
    >/dev/null
  "$PSQL" -q -c "VACUUM ANALYZE subjects" >/dev/null
  PG[insert_$variant]=$(pg_run insert.sql)
  PG[lookup_$variant]=$(pg_run lookup.sql)
  [ -n "${PG[insert_$variant]}" ] && [ -n "${PG[lookup_$variant]}" ] \
    || { cat "$WORK/pgbench.err"; die "pgbench failed"; }
  echo "pgcrypto $variant: insert ${PG[insert_$variant]}/s, lookup ${PG[lookup_$variant]}/s"
done
rps() { sed -n 's/.*"throughput_rps": \([0-9.]*\).*/\1/p' | awk '{printf "%.0f", $1}'; }
errors() { sed -n 's/.*"errors": \([0-9]*\).*/\1/p'; }
p99() { sed -n 's/.*"p99_ms": \([0-9.]*\).*/\1/p'; }
declare -A A
amanah_runs() { # store label, then bench arguments for --url (empty: own SQLite server)
  local label=$1; shift
  local create lookup
  create=$("$AMANAH" bench "$@" --workload create --connections "$CONNECTIONS" --duration "${SECS}s" --json)
  lookup=$("$AMANAH" bench "$@" --workload lookup --connections "$CONNECTIONS" --duration "${SECS}s" --subjects "$SEED" --json)
  A[create_$label]=$(rps <<<"$create"); A[lookup_$label]=$(rps <<<"$lookup")
  echo "amanah on $label: create ${A[create_$label]}/s ($(errors <<<"$create") errors, p99 $(p99 <<<"$create") ms)," \
    "lookup ${A[lookup_$label]}/s ($(errors <<<"$lookup") errors, p99 $(p99 <<<"$lookup") ms)"
}

# Amanah on the same PostgreSQL cluster: its own database, one `amanah serve`.
if [ "${SKIP_AMANAH_PG:-0}" != 1 ]; then
  echo "== Amanah on PostgreSQL (same cluster, one amanah serve), $CONNECTIONS connections, ${SECS}s per run"
  "$PSQL" -q -c "CREATE DATABASE amanah" >/dev/null
  export AMANAH_DATABASE_URL="postgres://bench@127.0.0.1:$PORT/amanah" AMANAH_KEY_FILE="$WORK/amanah.key"
  "$AMANAH" init --policy "$ROOT/policies/university.toml" >/dev/null
  PGKEY=$("$AMANAH" apikey create --role admin --name bench --holder "Load tool <bench@amanah.invalid>" | tail -1)
  AMANAH_LOG=warn "$AMANAH" serve --listen 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
  SERVE_PID=$!
  for _ in $(seq 100); do grep -q 'listening on' "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
  URL=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$WORK/serve.out" | head -1)
  [ -n "$URL" ] || { cat "$WORK/serve.err"; die "amanah serve on PostgreSQL did not start"; }
  amanah_runs postgres --url "$URL" --key "$PGKEY"
  kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; SERVE_PID=""
  unset AMANAH_DATABASE_URL AMANAH_KEY_FILE
fi
as_owner "$(tool pg_ctl)" -D "$WORK/pg" -m fast stop >/dev/null

echo "== Amanah on SQLite (own server), $CONNECTIONS connections, ${SECS}s per run"
amanah_runs sqlite

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
for label in sqlite postgres; do
  [ -n "${A[create_$label]:-}" ] || continue
  echo
  echo "Amanah on $label vs PostgreSQL + pgcrypto (same run):"
  printf '%-8s %12s %18s %16s %14s %14s\n' workload "amanah/s" "pgcrypto default/s" "pgcrypto tuned/s" "vs default" "vs tuned"
  printf '%-8s %12s %18s %16s %14s %14s\n' create "${A[create_$label]}" "${PG[insert_default]}" "${PG[insert_tuned]}" \
    "$(ratio "${A[create_$label]}" "${PG[insert_default]}")" "$(ratio "${A[create_$label]}" "${PG[insert_tuned]}")"
  printf '%-8s %12s %18s %16s %14s %14s\n' lookup "${A[lookup_$label]}" "${PG[lookup_default]}" "${PG[lookup_tuned]}" \
    "$(ratio "${A[lookup_$label]}" "${PG[lookup_default]}")" "$(ratio "${A[lookup_$label]}" "${PG[lookup_tuned]}")"
done
