package runegate

import (
	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"

	"github.com/runenet/runenet/plugin/pkg/lifecycle"
)

func init() { plugin.Register("runegate", setup) }

// setup parses
//
//	runegate [ZONES...]
//
// ZONES default to the server block's zones.
func setup(c *caddy.Controller) error {
	c.Next() // "runegate"
	zones := plugin.OriginsFromArgsOrServerBlock(c.RemainingArgs(), c.ServerBlockKeys)
	if c.NextBlock() {
		return plugin.Error("runegate", c.Errf("unknown property %q: runegate takes no block", c.Val()))
	}
	if c.Next() {
		return plugin.Error("runegate", c.Err("runegate can only be used once per server block"))
	}
	nr := &nodeReadiness{}
	g := &Gate{Zones: zones, Check: nr.Ready}
	stop := make(chan struct{})
	lifecycle.Run(c, func() error {
		go g.watch(stop)
		return nil
	}, func() error {
		close(stop)
		return nr.release()
	})
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		g.Next = next
		return g
	})
	return nil
}
