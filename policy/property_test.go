package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/runenet/runenet/cluster"
)

// fakeState is a hand-built cluster state, so the property test can try
// thousands of random clusters without a log.
type fakeState struct {
	services  []cluster.ServiceRecord
	policies  map[cluster.NamespacedName]cluster.NetworkPolicy
	instances []cluster.Instance
	peers     []netip.Addr // other nodes' addresses
}

func (f *fakeState) RangeServices(fn func(cluster.Entry[cluster.ServiceRecord]) bool) {
	for i := range f.services {
		if !fn(cluster.Entry[cluster.ServiceRecord]{Value: &f.services[i]}) {
			return
		}
	}
}

func (f *fakeState) Policy(n cluster.NamespacedName) (cluster.Entry[cluster.NetworkPolicy], bool) {
	p, ok := f.policies[n]
	return cluster.Entry[cluster.NetworkPolicy]{Value: &p}, ok
}

func (f *fakeState) Instances(ns, svc string) []cluster.Entry[cluster.Instance] {
	var out []cluster.Entry[cluster.Instance]
	for i := range f.instances {
		if (ns == "" || f.instances[i].Namespace == ns) && (svc == "" || f.instances[i].Service == svc) {
			out = append(out, cluster.Entry[cluster.Instance]{Value: &f.instances[i]})
		}
	}
	return out
}

func (f *fakeState) Nodes() []cluster.Entry[cluster.Node] {
	out := make([]cluster.Entry[cluster.Node], len(f.peers))
	for i, a := range f.peers {
		out[i] = cluster.Entry[cluster.Node]{Value: &cluster.Node{Name: fmt.Sprintf("peer-%d", i), Address: a}}
	}
	return out
}

func (f *fakeState) InstanceByIP(ip netip.Addr) (cluster.Entry[cluster.Instance], bool) {
	for i := range f.instances {
		if f.instances[i].IP == ip {
			return cluster.Entry[cluster.Instance]{Value: &f.instances[i]}, true
		}
	}
	return cluster.Entry[cluster.Instance]{}, false
}

// The reference evaluator reads the spec literally: scan the rules in
// order, scan each rule's peers and ports, no indexes.

func (f *fakeState) refService(n cluster.NamespacedName) *cluster.ServiceRecord {
	for i := range f.services {
		if f.services[i].Spec.Namespace == n.Namespace && f.services[i].Spec.Name == n.Name {
			return &f.services[i]
		}
	}
	return nil
}

// refInstance is the service of the first instance at ip on node ("": any
// node), as the cluster's claims give an IP to one instance.
func (f *fakeState) refInstance(ip netip.Addr, node string) (cluster.NamespacedName, bool) {
	for _, in := range f.instances {
		if in.IP == ip {
			return cluster.NamespacedName{Namespace: in.Namespace, Name: in.Service}, node == "" || in.Node == node
		}
	}
	return cluster.NamespacedName{}, false
}

func refPeerMatches(p cluster.Peer, owner string, id cluster.NamespacedName, known bool, addr netip.Addr) bool {
	if p.CIDR != "" {
		return netip.MustParsePrefix(p.CIDR).Contains(addr)
	}
	ns := p.Namespace
	if ns == "" {
		ns = owner
	}
	return known && id.Namespace == ns && id.Name == p.Service
}

// refProxied reports whether some rule of svc's ingress policy with at
// least one peer admits anyone on its port p: what a peer node's proxy may
// reach, so what the kernel admits from peer node addresses.
func (f *fakeState) refProxied(n cluster.NamespacedName, p cluster.Port) bool {
	for _, r := range f.policies[n].Ingress {
		if len(r.From) == 0 {
			continue
		}
		if len(r.Ports) == 0 {
			return true
		}
		for _, ref := range r.Ports {
			if (ref.Name != "" && ref.Name == p.Name) || (ref.Name == "" && ref.Number == p.Port) {
				return true
			}
		}
	}
	return false
}

func refVerdict(owner cluster.NamespacedName, rules []cluster.PolicyRule, ingress bool, svc *cluster.Service,
	id cluster.NamespacedName, known bool, addr netip.Addr, port uint16, proto cluster.Protocol) Verdict {
	for i, r := range rules {
		peers := r.From
		if !ingress {
			peers = r.To
		}
		peerOK := false
		for _, p := range peers {
			if refPeerMatches(p, owner.Namespace, id, known, addr) {
				peerOK = true
			}
		}
		portOK := len(r.Ports) == 0
		for _, ref := range r.Ports {
			if !ingress {
				portOK = portOK || ref.Number == int(port)
				continue
			}
			for _, sp := range svc.Ports {
				named := ref.Name != "" && sp.Name == ref.Name
				numbered := ref.Name == "" && sp.Port == ref.Number
				if (named || numbered) && sp.Port == int(port) && sp.Protocol == proto {
					portOK = true
				}
			}
		}
		if peerOK && portOK {
			return Verdict{Allowed: true, Service: owner, Policy: owner.String(), Rule: i, Reason: ReasonRuleMatch}
		}
	}
	return Verdict{Service: owner, Policy: owner.String(), Rule: -1, Reason: ReasonDefaultDeny}
}

