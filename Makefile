# kjernejournal: every target fetches what it needs through the Go module
# proxy (and, for the conformance suite's JavaScript clients, from npm with
# the lock file); nothing has to be installed by hand besides Go and Node.

GO        ?= go
BIN       := bin
ADDR      ?= 127.0.0.1:8080
# The admin listener of `make run` (/metrics, /healthz, /readyz).
ADMIN_ADDR ?= 127.0.0.1:9090
# The two synthetic source hospitals of `make run` listen on these loopback
# ports; the sources registry it passes to serve is written from them.
SOURCE_PORTS ?= 8091,8092
comma     := ,
SOURCE_PORT1 = $(word 1,$(subst $(comma), ,$(SOURCE_PORTS)))
SOURCE_PORT2 = $(word 2,$(subst $(comma), ,$(SOURCE_PORTS)))
DATA      ?= data
DEMO      ?= 50
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/kjernejournal/kjernejournal/internal/cli.Version=$(VERSION)
TESTFLAGS ?= -count=1 -timeout 14m
JSDIR     := conformance/js
BROWSERDIR := conformance/browser
# The browser the browser tests drive: Debian's chromium, installed with
# apt-get when missing (sudo only when not root; CI runs as root).
CHROMIUM  ?= /usr/bin/chromium
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build run test vet conformance bench bench-go bench-http bench-cluster clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/kjernejournal ./cmd/kjernejournal
	$(GO) build -o $(BIN)/kjload ./cmd/kjload
	$(GO) build -o $(BIN)/kjsource ./cmd/kjsource

# Starts the server on the embedded store in ./data, seeding demo patients
# on first start, with the built-in SMART authorisation server and two
# synthetic source hospitals (two health regions) for journal documents.
# ADDR, ADMIN_ADDR and SOURCE_PORTS=a,b move it; bin/kjernejournal token
# follows with KJ_ADDR (or --addr, --server). The demo patients are listed
# in $(DATA)/demo-patients.tsv.
run: build
	@test -n "$(SOURCE_PORT2)" || { echo "SOURCE_PORTS must be two ports, e.g. SOURCE_PORTS=8091,8092" >&2; exit 2; }
	@sed -e 's#127.0.0.1:8091#127.0.0.1:$(SOURCE_PORT1)#' -e 's#127.0.0.1:8092#127.0.0.1:$(SOURCE_PORT2)#' \
	  testdata/sources/sources.json >$(BIN)/sources.json
	@trap 'kill $$S1 $$S2 2>/dev/null' EXIT INT TERM; \
	$(BIN)/kjsource --addr 127.0.0.1:$(SOURCE_PORT1) --name "Oslo universitetssykehus HF" --patients $(DEMO) --seed 1 \
	  --kj-issuer http://$(ADDR) 2>>$(BIN)/kjsource.log & S1=$$!; \
	$(BIN)/kjsource --addr 127.0.0.1:$(SOURCE_PORT2) --name "Nordlandssykehuset HF" --patients $(DEMO) --seed 1 \
	  --kj-issuer http://$(ADDR) 2>>$(BIN)/kjsource.log & S2=$$!; \
	$(BIN)/kjernejournal serve --addr $(ADDR) --data-dir $(DATA) --demo-patients $(DEMO) --auth-server \
	  --sources $(BIN)/sources.json --default-region helse-sor-ost --admin-addr $(ADMIN_ADDR)

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd fhir internal profiles conformance testdata 2>/dev/null)" || { echo "gofmt needed:"; gofmt -l cmd fhir internal; exit 1; }

# Unit, behavioural (embedded engine and MongoDB engine on an embedded
# FerretDB, or on KJ_TEST_MONGO_URI when set), HTTP and crash tests, plus
# the seed corpora of the fuzz tests; then the conformance suite against
# the real server.
test: vet
	$(GO) test $(TESTFLAGS) ./...
	$(MAKE) --no-print-directory conformance

# The conformance suite (conformance/, issue 9) against a fresh server on
# free loopback ports (embedded store, built-in SMART authorisation server,
# two synthetic source hospitals and one that is down), then real
# JavaScript clients (conformance/js: fhirclient, fhir-kit-client), then
# the browser tests (conformance/browser: headless Chromium, apps served
# from another origin, axe-core; a second server with CORS off for the
# negative test). Reports in ./conformance-report/. CONFORMANCE_ARGS
# passes flags to the Go runner, e.g. make conformance
# CONFORMANCE_ARGS="--group rest".
conformance: build $(JSDIR)/node_modules/.installed $(BROWSERDIR)/node_modules/.installed $(CHROMIUM)
	CONFORMANCE_ARGS="$(CONFORMANCE_ARGS)" KJ_CHROMIUM=$(CHROMIUM) ./scripts/conformance.sh

# The JavaScript clients, exactly as locked in package-lock.json; installed
# again only when the lock file (or package.json) changes.
$(JSDIR)/node_modules/.installed: $(JSDIR)/package.json $(JSDIR)/package-lock.json
	cd $(JSDIR) && npm ci --no-audit --no-fund --ignore-scripts
	@touch $@

# The browser tests' driver (playwright-core, which never downloads a
# browser here), axe-core and fhirclient's browser build, as locked.
$(BROWSERDIR)/node_modules/.installed: $(BROWSERDIR)/package.json $(BROWSERDIR)/package-lock.json
	cd $(BROWSERDIR) && npm ci --no-audit --no-fund --ignore-scripts
	@touch $@

# Debian's Chromium, only when it is not there (a file target: made when
# missing, never again).
$(CHROMIUM):
	@echo "== installing Debian's chromium for the browser tests ($@ is missing)"
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
	@test -x $@ || { echo "apt-get installed chromium, but $@ is still missing (set CHROMIUM=/path/to/chromium)" >&2; exit 1; }

# Go benchmarks, then the load program against the real server on loopback,
# then audited reads over three processes on one MongoDB-protocol database
# (FerretDB) next to one process on each engine.
bench: bench-go bench-http bench-cluster

bench-go:
	$(GO) test -run '^$$' -bench . -benchtime 2s -timeout 30m ./fhir/ ./internal/...

bench-http: build
	./scripts/bench-http.sh

# kjferretdb is the embedded FerretDB of the tests as a process: the
# database the three servers share (scripts/bench-cluster.sh).
bench-cluster: build
	$(GO) build -o $(BIN)/kjferretdb ./cmd/kjferretdb
	./scripts/bench-cluster.sh

clean:
	rm -rf $(BIN) conformance-report
