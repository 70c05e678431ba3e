#!/usr/bin/env bash
# make bench-http: the server measured the way issue 15 asks, against the
# machine's own ceiling. One load generator (wrk, from Debian, installed
# when missing) drives, in every round, each scenario in turn, A B C ...,
# for KJ_BENCH_ROUNDS rounds (default 3), so the machine's drift hits all
# alike:
#
#   ceiling        a bare Go net/http server answering 60 bytes of JSON (kjload -hello)
#   read           read by id, no token, no usage log
#   read-full      read by id, token + rules + durable usage log
#   search         patient search, token + rules, no usage log
#   search-full    patient search, full path
#   create-full    create a Flag, full path
#   tx50-full      a transaction of 50 Flags, full path (per resource)
#
# Every kjernejournal run starts from a fresh copy of one seeded store
# (KJ_BENCH_PATIENTS, default 10000). Reported per scenario, the medians of
# the rounds: req/s, p50, p99, server CPU per request (from /proc) and the
# share of the ceiling's req/s; and the bytes the embedded store holds per
# resource (after seeding) and per usage-log record (what the audited reads
# added, over the records they added). The table goes to
# bench-results/bench.md and replaces the one between the bench-table
# markers in README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

PATIENTS=${KJ_BENCH_PATIENTS:-10000}
DURATION=${KJ_BENCH_DURATION:-10s}
ROUNDS=${KJ_BENCH_ROUNDS:-3}
CONC=${KJ_BENCH_CONCURRENCY:-64}
SCENARIOS=${KJ_BENCH_SCENARIOS:-ceiling,read,read-full,search,search-full,create-full,tx50-full}
ADDR=${KJ_BENCH_ADDR:-127.0.0.1:18080}
OUT=bench-results
mkdir -p "$OUT"

if ! command -v wrk >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get install -y wrk >/dev/null 2>&1 || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; }
fi
for tool in wrk jq curl; do command -v "$tool" >/dev/null || { echo "bench: $tool is needed" >&2; exit 1; }; done
[ -x bin/kjernejournal ] && [ -x bin/kjload ] || { echo "bench: run make build first" >&2; exit 1; }

WORK=$(mktemp -d)
PID=
stop() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; fi; }
trap 'stop; rm -rf "$WORK"' EXIT

# used BYTES of a file: its allocated blocks (bbolt grows its file ahead,
# sparsely, so the apparent size says little).
used() { du --block-size=1 "$1" | cut -f1; }

echo "== seeding $PATIENTS patients"
SEEDED=$(bin/kjernejournal seed --patients "$PATIENTS" --data-dir "$WORK/seeded" --ids-out "$WORK/ids.txt" | tail -1)
SEED_RATE=$(sed -n 's/.*(\([0-9]*\) resources\/s).*/\1/p' <<<"$SEEDED")
RESOURCES=$(grep -c '/' "$WORK/ids.txt")
PER_RESOURCE=$(( $(used "$WORK/seeded/kjernejournal.db") / RESOURCES ))
grep '^Patient/' "$WORK/ids.txt" | sed 's#^Patient/##' > "$WORK/patients.txt"
ONE=$(head -1 "$WORK/patients.txt")
READ=$(grep -E "^MedicationStatement/" "$WORK/ids.txt" | grep -- "$ONE" | head -1 || true)
[ -n "$READ" ] || READ=$(grep -E "^[A-Za-z]+/$ONE-" "$WORK/ids.txt" | head -1 || true)
[ -n "$READ" ] || READ="Patient/$ONE"
echo "$ONE" > "$WORK/one.txt"
records_in() { bin/kjernejournal audit verify --data-dir "$1" | sed -n 's/.*intact: \([0-9]*\) records.*/\1/p'; }
SEEDED_RECORDS=$(records_in "$WORK/seeded")

