# kjernejournal: every target fetches what it needs through the Go module
# proxy; nothing has to be installed by hand besides Go itself.

GO        ?= go
BIN       := bin
ADDR      ?= 127.0.0.1:8080
DATA      ?= data
DEMO      ?= 50
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/kjernejournal/kjernejournal/internal/cli.Version=$(VERSION)
TESTFLAGS ?= -count=1 -timeout 14m

.PHONY: all build run test vet bench bench-go bench-http clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/kjernejournal ./cmd/kjernejournal
	$(GO) build -o $(BIN)/kjload ./cmd/kjload
	$(GO) build -o $(BIN)/kjsource ./cmd/kjsource

# Starts the server on the embedded store in ./data, seeding demo patients
# on first start, with the built-in SMART authorisation server and two
# synthetic source hospitals (two health regions) for journal documents.
run: build
	@trap 'kill $$S1 $$S2 2>/dev/null' EXIT INT TERM; \
	$(BIN)/kjsource --addr 127.0.0.1:8091 --name "Oslo universitetssykehus HF" --patients $(DEMO) --seed 1 \
	  --kj-issuer http://$(ADDR) 2>>$(BIN)/kjsource.log & S1=$$!; \
	$(BIN)/kjsource --addr 127.0.0.1:8092 --name "Nordlandssykehuset HF" --patients $(DEMO) --seed 1 \
	  --kj-issuer http://$(ADDR) 2>>$(BIN)/kjsource.log & S2=$$!; \
	$(BIN)/kjernejournal serve --addr $(ADDR) --data-dir $(DATA) --demo-patients $(DEMO) --auth-server \
	  --sources testdata/sources/sources.json --default-region helse-sor-ost

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd fhir internal profiles conformance testdata 2>/dev/null)" || { echo "gofmt needed:"; gofmt -l cmd fhir internal; exit 1; }

# Unit, behavioural (embedded engine and MongoDB engine on an embedded
# FerretDB, or on KJ_TEST_MONGO_URI when set), HTTP and crash tests, plus
# the seed corpora of the fuzz tests.
test: vet
	$(GO) test $(TESTFLAGS) ./...

# Go benchmarks, then the load program against the real server on loopback.
bench: bench-go bench-http

bench-go:
	$(GO) test -run '^$$' -bench . -benchtime 2s -timeout 30m ./fhir/ ./internal/...

bench-http: build
	./scripts/bench-http.sh

clean:
	rm -rf $(BIN)
