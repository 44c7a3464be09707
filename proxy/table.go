package proxy

import (
	"net/netip"
	"sort"

	"github.com/runenet/runenet/cluster"
)

// ServicePort is one port of one service: where clients address it (VIP:Port)
// and where its ready instances listen.
type ServicePort struct {
	Service  cluster.NamespacedName
	Protocol cluster.Protocol
	// VIP is the service's virtual IP and service port.
	VIP netip.AddrPort
	// Name is the port's name in the spec ("" when unnamed).
	Name      string
	Endpoints []netip.AddrPort
	// Policed is set when the service has an ingress policy. Such ports stay
	// on the proxy in kernel forwarding mode: only the proxy knows every
	// peer's identity, host processes included.
	Policed bool
}

// Table is everything the data plane needs to know about the cluster: the
// CIDR it must intercept and every service port. Seq is the log sequence the
// table reflects.
type Table struct {
	Seq   uint64
	CIDR  netip.Prefix
	Ports []ServicePort
	// EgressPoliced maps the instance addresses of services with an egress
	// policy to their service: sources the proxy must refuse while it has
	// no rule tables as new as this table (see Config.Policy).
	EgressPoliced map[netip.Addr]cluster.NamespacedName
}

// TableFrom derives the routing table from a snapshot. A service without
// endpoints still gets its ports (with no endpoints), so connections to it are
// refused at once instead of being left to the guard or timing out.
func TableFrom(s *cluster.Snapshot) *Table {
	t := &Table{Seq: s.Seq}
	if s.Network != nil {
		t.CIDR = s.Network.CIDR
	}
	s.RangeServices(func(e cluster.Entry[cluster.ServiceRecord]) bool {
		sr := routesOf(s, e.Value)
		for _, a := range sr.Egress {
			if t.EgressPoliced == nil {
				t.EgressPoliced = map[netip.Addr]cluster.NamespacedName{}
			}
			t.EgressPoliced[a] = cluster.NamespacedName{Namespace: e.Value.Spec.Namespace, Name: e.Value.Spec.Name}
		}
		t.Ports = append(t.Ports, sr.Ports...)
		return true
	})
	// Sorted so that dev-mode port clashes resolve the same way every time.
	sort.Slice(t.Ports, func(i, j int) bool { return lessPort(&t.Ports[i], &t.Ports[j]) })
	return t
}

// RoutesOf is what the data plane derives from service n in s (nothing
// when it does not exist): TableFrom's part for one service.
func RoutesOf(s *cluster.Snapshot, n cluster.NamespacedName) ServiceRoutes {
	e, ok := s.Service(n)
	if !ok {
		return ServiceRoutes{}
	}
	return routesOf(s, e.Value)
}

func routesOf(s *cluster.Snapshot, rec *cluster.ServiceRecord) ServiceRoutes {
	var sr ServiceRoutes
	if !rec.VIP.IsValid() {
		return sr
	}
	name := cluster.NamespacedName{Namespace: rec.Spec.Namespace, Name: rec.Spec.Name}
	if np := rec.Spec.NetworkPolicy; np != nil && np.HasEgress {
		for _, in := range s.Instances(name.Namespace, name.Name) {
			sr.Egress = append(sr.Egress, in.Value.IP.Unmap())
		}
	}
	var eps *cluster.Endpoints
	if ep, ok := s.Endpoints(name); ok {
		eps = ep.Value
	}
	for _, p := range rec.Spec.Ports {
		sp := ServicePort{
			Service:  name,
			Protocol: protocolOf(p.Protocol),
			VIP:      netip.AddrPortFrom(rec.VIP, uint16(p.Port)),
			Name:     p.Name,
			Policed:  rec.Spec.NetworkPolicy != nil && rec.Spec.NetworkPolicy.HasIngress,
		}
		sp.Endpoints = endpointsFor(eps, sp)
		sr.Ports = append(sr.Ports, sp)
	}
	return sr
}

// same reports whether two service ports route identically.
func (a *ServicePort) same(b *ServicePort) bool {
	if a.Service != b.Service || a.Protocol != b.Protocol || a.VIP != b.VIP || a.Name != b.Name || a.Policed != b.Policed || len(a.Endpoints) != len(b.Endpoints) {
		return false
	}
	for i := range a.Endpoints {
		if a.Endpoints[i] != b.Endpoints[i] {
			return false
		}
	}
	return true
}

func endpointsFor(eps *cluster.Endpoints, sp ServicePort) []netip.AddrPort {
	if eps == nil {
		return nil
	}
	for _, p := range eps.Ports {
		if p.Port != int(sp.VIP.Port()) || protocolOf(p.Protocol) != sp.Protocol {
			continue
		}
		target := p.TargetPort
		if target == 0 {
			target = p.Port
		}
		out := make([]netip.AddrPort, 0, len(eps.Addresses))
		for _, a := range eps.Addresses {
			out = append(out, netip.AddrPortFrom(a.IP, uint16(target)))
		}
		return out
	}
	return nil
}

func protocolOf(p cluster.Protocol) cluster.Protocol {
	if p == "" {
		return cluster.TCP
	}
	return p
}

func lessPort(a, b *ServicePort) bool {
	if a.Service.Namespace != b.Service.Namespace {
		return a.Service.Namespace < b.Service.Namespace
	}
	if a.Service.Name != b.Service.Name {
		return a.Service.Name < b.Service.Name
	}
	if a.VIP.Port() != b.VIP.Port() {
		return a.VIP.Port() < b.VIP.Port()
	}
	return a.Protocol < b.Protocol
}
