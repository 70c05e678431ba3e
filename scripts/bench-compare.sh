#!/usr/bin/env bash
# Compares two builds of kjernejournal side by side on this machine, the
# way a change to the hot paths is judged: the same seeded patients (each
# build's store copied fresh for every run, so the usage log does not grow
# across runs), the
# same load generators, the scenarios run interleaved A B A B ... so that
# the machine's drift hits both builds alike.
#
#   scripts/bench-compare.sh OLD_BIN_DIR NEW_BIN_DIR
#
# Each BIN_DIR holds kjernejournal and kjload (make build's bin/). The
# scenarios: a single read without token or usage log (kjload), the
# authorised, audited patient search (wrk), and the validated create of a
# Flag without token or usage log (kjload). KJ_BENCH_PATIENTS (10000),
# KJ_BENCH_DURATION (15s), KJ_BENCH_ROUNDS (2), KJ_BENCH_SCENARIOS
# (read,search,create). Report in bench-results/compare.md.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 OLD_BIN_DIR NEW_BIN_DIR" >&2; exit 2; }
A=$(cd "$1" && pwd); B=$(cd "$2" && pwd)
PATIENTS=${KJ_BENCH_PATIENTS:-10000}
DURATION=${KJ_BENCH_DURATION:-15s}
ROUNDS=${KJ_BENCH_ROUNDS:-2}
SCENARIOS=${KJ_BENCH_SCENARIOS:-read,search,create}
want() { [[ ",$SCENARIOS," == *",$1,"* ]]; }
CONC=64
ADDR=127.0.0.1:18081
OUT=bench-results
mkdir -p "$OUT"
WORK=$(mktemp -d)
PID=
stop() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; fi; }
trap 'stop; rm -rf "$WORK"' EXIT
for tool in wrk jq; do
  if ! command -v "$tool" >/dev/null; then
    apt-get install -y "$tool" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "$tool" >/dev/null; }
  fi
done

# Each build seeds its own store (the same patients: the seed is fixed),
# so each reads the data format it writes.
echo "== seeding $PATIENTS patients with each build"
"$A/kjernejournal" seed --patients "$PATIENTS" --data-dir "$WORK/seeded-$A" --ids-out "$WORK/ids.txt" >/dev/null
"$B/kjernejournal" seed --patients "$PATIENTS" --data-dir "$WORK/seeded-$B" --ids-out "$WORK/ids-b.txt" >/dev/null
cmp -s <(sort "$WORK/ids.txt") <(sort "$WORK/ids-b.txt") || { echo "bench-compare: the builds seed different resources" >&2; exit 1; }
grep '^Patient/' "$WORK/ids.txt" | sed 's#^Patient/##' > "$WORK/patients.txt"
ONE=$(head -1 "$WORK/patients.txt")

start() { # bin, flags...
  local bin=$1; shift
  rm -rf "$WORK/data"; cp -r "$WORK/seeded-$bin" "$WORK/data"
  "$bin/kjernejournal" serve --addr "$ADDR" --data-dir "$WORK/data" --log-level warn "$@" >"$WORK/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://$ADDR/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$WORK/server.log"; exit 1
}

cpu() { awk '{print $14+$15}' "/proc/$PID/stat"; } # server CPU ticks

REPORT="$OUT/compare.md"
{
  echo "# A/B: $A (A) vs $B (B), $PATIENTS patients, $CONC connections, $DURATION per run, $ROUNDS rounds, interleaved"
  echo
  echo "| round | scenario | build | req/s | p50 | p99 | server CPU µs/request |"
  echo "|--:|---|---|--:|--:|--:|--:|"
} > "$REPORT"

row() { # round scenario build rps p50 p99 cpu-us
  echo "| $1 | $2 | $3 | $4 | $5 | $6 | $7 |" | tee -a "$REPORT"
}

kj() { # round label build bin scenario args...
  local round=$1 label=$2 build=$3 bin=$4; shift 4
  local before after out rps p50 p99 n
  before=$(cpu)
  out=$("$bin/kjload" -url "http://$ADDR" -c "$CONC" -d "$DURATION" -warmup 2s -json "$@")
  after=$(cpu)
  rps=$(jq -r '.throughput_rps | floor' <<<"$out")
  p50=$(jq -r '"\(.latency_p50_ms)ms"' <<<"$out")
  p99=$(jq -r '"\(.latency_p99_ms)ms"' <<<"$out")
  n=$(jq -r '.requests + .warmup_requests' <<<"$out") # the CPU counter also saw the warm-up
  row "$round" "$label" "$build" "$rps" "$p50" "$p99" "$(awk -v t=$((after-before)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN{ if (n>0) printf "%.0f", t*1e6/hz/n; else print "?" }')"
}

