package proxy

import (
	"net/netip"
	"sync/atomic"

	"github.com/runenet/runenet/balance"
)

// endpoint is one backend address. It is shared by every table that lists it
// (and by every service port that points at it), so its active count and
// ejection state survive table swaps; a connection keeps its *endpoint until
// it ends, which is what lets removed endpoints drain.
type endpoint struct {
	balance.Health
	addr netip.AddrPort
	// dial is addr as the dialer takes it, formatted once.
	dial   string
	active atomic.Int64
}

// Load is what power-of-two-choices compares: active connections.
func (e *endpoint) Load() int64 { return e.active.Load() }
