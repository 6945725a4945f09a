# Berth — the targets are the interface (see README.md). CI runs `make test` (.ci/run).

SHELL := /bin/bash
GO    ?= go

# Where the test tools live; the same default as ../shared/tools/lib.sh and the e2e test.
BERTH_TOOLS_BIN ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/berth-tools/bin
export BERTH_TOOLS_BIN

# `make run` settings (override on the command line: make run LISTEN=127.0.0.1:5001)
LISTEN   ?= 127.0.0.1:5000
DATA_DIR ?= ./berth-data
NODE_ID  ?= node1

.PHONY: all build run cluster test tools vet lint bench clean deploy-check chaos

all: build

## build: bin/berth
build:
	$(GO) build -trimpath -o bin/berth ./cmd/berth

## run: a single-node registry on $(LISTEN), data in $(DATA_DIR)
run: build
	bin/berth serve --data-dir $(DATA_DIR) --listen $(LISTEN) --node-id $(NODE_ID)

## cluster: three local nodes on 127.0.0.1:5001-5003 (data in ./berth-cluster)
cluster: build
	deploy/local-cluster.sh

## tools: install the client tools the tests use (crane, oras, regctl, skopeo, conformance suite)
tools:
	@.ci/install-test-tools.sh

## test: tools, go vet, then every test with -race (the e2e test in cmd/berth and the seeded
## chaos run included), and the fault injection of the chaos build (-tags chaos)
test: tools
	$(GO) vet ./...
	$(GO) vet -tags chaos ./node/ ./blobstore/
	BERTH_E2E_REQUIRE=1 $(GO) test -race -timeout 20m ./...
	$(GO) test -race -tags chaos -run Fault ./node/

vet:
	$(GO) vet ./...

## deploy-check: deploy/ against the binary's flags (and 3 nodes started with the Compose file's
## command lines), promtool on the alert rules and their unit tests, the metrics after a workload
deploy-check:
	BERTH_E2E_REQUIRE=1 $(GO) test -count=1 ./deploy/...
	BERTH_E2E_REQUIRE=1 $(GO) test -count=1 -run 'TestMetricsAfterWorkload|TestReadiness' ./node

## lint: gofmt must list nothing, go vet must pass
lint:
	@out=$$(gofmt -l . 2>&1); if [ -n "$$out" ]; then echo "gofmt -l (run gofmt -w on these):"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## bench: Berth against Distribution 2.8 with ../shared/tools/bench (SIZE_MIB, N, DUR, CONNS, SKIP_LIMITS)
bench:
	.ci/bench.sh

## chaos: the fault harness (chaos/) for $(DURATION) with $(SEED) on $(NODES) nodes; NETWORK is
## netns (root) or proxy (default: netns when it works); FAULTS narrows the fault kinds; ALLOW
## lists checkers whose failure is a known bug; a failed run keeps its directory
DURATION ?= 10m
NODES    ?= 3
SEED     ?= $(shell date +%s)
ALLOW    ?=
NETWORK  ?=
FAULTS   ?=
chaos:
	$(GO) run ./chaos/cmd/berth-chaos -duration $(DURATION) -seed $(SEED) -nodes $(NODES) -allow '$(ALLOW)' -network '$(NETWORK)' -faults '$(FAULTS)'

clean:
	rm -rf bin
