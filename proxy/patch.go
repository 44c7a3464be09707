package proxy

import (
	"net/netip"

	"github.com/runenet/runenet/cluster"
)

// ServiceRoutes is everything the data plane derives from one service: its
// ports (none when the service is gone or has no VIP) and, when it has an
// egress policy, its instances' addresses.
type ServiceRoutes struct {
	Ports  []ServicePort
	Egress []netip.Addr
}

// Patch swaps in a table that differs from the current one only in the
// services of changed: for each, its new routes, and in prevEgress the
// egress addresses it had. It returns the redirects of the fronts those
// services had or now have (Port 0: none any more) with the change in the
// number of kernel-forwarded ports, and ok=false, having
// changed nothing, when only a full Update can keep behaviour identical:
// dev mode (listeners per port, which clash), or a front that another
// service holds or held (clashes resolve in table order).
func (p *Proxy) Patch(seq uint64, changed map[cluster.NamespacedName]ServiceRoutes, prevEgress map[cluster.NamespacedName][]netip.Addr) (rs []Redirect, kernelDelta int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, 0, true
	}
	if p.cfg.Dev || len(p.clashes) > 0 {
		return nil, 0, false
	}
	old := p.routes.Load()
	fronts := map[frontKey]bool{}
	for n, sr := range changed {
		for i := range sr.Ports {
			k := p.frontOf(&sr.Ports[i])
			if fronts[k] {
				return nil, 0, false
			}
			if r := old.front(k); r != nil && r.sp.Service != n {
				if _, moving := changed[r.sp.Service]; !moving {
					return nil, 0, false
				}
			}
			fronts[k] = true
		}
	}

	p.gen++
	byFront, byPort, bySvc, egress := old.byFront.Edit(), old.byPort.Edit(), old.bySvc.Edit(), old.egress.Edit()
	touched := map[frontKey]bool{}
	var gone []*route
	for n, sr := range changed {
		prev, _ := old.bySvc.Get(n)
		for _, r := range prev {
			k := p.frontOf(&r.sp)
			if cur, _ := byFront.Get(k); cur == r {
				byFront.Delete(k)
			}
			touched[k] = true
			if r.sp.Protocol == cluster.TCP {
				if cur, _ := byPort.Get(portKey{n, r.sp.VIP.Port()}); cur == r {
					byPort.Delete(portKey{n, r.sp.VIP.Port()})
				}
			}
		}
		gone = append(gone, prev...)
		routes := make([]*route, 0, len(sr.Ports))
		for i := range sr.Ports {
			sp := &sr.Ports[i]
			r := reusable(prev, sp, p.gen)
			if r == nil {
				r = p.newRoute(sp)
			}
			r.gen = p.gen
			routes = append(routes, r)
			k := p.frontOf(sp)
			touched[k] = true
			if sp.Protocol == cluster.TCP {
				byPort.Set(portKey{n, sp.VIP.Port()}, r)
			}
			byFront.Set(k, r)
		}
		if len(routes) > 0 {
			bySvc.Set(n, routes)
		} else {
			bySvc.Delete(n)
		}
		for _, a := range prevEgress[n] {
			if cur, _ := egress.Get(a); cur == n {
				egress.Delete(a)
			}
		}
		for _, a := range sr.Egress {
			egress.Set(a, n)
		}
	}
	for _, r := range gone {
		if r.gen != p.gen {
			p.release(r)
		}
	}
	rt := &routes{seq: seq, byFront: byFront.Done(), byPort: byPort.Done(), bySvc: bySvc.Done(), egress: egress.Done()}
	p.routes.Store(rt)
	var failed []Clash
	for k := range touched {
		if r := old.front(k); r != nil && p.kernelForwards(k, r) {
			kernelDelta--
		}
		if r := rt.front(k); r != nil {
			if p.kernelForwards(k, r) {
				kernelDelta++
			}
			if c, ok := p.openFrontFor(k, r); !ok {
				failed = append(failed, c)
			}
		}
		p.closeFrontUnless(rt, k)
		rs = append(rs, p.redirectOf(k, rt.front(k)))
	}
	p.swapped(failed)
	return rs, kernelDelta, true
}

// reusable is a route of prev that routes sp exactly and that this update
// (gen) has not taken yet.
func reusable(prev []*route, sp *ServicePort, gen uint64) *route {
	for _, r := range prev {
		if r.gen != gen && r.sp.same(sp) {
			return r
		}
	}
	return nil
}
