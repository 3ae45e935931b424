#!/usr/bin/env bash
# Amanah vs PostgreSQL + pgcrypto at its strongest, same machine, same run, against the HTTP
# ceiling of this machine.
#
# Starts a throwaway PostgreSQL cluster (temporary directory, loopback port; stopped and removed
# on exit, also on failure), then runs the equivalent workloads with pgbench, configured the way
# a PostgreSQL user tuning for speed would: prepared statements (-M prepared), keys passed as
# parameters (pgbench -D variables bound as statement parameters, no current_setting() and no
# SQL functions), and each client count of PG_CLIENTS tried, the best kept:
#   insert: one row per transaction, 5 pgp_sym_encrypt columns (name, email, phone, NIK, birth
#           date) + 3 hmac() blind-index columns with unique indexes (Amanah's create: 5 fields,
#           3 blind-indexed, all unique), synchronous_commit = on (durable, like Amanah)
#   lookup: by the email hmac column, decrypting all 5 columns
# once with pgcrypto's default options (pgp_sym_encrypt(data, key)) and once tuned
# ('cipher-algo=aes256, s2k-mode=1'), then `amanah bench` create and lookup against Amanah on the
# same PostgreSQL cluster (its own database, one `amanah serve`; SKIP_AMANAH_PG=1 skips it) and on
# SQLite, each run first measuring `GET /healthz` on the same server (`--ceiling`). It prints, for
# each store, the ratios to pgcrypto, and one table where every figure is also a share of the
# HTTP ceiling (the best `GET /healthz` rate measured): what the machine can serve at all.
#
# Usage: scripts/compare-pgcrypto.sh     (after `cargo build --release -p amanah -p amanah-bench`)
# Environment: CONNECTIONS ("64": Amanah's connections; several, e.g. "16 64", are each tried
#                and the best kept), PG_CLIENTS ("4 8 16 32": pgbench clients, each tried, the best
#                kept), PG_JOBS (pgbench threads, nproc), PG_PROTOCOL (prepared; simple or
#                extended to compare), SECONDS_PER_RUN (10), CEILING_SECONDS (3, the /healthz
#                measurement before each Amanah run), SEED (10000 subjects for lookups),
#                PORT (55439), AMANAH (target/release/amanah), PG_BIN (found automatically),
#                REPORT (a CSV file, e.g. bench/history.csv: each Amanah run appends its row).
set -euo pipefail

CONNECTIONS=${CONNECTIONS:-64}
PG_CLIENTS=${PG_CLIENTS:-4 8 16 32}
PG_JOBS=${PG_JOBS:-$(nproc)}
PG_PROTOCOL=${PG_PROTOCOL:-prepared}
SECS=${SECONDS_PER_RUN:-10}
CEILING_SECS=${CEILING_SECONDS:-3}
SEED=${SEED:-10000}
PORT=${PORT:-55439}
REPORT=${REPORT:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AMANAH=${AMANAH:-$ROOT/target/release/amanah}

die() { echo "error: $*" >&2; exit 1; }

positive_ints() { # name, value: a space-separated list of positive integers
  [[ "$2" =~ ^[[:space:]]*[1-9][0-9]*([[:space:]]+[1-9][0-9]*)*[[:space:]]*$ ]] \
    || die "$1 must be one or more positive whole numbers separated by spaces, not '$2'"
}
positive_ints CONNECTIONS "$CONNECTIONS"
positive_ints PG_CLIENTS "$PG_CLIENTS"
positive_ints PG_JOBS "$PG_JOBS"
positive_ints SECONDS_PER_RUN "$SECS"
positive_ints CEILING_SECONDS "$CEILING_SECS"
positive_ints SEED "$SEED"
case "$PG_PROTOCOL" in simple|extended|prepared) ;; *) die "PG_PROTOCOL must be simple, extended or prepared";; esac

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
max_of() { printf '%s\n' "$@" | sort -n | tail -1; }
edge() { # best count, the counts tried: a note if the best is the largest of several
  # shellcheck disable=SC2086
  if [ "$(wc -w <<<"$2")" -gt 1 ] && [ "$1" = "$(max_of $2)" ]; then
    echo " (the largest count tried: more may do better)"
  fi
}
# shellcheck disable=SC2086 # the lists are split on purpose
MAX_CLIENTS=$(max_of $PG_CLIENTS $CONNECTIONS)

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

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) × ${CPU:-unknown CPU}, $(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), load average $(loadavg)"
echo "== PostgreSQL $("$PSQL" --version | awk '{print $3}') + pgcrypto on 127.0.0.1:$PORT: pgbench -M $PG_PROTOCOL, clients tried: $PG_CLIENTS, ${SECS}s per run"
as_owner "$(tool initdb)" -D "$WORK/pg" -U bench --auth=trust -E UTF8 >"$WORK/initdb.log" 2>&1 \
  || { cat "$WORK/initdb.log"; die "initdb failed"; }
