# fnhost: `make test` is what CI runs; `make bench` prints the performance table.
GO      ?= go
BIN     := $(CURDIR)/.cache/bin
PKGS    := ./...
FUZZTIME ?= 15s

.PHONY: all build test unit race fuzz lint tools bench run clean

all: build

build:
	$(GO) build -o bin/fnhost ./cmd/fnhost

tools:
	@scripts/tools.sh

lint: tools
	@echo "== gofmt"
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@echo "== go vet"
	$(GO) vet $(PKGS)
	@echo "== staticcheck"
	$(BIN)/staticcheck $(PKGS)
	@echo "== bench/river (a module of its own)"
	cd bench/river && $(GO) vet ./... && $(BIN)/staticcheck ./...

# unit and integration tests (the end-to-end tests build and run the real binary; the
# S3 tests run the minio and versitygw that `tools` puts in .cache/bin)
unit: tools
	$(GO) test -count=1 -timeout 20m $(PKGS)

# the race detector over the concurrent core (the dashboard's browser tests, which
# `unit` runs, test no concurrency of fnhost's own)
race:
	$(GO) test -count=1 -race -timeout 20m -skip 'TestBrowser' ./runtime/... ./store/... ./functions/... ./dashboard/...

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./manifest

test: lint unit race fuzz
	@echo "make test: all checks passed"

bench:
	$(GO) run ./bench/cmd/fnhost-bench

run:
	$(GO) run ./cmd/fnhost run

clean:
	rm -rf bin .cache/go-build
