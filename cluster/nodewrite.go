package cluster

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/runenet/runenet/orderedlog"
)

// NodeSpec is what a node says about itself when it starts.
type NodeSpec struct {
	Name    string
	Address netip.Addr
	Roles   []string
	// Subnet is an explicit subnet (--node-subnet); zero keeps the one the
	// node holds, or claims the lowest free /24 of the container CIDR.
	Subnet         netip.Prefix
	HeartbeatEvery time.Duration
}

// RegisterNode writes a starting node's record: its address and roles, a
// heartbeat, and its subnet, claimed by compare-and-set so two nodes
// registering at once never get the same one. A node marked down by the
// leader has its instances made ready again.
func (c *Controller) RegisterNode(ctx context.Context, spec NodeSpec) (Node, uint64, error) {
	if p := NodeNameProblem(spec.Name); p != "" {
		return Node{}, 0, errorf(KindInvalid, "node name %q %s", spec.Name, p)
	}
	var rec Node
	var published []NamespacedName
	seq, err := c.update(ctx, &c.clusterMu, func(s *Snapshot) ([]orderedlog.Op, error) {
		cn := s.ContainerNetwork
		if cn == nil {
			return nil, errorf(KindConflict, "the container network is not bootstrapped yet")
		}
		cur, exists := s.Node(spec.Name)
		subnet, err := pickSubnet(s, spec, cur, exists)
		if err != nil {
			return nil, err
		}
		rec = Node{Name: spec.Name, Address: spec.Address, Subnet: subnet, Roles: slices.Clone(spec.Roles), HeartbeatEvery: spec.HeartbeatEvery}
		var ops []orderedlog.Op
		held := map[netip.Addr]bool{}
		for _, b := range subnetBlocks(subnet) {
			held[b] = true
			if cl, _ := s.subnets.Get(b); cl.node != spec.Name {
				ops = append(ops, orderedlog.PutIf(subnetKey(b), []byte(spec.Name), 0))
			}
		}
		if exists && cur.Value.Subnet.IsValid() {
			for _, b := range subnetBlocks(cur.Value.Subnet) {
				if cl, _ := s.subnets.Get(b); !held[b] && cl.node == spec.Name {
					ops = append(ops, orderedlog.DeleteIf(subnetKey(b), cl.rev))
				}
			}
		}
		beat, pub := c.beatOps(s, &rec, cur)
		published = pub
		return append(ops, beat...), nil
	}, func() { countPublished(published) })
	if err != nil {
		return Node{}, 0, err
	}
	return rec, seq, nil
}

// pickSubnet is the subnet a registering node gets: the explicit one if no
// other node holds any of its blocks, else the one it holds, else the
// lowest free /24.
func pickSubnet(s *Snapshot, spec NodeSpec, cur Entry[Node], exists bool) (netip.Prefix, error) {
	cidr := s.ContainerNetwork.CIDR
	if want := spec.Subnet; want.IsValid() {
		if want.Masked() != want || !want.Addr().Is4() || want.Bits() < cidr.Bits() || !cidr.Contains(want.Addr()) {
			return netip.Prefix{}, errorf(KindInvalid, "--node-subnet %s: must be an IPv4 network (no host bits) inside the container CIDR %s", want, cidr)
		}
		for _, b := range subnetBlocks(want) {
			if cl, _ := s.subnets.Get(b); cl.node != "" && cl.node != spec.Name {
				return netip.Prefix{}, errorf(KindConflict, "--node-subnet %s: node %s holds %s/%d; pick another subnet, or leave --node-subnet out to get a free one", want, cl.node, b, NodeSubnetBits)
			}
		}
		return want, nil
	}
	if exists {
		if old := cur.Value.Subnet; old.IsValid() && cidr.Contains(old.Addr()) && old.Bits() >= cidr.Bits() && holdsAll(s, spec.Name, old) {
			return old, nil
		}
	}
	for i := range 1 << (NodeSubnetBits - cidr.Bits()) {
		b := blockAt(cidr.Addr(), i)
		if cl, _ := s.subnets.Get(b); cl.node == "" {
			return netip.PrefixFrom(b, NodeSubnetBits), nil
		}
	}
	return netip.Prefix{}, errorf(KindExhausted, "no free /%d left in the container CIDR %s for node %s: every one is held by a node; remove departed nodes (rune node remove NAME) or start a new cluster with a larger --container-cidr", NodeSubnetBits, cidr, spec.Name)
}

func holdsAll(s *Snapshot, name string, p netip.Prefix) bool {
	for _, b := range subnetBlocks(p) {
		if cl, _ := s.subnets.Get(b); cl.node != name {
			return false
		}
	}
	return true
}

// Heartbeat rewrites a node's record with the time now, which is how the
// leader knows it is alive; a node the leader marked down gets its
// instances back.
func (c *Controller) Heartbeat(ctx context.Context, name string) (uint64, error) {
	lock := sync.Locker(&c.heartbeatMu)
	if cur, ok := c.view.Snapshot().Node(name); ok && !cur.Value.Down.IsZero() {
		lock = &c.clusterMu // instances and endpoints change too
	}
	var published []NamespacedName
	return c.update(ctx, lock, func(s *Snapshot) ([]orderedlog.Op, error) {
		cur, ok := s.Node(name)
		if !ok {
			return nil, errorf(KindNotFound, "node %q has no record: it registers when runed starts", name)
		}
		rec := *cur.Value
		ops, pub := c.beatOps(s, &rec, cur)
		published = pub
		return ops, nil
	}, func() { countPublished(published) })
}

