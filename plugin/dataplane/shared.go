package dataplane

import (
	"errors"
	"fmt"
	"sync"

	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/policy"
	"github.com/runenet/runenet/proxy"
	"github.com/runenet/runenet/readiness"
)

// shared is the process's one data plane, reference counted across server
// blocks and reloads: there is one set of VIPs and one nftables table per
// node, so two data planes would undo each other.
type shared struct {
	cfg  config
	rt   *node.Runtime
	dp   *proxy.Dataplane
	refs int
	// unfollow stops handing the netpolicy directive's engine to the proxy.
	unfollow func()
}

var (
	mu      sync.Mutex
	current *shared
)

func acquire(cfg *config) (*shared, error) {
	mu.Lock()
	defer mu.Unlock()
	if current != nil {
		if current.cfg != *cfg {
			return nil, fmt.Errorf("the data plane is already running with different settings; restart runed to change them")
		}
		current.refs++
		return current, nil
	}
	rt, err := node.Acquire(cfg.node)
	if err != nil {
		return nil, err
	}
	dp, err := proxy.Start(rt.View(), cfg.dataplane())
	if err != nil {
		return nil, errors.Join(err, rt.Release())
	}
	readiness.Default.Register("dataplane", dp.Ready)
	// The netpolicy directive may start before or after this one (or not at
	// all: then every connection is allowed); following the registry makes
	// the proxy enforce whichever engine is current.
	unfollow := policy.Default.Follow(dp.Proxy().SetPolicy)
	rt.SetPortForwarder(dp.Proxy())
	current = &shared{cfg: *cfg, rt: rt, dp: dp, refs: 1, unfollow: unfollow}
	return current, nil
}

// release drops a reference; the last one removes the interception and
// releases the node runtime.
func (s *shared) release() error {
	mu.Lock()
	defer mu.Unlock()
	s.refs--
	if s.refs > 0 {
		return nil
	}
	current = nil
	s.unfollow()
	s.rt.SetPortForwarder(nil)
	readiness.Default.Unregister("dataplane")
	return errors.Join(s.dp.Close(), s.rt.Release())
}
