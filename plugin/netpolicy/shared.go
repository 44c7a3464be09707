package netpolicy

import (
	"context"
	"errors"
	"fmt"

	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/plugin/pkg/subsystem"
	"github.com/runenet/runenet/policy"
	"github.com/runenet/runenet/readiness"
)

// instance is the process's one policy engine: one node has one set of rule
// tables and one nftables table, which two engines would keep overwriting.
var instance = &subsystem.Shared[config]{Name: "netpolicy", Start: start}

type running struct {
	rt     *node.Runtime
	engine *policy.Engine
	kernel bool
	cancel context.CancelFunc
	done   chan struct{}
}

func start(cfg config) (subsystem.Running, error) {
	rt, err := node.Attach(cfg.dataDir)
	if err != nil {
		return nil, fmt.Errorf("%w (netpolicy attaches to the runtime the rune directive opens; in runed's directive order it follows rune)", err)
	}
	nodeCfg := rt.Config()
	opts := policy.EngineOptions{Poll: cfg.poll}
	if cfg.useKernel(nodeCfg.DevMode) {
		nft, err := policy.NewNFT(policy.NFTConfig{Table: cfg.table})
		if err != nil {
			return nil, errors.Join(fmt.Errorf("nftables: %w (or set `kernel off` to enforce at the proxy only)", err), rt.Release())
		}
		opts.Kernel = nft
	}
	e := policy.NewEngine(rt.View(), nodeCfg.NodeName, opts)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{rt: rt, engine: e, kernel: opts.Kernel != nil, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		_ = e.Run(ctx) // ends with ctx, removing the nftables table
	}()
	rt.SetPolicy(e)
	return r, nil
}

// Ready: the rule tables reflect the loaded View and, with kernel
// enforcement, are installed in nftables.
func (r *running) Ready() (bool, string) {
	switch {
	case r.engine.Ready():
		return true, ""
	case r.kernel:
		return false, "compiling policy tables and installing them in nftables"
	}
	return false, "compiling policy tables"
}

func (r *running) Readiness() *readiness.Registry { return r.rt.Readiness() }

// Close withdraws the engine from the proxy and the API, stops it (removing
// its nftables table) and releases the node runtime.
func (r *running) Close() error {
	r.rt.SetPolicy(nil)
	r.cancel()
	<-r.done
	return r.rt.Release()
}