as_owner "$(tool pg_ctl)" -D "$WORK/pg" -l "$WORK/pg/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$WORK -c max_connections=$((MAX_CLIENTS + 40)) -c shared_buffers=256MB -c fsync=on -c synchronous_commit=on" \
  start >/dev/null || { cat "$WORK/pg/server.log" 2>/dev/null; die "PostgreSQL did not start"; }

export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=bench PGDATABASE=postgres
KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
HKEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
TUNED_OPTS="cipher-algo=aes256, s2k-mode=1"
"$PSQL" -q -c "CREATE EXTENSION pgcrypto" >/dev/null 2>&1 \
  || die "the pgcrypto extension is not available (Debian: apt-get install postgresql-contrib)"
"$PSQL" -q -v ON_ERROR_STOP=1 <<SQL
CREATE SEQUENCE ids;
CREATE TABLE subjects (
  id bigint PRIMARY KEY,
  full_name bytea NOT NULL, email bytea NOT NULL, whatsapp bytea NOT NULL,
  nik bytea NOT NULL, birth_date bytea NOT NULL,
  email_idx bytea NOT NULL UNIQUE, whatsapp_idx bytea NOT NULL UNIQUE, nik_idx bytea NOT NULL UNIQUE
);
SQL

# The statements, with the keys (and the tuned options) as pgbench variables: with -M prepared
# or extended each `:name` is a bound parameter of a statement parsed once per connection.
enc() { # variant, SQL text expression -> the pgp_sym_encrypt call
  if [ "$1" = tuned ]; then echo "pgp_sym_encrypt($2, :key, :opts)"; else echo "pgp_sym_encrypt($2, :key)"; fi
}
for variant in default tuned; do
  cat >"$WORK/insert_$variant.sql" <<SQL
INSERT INTO subjects
SELECT n, $(enc "$variant" "'Budi Santoso'"), $(enc "$variant" "'b' || n || '@bench.example.id'"), $(enc "$variant" "'+62812' || lpad(n::text, 8, '0')"),
       $(enc "$variant" "'3174' || lpad((n % 9999 + 1)::text, 4, '0') || '251299' || lpad((n % 9999 + 1)::text, 4, '0')"),
       $(enc "$variant" "'1999-12-25'"),
       hmac('b' || n || '@bench.example.id', :hkey, 'sha256'), hmac('+62812' || lpad(n::text, 8, '0'), :hkey, 'sha256'),
       hmac('3174' || n, :hkey, 'sha256')
FROM (SELECT nextval('ids') AS n) v;
SQL
done
# \gset: a lookup that finds no row (or two) fails its client, as an empty result is an error
# for Amanah's load tool.
cat >"$WORK/lookup.sql" <<SQL
\\set n random(1, $SEED)
SELECT pgp_sym_decrypt(full_name, :key) AS f1, pgp_sym_decrypt(email, :key) AS f2,
       pgp_sym_decrypt(whatsapp, :key) AS f3, pgp_sym_decrypt(nik, :key) AS f4,
       pgp_sym_decrypt(birth_date, :key) AS f5
FROM subjects
WHERE email_idx = hmac('b' || CAST(:n AS text) || '@bench.example.id', :hkey, 'sha256') \\gset
SQL

