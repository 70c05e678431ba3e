#!/usr/bin/env bash
# make bench-cluster (part of make bench): audited reads spread over three
# kjernejournal processes on one MongoDB-protocol database, next to one
# process on the MongoDB engine and one on the embedded engine.
#
# The database is FerretDB 1.24 on SQLite (bin/kjferretdb, the embedded
# FerretDB the tests use, as a process; durable commits), on this machine:
# its figures say how the processes share one database here, little about
# a MongoDB replica set. KJ_BENCH_MONGO_URI points the MongoDB rows at a
# real MongoDB instead (seeded into a new database, kjbench_cluster_<pid>,
# which is left there).
#
# The request is the audited patient search of bench-http.sh's
# search-full: a hospital doctor's token (signed by the shared development
# key: every process runs --base-url $PUBLIC with the same key, clients and
# personas, as behind a load balancer), the access rules and the durable,
# hash-chained usage log. One wrk with three threads; a Lua setup gives
# each thread its server (all three the same for one process), so the
# latency histogram, and with it the p99, covers all requests. The rows
# run interleaved for KJ_BENCH_CLUSTER_ROUNDS rounds (default 2);
# KJ_BENCH_CLUSTER_PATIENTS (20: the search reads one patient's record, and
# larger seed batches time out on FerretDB) patients are seeded into each
# engine.
# After the runs `kjernejournal audit verify` checks each usage log.
# Table in bench-results/cluster.md.
set -euo pipefail
cd "$(dirname "$0")/.."

PATIENTS=${KJ_BENCH_CLUSTER_PATIENTS:-20}
DURATION=${KJ_BENCH_DURATION:-10s}
ROUNDS=${KJ_BENCH_CLUSTER_ROUNDS:-2}
CONC=${KJ_BENCH_CONCURRENCY:-63}
PORT0=${KJ_BENCH_CLUSTER_PORT:-18180} # embedded; +1..+3 the MongoDB processes, +10 FerretDB
PUBLIC=http://kj.bench
DB=kjbench_cluster_$$
OUT=bench-results
mkdir -p "$OUT"

for tool in wrk curl; do command -v "$tool" >/dev/null || { echo "bench-cluster: $tool is needed (make bench-http installs wrk)" >&2; exit 1; }; done
for b in kjernejournal kjferretdb; do [ -x "bin/$b" ] || { echo "bench-cluster: bin/$b is missing (make bench-cluster builds it)" >&2; exit 1; }; done

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  local p
  for p in ${PIDS[@]+"${PIDS[@]}"}; do kill "$p" 2>/dev/null || true; done
  for p in ${PIDS[@]+"${PIDS[@]}"}; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

URI=${KJ_BENCH_MONGO_URI:-}
ENGINE_LABEL="a real MongoDB ($URI)"
if [ -z "$URI" ]; then
  echo "== FerretDB (SQLite) on 127.0.0.1:$((PORT0 + 10))"
  bin/kjferretdb -addr "127.0.0.1:$((PORT0 + 10))" -dir "$WORK/ferretdb" >"$WORK/ferretdb.uri" 2>"$WORK/ferretdb.log" &
  PIDS+=($!)
  for _ in $(seq 1 100); do [ -s "$WORK/ferretdb.uri" ] && break; sleep 0.1; done
  URI=$(head -1 "$WORK/ferretdb.uri")
  [ -n "$URI" ] || { cat "$WORK/ferretdb.log"; exit 1; }
  ENGINE_LABEL="FerretDB 1.24 on SQLite (one process, same machine)"
fi

echo "== seeding $PATIENTS patients into each engine"
bin/kjernejournal seed --patients "$PATIENTS" --data-dir "$WORK/embedded" --ids-out "$WORK/ids.txt" | tail -1
bin/kjernejournal seed --patients "$PATIENTS" --mongo-uri "$URI" --mongo-database "$DB" --mongo-timeout 2m --ids-out "$WORK/ids-mongo.txt" | tail -1
ONE=$(grep '^Patient/' "$WORK/ids.txt" | head -1 | sed 's#^Patient/##')
grep -qx "Patient/$ONE" "$WORK/ids-mongo.txt" || { echo "bench-cluster: the engines were seeded with different patients" >&2; exit 1; }

COMMON=(--base-url "$PUBLIC" --auth-server --log-level warn --rate-failed-auth off --rate-auth-server off
  --smart-key-file testdata/smart/dev-signing-key.pem --smart-clients testdata/smart/clients.json
  --smart-personas testdata/smart/personas.json)