# Request bodies for the writes: a synthetic Flag of ONE, and a
# transaction of 50.
bin/kjload -print-bodies 50 -ids "$WORK/one.txt" -create-type Flag > "$WORK/flags.ndjson"
head -1 "$WORK/flags.ndjson" > "$WORK/flag.json"
jq -s '{resourceType:"Bundle",type:"transaction",entry:[.[]|{resource:.,request:{method:"POST",url:"Flag"}}]}' "$WORK/flags.ndjson" > "$WORK/tx50.json"
cat > "$WORK/post.lua" <<'EOF'
local f = assert(io.open(os.getenv("KJ_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/fhir+json"
EOF

start() { # flags...
  rm -rf "$WORK/data"; cp -r "$WORK/seeded" "$WORK/data"
  bin/kjernejournal serve --addr "$ADDR" --data-dir "$WORK/data" --log-level warn "$@" >"$WORK/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://$ADDR/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$WORK/server.log"; exit 1
}
hello() {
  bin/kjload -hello "$ADDR" 2>"$WORK/server.log" &
  PID=$!
  for _ in $(seq 1 100); do curl -fsS "http://$ADDR/" >/dev/null 2>&1 && return 0; sleep 0.1; done
  cat "$WORK/server.log"; exit 1
}
token() { bin/kjernejournal token --as hospital-doctor --patient "$ONE" --issuer "http://$ADDR" --lifetime 1h; }
cpu() { awk '{print $14+$15}' "/proc/$PID/stat"; } # server CPU ticks
TICK=$(getconf CLK_TCK)

# measure SCENARIO ROUND URL wrk-args...: one warm-up, one measured run;
# a row "scenario round req/s p50ms p99ms cpu-us/request" in rows.txt.
measure() {
  local name=$1 round=$2 url=$3; shift 3
  wrk -t1 -c"$CONC" -d2s "$@" "$url" >/dev/null
  local c0 out c1 rps p50 p99 n
  c0=$(cpu)
  out=$(wrk -t1 -c"$CONC" -d"$DURATION" --latency "$@" "$url")
  c1=$(cpu)
  if grep -q "Non-2xx" <<<"$out"; then echo "$out" >&2; echo "bench: $name: some requests failed" >&2; exit 1; fi
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out" | ms)
  p99=$(awk '$1=="99%" {print $2}' <<<"$out" | ms)
  local us=$(( (c1 - c0) * 1000000 / TICK / n ))
  echo "$name $round $rps $p50 $p99 $us" | tee -a "$WORK/rows.txt"
}
ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.2f\n", v}'; }
want() { [[ ",$SCENARIOS," == *",$1,"* ]]; }

AUDIT_BYTES=0 AUDIT_RECORDS=0
for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round of $ROUNDS"
  if want ceiling; then hello; measure ceiling "$round" "http://$ADDR/"; stop; fi
  if want read; then
    start --insecure-no-auth --insecure-no-audit
    measure read "$round" "http://$ADDR/$READ"; stop
  fi
  if want read-full; then
    start --auth-server; T=$(token)
    before=$(used "$WORK/data/kjernejournal.db")
    measure read-full "$round" "http://$ADDR/$READ" -H "Authorization: Bearer $T" -H "nhn-access-basis: UNNTAK"
    stop
    # What the audited reads added to the store is usage log only.
    records=$(( $(records_in "$WORK/data") - SEEDED_RECORDS ))
    AUDIT_BYTES=$(( AUDIT_BYTES + $(used "$WORK/data/kjernejournal.db") - before ))
    AUDIT_RECORDS=$(( AUDIT_RECORDS + records ))
  fi
  if want search; then
    start --auth-server --insecure-no-audit; T=$(token)
    measure search "$round" "http://$ADDR/MedicationStatement?patient=$ONE&status=active" -H "Authorization: Bearer $T" -H "nhn-access-basis: UNNTAK"
    stop
  fi
  if want search-full; then
    start --auth-server; T=$(token)
    measure search-full "$round" "http://$ADDR/MedicationStatement?patient=$ONE&status=active" -H "Authorization: Bearer $T" -H "nhn-access-basis: UNNTAK"
    stop
  fi
  if want create-full; then
    start --auth-server; T=$(token)
    KJ_BODY="$WORK/flag.json" measure create-full "$round" "http://$ADDR/Flag" -s "$WORK/post.lua" -H "Authorization: Bearer $T" -H "nhn-access-basis: UNNTAK"
    stop
  fi
  if want tx50-full; then
    start --auth-server; T=$(token)
    KJ_BODY="$WORK/tx50.json" measure tx50-full "$round" "http://$ADDR/" -s "$WORK/post.lua" -H "Authorization: Bearer $T" -H "nhn-access-basis: UNNTAK"
    stop
  fi
done

# Medians per scenario, and the table.
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -v s="$1" -v c="$2" '$1==s {print $c}' "$WORK/rows.txt" | median; }
CEIL=$(want ceiling && col ceiling 3 || echo 0)
TABLE="$OUT/bench.md"
{
  echo "| scenario | req/s | p50 ms | p99 ms | server CPU µs/request | ÷ bare-Go ceiling |"
  echo "|---|--:|--:|--:|--:|--:|"
  for s in ceiling read read-full search search-full create-full tx50-full; do
    want "$s" || continue
    rps=$(col "$s" 3); p50=$(col "$s" 4); p99=$(col "$s" 5); us=$(col "$s" 6)
    label=$s
    case $s in
      ceiling) label="bare Go \`net/http\` answering 60 bytes of JSON" ;;
      read) label="read by id, no token, no usage log" ;;
      read-full) label="read by id, token + rules + durable usage log" ;;
      search) label="patient search, token + rules, no usage log" ;;
      search-full) label="patient search, full path" ;;
      create-full) label="create Flag, full path" ;;
      tx50-full) label="transaction of 50 Flags, full path (per resource)"
        rps=$(awk -v r="$rps" 'BEGIN {printf "%.0f", r*50}'); us=$(awk -v u="$us" 'BEGIN {printf "%.0f", u/50}') ;;
    esac
    ratio="—"
    if [ "$s" != tx50-full ] && awk -v c="$CEIL" 'BEGIN {exit !(c > 0)}'; then ratio=$(awk -v r="$rps" -v c="$CEIL" 'BEGIN {printf "%.2f", r/c}'); fi
    printf "| %s | %.0f | %s | %s | %s | %s |\n" "$label" "$rps" "$p50" "$p99" "$us" "$ratio"
  done
  echo
  echo "Stored: $PER_RESOURCE bytes per resource ($RESOURCES resources of $PATIENTS patients, embedded engine, allocated file blocks after seeding)."
  echo "Seed: $SEED_RATE resources/s into the embedded store, every resource validated as the API validates it."
  if [ "$AUDIT_RECORDS" -gt 0 ]; then
    echo "Usage log: $(( AUDIT_BYTES / AUDIT_RECORDS )) bytes of store per record, indexes included ($AUDIT_RECORDS records from the audited reads)."
  fi
  echo
  echo "$(nproc) cores, wrk -t1 -c$CONC, $DURATION per run, medians of $ROUNDS interleaved rounds, load generator on the same machine; $(date -u +%Y-%m-%d)."
} > "$TABLE"
cat "$TABLE"

# The README's table is this output.
if grep -q '<!-- bench-table -->' README.md; then
  awk -v f="$TABLE" '
    /<!-- bench-table -->/ {print; while ((getline l < f) > 0) print l; skip=1; next}
    /<!-- \/bench-table -->/ {skip=0}
    !skip {print}' README.md > "$WORK/README.md" && cp "$WORK/README.md" README.md
  echo "README.md: table between the bench-table markers replaced"
fi
