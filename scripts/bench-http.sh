#!/usr/bin/env bash
# Drives the real server on loopback with the load program: seeds
# KJ_BENCH_PATIENTS synthetic patients into a fresh embedded store, starts
# `kjernejournal serve`, and runs the read, compartment and create
# scenarios, reporting throughput, p50/p99 latency and the server's peak RSS.
# Then it compares authenticated reads (token validation, scopes and the
# access rules) with the token cache on and off against the same reads
# without authentication.
set -euo pipefail
cd "$(dirname "$0")/.."

PATIENTS=${KJ_BENCH_PATIENTS:-10000}
DURATION=${KJ_BENCH_DURATION:-15s}
CONC=${KJ_BENCH_CONCURRENCY:-64}
ADDR=${KJ_BENCH_ADDR:-127.0.0.1:18080}
OUT=bench-results
mkdir -p "$OUT"
WORK=$(mktemp -d)
PID=
stop() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; fi; }
trap 'stop; rm -rf "$WORK"' EXIT

start() {
  bin/kjernejournal serve --addr "$ADDR" --data-dir "$WORK/data" --log-level warn "$@" >"$WORK/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://$ADDR/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$WORK/server.log"; exit 1
}

echo "== seeding $PATIENTS patients into an embedded store"
bin/kjernejournal seed --patients "$PATIENTS" --data-dir "$WORK/data" --ids-out "$WORK/ids.txt"
grep '^Patient/' "$WORK/ids.txt" | sed 's#^Patient/##' > "$WORK/patients.txt"
# One patient's record, for the authenticated runs (a token is bound to one patient).
ONE=$(head -1 "$WORK/patients.txt")
grep -E "^(Patient/$ONE|[A-Za-z]+/$ONE-)" "$WORK/ids.txt" > "$WORK/one.txt"

REPORT="$OUT/http-embedded.md"
{
  echo "# HTTP load, embedded engine, $PATIENTS patients, concurrency $CONC, $DURATION each"
  echo
} > "$REPORT"
run() {
  local name=$1; shift
  echo "== $name"
  echo "## $name" >> "$REPORT"
  bin/kjload -url "http://$ADDR" -c "$CONC" -d "$DURATION" -warmup 2s -pid "$PID" -markdown -name "$name" "$@" | tee -a "$REPORT"
  echo >> "$REPORT"
}

# wrk (C, from Debian) drives one URL with about a third of the CPU per
# request that kjload's net/http client needs; on two cores shared with
# the server, that CPU is what the server gets back. Installed when missing
# (root and Debian's package archive, as on the development machines).
if ! command -v wrk >/dev/null; then
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
wrkrun() {
  local name=$1 url=$2; shift 2
  echo "== $name (wrk)"
  echo "## $name (wrk, 2 threads, $CONC connections)" >> "$REPORT"
  wrk -t2 -c"$CONC" -d2s "$@" "$url" >/dev/null
  local out
  out=$(wrk -t2 -c"$CONC" -d"$DURATION" --latency "$@" "$url")
  echo "$out"
  if grep -q "Non-2xx" <<<"$out"; then echo "wrk: some requests failed" >&2; exit 1; fi
  { echo '```'; grep -E "requests in|Requests/sec|^ +(50|90|99)%" <<<"$out"; echo '```'; echo; } >> "$REPORT"
}

# The server core alone: no tokens, no access rules, no usage log.
start --insecure-no-auth --insecure-no-audit
run "single read" -scenario read -ids "$WORK/ids.txt"
run "patient-compartment read" -scenario compartment -ids "$WORK/patients.txt" -types AllergyIntolerance,Flag,MedicationStatement,Encounter
run "create (validated Flag)" -scenario create -ids "$WORK/patients.txt" -create-type Flag
run "read, one patient, no authentication" -scenario read -ids "$WORK/one.txt"
stop

# The same reads with the durable usage log on (one AuditEvent per request).
start --insecure-no-auth
run "single read, with usage log" -scenario read -ids "$WORK/ids.txt"
stop

for cache in 10000 -1; do
  start --auth-server --token-cache-size "$cache" --insecure-no-audit
  TOKEN=$(bin/kjernejournal token --as hospital-doctor --patient "$ONE" --issuer "http://$ADDR" --lifetime 1h)
  run "read, one patient, token + scopes + access rules, token cache $cache, no usage log" -scenario read -ids "$WORK/one.txt" \
    -H "Authorization: Bearer $TOKEN" -H "nhn-access-basis: UNNTAK"
  stop
done

# Authorised patient-bound search (token, scopes, access rules) without and
# with the durable usage log (one AuditEvent per request, group-committed).
echo "MedicationStatement?patient=$ONE&status=active" > "$WORK/search.txt"
for auditflag in --insecure-no-audit ""; do
  start --auth-server $auditflag
  TOKEN=$(bin/kjernejournal token --as hospital-doctor --patient "$ONE" --issuer "http://$ADDR" --lifetime 1h)
  label="with usage log"; [ -n "$auditflag" ] && label="no usage log"
  run "authorised patient search, $label" -scenario read -ids "$WORK/search.txt" \
    -H "Authorization: Bearer $TOKEN" -H "nhn-access-basis: UNNTAK"
  wrkrun "authorised patient search, $label" "http://$ADDR/MedicationStatement?patient=$ONE&status=active" \
    -H "Authorization: Bearer $TOKEN" -H "nhn-access-basis: UNNTAK"
  stop
done
echo "report written to $REPORT"
