package main

import (
	"testing"

	"github.com/runenet/runenet/internal/testkit"
)

// The CLI talks to runed's API only: it links neither the store nor the data
// path (the API defines the small interfaces it needs in its own types).
func TestCLILinksNoStoreOrDataPath(t *testing.T) {
	if bad := testkit.Linked(testkit.Deps(t, "."),
		"github.com/caddyserver/certmagic/...", "github.com/dgraph-io/badger/...", "github.com/google/nftables/...",
		"github.com/runenet/runenet/node", "github.com/runenet/runenet/proxy", "github.com/runenet/runenet/policy",
		"github.com/runenet/runenet/ingress", "github.com/runenet/runenet/orderedlog/badger/...",
	); len(bad) > 0 {
		t.Errorf("go list -deps ./cmd/rune links %v", bad)
	}
}
