# Every target is a one-liner; see README.md for what they do.
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: build run test test-short bench fmt vet lint tidy clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/raftkv ./cmd/raftkv

run: build
	$(GO) tool goreman start

test:
	$(GO) test -race -count=1 -timeout 9m ./...

test-short:
	$(GO) test -short -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

lint: vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

tidy:
	$(GO) mod tidy

clean:
	rm -rf bin raftkv-*