tps() { awk '/^tps = / {printf "%.0f", $3; exit}'; }
pg_run() { # script, clients -> tps (a failed client fails the run)
  local jobs=$PG_JOBS
  [ "$jobs" -gt "$2" ] && jobs=$2
  "$PGBENCH" -n -M "$PG_PROTOCOL" -c "$2" -j "$jobs" -T "$SECS" \
    -D key="$KEY" -D hkey="$HKEY" -D opts="$TUNED_OPTS" -f "$WORK/$1" >"$WORK/pgbench.out" 2>"$WORK/pgbench.err" \
    || { cat "$WORK/pgbench.out" "$WORK/pgbench.err" >&2; die "pgbench failed ($1, $2 clients)"; }
  tps <"$WORK/pgbench.out"
}
declare -A PG PGC
pg_best() { # workload, variant, script: tries each client count, keeps the best
  local tried="" c t
  PG[$1_$2]=0; PGC[$1_$2]=""
  for c in $PG_CLIENTS; do
    t=$(pg_run "$3" "$c")
    [ -n "$t" ] || { cat "$WORK/pgbench.err"; die "pgbench failed ($1, $2, $c clients)"; }
    tried+=" ${c}c ${t}/s"
    if [ "$t" -gt "${PG[$1_$2]}" ]; then PG[$1_$2]=$t; PGC[$1_$2]=$c; fi
  done
  echo "  $1 $2:${tried} -> best ${PG[$1_$2]}/s with ${PGC[$1_$2]} clients$(edge "${PGC[$1_$2]}" "$PG_CLIENTS")"
}
for variant in default tuned; do
  opts_sql=""; [ "$variant" = tuned ] && opts_sql=", '$TUNED_OPTS'"
  "$PSQL" -q -v ON_ERROR_STOP=1 -c "TRUNCATE subjects" >/dev/null
  # Seed the lookup set (numbers 1..SEED) in one statement, then measure inserts after it.
  "$PSQL" -q -v ON_ERROR_STOP=1 -c "SELECT setval('ids', $SEED)" \
    -c "INSERT INTO subjects SELECT n, pgp_sym_encrypt('Budi Santoso', '$KEY'$opts_sql), pgp_sym_encrypt('b' || n || '@bench.example.id', '$KEY'$opts_sql), pgp_sym_encrypt('+62812' || lpad(n::text, 8, '0'), '$KEY'$opts_sql), pgp_sym_encrypt('3174000000000000', '$KEY'$opts_sql), pgp_sym_encrypt('1999-12-25', '$KEY'$opts_sql), hmac('b' || n || '@bench.example.id', '$HKEY', 'sha256'), hmac('+62812' || lpad(n::text, 8, '0'), '$HKEY', 'sha256'), hmac('3174' || n, '$HKEY', 'sha256') FROM generate_series(1, $SEED) n" \
    >/dev/null
  "$PSQL" -q -c "VACUUM ANALYZE subjects" >/dev/null
  echo "pgcrypto $variant:"
  pg_best insert "$variant" "insert_$variant.sql"
  pg_best lookup "$variant" lookup.sql
  # A lookup must find and decrypt its row: check one with the same statement.
  found=$("$PSQL" -At -c "SELECT count(*) FROM subjects WHERE email_idx = hmac('b' || 1 || '@bench.example.id', '$HKEY', 'sha256') AND pgp_sym_decrypt(email, '$KEY') = 'b1@bench.example.id'")
  [ "$found" = 1 ] || die "pgcrypto $variant: the lookup statement does not find subject 1"
done

num() { # JSON key -> its number in amanah bench's --json output
  sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" | head -1
}
declare -A A AC CEIL CEILC
amanah_runs() { # store label, then bench arguments for --url (empty: own SQLite server)
  local label=$1; shift
  local workload c out rps ceil tried report_args=()
  if [ -n "$REPORT" ]; then
    report_args=(--report "$REPORT" --report-note "compare-pgcrypto.sh; pgcrypto tuned (pgbench -M $PG_PROTOCOL): insert ${PG[insert_tuned]}/s (${PGC[insert_tuned]} clients), lookup ${PG[lookup_tuned]}/s (${PGC[lookup_tuned]} clients)")
    [ "$label" = postgres ] && report_args+=(--store-kind postgres)
  fi
  CEIL[$label]=0; CEILC[$label]=""
  for workload in create lookup; do
    A[${workload}_$label]=0; AC[${workload}_$label]=""; tried=""
    for c in $CONNECTIONS; do
      local seed=()
      [ "$workload" = lookup ] && seed=(--subjects "$SEED")
      out=$("$AMANAH" bench "$@" --workload "$workload" --connections "$c" --duration "${SECS}s" ${seed[@]+"${seed[@]}"} \
        --ceiling "${CEILING_SECS}s" --json ${report_args[@]+"${report_args[@]}"})
      rps=$(num throughput_rps <<<"$out" | awk '{printf "%.0f", $1}')
      ceil=$(num ceiling_rps <<<"$out" | awk '{printf "%.0f", $1}')
      [ -n "$rps" ] && [ -n "$ceil" ] || die "amanah bench on $label gave no figures: $out"
      tried+=" ${c}c ${rps}/s ($(num errors <<<"$out") errors, p99 $(num p99_ms <<<"$out") ms, /healthz ${ceil}/s)"
      if [ "$rps" -gt "${A[${workload}_$label]}" ]; then A[${workload}_$label]=$rps; AC[${workload}_$label]=$c; fi
      if [ "$ceil" -gt "${CEIL[$label]}" ]; then CEIL[$label]=$ceil; CEILC[$label]=$c; fi
    done
    echo "  $workload:${tried} -> best ${A[${workload}_$label]}/s with ${AC[${workload}_$label]} connections$(edge "${AC[${workload}_$label]}" "$CONNECTIONS")"
  done
}

