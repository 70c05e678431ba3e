#!/usr/bin/env bash
# make conformance: starts kjernejournal on a fresh embedded store with the
# built-in SMART authorisation server, two synthetic source hospitals
# (kjsource) and a third registered source that is down (a closed port),
# all on free loopback ports; runs the Go conformance suite
# (`kjernejournal conformance`) and then the real JavaScript clients
# (conformance/js: fhirclient and fhir-kit-client) and the browser tests
# (conformance/browser: headless Chromium; for their negative CORS checks a
# second kjernejournal with --cors-origins none) against it; always stops
# the processes; exits non-zero if any check failed.
#
# Reports land in $KJ_CONFORMANCE_REPORT_DIR (default ./conformance-report):
# report.md and junit.xml (Go suite), js.md and js-junit.xml (JavaScript
# clients), browser.md, browser-junit.xml and browser/*.png (browser
# tests), logs/ (the servers' stderr). Extra flags for the Go runner:
# CONFORMANCE_ARGS, e.g. CONFORMANCE_ARGS="--group rest,smart".
#
# Needs bin/kjernejournal and bin/kjsource (make build), node,
# conformance/js/node_modules and conformance/browser/node_modules (make
# installs them with npm ci) and Chromium ($KJ_CHROMIUM, default
# /usr/bin/chromium: Debian's, which make installs when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

REPORT=${KJ_CONFORMANCE_REPORT_DIR:-conformance-report}
DEMO=${KJ_CONFORMANCE_DEMO:-5}
# The documents group checks partial failure against the registered source
# that is down.
CONF_ARGS=(--failing-source down --failing-lab-source down-lab)
read -r -a EXTRA <<<"${CONFORMANCE_ARGS:-}"

for tool in node curl; do
  command -v "$tool" >/dev/null || { echo "conformance: $tool is needed" >&2; exit 1; }
done
[ -x bin/kjernejournal ] && [ -x bin/kjsource ] || { echo "conformance: run make build first" >&2; exit 1; }
for dir in conformance/js conformance/browser; do
  [ -d "$dir/node_modules" ] || { echo "conformance: $dir/node_modules is missing (make conformance runs npm ci)" >&2; exit 1; }
