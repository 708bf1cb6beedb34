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

.PHONY: dev test tools build check fmt vet clean

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

## check: formatting and vet
check: vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN) data
