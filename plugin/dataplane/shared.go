package dataplane

import (
	"errors"

	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/plugin/pkg/subsystem"
	"github.com/runenet/runenet/proxy"
	"github.com/runenet/runenet/readiness"
)

// instance is the process's one data plane: there is one set of VIPs and one
// nftables table per node, so two data planes would undo each other.
var instance = &subsystem.Shared[config]{Name: "dataplane", Start: start}

type running struct {
	rt *node.Runtime
	dp *proxy.Dataplane
}

func start(cfg config) (subsystem.Running, error) {
	rt, err := subsystem.Runtime(cfg.node)
	if err != nil {
		return nil, err
	}
	dev := rt.Config().DevMode
	if cfg.kernel && dev {
		return nil, errors.Join(errors.New("forward kernel: dev mode has no nftables to forward with"), rt.Release())
	}
	dc := cfg.dataplane(dev)
	dc.Node = rt.Config().NodeName
	// The proxy asks the runtime for the netpolicy directive's engine on
	// every new connection; while there is none (netpolicy starting, or
	// stopped) it refuses whatever a policy governs.
	dc.Proxy.Policy = rt.Policy
	dp, err := proxy.Start(rt.View(), dc)
	if err != nil {
		return nil, errors.Join(err, rt.Release())
	}
	rt.SetPortForwarder(dp.Proxy())
	rt.SetWarner(dp.Proxy().ClashWarnings)
	return &running{rt: rt, dp: dp}, nil
}

// Ready: interception (or, in dev mode, the loopback listeners) is in place
// for the View's loaded state.
func (r *running) Ready() (bool, string) { return r.dp.Ready() }

func (r *running) Readiness() *readiness.Registry { return r.rt.Readiness() }

// Close removes the interception and releases the node runtime.
func (r *running) Close() error {
	r.rt.SetPortForwarder(nil)
	r.rt.SetWarner(nil)
	return errors.Join(r.dp.Close(), r.rt.Release())
}