// beatOps writes rec with a fresh heartbeat, conditional on cur (the record
// it replaces, or none). If the leader had marked the node down, the
// instances it made unready that nobody has touched since are made ready
// again in the same batch.
func (c *Controller) beatOps(s *Snapshot, rec *Node, cur Entry[Node]) ([]orderedlog.Op, []NamespacedName) {
	rec.Heartbeat = c.opts.Now().UTC()
	var ops []orderedlog.Op
	var published []NamespacedName
	if cur.Value != nil && !cur.Value.Down.IsZero() {
		var back []Instance
		for _, id := range cur.Value.Unreadied {
			// The leader wrote the instance in the batch that marked the
			// node, so an untouched one still has the record's revision.
			if in, ok := s.Instance(id); ok && in.Rev == cur.Rev && in.Value.Node == rec.Name && !in.Value.Ready {
				up := *in.Value
				up.Ready = true
				back = append(back, up)
			}
		}
		ops, published = c.instanceOps(s, back)
	}
	rec.Down, rec.Unreadied = time.Time{}, nil
	return append(ops, orderedlog.PutIf(nodeKey(rec.Name), rec.encode(), cur.Rev)), published
}

// MarkNodeDown makes every ready instance of node name unready, recording
// them in its record so the node can take them back, and reports whether it
// marked the node and how many instances. rev is the record's revision the
// caller (the leader) found stale: if it has moved since, the node is alive
// and nothing is written. It returns once the local View has the write.
func (c *Controller) MarkNodeDown(ctx context.Context, name string, rev uint64) (marked bool, instances int, err error) {
	var published []NamespacedName
	_, err = c.update(ctx, &c.clusterMu, func(s *Snapshot) ([]orderedlog.Op, error) {
		marked, instances, published = false, 0, nil
		cur, ok := s.Node(name)
		if !ok || cur.Rev != rev || !cur.Value.Down.IsZero() {
			return nil, nil
		}
		var down []Instance
		s.instances.Range(func(_ string, e Entry[Instance]) bool {
			if e.Value.Node == name && e.Value.Ready {
				in := *e.Value
				in.Ready = false
				down = append(down, in)
			}
			return true
		})
		slices.SortFunc(down, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
		rec := *cur.Value
		rec.Down = c.opts.Now().UTC()
		rec.Unreadied = make([]string, len(down))
		for i, in := range down {
			rec.Unreadied[i] = in.ID
		}
		marked, instances = true, len(down)
		ops, pub := c.instanceOps(s, down)
		published = pub
		return append(ops, orderedlog.PutIf(nodeKey(name), rec.encode(), cur.Rev)), nil
	}, func() { countPublished(published) })
	return marked, instances, err
}

// instanceOps rewrites instances (same ids, new readiness) and their
// services' endpoints, one endpoints write per service, and lists the
// services whose endpoints it rewrites.
func (c *Controller) instanceOps(s *Snapshot, ins []Instance) ([]orderedlog.Op, []NamespacedName) {
	var ops []orderedlog.Op
	var published []NamespacedName
	bySvc := map[NamespacedName][]Instance{}
	now := c.opts.Now().UTC()
	for _, in := range ins {
		cur, _ := s.Instance(in.ID)
		in.Updated = now
		ops = append(ops, orderedlog.PutIf(instanceKey(in.Node, in.ID), in.encode(), cur.Rev))
		bySvc[in.service()] = append(bySvc[in.service()], in)
	}
	for _, n := range slices.SortedFunc(maps.Keys(bySvc), compareName) {
		ep, _ := s.Endpoints(n)
		edit := func(a []EndpointAddress) []EndpointAddress {
			for _, in := range bySvc[n] {
				a = readySet(in)(a)
			}
			return a
		}
		if op, ok := endpointsOp(n, ep, edit, nil); ok {
			ops = append(ops, op)
			published = append(published, n)
		}
	}
	return ops, published
}

// RemoveNode deletes a node's record and releases its subnet (after `rune
// node remove`); its instances stay until their source removes them.
func (c *Controller) RemoveNode(ctx context.Context, name string) (uint64, error) {
	return c.update(ctx, &c.clusterMu, func(s *Snapshot) ([]orderedlog.Op, error) {
		cur, ok := s.Node(name)
		if !ok {
			return nil, errorf(KindNotFound, "node %q has no record", name)
		}
		ops := []orderedlog.Op{orderedlog.DeleteIf(nodeKey(name), cur.Rev)}
		if cur.Value.Subnet.IsValid() {
			for _, b := range subnetBlocks(cur.Value.Subnet) {
				if cl, _ := s.subnets.Get(b); cl.node == name {
					ops = append(ops, orderedlog.DeleteIf(subnetKey(b), cl.rev))
				}
			}
		}
		return ops, nil
	}, func() {})
}