wk() { # round label build url headers...
  local round=$1 label=$2 build=$3 url=$4; shift 4
  wrk -t2 -c"$CONC" -d2s "$@" "$url" >/dev/null
  local before after out rps p50 p99 n
  before=$(cpu)
  out=$(wrk -t2 -c"$CONC" -d"$DURATION" --latency "$@" "$url")
  after=$(cpu)
  if grep -q "Non-2xx" <<<"$out"; then echo "$out" >&2; echo "wrk: some requests failed" >&2; exit 1; fi
  rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  row "$round" "$label" "$build" "$rps" "$p50" "$p99" "$(awk -v t=$((after-before)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN{ if (n>0) printf "%.0f", t*1e6/hz/n; else print "?" }')"
}

for round in $(seq 1 "$ROUNDS"); do
  want read && for pair in "A $A" "B $B"; do
    set -- $pair; build=$1; bin=$2
    start "$bin" --insecure-no-auth --insecure-no-audit
    kj "$round" "single read (no token, no usage log)" "$build" "$bin" -scenario read -ids "$WORK/ids.txt"
    stop
  done
  want search && for pair in "A $A" "B $B"; do
    set -- $pair; build=$1; bin=$2
    start "$bin" --auth-server
    TOKEN=$("$bin/kjernejournal" token --as hospital-doctor --patient "$ONE" --issuer "http://$ADDR" --lifetime 1h)
    wk "$round" "authorised patient search with the usage log (wrk)" "$build" "http://$ADDR/MedicationStatement?patient=$ONE&status=active" \
      -H "Authorization: Bearer $TOKEN" -H "nhn-access-basis: UNNTAK"
    stop
  done
  want create && for pair in "A $A" "B $B"; do
    set -- $pair; build=$1; bin=$2
    start "$bin" --insecure-no-auth --insecure-no-audit
    kj "$round" "create, validated Flag (no token, no usage log)" "$build" "$bin" -scenario create -ids "$WORK/patients.txt" -create-type Flag
    stop
  done
done
echo "report written to $REPORT"

# Medians per scenario and build, and B against A.
MEDIANS=$(
  echo
  echo "| scenario | A median req/s | B median req/s | B/A | A median CPU µs/request | B median CPU µs/request | B/A | median of the rounds' B/A, req/s and CPU |"
  echo "|---|--:|--:|--:|--:|--:|--:|--:|"
  awk -F'|' '$2+0 > 0 && $4 ~ /[AB]/ {
      s=$3; gsub(/^ +| +$/, "", s); b=$4; gsub(/ /, "", b); r=$2+0
      rps[s,b] = rps[s,b] " " $5+0; cpu[s,b] = cpu[s,b] " " $8+0; seen[s]=1
      v[s,b,r,"rps"] = $5+0; v[s,b,r,"cpu"] = $8+0; if (b == "B") { rounds[s] = rounds[s] " " r }
    }
    function median(list,   a, n, i, j, t) {
      n = split(list, a, " ")
      for (i = 1; i <= n; i++) for (j = i+1; j <= n; j++) if (a[j] < a[i]) { t=a[i]; a[i]=a[j]; a[j]=t }
      return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
    }
    END {
      for (s in seen) {
        ra = median(rps[s,"A"]); rb = median(rps[s,"B"]); ca = median(cpu[s,"A"]); cb = median(cpu[s,"B"])
        # Each round runs A and B back to back, so their ratio is freer of
        # the machine drift than the ratio of the medians.
        n = split(rounds[s], rr, " "); pr = ""; pc = ""
        for (i = 1; i <= n; i++) { pr = pr " " v[s,"B",rr[i],"rps"] / v[s,"A",rr[i],"rps"]; pc = pc " " v[s,"B",rr[i],"cpu"] / v[s,"A",rr[i],"cpu"] }
        printf "| %s | %.0f | %.0f | %.3f | %.0f | %.0f | %.3f | %.3f, %.3f |\n", s, ra, rb, rb/ra, ca, cb, cb/ca, median(pr), median(pc)
      }
    }' "$REPORT"
)
echo "$MEDIANS" | tee -a "$REPORT"
