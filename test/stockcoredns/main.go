// Command stockcoredns is CoreDNS as its own release builds it, plus the one
// line an operator adds to CoreDNS's plugin.cfg to get Rune's service names:
//
//	rune:github.com/runenet/runenet/plugin/rune
//
// It exists so tests can prove plugin/rune builds into, and runs inside, a
// stock CoreDNS (remote mode: `rune { endpoint URL }`) with nothing of runed's
// own directive list.
package main

import (
	"slices"

	"github.com/coredns/coredns/core/dnsserver"
	// CoreDNS's standard plugin list: the package its own main imports,
	// generated from the stock plugin.cfg.
	_ "github.com/coredns/coredns/core/plugin"
	"github.com/coredns/coredns/coremain"

	_ "github.com/runenet/runenet/plugin/rune"
)

func init() {
	// What `go generate` writes into zdirectives.go once plugin.cfg carries
	// the rune line where its README asks for it: after kubernetes, before
	// file. Derived from the stock list rather than copied, so the build
	// tracks the CoreDNS release in go.mod.
	i := slices.Index(dnsserver.Directives, "file")
	if i < 0 {
		panic("stock CoreDNS directive list has no \"file\"; cannot place rune before it")
	}
	dnsserver.Directives = slices.Insert(dnsserver.Directives, i, "rune")
}

func main() { coremain.Run() }
