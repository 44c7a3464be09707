package raft

import (
	"context"
	"fmt"
	"sync"

	hraft "github.com/hashicorp/raft"
)

// InmemNetwork connects nodes inside one process: hashicorp/raft's in-memory
// transport for Raft, direct calls for forwarding. Tests use it to run
// clusters and cut nodes off without sockets.
type InmemNetwork struct {
	mu    sync.Mutex
	nodes map[hraft.ServerAddress]*inmemTransport
	cut   map[hraft.ServerAddress]bool
}

func NewInmemNetwork() *InmemNetwork {
	return &InmemNetwork{nodes: map[hraft.ServerAddress]*inmemTransport{}, cut: map[hraft.ServerAddress]bool{}}
}

// Transport creates the transport of the node at addr and connects it to
// every node already on the network.
func (n *InmemNetwork) Transport(addr string) Transport {
	a, raw := hraft.NewInmemTransport(hraft.ServerAddress(addr))
	t := &inmemTransport{net: n, addr: a, raw: raw}
	n.mu.Lock()
	defer n.mu.Unlock()
	for peerAddr, peer := range n.nodes {
		raw.Connect(peerAddr, peer.raw)
		peer.raw.Connect(a, raw)
	}
	n.nodes[a] = t
	return t
}

// Isolate cuts the node at addr off from every other node, both ways.
func (n *InmemNetwork) Isolate(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	a := hraft.ServerAddress(addr)
	n.cut[a] = true
	for peerAddr, peer := range n.nodes {
		if peerAddr != a {
			peer.raw.Disconnect(a)
			n.nodes[a].raw.Disconnect(peerAddr)
		}
	}
}

// Heal reconnects a node that Isolate cut off.
func (n *InmemNetwork) Heal(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	a := hraft.ServerAddress(addr)
	delete(n.cut, a)
	for peerAddr, peer := range n.nodes {
		if peerAddr != a && !n.cut[peerAddr] {
			peer.raw.Connect(a, n.nodes[a].raw)
			n.nodes[a].raw.Connect(peerAddr, peer.raw)
		}
	}
}

// reach returns the node at to as seen from from, or nil when either is cut off.
func (n *InmemNetwork) reach(from, to hraft.ServerAddress) *inmemTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cut[from] || n.cut[to] {
		return nil
	}
	return n.nodes[to]
}

type inmemTransport struct {
	net  *InmemNetwork
	addr hraft.ServerAddress
	raw  *hraft.InmemTransport

	mu      sync.Mutex
	handler func(context.Context, []byte) []byte
}

func (t *inmemTransport) Raft() hraft.Transport { return t.raw }

func (t *inmemTransport) Handle(h func(context.Context, []byte) []byte) {
	t.mu.Lock()
	t.handler = h
	t.mu.Unlock()
}

// Forward over a cut link behaves as over a partitioned network, which
// drops packets rather than refusing them: a request that cannot get
// through waits until ctx ends and was not sent; one whose reply cannot
// get back (the link was cut while the peer handled it) waits as long, and
// may have been acted on.
func (t *inmemTransport) Forward(ctx context.Context, addr hraft.ServerAddress, req []byte) ([]byte, error) {
	peer := t.net.reach(t.addr, addr)
	if peer == nil {
		<-ctx.Done()
		return nil, fmt.Errorf("%w: %s unreachable from %s: %w", ErrNotSent, addr, t.addr, ctx.Err())
	}
	peer.mu.Lock()
	h := peer.handler
	peer.mu.Unlock()
	if h == nil {
		return nil, fmt.Errorf("%w: %s is not serving", ErrNotSent, addr)
	}
	// The request is the caller's buffer; the handler gets its own copy, as
	// it would over a wire.
	reply := h(ctx, append([]byte(nil), req...))
	if t.net.reach(t.addr, addr) == nil {
		<-ctx.Done()
		return nil, fmt.Errorf("%s's reply lost on a cut link: %w", addr, ctx.Err())
	}
	return reply, nil
}
