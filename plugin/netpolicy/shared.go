package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/policy"
	"github.com/runenet/runenet/readiness"
)

// shared is the process's one policy engine, reference counted across
// server blocks and reloads: one node has one set of rule tables and one
// nftables table, which two engines would keep overwriting.
type shared struct {
	cfg    config
	rt     *node.Runtime
	engine *policy.Engine
	cancel context.CancelFunc
	done   chan struct{}
	refs   int
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
			return nil, fmt.Errorf("network policy is already running with different settings; restart runed to change them")
		}
		current.refs++
		return current, nil
	}
	rt, err := node.Attach(cfg.dataDir)
	if err != nil {
		return nil, fmt.Errorf("%w (netpolicy attaches to the runtime that the dataplane or rune directive opens; in runed's directive order it follows dataplane)", err)
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
	s := &shared{cfg: *cfg, rt: rt, engine: e, cancel: cancel, done: make(chan struct{}), refs: 1}
	go func() {
		defer close(s.done)
		_ = e.Run(ctx) // ends with ctx, removing the nftables table
	}()
	readiness.Default.Register("netpolicy", func() (bool, string) {
		if e.Ready() {
			return true, ""
		}
		if opts.Kernel != nil {
			return false, "compiling policy tables and installing them in nftables"
		}
		return false, "compiling policy tables"
	})
	rt.SetPolicy(e)
	policy.Default.Publish(e)
	current = s
	return s, nil
}

// release drops a reference; the last one withdraws the engine from the
// proxy and the API, stops it (removing its nftables table) and releases
// the node runtime.
func (s *shared) release() error {
	mu.Lock()
	defer mu.Unlock()
	s.refs--
	if s.refs > 0 {
		return nil
	}
	current = nil
	policy.Default.Withdraw(s.engine)
	s.rt.SetPolicy(nil)
	readiness.Default.Unregister("netpolicy")
	s.cancel()
	<-s.done
	return s.rt.Release()
}
