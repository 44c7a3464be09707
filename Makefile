# runenet — the two commands a fresh machine needs: `make run` and `make test`.
GO        ?= go
BIN       := bin
DATA_DIR  ?= $(HOME)/.local/state/rune
GOFLAGS_TEST ?= -timeout 40m
# What `rune version` and `runed --version` print.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -X github.com/runenet/runenet/internal/version.version=$(VERSION) -X github.com/runenet/runenet/internal/version.commit=$(COMMIT)
# make install [PREFIX=/usr/local] [DESTDIR=staging root]
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
UNITDIR   ?= $(PREFIX)/lib/systemd/system

.PHONY: all build install run test check deps bench fuzz clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/runed ./cmd/runed
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/rune ./cmd/rune

# The binaries and the systemd unit (deploy/systemd/runed.service, its
# ExecStart pointed at BINDIR). Then: systemctl daemon-reload && systemctl enable --now runed
install: build
	install -D -m 0755 $(BIN)/runed $(DESTDIR)$(BINDIR)/runed
	install -D -m 0755 $(BIN)/rune $(DESTDIR)$(BINDIR)/rune
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|/usr/local/bin/runed|$(BINDIR)/runed|' deploy/systemd/runed.service > $(DESTDIR)$(UNITDIR)/runed.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/runed.service

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

# Tools the tests drive: ip (namespaces), nft (ruleset inspection), dig, promtool.
deps:
	@scripts/install_deps.sh

bench:
	@echo "see docs/benchmarks.md for each benchmark's command"

clean:
	rm -rf $(BIN)