# Amanah on the same PostgreSQL cluster: its own database, one `amanah serve`.
if [ "${SKIP_AMANAH_PG:-0}" != 1 ]; then
  echo "== Amanah on PostgreSQL (same cluster, one amanah serve), connections tried: $CONNECTIONS, ${SECS}s per run"
  "$PSQL" -q -c "CREATE DATABASE amanah" >/dev/null
  export AMANAH_DATABASE_URL="postgres://bench@127.0.0.1:$PORT/amanah" AMANAH_KEY_FILE="$WORK/amanah.key"
  AMANAH_LOG=warn "$AMANAH" init --policy "$ROOT/policies/university.toml" >/dev/null
  PGKEY=$("$AMANAH" apikey create --role admin --name bench --holder "Load tool <bench@amanah.invalid>" | tail -1)
  # Every connection may have a request in progress: none is shed.
  AMANAH_LOG=warn "$AMANAH" serve --listen 127.0.0.1:0 --max-concurrent-requests "$(max_of 512 "$MAX_CLIENTS")" \
    >"$WORK/serve.out" 2>"$WORK/serve.err" &
  SERVE_PID=$!
  for _ in $(seq 100); do grep -q 'listening on' "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
  URL=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$WORK/serve.out" | head -1)
  [ -n "$URL" ] || { cat "$WORK/serve.err"; die "amanah serve on PostgreSQL did not start"; }
  amanah_runs postgres --url "$URL" --key "$PGKEY"
  kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; SERVE_PID=""
  unset AMANAH_DATABASE_URL AMANAH_KEY_FILE
fi
as_owner "$(tool pg_ctl)" -D "$WORK/pg" -m fast stop >/dev/null

echo "== Amanah on SQLite (own server), connections tried: $CONNECTIONS, ${SECS}s per run"
amanah_runs sqlite

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
share() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f %%", 100 * a / b; else print "n/a" }'; }
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

# The ceiling: the best GET /healthz rate any Amanah server answered in this run.
CEILING=0; CEILING_C=""
for label in "${!CEIL[@]}"; do
  if [ "${CEIL[$label]}" -gt "$CEILING" ]; then CEILING=${CEIL[$label]}; CEILING_C=${CEILC[$label]}; fi
done
echo
measured="${CEIL[sqlite]}/s on the SQLite server"
[ -n "${CEIL[postgres]:-}" ] && measured+=", ${CEIL[postgres]}/s on the PostgreSQL one"
echo "Every figure as a share of the HTTP ceiling (GET /healthz, best of the runs: $measured), load average now $(loadavg):"
row() { printf '%-8s %-40s %8s %10s %12s\n' "$@"; }
row workload system clients "per s" "of ceiling"
row - "HTTP ceiling: GET /healthz" "$CEILING_C" "$CEILING" "$(share "$CEILING" "$CEILING")"
for workload in create lookup; do
  pgw=$workload; [ "$workload" = create ] && pgw=insert
  for variant in default tuned; do
    row "$workload" "pgcrypto $variant (pgbench -M $PG_PROTOCOL)" "${PGC[${pgw}_$variant]}" "${PG[${pgw}_$variant]}" \
      "$(share "${PG[${pgw}_$variant]}" "$CEILING")"
  done
  for label in sqlite postgres; do
    [ -n "${A[${workload}_$label]:-}" ] || continue
    row "$workload" "Amanah on $label (HTTP)" "${AC[${workload}_$label]}" "${A[${workload}_$label]}" \
      "$(share "${A[${workload}_$label]}" "$CEILING")"
  done
done
