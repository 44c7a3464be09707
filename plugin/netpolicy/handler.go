package netpolicy

import (
	"context"
	"sync/atomic"

	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"

	"github.com/runenet/runenet/policy"
)

// Handler passes every query on; it is in the chain only so CoreDNS's ready
// plugin can ask it (see ready.go).
type Handler struct {
	Next   plugin.Handler
	engine atomic.Pointer[policy.Engine]
}

func (h *Handler) Name() string { return "netpolicy" }

func (h *Handler) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
}
