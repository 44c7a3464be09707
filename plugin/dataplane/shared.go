package dataplane

import (
	"errors"

	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/plugin/pkg/nodeopt"
	"github.com/runenet/runenet/plugin/pkg/subsystem"
	"github.com/runenet/runenet/policy"
	"github.com/runenet/runenet/proxy"
)

// instance is the process's one data plane: there is one set of VIPs and one
// nftables table per node, so two data planes would undo each other.
var instance = &subsystem.Shared[config]{Name: "dataplane", Start: start}

type running struct {
	rt *node.Runtime
	dp *proxy.Dataplane
	// unfollow stops handing the netpolicy directive's engine to the proxy.
	unfollow func()
}

func start(cfg config) (subsystem.Running, error) {
	rt, err := nodeopt.Runtime(cfg.node)
	if err != nil {
		return nil, err
	}
	dev := rt.Config().DevMode
	if cfg.kernel && dev {
		return nil, errors.Join(errors.New("forward kernel: dev mode has no nftables to forward with"), rt.Release())
	}
	dp, err := proxy.Start(rt.View(), cfg.dataplane(dev))
	if err != nil {
		return nil, errors.Join(err, rt.Release())
	}
	// The netpolicy directive may start before or after this one (or not at
	// all: then every connection is allowed); following the registry makes
	// the proxy enforce whichever engine is current.
	unfollow := policy.Default.Follow(dp.Proxy().SetPolicy)
	rt.SetPortForwarder(dp.Proxy())
	return &running{rt: rt, dp: dp, unfollow: unfollow}, nil
}

// Ready: interception (or, in dev mode, the loopback listeners) is in place
// for the View's loaded state.
func (r *running) Ready() (bool, string) { return r.dp.Ready() }

// Close removes the interception and releases the node runtime.
func (r *running) Close() error {
	r.unfollow()
	r.rt.SetPortForwarder(nil)
	return errors.Join(r.dp.Close(), r.rt.Release())
}