func (f *fakeState) refIngress(node string, src netip.Addr, dst cluster.NamespacedName, port uint16, proto cluster.Protocol) Verdict {
	p, ok := f.policies[dst]
	if !ok || !p.HasIngress {
		return Verdict{Allowed: true, Rule: -1, Reason: ReasonNoPolicy}
	}
	id, known := f.refInstance(src, "") // identity is cluster-wide
	return refVerdict(dst, p.Ingress, true, &f.refService(dst).Spec, id, known, src, port, proto)
}

func (f *fakeState) refEgress(node string, src, dst netip.Addr, port uint16, proto cluster.Protocol) Verdict {
	from, ok := f.refInstance(src, node) // only local sources' egress is judged here
	p, hasPolicy := f.policies[from]
	if !ok || !hasPolicy || !p.HasEgress {
		return Verdict{Allowed: true, Rule: -1, Reason: ReasonNoPolicy}
	}
	var id cluster.NamespacedName
	known := false
	for _, s := range f.services {
		if s.VIP == dst {
			id, known = cluster.NamespacedName{Namespace: s.Spec.Namespace, Name: s.Spec.Name}, true
		}
	}
	if !known {
		id, known = f.refInstance(dst, "")
	}
	return refVerdict(from, p.Egress, false, &f.refService(from).Spec, id, known, dst, port, proto)
}

// randomState draws a small cluster whose names, ports and addresses
// collide often, so rules overlap, shadow and miss each other.
func randomState(r *rand.Rand) *fakeState {
	f := &fakeState{policies: map[cluster.NamespacedName]cluster.NetworkPolicy{}}
	namespaces := []string{"a", "b"}
	portNames := []string{"http", "grpc", "dns"}
	portNumbers := []int{80, 443, 8080}
	nSvc := 2 + r.IntN(5)
	for i := range nSvc {
		svc := cluster.Service{Name: fmt.Sprintf("s%d", i%3), Namespace: namespaces[i/3%2]}
		usedNum := map[int]bool{}
		for j := range 1 + r.IntN(3) {
			num := portNumbers[r.IntN(len(portNumbers))]
			if usedNum[num] {
				continue
			}
			usedNum[num] = true
			proto := cluster.TCP
			if r.IntN(4) == 0 {
				proto = cluster.UDP
			}
			svc.Ports = append(svc.Ports, cluster.Port{Name: portNames[j], Port: num, TargetPort: num + 1000, Protocol: proto})
		}
		f.services = append(f.services, cluster.ServiceRecord{Spec: svc, VIP: netip.AddrFrom4([4]byte{10, 96, 0, byte(i + 1)})})
	}
	randomRules := func(svc *cluster.Service, ingress bool) []cluster.PolicyRule {
		rules := []cluster.PolicyRule{}
		for range r.IntN(5) {
			var pr cluster.PolicyRule
			for range 1 + r.IntN(3) {
				var p cluster.Peer
				if r.IntN(2) == 0 {
					bits := []int{0, 8, 16, 24, 28, 30, 32}[r.IntN(7)]
					a := netip.AddrFrom4([4]byte{10, byte(r.IntN(2)), byte(r.IntN(2)), byte(r.IntN(8))})
					p.CIDR = netip.PrefixFrom(a, bits).Masked().String()
				} else {
					p.Service = fmt.Sprintf("s%d", r.IntN(3))
					if r.IntN(2) == 0 {
						p.Namespace = namespaces[r.IntN(2)]
					}
				}
				if ingress {
					pr.From = append(pr.From, p)
				} else {
					pr.To = append(pr.To, p)
				}
			}
			for range r.IntN(3) {
				switch {
				case !ingress:
					pr.Ports = append(pr.Ports, cluster.PortRef{Number: portNumbers[r.IntN(len(portNumbers))]})
				case r.IntN(2) == 0 && len(svc.Ports) > 0:
					pr.Ports = append(pr.Ports, cluster.PortRef{Name: svc.Ports[r.IntN(len(svc.Ports))].Name})
				default:
					pr.Ports = append(pr.Ports, cluster.PortRef{Number: portNumbers[r.IntN(len(portNumbers))]})
				}
			}
			rules = append(rules, pr)
		}
		return rules
	}
	for i := range f.services {
		svc := &f.services[i].Spec
		var p cluster.NetworkPolicy
		if r.IntN(3) > 0 {
			p.HasIngress, p.Ingress = true, randomRules(svc, true)
		}
		if r.IntN(3) > 0 {
			p.HasEgress, p.Egress = true, randomRules(svc, false)
		}
		if p.HasIngress || p.HasEgress {
			f.policies[cluster.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}] = p
		}
	}
	for i := range 1 + r.IntN(8) {
		svc := f.services[r.IntN(len(f.services))].Spec
		f.instances = append(f.instances, cluster.Instance{
			ID: fmt.Sprint(i), Service: svc.Name, Namespace: svc.Namespace,
			Node: []string{localNode, remoteNode}[r.IntN(2)],
			IP:   netip.AddrFrom4([4]byte{10, byte(r.IntN(2)), byte(r.IntN(2)), byte(i)}),
		})
	}
	// Peer node addresses share the instances' and CIDR peers' ranges, so
	// their boxes overlap the others' and must be cut apart.
	for i := range r.IntN(3) {
		f.peers = append(f.peers, netip.AddrFrom4([4]byte{10, byte(r.IntN(2)), byte(r.IntN(2)), byte(200 + i)}))
	}
	return f
}