done
CHROMIUM=${KJ_CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || { echo "conformance: $CHROMIUM is missing (make conformance installs Debian's chromium)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kj-conformance.XXXXXX")
PIDS=()
cleanup() {
  local p
  for p in ${PIDS[@]+"${PIDS[@]}"}; do kill "$p" 2>/dev/null || true; done
  for p in ${PIDS[@]+"${PIDS[@]}"}; do wait "$p" 2>/dev/null || true; done
  PIDS=()
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$REPORT"
mkdir -p "$REPORT/logs"

# Five free loopback ports, held open together so they differ: the server,
# two sources, one nobody listens on (the source that is down), and the
# server without CORS for the browser tests.
read -r KJ_PORT OUS_PORT NLSH_PORT DOWN_PORT NOCORS_PORT < <(node -e '
  const net = require("net");
  const servers = [0, 1, 2, 3, 4].map(() => net.createServer());
  Promise.all(servers.map((s) => new Promise((ok) => s.listen(0, "127.0.0.1", ok)))).then(() => {
    console.log(servers.map((s) => s.address().port).join(" "));
    servers.forEach((s) => s.close());
  });')
BASE=http://127.0.0.1:$KJ_PORT
NOCORS_BASE=http://127.0.0.1:$NOCORS_PORT

cat >"$WORK/sources.json" <<EOF
{"sources":[
  {"name":"ous","display_name":"Oslo universitetssykehus HF","organisation":"300010008","region":"helse-sor-ost",
   "base_url":"http://127.0.0.1:$OUS_PORT","shared_types":["A00","C00","D00","E00","I00"],
   "shares_with":{"regions":["helse-sor-ost","helse-vest","helse-midt-norge","helse-nord"]}},
  {"name":"nlsh","display_name":"Nordlandssykehuset HF","organisation":"300011268","region":"helse-nord",
   "base_url":"http://127.0.0.1:$NLSH_PORT","shared_types":["A00","C01-1","C01-2","E00","I00"],
   "shares_with":{"organisations":["300010008"],"regions":["helse-nord"]}},
  {"name":"down","display_name":"Utilgjengelig sykehus HF","organisation":"300010075","region":"helse-sor-ost",
   "base_url":"http://127.0.0.1:$DOWN_PORT","shared_types":["A00"],
   "shares_with":{"regions":["helse-sor-ost","helse-vest","helse-midt-norge","helse-nord"]}},
  {"name":"ous-lab","kind":"lab","display_name":"Avdeling for medisinsk biokjemi, Oslo universitetssykehus HF","organisation":"300010008",
   "region":"helse-sor-ost","base_url":"http://127.0.0.1:$OUS_PORT/lab",
   "shares_with":{"regions":["helse-sor-ost","helse-vest","helse-midt-norge","helse-nord"]}},
  {"name":"nlsh-lab","kind":"lab","display_name":"Laboratoriemedisin, Nordlandssykehuset HF","organisation":"300011268",
   "region":"helse-nord","base_url":"http://127.0.0.1:$NLSH_PORT/lab",
   "shares_with":{"regions":["helse-sor-ost","helse-vest","helse-midt-norge","helse-nord"]}},
  {"name":"down-lab","kind":"lab","display_name":"Utilgjengelig laboratorium","organisation":"300010075","region":"helse-sor-ost",
   "base_url":"http://127.0.0.1:$DOWN_PORT/lab",
   "shares_with":{"regions":["helse-sor-ost","helse-vest","helse-midt-norge","helse-nord"]}}]}
EOF

wait_up() { # name url pid log
  local i
  for i in $(seq 1 300); do
    curl -fsS -o /dev/null "$2" 2>/dev/null && return 0
    if ! kill -0 "$3" 2>/dev/null; then
      echo "conformance: $1 exited while starting:" >&2; tail -n 30 "$4" >&2; exit 1
    fi
    sleep 0.1
  done
  echo "conformance: $1 did not answer $2 within 30 s:" >&2; tail -n 30 "$4" >&2; exit 1
}

echo "== kjernejournal on $BASE (embedded store, built-in SMART authorisation server, $DEMO demo patients, sources ous, nlsh and down)"
# --dev-clock: the clock group moves the record's clock forward (the
# 7-day and 30-day rules); it runs last, and tokens keep the real time.
# The rate limits are off: the SMART attack checks fail authentications by
# the hundred within seconds from one address.
bin/kjernejournal serve --addr "127.0.0.1:$KJ_PORT" --data-dir "$WORK/data" --auth-server --dev-clock \
  --rate-failed-auth off --rate-auth-server off \
  --demo-patients "$DEMO" --sources "$WORK/sources.json" --default-region helse-sor-ost --log-level warn \
  --smart-key-file testdata/smart/dev-signing-key.pem --smart-clients testdata/smart/clients.json \
  --smart-personas testdata/smart/personas.json \
  >"$REPORT/logs/kjernejournal.out" 2>"$REPORT/logs/kjernejournal.log" &
pid=$!
PIDS+=("$pid")
wait_up kjernejournal "$BASE/healthz" "$pid" "$REPORT/logs/kjernejournal.log"

for src in "ous $OUS_PORT Oslo universitetssykehus HF" "nlsh $NLSH_PORT Nordlandssykehuset HF"; do
  read -r name port display <<<"$src"
  bin/kjsource --addr "127.0.0.1:$port" --name "$display" --patients "$DEMO" --seed 1 \
    --kj-issuer "$BASE" --kj-jwks-url "$BASE/jwks" >/dev/null 2>"$REPORT/logs/kjsource-$name.log" &
  pid=$!
  PIDS+=("$pid")
  wait_up "kjsource $name" "http://127.0.0.1:$port/healthz" "$pid" "$REPORT/logs/kjsource-$name.log"
done

# The same server with CORS switched off (--cors-origins none): the browser
# tests show that a third-party app on another origin is then stopped by
# the browser. Its own empty store; only discovery, /metadata, /ehr and
# the token endpoint are asked of it.
echo "== kjernejournal without CORS on $NOCORS_BASE (--cors-origins none, for the browser tests)"
bin/kjernejournal serve --addr "127.0.0.1:$NOCORS_PORT" --data-dir "$WORK/data-nocors" --auth-server \
  --cors-origins none --log-level warn \
  --smart-key-file testdata/smart/dev-signing-key.pem --smart-clients testdata/smart/clients.json \
  --smart-personas testdata/smart/personas.json \
  >"$REPORT/logs/kjernejournal-nocors.out" 2>"$REPORT/logs/kjernejournal-nocors.log" &
pid=$!
PIDS+=("$pid")
wait_up "kjernejournal without CORS" "$NOCORS_BASE/healthz" "$pid" "$REPORT/logs/kjernejournal-nocors.log"

status=0
echo "== Go conformance suite"
bin/kjernejournal conformance --base-url "$BASE" --report-dir "$REPORT" \
  --feeder-key testdata/smart/feeder-dev-key.pem "${CONF_ARGS[@]}" ${EXTRA[@]+"${EXTRA[@]}"} || status=1

echo "== JavaScript clients (fhirclient, fhir-kit-client)"
KJ_BASE_URL=$BASE KJ_FEEDER_KEY=testdata/smart/feeder-dev-key.pem \
  node conformance/js/run.mjs --report-dir "$REPORT" || status=1

echo "== Browser tests (headless Chromium; apps on another origin; axe-core)"
KJ_BASE_URL=$BASE KJ_NOCORS_BASE_URL=$NOCORS_BASE KJ_CHROMIUM=$CHROMIUM \
  node conformance/browser/run.mjs --report-dir "$REPORT" || status=1

if [ "$status" -ne 0 ]; then
  echo "conformance: FAILED (reports in $REPORT/)" >&2
else
  echo "conformance: all checks passed (reports in $REPORT/)"
fi
exit "$status"
