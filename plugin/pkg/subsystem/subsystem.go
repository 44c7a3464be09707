// Package subsystem runs a data-path subsystem (the data plane, network
// policy, the edge ingress) from a Corefile directive: one reference-counted
// instance per process, started on the first server block's startup and
// stopped after the last one's shutdown. A CoreDNS reload starts the new
// server blocks before shutting down the old ones, so the instance — with its
// nftables tables and bound ports — stays up across it instead of a second
// one fighting the first over them.
package subsystem

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"

	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/node/nodeconfig"
	"github.com/runenet/runenet/plugin/pkg/nodeopt"
	"github.com/runenet/runenet/readiness"
)

// Running is a started subsystem.
type Running interface {
	// Ready is its readiness check, registered under the subsystem's name
	// in its node's registry (Readiness) for runegate, and asked by
	// CoreDNS's ready plugin.
	Ready() (bool, string)
	// Readiness is the readiness registry of the node runtime it runs on.
	Readiness() *readiness.Registry
	// Close stops it and releases what it holds.
	Close() error
}

// Shared is a directive's one instance per process. C is the directive's
// parsed configuration: every server block must configure it alike.
type Shared[C comparable] struct {
	Name  string
	Start func(C) (Running, error)

	mu   sync.Mutex
	cfg  C
	cur  Running
	refs int
}

// Acquire returns the running instance, starting it on first use.
func (s *Shared[C]) Acquire(cfg C) (Running, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		if s.cfg != cfg {
			return nil, fmt.Errorf("%s is already running with different settings; restart runed to change them", s.Name)
		}
		s.refs++
		return s.cur, nil
	}
	r, err := s.Start(cfg)
	if err != nil {
		return nil, err
	}
	r.Readiness().Register(s.Name, r.Ready)
	s.cfg, s.cur, s.refs = cfg, r, 1
	return r, nil
}

// Release drops a reference; the last one stops the instance.
func (s *Shared[C]) Release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs == 0 {
		return errors.New(s.Name + ": released more often than acquired")
	}
	if s.refs--; s.refs > 0 {
		return nil
	}
	r := s.cur
	s.cur = nil
	r.Readiness().Unregister(s.Name)
	return r.Close()
}

// Runtime opens what a dataplane or ingress block uses: the runtime the rune
// block opened when the block names no node settings of its own (cfg is
// nodeopt.Defaults()), or else the runtime for cfg, which must then match
// the rune block's. Pair it with Release.
func Runtime(cfg nodeconfig.Config) (*node.Runtime, error) {
	if cfg == nodeopt.Defaults() {
		return node.Attach("")
	}
	return node.Acquire(cfg)
}

// Setup puts the directive into a server block: the instance is acquired on
// startup (not here: a setup that fails later would leak the reference) and
// released on shutdown, and a pass-through handler joins the chain so the
// ready plugin can ask it.
func Setup[C comparable](c *caddy.Controller, s *Shared[C], cfg C) {
	h := &Handler{name: s.Name}
	c.OnStartup(func() error {
		r, err := s.Acquire(cfg)
		if err != nil {
			return plugin.Error(s.Name, err)
		}
		h.running.Store(&r)
		return nil
	})
	c.OnShutdown(func() error {
		if h.running.Swap(nil) == nil {
			return nil
		}
		return s.Release()
	})
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		h.Next = next
		return h
	})
}

// Handler passes every query on; it is in the chain only so that CoreDNS's
// ready plugin can ask the subsystem.
type Handler struct {
	Next    plugin.Handler
	name    string
	running atomic.Pointer[Running]
}

func (h *Handler) Name() string { return h.name }

func (h *Handler) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	return plugin.NextOrFailure(h.name, h.Next, ctx, w, r)
}

// Ready implements CoreDNS's ready.Readiness with the subsystem's check.
func (h *Handler) Ready() bool {
	r := h.running.Load()
	if r == nil {
		return false
	}
	ok, _ := (*r).Ready()
	return ok
}
