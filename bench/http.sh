#!/usr/bin/env bash
# Usage: bench/http.sh sqlite|postgres  (needs target/release/amanah; postgres: $PGURL)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/amanah
POLICY=policies/university.toml
D=$(mktemp -d)
if [ "$1" = sqlite ]; then S=(--data "$D"); else S=(--data "$D" --store "$PGURL"); fi
$BIN init "${S[@]}" --policy $POLICY >/dev/null 2>&1
KEY=$($BIN apikey create "${S[@]}" --role admin --holder "Load tool <bench@amanah.invalid>" | tail -1)
AMANAH_LOG=warn $BIN serve "${S[@]}" --listen 127.0.0.1:18090 >/dev/null 2>&1 &
PID=$!
sleep 1
H="Authorization: Bearer $KEY"
echo "== create"; wrk -t2 -c32 -d10s -H "$H" -s bench/create.lua http://127.0.0.1:18090 | grep -E "Requests/sec|Latency|Non-2xx"
ID=$(curl -s -X POST -H "$H" -H 'content-type: application/json' 'http://127.0.0.1:18090/v1/subjects?purpose=admission' -d '{"fields":{"full_name":"Lookup Person","email":"lookup@example.id"}}' | sed 's/.*"id":"\([^"]*\)".*/\1/')
echo "== lookup"; wrk -t2 -c32 -d10s -H "$H" "http://127.0.0.1:18090/v1/subjects?purpose=admission&email=lookup@example.id" | grep -E "Requests/sec|Latency|Non-2xx"
echo "== get"; wrk -t2 -c32 -d10s -H "$H" "http://127.0.0.1:18090/v1/subjects/$ID?purpose=admission" | grep -E "Requests/sec|Latency|Non-2xx"
kill -INT $PID; wait $PID || true
echo "== verify"; /usr/bin/time -f "%e s" $BIN audit verify "${S[@]}" 2>&1 | tail -2
