# nodemesh build, test and demo entry points. See README.md.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/nodemesh/nodemesh/pkg/version.Version=$(VERSION) -X github.com/nodemesh/nodemesh/pkg/version.Commit=$(COMMIT)
BIN := bin/nodemesh

.PHONY: all build tools test unit integration lint bench demo clean

all: build

## build: the nodemesh binary, static, into bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/nodemesh

## tools: the real control-plane binaries (etcd, kube-apiserver, ...) into the shared cache
tools:
	@integration/tools/build.sh >/dev/null

## demo: the mesh on a real control plane, with live traffic through an 80/20 split
demo:
	@integration/demo.sh

## test: every unit and integration test, building what they need, then `make demo` for 20 s (it fails if its traffic does)
test: build
	@dir=$$(integration/tools/build.sh) && \
	  NODEMESH_TOOLS_DIR=$$dir NODEMESH_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 30m ./...
	@NODEMESH_DEMO_DURATION=20s integration/demo.sh >/tmp/nodemesh-demo-check.log 2>&1 || \
	  { tail -40 /tmp/nodemesh-demo-check.log; echo "make demo failed (full output: /tmp/nodemesh-demo-check.log)"; exit 1; }
	@echo "make demo: ran 20 s, traffic answered by v1 and v2"

## unit: the tests that need no control plane (integration tests skip with one line)
unit:
	$(GO) test -count=1 ./pkg/... ./cmd/...

## lint: go vet and a gofmt check
lint:
	$(GO) vet ./...
	$(GO) vet -tags demo ./integration
	@out=$$(gofmt -l cmd pkg integration); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: the proxy and controller benchmarks (installs HAProxy, nginx and wrk from Debian when missing)
bench: build
	@dir=$$(integration/tools/build.sh) && \
	  NODEMESH_TOOLS_DIR=$$dir NODEMESH_BIN=$(CURDIR)/$(BIN) integration/bench/run.sh

clean:
	rm -rf bin
