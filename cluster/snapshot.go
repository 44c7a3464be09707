package cluster

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/runenet/runenet/internal/pmap"
	"github.com/runenet/runenet/orderedlog"
)

// Entry is a stored object together with the revision it was read at, so a
// writer can make its next write conditional on it (compare-and-set).
type Entry[T any] struct {
	Value *T
	Rev   uint64
}

// Snapshot is the immutable, materialized state of the log as of Seq. Readers
// hold one for as long as they like; the View publishes a new one per batch.
type Snapshot struct {
	Seq     uint64
	Network *ClusterNetwork
	// NetworkRev is the revision of network/cluster (0 until bootstrapped).
	NetworkRev uint64
	// ContainerNetwork is the range node subnets come from (nil until
	// bootstrapped).
	ContainerNetwork *ContainerNetwork

	services   pmap.Map[NamespacedName, Entry[ServiceRecord]]
	byVIP      pmap.Map[netip.Addr, NamespacedName]
	byHost     pmap.Map[string, []NamespacedName] // expose.host → its services, sorted; one unless a store predates the check
	namespaces pmap.Map[string, int]              // services per namespace
	endpoints  pmap.Map[NamespacedName, Entry[Endpoints]]
	policies   pmap.Map[NamespacedName, Entry[NetworkPolicy]]
	instances  pmap.Map[string, Entry[Instance]]  // by instance id
	byIP       pmap.Map[netip.Addr, string]       // instance IP → id
	bySvc      pmap.Map[NamespacedName, []string] // a service's instance ids, sorted
	vips       pmap.Map[netip.Addr, Entry[VIPAllocation]]
	vipOwners  pmap.Map[NamespacedName, netip.Addr] // allocations, active or held
	nodes      pmap.Map[string, Entry[Node]]
	subnets    pmap.Map[netip.Addr, subnetClaim] // /24 block → the node holding it

	// hist and gen place the snapshot in its View's history (see ChangesSince).
	hist *history
	gen  uint64
}

func (s *Snapshot) Service(n NamespacedName) (Entry[ServiceRecord], bool) {
	return s.services.Get(n)
}

// ServiceByVIP finds the service a VIP belongs to.
func (s *Snapshot) ServiceByVIP(ip netip.Addr) (Entry[ServiceRecord], bool) {
	n, ok := s.byVIP.Get(ip)
	if !ok {
		return Entry[ServiceRecord]{}, false
	}
	return s.services.Get(n)
}

// HostClaims lists the services whose expose.host is host, sorted by name.
// Casts keep it to one; a store written before they checked may hold more,
// and the ingress routes the host to the first.
func (s *Snapshot) HostClaims(host string) []NamespacedName {
	owners, _ := s.byHost.Get(host)
	return owners
}

// NamespaceExists reports whether any service lives in ns (DNS uses it to
// answer NODATA rather than NXDOMAIN for "<ns>.rune").
func (s *Snapshot) NamespaceExists(ns string) bool {
	_, ok := s.namespaces.Get(ns)
	return ok
}

func (s *Snapshot) Endpoints(n NamespacedName) (Entry[Endpoints], bool) {
	return s.endpoints.Get(n)
}

func (s *Snapshot) Policy(n NamespacedName) (Entry[NetworkPolicy], bool) {
	return s.policies.Get(n)
}

func (s *Snapshot) Instance(id string) (Entry[Instance], bool) { return s.instances.Get(id) }

// InstanceByIP maps a source address to the instance that owns it.
func (s *Snapshot) InstanceByIP(ip netip.Addr) (Entry[Instance], bool) {
	id, ok := s.byIP.Get(ip)
	if !ok {
		return Entry[Instance]{}, false
	}
	return s.instances.Get(id)
}

func (s *Snapshot) VIPAllocation(ip netip.Addr) (Entry[VIPAllocation], bool) {
	return s.vips.Get(ip)
}

// AllocationOf returns the VIP allocated (or held) for a service.
func (s *Snapshot) AllocationOf(n NamespacedName) (Entry[VIPAllocation], bool) {
	ip, ok := s.vipOwners.Get(n)
	if !ok {
		return Entry[VIPAllocation]{}, false
	}
	return s.vips.Get(ip)
}

// Node is one node's record.
func (s *Snapshot) Node(name string) (Entry[Node], bool) { return s.nodes.Get(name) }

