# Each target is a line or two; see README.md for what they do. tests/monitoring is a
# Go module of its own (it needs Prometheus's rule parser), so test, vet and tidy visit it too.
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: build install run test test-short bench bench-compare fuzz soak fmt vet lint tidy clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/raftkv ./cmd/raftkv

install:
	$(GO) install -ldflags "-X main.version=$(VERSION)" ./cmd/raftkv

run: build
	$(GO) tool goreman start

test:
	$(GO) test -race -count=1 -timeout 9m ./...
	cd tests/monitoring && $(GO) test -race -count=1 -timeout 5m ./...

test-short:
	$(GO) test -short -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# raftkv beside etcd on fresh local clusters (bench/README.md); BENCH_FLAGS=-quick for a short run.
BENCH_FLAGS ?=
bench-compare: build
	cd bench && $(GO) run ./cmd/compare -raftkv ../bin/raftkv -out ../docs/PERFORMANCE.md $(BENCH_FLAGS)

# Each Fuzz target of the module in turn, for FUZZTIME each.
FUZZTIME ?= 30s
fuzz:
	grep -r --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*' . | sed -E 's#^(.*)/[^/]*:func #\1 #' | while read -r pkg fn; do $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done

# Random fault schedules against real clusters for DURATION, without -race for
# realistic timing (docs/ROBUSTNESS.md); the timeout is DURATION plus 10m.
DURATION ?= 30m
soak:
	ROBUSTNESS_SOAK=$(DURATION) $(GO) test -v -count=1 -run '^TestSoak$$' -timeout $(DURATION)10m ./tests/robustness

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...
	cd tests/monitoring && $(GO) vet ./...

lint: vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

tidy:
	$(GO) mod tidy
	cd tests/monitoring && $(GO) mod tidy

clean:
	rm -rf bin raftkv-*
