# Stepcast. `make dev` runs the whole system on this machine; `make test`
# runs every test against real PostgreSQL and a real Temporal server.

GO      ?= go
BIN     := $(CURDIR)/bin
# The Temporal CLI (dev server + Web UI). Pinned; built from the Go module
# proxy into bin/, not into this module's go.mod: its embedded server does
# not build against the go.temporal.io/api that our SDK needs.
TEMPORAL_CLI_VERSION := v1.5.1
TEMPORAL := $(BIN)/temporal
TEMPORAL_STAMP := $(BIN)/.temporal-$(TEMPORAL_CLI_VERSION)

# Tests start their own dev servers and databases; they take minutes, not
# hours, but a cold build of the race-enabled binaries is slow on 2 cores.
TEST_TIMEOUT ?= 20m

.PHONY: dev test tools build check fmt vet clean bench record-history

## dev: run Temporal dev server + Web UI, worker, API, embedded DB and fake LINE
dev: tools build
	$(BIN)/stepcast dev

## test: gofmt/vet checks, then every test with -race
test: tools check
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

## tools: build the pinned Temporal CLI into bin/
tools: $(TEMPORAL_STAMP)

$(TEMPORAL_STAMP):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)
	@rm -f $(BIN)/.temporal-* && touch $@

## build: the stepcast binary into bin/
build:
	$(GO) build -o $(BIN)/stepcast ./cmd/stepcast

## bench: measure webhook ingest, enrollment, step delivery and footprint
## (issue 5) against references in the same run; writes BENCHMARKS.md.
## Flags go in BENCH_ARGS, e.g. make bench BENCH_ARGS='-duration 20s'.
BENCH_ARGS ?=
bench: tools
	$(GO) build -o $(BIN)/stepcast-bench ./bench/cmd/stepcast-bench
	$(BIN)/stepcast-bench $(BENCH_ARGS)

## check: formatting and vet
check: vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags record ./workflows/

## record-history: record a workflow history for the replay test
## (workflows/record_history_test.go says when; never to make a test pass)
record-history: tools
	$(GO) test -tags record -count=1 -run TestRecordEnrollmentHistory ./workflows/

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN) data

## temporal-postgres: a full Temporal server (frontend, history, matching and
## worker services) on the local PostgreSQL, for benchmarks of production
## shape; stays in the foreground until Ctrl-C. Frontend gRPC on
## 127.0.0.1:$(TEMPORAL_PG_PORT) (the server also takes the next 9 ports),
## databases $(TEMPORAL_PG_DB_PREFIX) and $(TEMPORAL_PG_DB_PREFIX)_visibility.
## See tools/temporal-postgres/README.md.
TEMPORAL_PG_DIR       := $(CURDIR)/tools/temporal-postgres
TEMPORAL_PG_PORT      ?= 7243
TEMPORAL_PG_DB_PREFIX ?= temporal
TEMPORAL_PG_STAMP     := $(BIN)/.temporal-postgres-build
.PHONY: temporal-postgres temporal-postgres-build

temporal-postgres: temporal-postgres-build tools
	TEMPORAL_PG_BIN=$(BIN) TEMPORAL_PG_PORT=$(TEMPORAL_PG_PORT) \
	TEMPORAL_PG_DB_PREFIX=$(TEMPORAL_PG_DB_PREFIX) $(TEMPORAL_PG_DIR)/run.sh

## temporal-postgres-build: bin/temporal-server and bin/temporal-sql-tool at
## the go.temporal.io/server version pinned by tools/temporal-postgres/go.mod
## (its own module: the server stays out of ours). A cold build takes minutes;
## it reruns only when that go.mod or go.sum changes.
temporal-postgres-build: $(TEMPORAL_PG_STAMP)

$(TEMPORAL_PG_STAMP): $(TEMPORAL_PG_DIR)/go.mod $(TEMPORAL_PG_DIR)/go.sum
	@mkdir -p $(BIN)
	cd $(TEMPORAL_PG_DIR) && GOWORK=off $(GO) build -o $(BIN)/temporal-server go.temporal.io/server/cmd/server
	cd $(TEMPORAL_PG_DIR) && GOWORK=off $(GO) build -o $(BIN)/temporal-sql-tool go.temporal.io/server/cmd/tools/sql
	@touch $@
