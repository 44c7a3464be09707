package runegate

import (
	"sync"
	"time"

	"github.com/runenet/runenet/node"
)

// nodeReadiness asks the readiness registry of the node runtime the rune
// block opens. runegate precedes rune in the directive order, so its startup
// runs before the runtime exists: the runtime is attached on first use, and
// released on shutdown.
type nodeReadiness struct {
	mu       sync.Mutex
	rt       *node.Runtime
	released bool
}

func (n *nodeReadiness) Ready() (bool, []string) {
	n.mu.Lock()
	if n.rt == nil && !n.released {
		rt, err := node.Attach("")
		if err != nil {
			n.mu.Unlock()
			return false, []string{"node runtime: " + err.Error()}
		}
		n.rt = rt
	}
	rt := n.rt
	n.mu.Unlock()
	if rt == nil {
		return false, []string{"runegate: shut down"}
	}
	return rt.Readiness().Ready()
}

func (n *nodeReadiness) release() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.released = true
	if n.rt == nil {
		return nil
	}
	rt := n.rt
	n.rt = nil
	return rt.Release()
}

// gaugeEvery is how often the gate re-checks for rune_dns_gate_open while no
// query asks: the metric follows the data path, not the query rate.
const gaugeEvery = time.Second

// watch keeps rune_dns_gate_open current until stop is closed.
func (g *Gate) watch(stop <-chan struct{}) {
	t := time.NewTicker(gaugeEvery)
	defer t.Stop()
	for {
		g.check()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}
