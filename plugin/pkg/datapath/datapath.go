// Package datapath records what the data-path directives of one Corefile
// must know of each other before any of them starts: whether network policy
// runs at all, and which ports the dev-mode ingress owns. Caddy sets up a
// Corefile directive by directive (each across every server block) in
// runed's directive order — netpolicy, then ingress, then dataplane — so a
// directive set up later reads what an earlier one recorded, whatever order
// the Corefile lists them in and whichever of them starts first.
package datapath

import "github.com/coredns/caddy"

// Facts are one Corefile's (one caddy instance's), so a reload starts over.
type Facts struct {
	// NetPolicy: a netpolicy directive is set up.
	NetPolicy bool
	// IngressDevPorts are the TCP ports of the ingress's HTTP and HTTPS
	// listeners in dev mode (zero: no ingress). The dev-mode data plane
	// never binds them.
	IngressDevPorts [2]uint16
}

type key struct{}

// Of returns the Facts of the Corefile c is setting up.
func Of(c *caddy.Controller) *Facts {
	if f, ok := c.Get(key{}).(*Facts); ok {
		return f
	}
	f := &Facts{}
	c.Set(key{}, f)
	return f
}

// RequireNetPolicy refuses a data-path directive in a Corefile without
// netpolicy. Without an engine the data path refuses every connection a
// policy governs (it fails closed), which an operator who dropped the line
// cannot have meant: runed says so at start instead of black-holing them.
func RequireNetPolicy(c *caddy.Controller, directive string) error {
	if Of(c).NetPolicy {
		return nil
	}
	return c.Errf("%s needs the netpolicy directive in the Corefile: without it no service's networkPolicy can be enforced, so runed would refuse every connection a policy governs; add a line `netpolicy` to the server block with `rune` (runed --print-corefile shows the default layout)", directive)
}
