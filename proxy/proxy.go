package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/pmap"
	"github.com/runenet/runenet/policy"
)

// Config tunes a Proxy. Zero values get the defaults noted.
type Config struct {
	// Dev selects dev mode: no interception; every service port gets a
	// listener on DevAddr:<service port>.
	Dev bool
	// InterceptAddr is where nftables redirects VIP traffic (intercept mode).
	// Its address must be unspecified (0.0.0.0): a prerouting redirect targets
	// the primary address of whichever interface the packet came in on. Port 0
	// lets the kernel pick; the chosen port goes into the nftables maps.
	// Default 0.0.0.0:0.
	InterceptAddr netip.AddrPort
	// DevAddr is the loopback address dev-mode listeners bind. Default 127.0.0.1.
	DevAddr netip.Addr
	// Reserved are TCP ports dev mode never binds: the dev ingress's, which
	// own them whichever starts first. A service port among them gets no
	// listener and is reported as a clash (reach it with port-forward).
	Reserved []uint16
	// Kernel hands TCP service ports without an ingress policy to the kernel:
	// nftables DNATs each new connection to a random ready endpoint, and the
	// bytes never pass through the proxy (full throughput, no sockets held).
	// The proxy keeps UDP and policed TCP ports. Intercept mode only.
	Kernel bool
	// Policy returns the node's network policy engine, nil while there is
	// none. Every connection a policy governs (the destination's ingress, a
	// local source's egress) is denied while it returns nil or an Engine
	// whose tables are older than the routing table (fail closed, reason
	// not-ready): routes may carry a policy those tables do not know yet.
	// A nil func is a proxy with no engine ever.
	Policy func() *policy.Engine
	// Stale reports whether the data behind the table is past the stale
	// budget; new connections are refused while it does. Nil: never stale.
	Stale func() bool
	// DialTimeout bounds one connect attempt to an endpoint. Default 2s.
	DialTimeout time.Duration
	// DialAttempts is how many endpoints a new connection tries. Default 3.
	DialAttempts int
	// EjectBase and EjectMax bound the back-off of an endpoint whose connect
	// failed: base, doubled per consecutive failure, capped. Default 1s, 30s.
	EjectBase, EjectMax time.Duration
	// UDPIdleTimeout ends a UDP flow with no traffic either way. Default 60s.
	UDPIdleTimeout time.Duration
	Logger         *slog.Logger
}

