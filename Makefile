# runenet — the two commands a fresh machine needs: `make run` and `make test`.
GO        ?= go
BIN       := bin
DATA_DIR  ?= $(HOME)/.local/state/rune
GOFLAGS_TEST ?= -timeout 40m

.PHONY: all build run test check deps bench fuzz clean

all: build

build:
	$(GO) build -o $(BIN)/runed ./cmd/runed
	$(GO) build -o $(BIN)/rune ./cmd/rune

# Dev mode on the embedded Badger store: DNS on 127.0.0.123:53 (root or
# CAP_NET_BIND_SERVICE; see README), API socket in $(DATA_DIR)/runed.sock.
run: build
	$(BIN)/runed --dev-mode --data-dir $(DATA_DIR)

# Everything CI runs. Privileged tests (network namespaces, nftables, Docker)
# run as root; with RUNE_E2E=1 they fail instead of skipping when they cannot.
test: deps check
	$(GO) test $(GOFLAGS_TEST) ./...

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	scripts/check_orderedlog_seam.sh

# Tools the tests drive: ip (namespaces), nft (ruleset inspection), dig.
deps:
	@scripts/install_deps.sh

bench:
	@echo "see docs/benchmarks.md for each benchmark's command"

clean:
	rm -rf $(BIN)
