package rune

import (
	"slices"
	"testing"

	"github.com/runenet/runenet/internal/testkit"
)

// What the remote mode needs, and all a stock CoreDNS gets with the one
// plugin.cfg line: no store, no node runtime, no data path. (A stock CoreDNS
// links certmagic for its own tls plugin, so only the plugin is checked for
// it.)
func TestStockBuildLinksNoNodeRuntime(t *testing.T) {
	runtime := []string{
		"github.com/google/nftables/...", "github.com/dgraph-io/badger/...", "github.com/hashicorp/raft/...",
		"github.com/runenet/runenet/node", "github.com/runenet/runenet/proxy", "github.com/runenet/runenet/policy",
		"github.com/runenet/runenet/ingress", "github.com/runenet/runenet/orderedlog/badger/...",
		"github.com/runenet/runenet/dockersrc", "github.com/runenet/runenet/readiness",
	}
	for _, pkg := range []string{".", "../../test/stockcoredns"} {
		forbidden := runtime
		if pkg == "." {
			forbidden = append(slices.Clone(runtime), "github.com/caddyserver/certmagic/...")
		}
		deps := testkit.Deps(t, pkg)
		if bad := testkit.Linked(deps, forbidden...); len(bad) > 0 {
			t.Errorf("go list -deps %s links %v", pkg, bad)
		}
		if !slices.Contains(deps, "github.com/runenet/runenet/plugin/rune") {
			t.Errorf("go list -deps %s: no plugin/rune in %d packages; the check checks nothing", pkg, len(deps))
		}
	}
}