// Nodes lists every node record, sorted by name.
func (s *Snapshot) Nodes() []Entry[Node] {
	out := make([]Entry[Node], 0, s.nodes.Len())
	s.nodes.Range(func(_ string, e Entry[Node]) bool {
		out = append(out, e)
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Value.Name < out[j].Value.Name })
	return out
}

// SubnetHolder names the node holding the /24 block that contains addr
// ("" for none).
func (s *Snapshot) SubnetHolder(addr netip.Addr) string {
	b, err := addr.Prefix(NodeSubnetBits)
	if err != nil {
		return ""
	}
	c, _ := s.subnets.Get(b.Addr())
	return c.node
}

func (s *Snapshot) NumServices() int  { return s.services.Len() }
func (s *Snapshot) NumInstances() int { return s.instances.Len() }

// Services lists the services of namespace ns ("" for all), sorted.
func (s *Snapshot) Services(ns string) []Entry[ServiceRecord] {
	var out []Entry[ServiceRecord]
	s.services.Range(func(n NamespacedName, e Entry[ServiceRecord]) bool {
		if ns == "" || n.Namespace == ns {
			out = append(out, e)
		}
		return true
	})
	sort.Slice(out, func(i, j int) bool { return lessName(out[i].Value.Spec.key(), out[j].Value.Spec.key()) })
	return out
}

// AllEndpoints lists endpoints of namespace ns ("" for all), sorted.
func (s *Snapshot) AllEndpoints(ns string) []Entry[Endpoints] {
	var out []Entry[Endpoints]
	s.endpoints.Range(func(n NamespacedName, e Entry[Endpoints]) bool {
		if ns == "" || n.Namespace == ns {
			out = append(out, e)
		}
		return true
	})
	sort.Slice(out, func(i, j int) bool {
		return lessName(out[i].Value.key(), out[j].Value.key())
	})
	return out
}

// Instances lists instances, optionally filtered by namespace and/or service, sorted by id.
// With both, it costs the service's instances only.
func (s *Snapshot) Instances(ns, service string) []Entry[Instance] {
	var out []Entry[Instance]
	if ns != "" && service != "" {
		ids, _ := s.bySvc.Get(NamespacedName{ns, service})
		for _, id := range ids {
			if e, ok := s.instances.Get(id); ok {
				out = append(out, e)
			}
		}
		return out
	}
	s.instances.Range(func(_ string, e Entry[Instance]) bool {
		if (ns == "" || e.Value.Namespace == ns) && (service == "" || e.Value.Service == service) {
			out = append(out, e)
		}
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Value.ID < out[j].Value.ID })
	return out
}

// RangeServices visits every service without sorting (hot paths: compile, sync).
func (s *Snapshot) RangeServices(f func(Entry[ServiceRecord]) bool) {
	s.services.Range(func(_ NamespacedName, e Entry[ServiceRecord]) bool { return f(e) })
}

func (svc *Service) key() NamespacedName { return NamespacedName{svc.Namespace, svc.Name} }
func (e *Endpoints) key() NamespacedName { return NamespacedName{e.Namespace, e.Service} }

