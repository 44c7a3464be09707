// Package inprocess is the rune plugin's in-process mode, which runed links
// in (a blank import) and a stock CoreDNS does not: a `rune` block without
// endpoint opens the node runtime — store, View, API — in this process.
// Apart from plugin/rune so that a stock CoreDNS links none of it.
package inprocess

import (
	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/node/nodeconfig"
	"github.com/runenet/runenet/plugin/rune"
)

func init() { rune.SetLocal(open) }

func open(cfg nodeconfig.Config) (*cluster.View, func() error, error) {
	rt, err := node.Acquire(cfg)
	if err != nil {
		return nil, nil, err
	}
	return rt.View(), rt.Release, nil
}