serve() { # port store-flags...
  local port=$1; shift
  bin/kjernejournal serve --addr "127.0.0.1:$port" "${COMMON[@]}" "$@" >"$WORK/serve-$port.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 200); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  cat "$WORK/serve-$port.log"; exit 1
}
echo "== kjernejournal: one process on the embedded engine, three on the MongoDB engine"
serve "$PORT0" --data-dir "$WORK/embedded"
EMBEDDED_PID=${PIDS[-1]}
for k in 1 2 3; do serve $((PORT0 + k)) --mongo-uri "$URI" --mongo-database "$DB"; done

TOKEN=$(bin/kjernejournal token --as hospital-doctor --patient "$ONE" --issuer "$PUBLIC" --lifetime 1h)
cat >"$WORK/spread.lua" <<'LUA'
-- Each wrk thread talks to one server of KJ_PORTS, in turn.
local ports = {}
for p in string.gmatch(os.getenv("KJ_PORTS"), "%d+") do ports[#ports + 1] = p end
local n = 0
function setup(thread)
  thread.addr = wrk.lookup("127.0.0.1", ports[n % #ports + 1])[1]
  n = n + 1
end
LUA

ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.2f\n", v}'; }
# measure NAME ROUND PORTS: one warm-up, one measured run; a row
# "name round req/s p50 p99" in rows.txt.
measure() {
  local name=$1 round=$2 ports=$3 first out rps p50 p99
  first=${ports%%,*}
  local url="http://127.0.0.1:$first/MedicationStatement?patient=$ONE&status=active"
  # A slow database must show in the p99, not as requests wrk gave up on.
  local args=(-t3 -c"$CONC" --timeout 60s -s "$WORK/spread.lua" -H "Authorization: Bearer $TOKEN" -H "nhn-access-basis: UNNTAK")
  KJ_PORTS=$ports wrk "${args[@]}" -d2s "$url" >/dev/null
  out=$(KJ_PORTS=$ports wrk "${args[@]}" -d"$DURATION" --latency "$url")
  if grep -q "Non-2xx\|Socket errors" <<<"$out"; then echo "$out" >&2; echo "bench-cluster: $name: some requests failed" >&2; exit 1; fi
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out" | ms)
  p99=$(awk '$1=="99%" {print $2}' <<<"$out" | ms)
  echo "$name $round $rps $p50 $p99" | tee -a "$WORK/rows.txt"
}

for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round of $ROUNDS"
  measure mongodb-3 "$round" "$((PORT0 + 1)),$((PORT0 + 2)),$((PORT0 + 3))"
  measure embedded-1 "$round" "$PORT0,$PORT0,$PORT0"
  measure mongodb-1 "$round" "$((PORT0 + 1)),$((PORT0 + 1)),$((PORT0 + 1))"
done

VERIFY_MONGO=$(bin/kjernejournal audit verify --mongo-uri "$URI" --mongo-database "$DB")
# The embedded store is one process's: its server lets go of it first.
kill "$EMBEDDED_PID"; wait "$EMBEDDED_PID" 2>/dev/null || true
VERIFY_EMBEDDED=$(bin/kjernejournal audit verify --data-dir "$WORK/embedded")

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -v s="$1" -v c="$2" '$1==s {print $c}' "$WORK/rows.txt" | median; }
TABLE="$OUT/cluster.md"
{
  echo "Audited patient search (token, access rules, durable hash-chained usage log), one wrk with 3 threads and $CONC connections spread over the servers:"
  echo
  echo "| servers | engine | req/s | p50 ms | p99 ms |"
  echo "|---|---|--:|--:|--:|"
  for s in mongodb-3 mongodb-1 embedded-1; do
    case $s in
      mongodb-3) label="three processes, one database"; engine="MongoDB engine on $ENGINE_LABEL" ;;
      mongodb-1) label="one process"; engine="MongoDB engine on $ENGINE_LABEL" ;;
      embedded-1) label="one process"; engine="embedded (bbolt)" ;;
    esac
    printf "| %s | %s | %.0f | %s | %s |\n" "$label" "$engine" "$(col "$s" 3)" "$(col "$s" 4)" "$(col "$s" 5)"
  done
  echo
  echo "After the runs: MongoDB engine: $VERIFY_MONGO; embedded: $VERIFY_EMBEDDED."
  echo
  echo "$(nproc) cores shared by wrk, the servers and the database; $PATIENTS seeded patients per engine, $DURATION per run after 2 s of warm-up, medians of $ROUNDS interleaved rounds; $(date -u +%Y-%m-%d)."
  if [[ $ENGINE_LABEL == FerretDB* ]]; then
    echo "FerretDB figures are reported, not judged: FerretDB translates every MongoDB command into SQLite statements in one process, so they show the cost of sharing one database here, not what a MongoDB replica set would give."
  fi
} > "$TABLE"
cat "$TABLE"