func compareName(a, b NamespacedName) int {
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

func lessName(a, b NamespacedName) bool { return compareName(a, b) < 0 }

// snapshotEditor applies log operations to produce the next Snapshot.
type snapshotEditor struct {
	next       Snapshot
	services   *pmap.Editor[NamespacedName, Entry[ServiceRecord]]
	byVIP      *pmap.Editor[netip.Addr, NamespacedName]
	byHost     *pmap.Editor[string, []NamespacedName]
	namespaces *pmap.Editor[string, int]
	endpoints  *pmap.Editor[NamespacedName, Entry[Endpoints]]
	policies   *pmap.Editor[NamespacedName, Entry[NetworkPolicy]]
	instances  *pmap.Editor[string, Entry[Instance]]
	byIP       *pmap.Editor[netip.Addr, string]
	bySvc      *pmap.Editor[NamespacedName, []string]
	vips       *pmap.Editor[netip.Addr, Entry[VIPAllocation]]
	vipOwners  *pmap.Editor[NamespacedName, netip.Addr]
	nodes      *pmap.Editor[string, Entry[Node]]
	subnets    *pmap.Editor[netip.Addr, subnetClaim]
	// changed collects the services an edit touches, and changedNodes the
	// node records, for ChangesSince; nil for a bulk load, which is a full
	// change anyway (and indexes from several goroutines).
	changed      map[NamespacedName]struct{}
	changedNodes map[string]struct{}
}

func (s *Snapshot) edit() *snapshotEditor {
	return &snapshotEditor{
		next:         Snapshot{Seq: s.Seq, Network: s.Network, NetworkRev: s.NetworkRev, ContainerNetwork: s.ContainerNetwork},
		services:     s.services.Edit(),
		byVIP:        s.byVIP.Edit(),
		byHost:       s.byHost.Edit(),
		namespaces:   s.namespaces.Edit(),
		endpoints:    s.endpoints.Edit(),
		policies:     s.policies.Edit(),
		instances:    s.instances.Edit(),
		byIP:         s.byIP.Edit(),
		bySvc:        s.bySvc.Edit(),
		vips:         s.vips.Edit(),
		vipOwners:    s.vipOwners.Edit(),
		nodes:        s.nodes.Edit(),
		subnets:      s.subnets.Edit(),
		changed:      map[NamespacedName]struct{}{},
		changedNodes: map[string]struct{}{},
	}
}

// newSnapshotEditor starts an empty snapshot.
func newSnapshotEditor() *snapshotEditor {
	return &snapshotEditor{
		services:   pmap.NewEditor[NamespacedName, Entry[ServiceRecord]](),
		byVIP:      pmap.NewEditor[netip.Addr, NamespacedName](),
		byHost:     pmap.NewEditor[string, []NamespacedName](),
		namespaces: pmap.NewEditor[string, int](),
		endpoints:  pmap.NewEditor[NamespacedName, Entry[Endpoints]](),
		policies:   pmap.NewEditor[NamespacedName, Entry[NetworkPolicy]](),
		instances:  pmap.NewEditor[string, Entry[Instance]](),
		byIP:       pmap.NewEditor[netip.Addr, string](),
		bySvc:      pmap.NewEditor[NamespacedName, []string](),
		vips:       pmap.NewEditor[netip.Addr, Entry[VIPAllocation]](),
		vipOwners:  pmap.NewEditor[NamespacedName, netip.Addr](),
		nodes:      pmap.NewEditor[string, Entry[Node]](),
		subnets:    pmap.NewEditor[netip.Addr, subnetClaim](),
	}
}

func (e *snapshotEditor) done() *Snapshot {
	n := e.next
	n.services = e.services.Done()
	n.byVIP = e.byVIP.Done()
	n.byHost = e.byHost.Done()
	n.namespaces = e.namespaces.Done()
	n.endpoints = e.endpoints.Done()
	n.policies = e.policies.Done()
	n.instances = e.instances.Done()
	n.byIP = e.byIP.Done()
	n.bySvc = e.bySvc.Done()
	n.vips = e.vips.Done()
	n.vipOwners = e.vipOwners.Done()
	n.nodes = e.nodes.Done()
	n.subnets = e.subnets.Done()
	return &n
}

// record is one decoded log value, with what its key names.
type record struct {
	kind  recordKind
	name  NamespacedName // services, endpoints, policies
	node  string         // instances, nodes
	id    string         // instances
	ip    netip.Addr     // VIP allocations, subnet blocks
	value any            // *ServiceRecord, *Endpoints, ... ; nil for a delete
}

type recordKind uint8

const (
	recOther recordKind = iota // a prefix the View does not materialize (certs/, secrets/)
	recNetwork
	recService
	recEndpoints
	recPolicy
	recInstance
	recVIP
	recContainerNetwork
	recNode
	recSubnet
)

// decodeRecord parses a key and, for a put, its value. A record that does not
// decode is an error: the log is the source of truth, and skipping it would
// hide corruption.
func decodeRecord(key string, value []byte, del bool) (record, error) {
	var r record
	var target interface{ decode([]byte) error }
	named := func(kind recordKind, prefix string) error {
		n, ok := splitName(key, prefix)
		if !ok {
			return fmt.Errorf("malformed key %q", key)
		}
		r.kind, r.name = kind, n
		return nil
	}
	var err error
	switch {
	case key == keyClusterNetwork:
		r.kind, target = recNetwork, &ClusterNetwork{}
	case strings.HasPrefix(key, orderedlog.PrefixServices):
		err, target = named(recService, orderedlog.PrefixServices), &ServiceRecord{}
	case strings.HasPrefix(key, orderedlog.PrefixEndpoints):
		err, target = named(recEndpoints, orderedlog.PrefixEndpoints), &Endpoints{}
	case strings.HasPrefix(key, orderedlog.PrefixPolicy):
		err, target = named(recPolicy, orderedlog.PrefixPolicy), &NetworkPolicy{}
	case strings.HasPrefix(key, orderedlog.PrefixLocalInstances):
		node, id, ok := strings.Cut(strings.TrimPrefix(key, orderedlog.PrefixLocalInstances), "/")
		if !ok || node == "" || id == "" {
			return r, fmt.Errorf("malformed instance key %q", key)
		}
		r.kind, r.node, r.id, target = recInstance, node, id, &Instance{}
	case key == keyContainerNetwork:
		r.kind, target = recContainerNetwork, &ContainerNetwork{}
	case strings.HasPrefix(key, orderedlog.PrefixNodes):
		name := strings.TrimPrefix(key, orderedlog.PrefixNodes)
		if NodeNameProblem(name) != "" {
			return r, fmt.Errorf("malformed node key %q", key)
		}
		r.kind, r.node, target = recNode, name, &Node{}
	case strings.HasPrefix(key, prefixSubnets):
		ip, perr := netip.ParseAddr(strings.TrimPrefix(key, prefixSubnets))
		if perr != nil || !ip.Is4() {
			return r, fmt.Errorf("malformed subnet claim key %q", key)
		}
		r.kind, r.ip = recSubnet, ip
		if !del {
			r.value = subnetClaim{node: string(value)}
		}
		return r, nil
	case strings.HasPrefix(key, prefixVIPs):
		ip, perr := netip.ParseAddr(strings.TrimPrefix(key, prefixVIPs))
		if perr != nil {
			return r, fmt.Errorf("malformed VIP key %q", key)
		}
		r.kind, r.ip, target = recVIP, ip, &VIPAllocation{}
	default:
		return r, nil
	}
	if err != nil || del {
		return r, err
	}
	if err := target.decode(value); err != nil {
		return r, fmt.Errorf("decode %s: %w", key, err)
	}
	if in, ok := target.(*Instance); ok && (in.Node != r.node || in.ID != r.id) {
		return r, fmt.Errorf("%s holds instance %s of node %s", key, in.ID, in.Node)
	}
	if n, ok := target.(*Node); ok && n.Name != r.node {
		return r, fmt.Errorf("%s holds node %s", key, n.Name)
	}
	r.value = target
	return r, nil
}

// apply materializes one key operation.
func (e *snapshotEditor) apply(op orderedlog.Op, rev uint64) error {
	if op.Type == orderedlog.OpCheck {
		return nil
	}
	r, err := decodeRecord(op.Key, op.Value, op.Type == orderedlog.OpDelete)
	if err != nil {
		return err
	}
	e.insert(r, rev)
	return nil
}

// insert replaces whatever r's key held with r's value (nil: deletes it),
// keeping the indexes in step.
func (e *snapshotEditor) insert(r record, rev uint64) {
	switch r.kind {
	case recNetwork:
		e.touchAll()
		e.next.Network, e.next.NetworkRev = nil, 0
		if r.value != nil {
			e.next.Network, e.next.NetworkRev = r.value.(*ClusterNetwork), rev
		}
	case recService:
		e.touch(r.name)
		e.removeService(r.name)
		if r.value == nil {
			return
		}
		rec := r.value.(*ServiceRecord)
		e.services.Set(r.name, Entry[ServiceRecord]{rec, rev})
		if rec.VIP.IsValid() {
			e.byVIP.Set(rec.VIP, r.name)
		}
		if x := rec.Spec.Expose; x != nil && x.Host != "" {
			owners, _ := e.byHost.Get(x.Host)
			i, _ := slices.BinarySearchFunc(owners, r.name, compareName)
			e.byHost.Set(x.Host, slices.Insert(slices.Clip(owners), i, r.name)) // a copy: snapshots share the old slice
		}
		c, _ := e.namespaces.Get(r.name.Namespace)
		e.namespaces.Set(r.name.Namespace, c+1)
	case recEndpoints:
		e.touch(r.name)
		e.endpoints.Delete(r.name)
		if r.value != nil {
			e.endpoints.Set(r.name, Entry[Endpoints]{r.value.(*Endpoints), rev})
		}
	case recPolicy:
		e.touch(r.name)
		e.policies.Delete(r.name)
		if r.value != nil {
			e.policies.Set(r.name, Entry[NetworkPolicy]{r.value.(*NetworkPolicy), rev})
		}
	case recInstance:
		// Instances are indexed by id, which the controller's claims keep
		// unique across nodes; a delete of another node's key for the same
		// id must not drop the record this index holds.
		if old, ok := e.instances.Get(r.id); ok && (r.value != nil || old.Value.Node == r.node) {
			if owner, _ := e.byIP.Get(old.Value.IP); owner == r.id {
				e.byIP.Delete(old.Value.IP)
			}
			svc := old.Value.service()
			e.touch(svc)
			ids, _ := e.bySvc.Get(svc)
			if rest := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == r.id }); len(rest) > 0 {
				e.bySvc.Set(svc, rest)
			} else {
				e.bySvc.Delete(svc)
			}
			e.instances.Delete(r.id)
		}
		if r.value != nil {
			in := r.value.(*Instance)
			e.instances.Set(r.id, Entry[Instance]{in, rev})
			e.byIP.Set(in.IP, r.id)
			svc := in.service()
			e.touch(svc)
			ids, _ := e.bySvc.Get(svc)
			i, _ := slices.BinarySearch(ids, r.id)
			e.bySvc.Set(svc, slices.Insert(slices.Clip(ids), i, r.id)) // a copy: snapshots share the old slice
		}
	case recContainerNetwork:
		e.touchAll() // every node's subnet is judged against it
		e.next.ContainerNetwork = nil
		if r.value != nil {
			e.next.ContainerNetwork = r.value.(*ContainerNetwork)
		}
	case recNode:
		e.touchNode(r.node)
		e.nodes.Delete(r.node)
		if r.value != nil {
			e.nodes.Set(r.node, Entry[Node]{r.value.(*Node), rev})
		}
	case recSubnet:
		e.subnets.Delete(r.ip)
		if r.value != nil {
			c := r.value.(subnetClaim)
			c.rev = rev
			e.subnets.Set(r.ip, c)
		}
	case recVIP:
		if old, ok := e.vips.Get(r.ip); ok {
			owner := NamespacedName{old.Value.Namespace, old.Value.Service}
			e.touch(owner)
			if cur, ok := e.vipOwners.Get(owner); ok && cur == r.ip {
				e.vipOwners.Delete(owner)
			}
			e.vips.Delete(r.ip)
		}
		if r.value != nil {
			a := r.value.(*VIPAllocation)
			e.vips.Set(r.ip, Entry[VIPAllocation]{a, rev})
			e.touch(NamespacedName{a.Namespace, a.Service})
			e.vipOwners.Set(NamespacedName{a.Namespace, a.Service}, r.ip)
		}
	}
}