// TestCompiledAgreesWithReference: compiled tables and the literal reading
// of the spec agree on random clusters and connections, rule index included.
func TestCompiledAgreesWithReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const clusters, conns = 2000, 200
	for c := range clusters {
		f := randomState(r)
		tables := compile(f, 1, localNode, nil)
		addr := func() netip.Addr {
			switch r.IntN(3) {
			case 0:
				return f.instances[r.IntN(len(f.instances))].IP
			case 1:
				return f.services[r.IntN(len(f.services))].VIP
			}
			return netip.AddrFrom4([4]byte{10, byte(r.IntN(2)), byte(r.IntN(2)), byte(r.IntN(16))})
		}
		for range conns {
			src, dst := addr(), addr()
			port := uint16([]int{80, 443, 8080, 53}[r.IntN(4)])
			proto := []cluster.Protocol{cluster.TCP, cluster.UDP}[r.IntN(2)]
			s := f.services[r.IntN(len(f.services))].Spec
			n := cluster.NamespacedName{Namespace: s.Namespace, Name: s.Name}
			if got, want := tables.Ingress(src, n, port, proto), f.refIngress(localNode, src, n, port, proto); got != want {
				t.Fatalf("cluster %d: ingress %s → %s:%d/%s: got %+v, reference %+v\nservices %+v\npolicies %+v\ninstances %+v",
					c, src, n, port, proto, got, want, f.services, f.policies, f.instances)
			}
			if got, want := tables.Egress(src, dst, port, proto), f.refEgress(localNode, src, dst, port, proto); got != want {
				t.Fatalf("cluster %d: egress %s → %s:%d/%s: got %+v, reference %+v\nservices %+v\npolicies %+v\ninstances %+v",
					c, src, dst, port, proto, got, want, f.services, f.policies, f.instances)
			}
		}
	}
}

// TestKernelPlanAgreesWithTables: the nftables boxes are disjoint (the
// kernel rejects overlapping interval elements) and allow direct
// container-IP traffic exactly when the tables allow it through the VIP;
// from a peer node's address, also on every port a peer node's proxy may
// reach (the source node judged that connection).
func TestKernelPlanAgreesWithTables(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for c := range 2000 {
		f := randomState(r)
		tables := compile(f, 1, localNode, nil)
		plan := planKernel(tables, false)
		for _, ch := range plan.chains {
			for i, a := range ch.allow {
				for _, b := range ch.allow[i+1:] {
					if a.lo <= b.hi && b.lo <= a.hi && a.protoLo <= b.protoHi && b.protoLo <= a.protoHi && a.portLo <= b.portHi && b.portLo <= a.portHi {
						t.Fatalf("cluster %d: %s boxes overlap: %+v and %+v", c, ch.service, a, b)
					}
				}
			}
			if !ch.ingress {
				continue
			}
			svc := f.refService(ch.service).Spec
			for i := range 50 {
				src := netip.AddrFrom4([4]byte{10, byte(r.IntN(2)), byte(r.IntN(2)), byte(r.IntN(16))})
				peer := i%5 == 0 && len(f.peers) > 0
				if peer {
					src = f.peers[r.IntN(len(f.peers))]
				}
				p := svc.Ports[r.IntN(len(svc.Ports))]
				s := src.As4()
				v := uint32(s[0])<<24 | uint32(s[1])<<16 | uint32(s[2])<<8 | uint32(s[3])
				inBox := false
				for _, b := range ch.allow {
					proto := protoNumber(p.Protocol)
					inBox = inBox || (b.lo <= v && v <= b.hi && b.protoLo <= proto && proto <= b.protoHi && int(b.portLo) <= p.TargetPort && p.TargetPort <= int(b.portHi))
				}
				want := tables.Ingress(src, ch.service, uint16(p.Port), p.Protocol).Allowed || (peer && f.refProxied(ch.service, p))
				if inBox != want {
					t.Fatalf("cluster %d: %s → %s port %d/%s: kernel allows=%v, tables allow=%v\nboxes %+v\npolicy %+v",
						c, src, ch.service, p.TargetPort, p.Protocol, inBox, want, ch.allow, f.policies[ch.service])
				}
			}
		}
	}
}
