#!/usr/bin/env bash
# Drives the real server on loopback with the load program: seeds
# KJ_BENCH_PATIENTS synthetic patients into a fresh embedded store, starts
# `kjernejournal serve`, and runs the read, compartment and create
# scenarios, reporting throughput, p50/p99 latency and the server's peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."

PATIENTS=${KJ_BENCH_PATIENTS:-10000}
DURATION=${KJ_BENCH_DURATION:-15s}
CONC=${KJ_BENCH_CONCURRENCY:-64}
ADDR=${KJ_BENCH_ADDR:-127.0.0.1:18080}
OUT=bench-results
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
PID=

echo "== seeding $PATIENTS patients into an embedded store"
bin/kjernejournal seed --patients "$PATIENTS" --data-dir "$WORK/data" --ids-out "$WORK/ids.txt"
grep '^Patient/' "$WORK/ids.txt" | sed 's#^Patient/##' > "$WORK/patients.txt"

bin/kjernejournal serve --addr "$ADDR" --data-dir "$WORK/data" --log-level warn >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://$ADDR/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://$ADDR/readyz" >/dev/null

REPORT="$OUT/http-embedded.md"
{
  echo "# HTTP load, embedded engine, $PATIENTS patients, concurrency $CONC, $DURATION each"
  echo
} > "$REPORT"
run() {
  local name=$1; shift
  echo "== $name"
  bin/kjload -url "http://$ADDR" -c "$CONC" -d "$DURATION" -warmup 2s -pid "$PID" -markdown "$@" | tee -a "$REPORT"
  echo >> "$REPORT"
}
run "single read" -scenario read -ids "$WORK/ids.txt"
run "patient-compartment read" -scenario compartment -ids "$WORK/patients.txt" -types AllergyIntolerance,Flag,MedicationStatement,Encounter
run "create (validated Flag)" -scenario create -ids "$WORK/patients.txt" -create-type Flag
echo "report written to $REPORT"
