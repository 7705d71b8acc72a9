# orgkms — build, run and test.
#
# The Go toolchain is pinned: Go 1.26.8 has known vulnerabilities in
# net/http, crypto/tls and crypto/x509 that go1.27.3 fixes. The go command
# fetches the pinned toolchain from the module proxy on first use.
export GOTOOLCHAIN := go1.27.3
export GOFLAGS := -buildvcs=false

GO ?= go
BIN := bin/orgkms
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: all build build-release dev test vet fmt-check test-race bench check lint vuln fuzz tools local-kms clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/orgkms

## build-release: the production binary, without orgkms dev and the Azure emulator (-tags orgkms_release)
build-release:
	$(GO) build -tags orgkms_release -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/orgkms

## dev: run the self-contained development server (SQLite + local master key in ./.orgkms-dev);
## ADDR=127.0.0.1:9000 picks the listen address, ARGS="..." passes more flags (orgkms dev -h)
ADDR ?=
ARGS ?=
dev:
	@$(GO) run ./cmd/orgkms dev $(if $(ADDR),--addr $(ADDR)) $(ARGS)

## test: everything CI runs: formatting, vet, and every test with the race detector
test: fmt-check vet local-kms test-race

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# The PostgreSQL store's tests need a real PostgreSQL: unless
# ORGKMS_TEST_POSTGRES_URL names one (or ORGKMS_TEST_POSTGRES=off), a
# throwaway server on 127.0.0.1 is started, or reused, with .ci/postgres.sh
# ("bash .ci/postgres.sh stop" stops it).
test-race:
	@if [ -z "$$ORGKMS_TEST_POSTGRES_URL" ] && [ "$$ORGKMS_TEST_POSTGRES" != off ]; then \
		eval "$$(bash .ci/postgres.sh)" || exit 1; \
	fi; \
	echo "$(GO) test -race -shuffle=on -timeout 15m ./..."; \
	$(GO) test -race -shuffle=on -timeout 15m ./...

## bench: Go benchmarks of the engine (envelope and keys)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/envelope/ ./internal/keys/

## check: what CI runs besides the tests: staticcheck, govulncheck (offline) and every fuzz target
check: lint vuln fuzz

# Pinned tool versions (installed by "make tools" into $(GOBIN_DIR)).
STATICCHECK_VERSION := v0.8.2
GOVULNCHECK_VERSION := v1.9.0
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
# VULNDB: an offline vulnerability database (built by "make tools" from the
# golang.org/x/vulndb module; govulncheck's default database is not reachable).
VULNDB ?= $(CURDIR)/.cache/vulndb

tools:
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)
	$(GO) install golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION)
	$(GO) mod download golang.org/x/vulndb@$(VULNDB_VERSION)
	rm -rf $(VULNDB) && mkdir -p $(dir $(VULNDB))
	$(GOBIN_DIR)/indexdb -vulns "$$($(GO) env GOMODCACHE)/golang.org/x/vulndb@$(VULNDB_VERSION)/data/osv" -out $(VULNDB)

# The AWS KMS driver's tests (internal/masterkey/awskms) run this pinned
# local-kms, an AWS KMS emulator, in a private network namespace; they fail,
# never skip, without it.
LOCAL_KMS_VERSION := v0.0.0-20260228092603-2a5e92d09ab6

## local-kms: install the AWS KMS emulator the awskms tests need into $(GOBIN_DIR)
local-kms:
	$(GO) install github.com/nsmithuk/local-kms@$(LOCAL_KMS_VERSION)

lint:
	$(GOBIN_DIR)/staticcheck ./...

vuln:
	@test -d $(VULNDB) || { echo "no vulnerability database at $(VULNDB): run make tools"; exit 1; }
	$(GOBIN_DIR)/govulncheck -db file://$(VULNDB) ./...

## fuzz: every fuzz target (func FuzzXxx in a _test.go file), FUZZTIME each
FUZZTIME ?= 10s
fuzz:
	@set -e; for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for f in $$(grep -h '^func Fuzz' $$dir/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo "fuzz $$dir $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz '^'"$$f"'$$' -fuzztime $(FUZZTIME) $$dir; \
		done; \
	done

clean:
	rm -rf bin