func (c *Config) setDefaults() {
	if !c.InterceptAddr.IsValid() {
		c.InterceptAddr = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	}
	if !c.DevAddr.IsValid() {
		c.DevAddr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 2 * time.Second
	}
	if c.DialAttempts <= 0 {
		c.DialAttempts = 3
	}
	if c.EjectBase <= 0 {
		c.EjectBase = time.Second
	}
	if c.EjectMax <= 0 {
		c.EjectMax = 30 * time.Second
	}
	if c.UDPIdleTimeout <= 0 {
		c.UDPIdleTimeout = 60 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// frontKey is where a client addresses a service port as the proxy sees it:
// the VIP:port in intercept mode, DevAddr:port in dev mode.
type frontKey struct {
	proto cluster.Protocol
	addr  netip.AddrPort
}

// portKey names a service port for port-forward.
type portKey struct {
	svc  cluster.NamespacedName
	port uint16
}

// route is one service port as compiled for the data path. An update that
// leaves a service port as it was keeps its route.
type route struct {
	sp  ServicePort
	eps []*endpoint
	m   atomic.Pointer[portMetrics] // resolved on first use: see metrics
	gen uint64                      // the last update that kept this route (guarded by Proxy.mu)
}

// metrics is the route's metric children, made when its first connection
// or flow counts something, not with the route: ten series for each of
// 100,000 services were 700 MB of the node's heap (half of it), and slowed
// every garbage collection, for ports no connection through the proxy may
// ever use (in kernel mode, none does). A service port shows up in
// /metrics with its first connection.
func (r *route) metrics() *portMetrics {
	if m := r.m.Load(); m != nil {
		return m
	}
	r.m.CompareAndSwap(nil, metricsFor(r.sp.Service, r.sp.Protocol))
	return r.m.Load()
}

// routes is an immutable compiled table, swapped atomically per update.
// Its maps are persistent (pmap), so an update of a few services copies a
// few small nodes, not the table.
type routes struct {
	seq     uint64 // the Table's
	byFront pmap.Map[frontKey, *route]
	byPort  pmap.Map[portKey, *route] // TCP ports, for port-forward
	// bySvc lists each service's routes in table order, including dev-mode
	// clashes, which have no front.
	bySvc  pmap.Map[cluster.NamespacedName, []*route]
	egress pmap.Map[netip.Addr, cluster.NamespacedName]
}

// front is the route serving k, nil if none.
func (rt *routes) front(k frontKey) *route {
	r, _ := rt.byFront.Get(k)
	return r
}

// port is the TCP route of a service port, nil if none.
func (rt *routes) port(k portKey) *route {
	r, _ := rt.byPort.Get(k)
	return r
}

// Redirect tells the interceptor to steer Protocol traffic for VIP to the
// local port where the proxy listens for it and, when Endpoints is set
// (kernel forwarding, TCP only), to DNAT it to one of them instead wherever
// the kernel can. Port 0 means no redirect.
type Redirect struct {
	Protocol  cluster.Protocol
	VIP       netip.AddrPort
	Port      uint16
	Endpoints []netip.AddrPort
}

// Proxy forwards connections for the service ports of the latest Table.
type Proxy struct {
	cfg    Config
	routes atomic.Pointer[routes]
	dialer net.Dialer
	relay  *relay

	mu        sync.Mutex
	closed    bool
	gen       uint64
	endpoints map[netip.AddrPort]*registered
	// routesOf counts the routes of each service and protocol, so the
	// metric series of one that is gone can be dropped without a scan.
	routesOf  map[metricsKey]int
	intercept *net.TCPListener   // intercept mode only
	fronts    map[frontKey]front // UDP sockets (intercept) or all listeners (dev)
	clashes   []Clash
	updated   chan struct{} // closed and replaced by every Update
}

// Clash is a dev-mode service port that got no listener of its own:
// another service has the port, it is reserved for the ingress, or another
// process holds it. The service stays reachable through port-forward.
type Clash struct {
	Service  cluster.NamespacedName
	Protocol cluster.Protocol
	Port     uint16
	Reason   string
}

func (c Clash) String() string {
	return fmt.Sprintf("%s %s port %d: %s", c.Service, c.Protocol, c.Port, c.Reason)
}

// Hint tells a user how to reach the service port anyway.
func (c Clash) Hint() string {
	return fmt.Sprintf("reach it with `rune port-forward -n %s %s 0:%d` (0: any free local port)", c.Service.Namespace, c.Service.Name, c.Port)
}

// front is a listener or socket serving one frontKey.
type front interface {
	io.Closer
	port() uint16
}

// New starts a proxy with an empty table. In intercept mode it binds the TCP
// listener nftables redirects to.
func New(cfg Config) (*Proxy, error) {
	cfg.setDefaults()
	p := &Proxy{
		cfg:       cfg,
		dialer:    net.Dialer{Timeout: cfg.DialTimeout, KeepAliveConfig: keepAlive},
		relay:     newRelay(),
		endpoints: map[netip.AddrPort]*registered{},
		routesOf:  map[metricsKey]int{},
		fronts:    map[frontKey]front{},
		updated:   make(chan struct{}),
	}
	p.routes.Store(&routes{})
	if !cfg.Dev {
		ln, err := listenTCP("tcp4", cfg.InterceptAddr)
		if err != nil {
			return nil, fmt.Errorf("proxy: listen for intercepted TCP on %s: %w", cfg.InterceptAddr, err)
		}
		p.intercept = ln
		go p.serveTCP(ln, p.resolveOriginalDst, nil)
	}
	return p, nil
}

// engine is the current policy engine, nil when there is none.
func (p *Proxy) engine() *policy.Engine {
	if p.cfg.Policy == nil {
		return nil
	}
	return p.cfg.Policy()
}

// admit asks the policy about a new connection from src to r: the source's
// egress policy (if src is an instance of this node), then the destination
// service's ingress policy. Without rule tables at least as new as the
// routes, whatever a policy governs is refused (see Config.Policy).
// A refusal is counted under both the policy's drops and this port's
// connections; the verdict says which policy refused. Established
// connections are never re-judged.
func (p *Proxy) admit(src netip.Addr, r *route) (policy.Verdict, bool) {
	e := p.engine()
	if rt := p.routes.Load(); e == nil || e.Tables().Seq < rt.seq {
		if v, governed := rt.governing(src, r); governed {
			return p.deny(r, v)
		}
		if e == nil {
			return policy.Verdict{Allowed: true}, true
		}
	}
	sp := &r.sp
	v := e.Egress(src, sp.VIP.Addr(), sp.VIP.Port(), sp.Protocol)
	if v.Allowed {
		v = e.Ingress(src, sp.Service, sp.VIP.Port(), sp.Protocol)
	}
	if v.Allowed {
		return v, true
	}
	return p.deny(r, v)
}

func (p *Proxy) deny(r *route, v policy.Verdict) (policy.Verdict, bool) {
	policy.CountDrop(v)
	r.metrics().denied.Inc()
	return v, false
}

// governing names the policy that governs a connection from src to r as far
// as these routes know (the destination's ingress policy first, then the
// source's egress policy), as a not-ready verdict.
func (rt *routes) governing(src netip.Addr, r *route) (policy.Verdict, bool) {
	if r.sp.Policed {
		return policy.NotReady(r.sp.Service), true
	}
	if n, ok := rt.egress.Get(src.Unmap()); ok {
		return policy.NotReady(n), true
	}
	return policy.Verdict{}, false
}

// InterceptPort is the port of the intercept-mode TCP listener (0 in dev mode).
func (p *Proxy) InterceptPort() uint16 {
	if p.intercept == nil {
		return 0
	}
	return uint16(p.intercept.Addr().(*net.TCPAddr).Port)
}

// Update swaps in a new table. Connections already established keep their
// endpoints; new ones see only t. It returns the redirects interception must
// install for t (none in dev mode).
func (p *Proxy) Update(t *Table) []Redirect {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.gen++
	old := p.routes.Load()
	byFront := pmap.NewEditor[frontKey, *route]()
	byPort := pmap.NewEditor[portKey, *route]()
	bySvc := pmap.NewEditor[cluster.NamespacedName, []*route]()
	egress := pmap.NewEditor[netip.Addr, cluster.NamespacedName]()
	for a, n := range t.EgressPoliced {
		egress.Set(a, n)
	}
	var clashes []Clash
	for i := range t.Ports {
		sp := &t.Ports[i]
		k := p.frontOf(sp)
		pk := portKey{sp.Service, sp.VIP.Port()}
		r := old.port(pk)
		if sp.Protocol != cluster.TCP {
			r = old.front(k)
		}
		if r == nil || r.gen == p.gen || !r.sp.same(sp) {
			r = p.newRoute(sp)
		}
		r.gen = p.gen
		rs, _ := bySvc.Get(sp.Service)
		bySvc.Set(sp.Service, append(rs, r))
		if sp.Protocol == cluster.TCP {
			byPort.Set(pk, r)
		}
		if p.reserved(k) {
			clashes = append(clashes, Clash{sp.Service, sp.Protocol, sp.VIP.Port(), fmt.Sprintf("%s is reserved for the ingress", k.addr)})
			continue
		}
		if prev, ok := byFront.Get(k); ok {
			// Only possible in dev mode, where every service shares DevAddr.
			clashes = append(clashes, Clash{sp.Service, sp.Protocol, sp.VIP.Port(), fmt.Sprintf("%s already has %s", prev.sp.Service, k.addr)})
			continue
		}
		byFront.Set(k, r)
	}
	old.bySvc.Range(func(_ cluster.NamespacedName, rs []*route) bool {
		for _, r := range rs {
			if r.gen != p.gen {
				p.release(r)
			}
		}
		return true
	})
	rt := &routes{seq: t.Seq, byFront: byFront.Done(), byPort: byPort.Done(), bySvc: bySvc.Done(), egress: egress.Done()}
	p.routes.Store(rt)
	clashes = append(clashes, p.reconcileFronts(rt)...)
	p.swapped(clashes)
	return p.redirects(rt)
}

// swapped reports the clashes of the routes just stored and wakes
// clashesAt's waiters.
func (p *Proxy) swapped(clashes []Clash) {
	p.reportClashes(clashes)
	close(p.updated)
	p.updated = make(chan struct{})
}

// reserved reports whether k is a dev-mode TCP port the ingress owns.
func (p *Proxy) reserved(k frontKey) bool {
	return p.cfg.Dev && k.proto == cluster.TCP && slices.Contains(p.cfg.Reserved, k.addr.Port())
}

// registered is an endpoint with the number of routes listing it.
type registered struct {
	*endpoint
	refs int
}

// newRoute compiles a service port, sharing endpoint state with every other
// route that lists the same address.
func (p *Proxy) newRoute(sp *ServicePort) *route {
	r := &route{sp: *sp, eps: make([]*endpoint, 0, len(sp.Endpoints))}
	p.routesOf[metricsKey{sp.Service, sp.Protocol}]++
	// Own copy: the next update compares against it, whatever the caller
	// does with its table.
	r.sp.Endpoints = slices.Clone(sp.Endpoints)
	for _, a := range sp.Endpoints {
		e := p.endpoints[a]
		if e == nil {
			e = &registered{endpoint: &endpoint{addr: a, dial: a.String()}}
			p.endpoints[a] = e
		}
		e.refs++
		r.eps = append(r.eps, e.endpoint)
	}
	return r
}

// release forgets a route's endpoints once no route lists them, and its
// service's metric series once no route of that service and protocol is
// left (an updated route is made before the old one is released, so only a
// deleted service port gets there). Connections still on such an endpoint
// keep their pointer and finish normally.
func (p *Proxy) release(r *route) {
	for _, e := range r.eps {
		if reg := p.endpoints[e.addr]; reg != nil && reg.endpoint == e {
			if reg.refs--; reg.refs == 0 {
				delete(p.endpoints, e.addr)
			}
		}
	}
	k := metricsKey{r.sp.Service, r.sp.Protocol}
	if p.routesOf[k]--; p.routesOf[k] == 0 {
		delete(p.routesOf, k)
		other := metricsKey{k.svc, cluster.TCP}
		if k.proto == cluster.TCP {
			other.proto = cluster.UDP
		}
		forgetMetrics(k, p.routesOf[other] == 0)
	}
}

func (p *Proxy) frontOf(sp *ServicePort) frontKey {
	if p.cfg.Dev {
		return frontKey{sp.Protocol, netip.AddrPortFrom(p.cfg.DevAddr, sp.VIP.Port())}
	}
	return frontKey{sp.Protocol, sp.VIP}
}

// reconcileFronts opens a front for every key that needs its own socket and
// closes the ones no longer in the table. Closing a TCP listener leaves its
// accepted connections alone. It returns the keys it could not bind.
func (p *Proxy) reconcileFronts(rt *routes) []Clash {
	var failed []Clash
	rt.byFront.Range(func(k frontKey, r *route) bool {
		if c, ok := p.openFrontFor(k, r); !ok {
			failed = append(failed, c)
		}
		return true
	})
	for k := range p.fronts {
		p.closeFrontUnless(rt, k)
	}
	return failed
}

// openFrontFor opens k's own socket if it needs one and has none; a
// failure is returned as a clash.
func (p *Proxy) openFrontFor(k frontKey, r *route) (Clash, bool) {
	if _, ok := p.fronts[k]; ok || (!p.cfg.Dev && k.proto == cluster.TCP) {
		return Clash{}, true
	}
	f, err := p.openFront(k)
	if err != nil {
		return Clash{r.sp.Service, k.proto, k.addr.Port(), err.Error()}, false
	}
	p.fronts[k] = f
	return Clash{}, true
}

// closeFrontUnless closes k's socket unless rt still routes k.
func (p *Proxy) closeFrontUnless(rt *routes, k frontKey) {
	f, ok := p.fronts[k]
	if _, routed := rt.byFront.Get(k); ok && !routed {
		f.Close()
		delete(p.fronts, k)
	}
}

func (p *Proxy) openFront(k frontKey) (front, error) {
	resolve := func() *route { return p.routes.Load().front(k) }
	if k.proto == cluster.UDP {
		bind := k.addr
		if !p.cfg.Dev {
			bind = netip.AddrPortFrom(p.cfg.InterceptAddr.Addr(), 0)
		}
		return p.listenUDP(bind, resolve)
	}
	ln, err := listenTCP("tcp4", k.addr)
	if err != nil {
		return nil, err
	}
	go p.serveTCP(ln, func(*net.TCPConn) *route { return resolve() }, nil)
	return tcpFront{ln}, nil
}

func (p *Proxy) redirects(rt *routes) []Redirect {
	if p.cfg.Dev {
		return nil
	}
	out := make([]Redirect, 0, rt.byFront.Len())
	rt.byFront.Range(func(k frontKey, r *route) bool {
		if rd := p.redirectOf(k, r); rd.Port != 0 {
			out = append(out, rd)
		}
		return true
	})
	return out
}

// redirectOf is what interception must do for k, served by r (nil: by
// nothing). Port 0 means no redirect.
func (p *Proxy) redirectOf(k frontKey, r *route) Redirect {
	none := Redirect{Protocol: k.proto, VIP: k.addr}
	if r == nil || len(r.eps) == 0 {
		// Left to the guard, which refuses at the first packet: a client
		// sees "connection refused" rather than a reset after its connect
		// succeeded.
		return none
	}
	port := p.InterceptPort()
	if p.kernelForwards(k, r) {
		// The proxy stays behind the DNAT for what it cannot take: host
		// processes connecting from a loopback address.
		return Redirect{Protocol: k.proto, VIP: k.addr, Port: port, Endpoints: r.sp.Endpoints}
	}
	if k.proto == cluster.UDP {
		f, ok := p.fronts[k]
		if !ok {
			return none // could not bind; left to the guard, which rejects
		}
		port = f.port()
	}
	return Redirect{Protocol: k.proto, VIP: k.addr, Port: port}
}

// kernelForwards reports whether the kernel forwards k's connections to
// r's endpoints itself (kernel mode: TCP ports without an ingress policy).
func (p *Proxy) kernelForwards(k frontKey, r *route) bool {
	return p.cfg.Kernel && k.proto == cluster.TCP && !r.sp.Policed && len(r.eps) > 0
}

func (p *Proxy) reportClashes(clashes []Clash) {
	devPortClashes.Set(float64(len(clashes)))
	for _, c := range clashes {
		if !slices.Contains(p.clashes, c) {
			p.cfg.Logger.Warn("proxy: service port has no listener; "+c.Hint(), "clash", c.String())
		}
	}
	p.clashes = clashes
}

// Clashes lists the service ports that got no listener of their own in dev
// mode.
func (p *Proxy) Clashes() []Clash {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.clashes)
}

// clashWait bounds how long a cast waits for the data plane to apply it.
const clashWait = 2 * time.Second

// ClashWarnings are the clashes of services (nil: every one) once the
// table of log seq (or a later one) is in place, one sentence each with the
// way around it: what a cast and status tell the user. Outside dev mode
// there are none.
func (p *Proxy) ClashWarnings(ctx context.Context, seq uint64, services []cluster.NamespacedName) []string {
	ctx, cancel := context.WithTimeout(ctx, clashWait)
	defer cancel()
	clashes, err := p.clashesAt(ctx, seq)
	if err != nil {
		return []string{fmt.Sprintf("cannot tell whether every dev-mode service port got a listener: %v", err)}
	}
	var out []string
	for _, c := range clashes {
		if services == nil || slices.Contains(services, c.Service) {
			out = append(out, c.String()+"; "+c.Hint())
		}
	}
	return out
}

// clashesAt is Clashes once the table of seq (or a later one) is in place,
// waiting for it until ctx ends. Outside dev mode it does not wait.
func (p *Proxy) clashesAt(ctx context.Context, seq uint64) ([]Clash, error) {
	if !p.cfg.Dev {
		return nil, nil
	}
	for {
		p.mu.Lock()
		ch, applied, closed := p.updated, p.routes.Load().seq >= seq, p.closed
		p.mu.Unlock()
		if applied || closed {
			return p.Clashes(), nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the data plane to apply seq %d: %w", seq, ctx.Err())
		}
	}
}

// Close stops accepting: listeners and UDP sockets close. Established TCP
// connections are left to finish on their own, so a reload does not cut them.
func (p *Proxy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.relay.close()
	var errs []error
	if p.intercept != nil {
		errs = append(errs, p.intercept.Close())
	}
	for k, f := range p.fronts {
		errs = append(errs, f.Close())
		delete(p.fronts, k)
	}
	return errors.Join(errs...)
}