func (e *snapshotEditor) removeService(n NamespacedName) {
	old, ok := e.services.Get(n)
	if !ok {
		return
	}
	if cur, ok := e.byVIP.Get(old.Value.VIP); ok && cur == n {
		e.byVIP.Delete(old.Value.VIP)
	}
	if x := old.Value.Spec.Expose; x != nil && x.Host != "" {
		owners, _ := e.byHost.Get(x.Host)
		if rest := slices.DeleteFunc(slices.Clone(owners), func(o NamespacedName) bool { return o == n }); len(rest) > 0 {
			e.byHost.Set(x.Host, rest)
		} else {
			e.byHost.Delete(x.Host)
		}
	}
	e.services.Delete(n)
	if c, _ := e.namespaces.Get(n.Namespace); c <= 1 {
		e.namespaces.Delete(n.Namespace)
	} else {
		e.namespaces.Set(n.Namespace, c-1)
	}
}

func (in *Instance) service() NamespacedName { return NamespacedName{in.Namespace, in.Service} }

// touch records that n's service, VIP, endpoints, policy or instances
// changed in this edit.
func (e *snapshotEditor) touch(n NamespacedName) {
	if e.changed != nil {
		e.changed[n] = struct{}{}
	}
}

// touchNode records that node name's record changed in this edit.
func (e *snapshotEditor) touchNode(name string) {
	if e.changedNodes != nil {
		e.changedNodes[name] = struct{}{}
	}
}

// touchAll records a change that concerns every service (the cluster
// network), which makes the edit a full change.
func (e *snapshotEditor) touchAll() {
	if e.changed != nil {
		e.changed[allServices] = struct{}{}
	}
}
