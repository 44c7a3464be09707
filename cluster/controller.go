package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/runenet/runenet/orderedlog"
)

// ControllerOptions configure the writer side of the cluster state.
type ControllerOptions struct {
	// HoldPeriod keeps a deleted service's VIP reserved for it, so a delete
	// and re-cast (a redeploy) does not renumber it. Default 1h.
	HoldPeriod time.Duration
	// Now is the clock (tests move it to expire holds).
	Now func() time.Time
}

// Controller turns API requests into log proposals. It reads through the
// View and makes every write conditional on the revisions it read, so two
// controllers over one log (two nodes once Raft lands) never hand out the
// same VIP or lose an endpoint update: a lost race is retried on fresh state.
type Controller struct {
	log  orderedlog.Log
	view *View
	opts ControllerOptions
	// Locks keep this process's writers from conflicting with each other;
	// correctness does not depend on them (the preconditions do). Casts and
	// deletes, which allocate across the whole CIDR, hold clusterMu
	// exclusively; instance writes share it and lock only their service, so
	// writes to different services run together and share the log's group
	// commits, and a big cast is never starved by instance churn.
	clusterMu sync.RWMutex
	// serviceMu holds a service's lock only while someone uses it, so names
	// that API calls merely mention do not pile up.
	locksMu   sync.Mutex
	serviceMu map[NamespacedName]*serviceLock
	// heartbeatMu serializes this process's heartbeats, which touch only
	// node records.
	heartbeatMu sync.Mutex
}

func NewController(log orderedlog.Log, view *View, opts ControllerOptions) *Controller {
	if opts.HoldPeriod <= 0 {
		opts.HoldPeriod = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Controller{log: log, view: view, opts: opts, serviceMu: map[NamespacedName]*serviceLock{}}
}

var (
	rfc1918 = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("100.64.0.0/10"),
	}
)

// ParseClusterCIDR validates a --cluster-cidr value: IPv4, private
// (RFC 1918) or carrier-grade NAT space, and large enough to hold VIPs.
func ParseClusterCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("cluster CIDR %q: not a CIDR (want e.g. 10.96.0.0/16)", s)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("cluster CIDR %q: only IPv4 is supported", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("cluster CIDR %q has host bits set; did you mean %s?", s, p.Masked())
	}
	if p.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("cluster CIDR %q is too small: use /30 or larger", s)
	}
	for _, r := range rfc1918 {
		if r.Bits() <= p.Bits() && r.Contains(p.Addr()) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("cluster CIDR %q is not private address space: use a range inside 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10", s)
}

// Bootstrap records the cluster network on first start and refuses a
// different one later: changing it would renumber every VIP under running
// clients.
func Bootstrap(ctx context.Context, log orderedlog.Log, cidr netip.Prefix) error {
	kv, ok, _, err := log.Get(ctx, keyClusterNetwork)
	if err != nil {
		return err
	}
	if ok {
		var cn ClusterNetwork
		if err := cn.decode(kv.Value); err != nil {
			return fmt.Errorf("stored cluster network is unreadable: %w", err)
		}
		if cn.CIDR != cidr {
			return fmt.Errorf("this node's store was bootstrapped with cluster CIDR %s, but runed was started with --cluster-cidr %s; "+
				"start runed with --cluster-cidr %s (services keep their VIPs), or move the data directory aside to start a new cluster (every VIP changes)",
				cn.CIDR, cidr, cn.CIDR)
		}
		return nil
	}
	_, err = log.Propose(ctx, []orderedlog.Op{orderedlog.PutIf(keyClusterNetwork, (&ClusterNetwork{CIDR: cidr, Created: time.Now().UTC()}).encode(), 0)})
	if errors.Is(err, orderedlog.ErrConflict) {
		// Another node bootstrapped first; check it agrees.
		return Bootstrap(ctx, log, cidr)
	}
	return err
}

// CastResult says what a cast did to one service.
type CastResult struct {
	Namespace string     `json:"namespace"`
	Name      string     `json:"name"`
	VIP       netip.Addr `json:"vip"`
	Action    string     `json:"action"` // created, configured, unchanged
}

// Cast validates every file, then writes all services in one batch: either
// every service lands or none does.
func (c *Controller) Cast(ctx context.Context, files []SourceFile) ([]CastResult, uint64, error) {
	svcs, err := ParseFiles(files)
	if err != nil {
		return nil, 0, &Error{Kind: KindInvalid, Msg: "invalid service spec", Err: err}
	}
	var results []CastResult
	var allocated int
	var published []NamespacedName
	seq, err := c.update(ctx, &c.clusterMu, func(s *Snapshot) ([]orderedlog.Op, error) {
		results, published, allocated = nil, nil, 0
		if s.Network == nil {
			return nil, errorf(KindConflict, "the cluster network is not bootstrapped yet")
		}
		if err := hostTaken(s, svcs); err != nil {
			return nil, err
		}
		now := c.opts.Now().UTC()
		taken := map[netip.Addr]bool{}
		var ops []orderedlog.Op
		for i := range svcs {
			svc := &svcs[i]
			n := svc.key()
			res := CastResult{Namespace: n.Namespace, Name: n.Name}
			rec := ServiceRecord{Spec: *svc, Created: now, Updated: now}
			cur, exists := s.Service(n)
			switch {
			case exists:
				rec.VIP, rec.Created = cur.Value.VIP, cur.Value.Created
				res.Action = "configured"
				if specEqual(&cur.Value.Spec, &rec.Spec) {
					res.Action = "unchanged"
					rec.Updated = cur.Value.Updated
				}
			default:
				res.Action = "created"
				aop, ip, fresh, err := c.allocate(s, n, taken, now)
				if err != nil {
					return nil, err
				}
				ops = append(ops, aop)
				rec.VIP = ip
				if fresh {
					allocated++
				}
			}
			taken[rec.VIP] = true
			res.VIP = rec.VIP
			results = append(results, res)
			if res.Action == "unchanged" {
				continue
			}
			ops = append(ops, orderedlog.PutIf(serviceKey(n), rec.encode(), cur.Rev))
			ops = append(ops, c.policyOps(s, n, svc.NetworkPolicy)...)
			cur2, _ := s.Endpoints(n)
			if op, ok := endpointsOp(n, cur2, nil, endpointPorts(svc)); ok {
				ops = append(ops, op)
				published = append(published, n)
			}
		}
		return ops, nil
	}, func() {
		vipAllocations.Add(float64(allocated))
		countPublished(published)
	})
	if err != nil {
		return nil, 0, err
	}
	return results, seq, nil
}

// hostTaken refuses a cast that would give an expose.host to a second
// service: the ingress routes a host to one service only, and which one
// would depend on their names. ParseFiles has refused two in the cast
// itself. A service already holding the host keeps it, so either of two that
// a store written before this check holds can still be cast.
func hostTaken(s *Snapshot, svcs []Service) error {
	casting := make(map[NamespacedName]bool, len(svcs))
	for i := range svcs {
		casting[svcs[i].key()] = true
	}
	for i := range svcs {
		x, n := svcs[i].Expose, svcs[i].key()
		if x == nil {
			continue
		}
		claims := s.HostClaims(x.Host)
		if slices.Contains(claims, n) {
			continue
		}
		for _, o := range claims {
			if !casting[o] { // one being cast is moving to another host
				return errorf(KindConflict, "service %s: expose.host %s is already exposed by service %s; a host can route to one service only (remove it from %s first)", n, x.Host, o, o)
			}
		}
	}
	return nil
}

func (c *Controller) policyOps(s *Snapshot, n NamespacedName, p *NetworkPolicy) []orderedlog.Op {
	cur, ok := s.Policy(n)
	switch {
	case p == nil && ok:
		return []orderedlog.Op{orderedlog.DeleteIf(policyKey(n), cur.Rev)}
	case p == nil:
		return nil
	}
	b := p.encode()
	if ok && string(cur.Value.encode()) == string(b) {
		return nil
	}
	return []orderedlog.Op{orderedlog.PutIf(policyKey(n), b, cur.Rev)}
}

// allocate picks the VIP for a new service: the one still held for it from a
// recent delete, else a free address. The search starts at a hash of the
// name so allocations spread and rarely probe more than once.
func (c *Controller) allocate(s *Snapshot, n NamespacedName, taken map[netip.Addr]bool, now time.Time) (orderedlog.Op, netip.Addr, bool, error) {
	active := func(ip netip.Addr) []byte {
		return (&VIPAllocation{IP: ip, Namespace: n.Namespace, Service: n.Name}).encode()
	}
	if held, ok := s.AllocationOf(n); ok && !taken[held.Value.IP] {
		return orderedlog.PutIf(vipKey(held.Value.IP), active(held.Value.IP), held.Rev), held.Value.IP, false, nil
	}
	cidr := s.Network.CIDR
	size := uint64(1) << (32 - cidr.Bits())
	base := binary.BigEndian.Uint32(cidr.Addr().AsSlice())
	h := fnv.New64a()
	h.Write([]byte(n.String()))
	start := h.Sum64() % size
	for i := uint64(0); i < size; i++ {
		off := (start + i) % size
		if off == 0 || off == size-1 { // network and broadcast addresses
			continue
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], base+uint32(off))
		ip := netip.AddrFrom4(b)
		if taken[ip] {
			continue
		}
		cur, ok := s.VIPAllocation(ip)
		if ok && (cur.Value.ReleasedAt.IsZero() || now.Sub(cur.Value.ReleasedAt) < c.opts.HoldPeriod) {
			continue
		}
		return orderedlog.PutIf(vipKey(ip), active(ip), cur.Rev), ip, true, nil
	}
	return orderedlog.Op{}, netip.Addr{}, false, errorf(KindExhausted,
		"no free VIP in cluster CIDR %s for service %s: every address is allocated or held for a deleted service (holds last %s); delete unused services or bootstrap a larger cluster CIDR",
		cidr, n, c.opts.HoldPeriod)
}

// DeleteService removes a service, its endpoints, policy and instances, and
// holds its VIP for the hold period.
func (c *Controller) DeleteService(ctx context.Context, n NamespacedName) (uint64, error) {
	return c.update(ctx, &c.clusterMu, func(s *Snapshot) ([]orderedlog.Op, error) {
		cur, ok := s.Service(n)
		if !ok {
			return nil, NotFound("service", n)
		}
		ops := []orderedlog.Op{orderedlog.DeleteIf(serviceKey(n), cur.Rev)}
		if ep, ok := s.Endpoints(n); ok {
			ops = append(ops, orderedlog.DeleteIf(endpointsKey(n), ep.Rev))
		}
		ops = append(ops, c.policyOps(s, n, nil)...)
		if a, ok := s.VIPAllocation(cur.Value.VIP); ok {
			held := *a.Value
			held.ReleasedAt = c.opts.Now().UTC()
			ops = append(ops, orderedlog.PutIf(vipKey(held.IP), held.encode(), a.Rev))
		}
		for _, in := range s.Instances(n.Namespace, n.Name) {
			ops = append(ops, deleteInstanceOps(in)...)
		}
		return ops, nil
	}, func() {
		// Under the cluster lock, so no instance write of the service can
		// count into the series after it is gone.
		endpointsPublished.DeleteLabelValues(n.Name, n.Namespace)
	})
}

// RegisterInstance records a started instance (or replaces its record).
// Every write is conditional: the record on the revision it was read at,
// and a new id or IP by a claim that must not exist yet, so racing
// registrations of one id or one IP leave exactly one owner.
func (c *Controller) RegisterInstance(ctx context.Context, in Instance) (uint64, error) {
	if err := validateInstance(&in); err != nil {
		return 0, err
	}
	n := NamespacedName{in.Namespace, in.Service}
	var published bool
	seq, err := c.update(ctx, c.serviceLock(n), func(s *Snapshot) ([]orderedlog.Op, error) {
		published = false
		if _, ok := s.Service(n); !ok {
			return nil, errorf(KindNotFound, "service %q not found: cast it before registering its instances", n.String())
		}
		if s.Network != nil && s.Network.CIDR.Contains(in.IP) {
			return nil, errorf(KindInvalid, "instance %s: ip %s is inside the cluster CIDR %s, which is reserved for VIPs", in.ID, in.IP, s.Network.CIDR)
		}
		if other, ok := s.InstanceByIP(in.IP); ok && other.Value.ID != in.ID {
			return nil, errorf(KindConflict, "instance %s: ip %s is already registered to instance %s (%s/%s); deregister it first", in.ID, in.IP, other.Value.ID, other.Value.Namespace, other.Value.Service)
		}
		var ops []orderedlog.Op
		var rev uint64 // of the record this write replaces at in's key
		old, exists := s.Instance(in.ID)
		switch {
		case !exists:
			ops = append(ops, orderedlog.PutIf(instanceIDKey(in.ID), []byte(in.Node), 0), orderedlog.PutIf(instanceIPKey(in.IP), []byte(in.ID), 0))
		default:
			// The claims belong to the old record, which is changed only
			// under a precondition, so rewriting them needs none of its own.
			if old.Value.Node != in.Node {
				ops = append(ops, orderedlog.DeleteIf(instanceKey(old.Value.Node, old.Value.ID), old.Rev), orderedlog.Put(instanceIDKey(in.ID), []byte(in.Node)))
			} else {
				rev = old.Rev
			}
			if old.Value.IP != in.IP {
				ops = append(ops, orderedlog.Delete(instanceIPKey(old.Value.IP)), orderedlog.PutIf(instanceIPKey(in.IP), []byte(in.ID), 0))
			}
			if on := (NamespacedName{old.Value.Namespace, old.Value.Service}); on != n {
				// Re-registered under another service: take it out of the old one's endpoints.
				ep, _ := s.Endpoints(on)
				if op, ok := endpointsOp(on, ep, func(a []EndpointAddress) []EndpointAddress { return withoutInstance(a, in.ID) }, nil); ok {
					ops = append(ops, op)
				}
			}
		}
		in.Updated = c.opts.Now().UTC()
		ops = append(ops, orderedlog.PutIf(instanceKey(in.Node, in.ID), in.encode(), rev))
		ep, _ := s.Endpoints(n)
		if op, ok := endpointsOp(n, ep, readySet(in), nil); ok {
			ops = append(ops, op)
			published = true
		}
		return ops, nil
	}, func() {
		if published {
			countPublished([]NamespacedName{n})
		}
	})
	return seq, err
}

// deleteInstanceOps removes an instance's record and its claims.
func deleteInstanceOps(e Entry[Instance]) []orderedlog.Op {
	return []orderedlog.Op{
		orderedlog.DeleteIf(instanceKey(e.Value.Node, e.Value.ID), e.Rev),
		orderedlog.Delete(instanceIDKey(e.Value.ID)),
		orderedlog.Delete(instanceIPKey(e.Value.IP)),
	}
}

// SetInstanceReady flips an instance's health; its service's endpoints follow.
func (c *Controller) SetInstanceReady(ctx context.Context, id string, ready bool) (uint64, error) {
	return c.changeInstance(ctx, id, func(in *Instance) bool {
		if in.Ready == ready {
			return false
		}
		in.Ready = ready
		return true
	})
}

// DeregisterInstance removes a stopped instance.
func (c *Controller) DeregisterInstance(ctx context.Context, id string) (uint64, error) {
	return c.changeInstance(ctx, id, nil)
}

// changeInstance applies change to instance id (nil change = delete it) and
// rewrites its service's endpoints if the ready set moved.
func (c *Controller) changeInstance(ctx context.Context, id string, change func(*Instance) bool) (uint64, error) {
	var published *NamespacedName
	lock := sync.Locker(&c.clusterMu) // an unknown instance: the write will say so, alone
	if cur, ok := c.view.Snapshot().Instance(id); ok {
		lock = c.serviceLock(NamespacedName{cur.Value.Namespace, cur.Value.Service})
	}
	return c.update(ctx, lock, func(s *Snapshot) ([]orderedlog.Op, error) {
		published = nil
		cur, ok := s.Instance(id)
		if !ok {
			return nil, errorf(KindNotFound, "instance %q not found", id)
		}
		in := *cur.Value
		key := instanceKey(in.Node, in.ID)
		var ops []orderedlog.Op
		edit := func(a []EndpointAddress) []EndpointAddress { return withoutInstance(a, id) }
		if change == nil {
			ops = append(ops, deleteInstanceOps(cur)...)
		} else {
			if !change(&in) {
				return nil, nil
			}
			in.Updated = c.opts.Now().UTC()
			ops = append(ops, orderedlog.PutIf(key, in.encode(), cur.Rev))
			edit = readySet(in)
		}
		n := NamespacedName{in.Namespace, in.Service}
		ep, _ := s.Endpoints(n)
		if op, ok := endpointsOp(n, ep, edit, nil); ok {
			ops = append(ops, op)
			published = &n
		}
		return ops, nil
	}, func() {
		if published != nil {
			countPublished([]NamespacedName{*published})
		}
	})
}

// readySet returns an edit that puts in into an address list if it is ready
// and takes it out otherwise.
func readySet(in Instance) func([]EndpointAddress) []EndpointAddress {
	return func(a []EndpointAddress) []EndpointAddress {
		a = withoutInstance(a, in.ID)
		if in.Ready {
			a = append(a, EndpointAddress{Instance: in.ID, IP: in.IP, Node: in.Node})
			slices.SortFunc(a, func(x, y EndpointAddress) int { return strings.Compare(x.Instance, y.Instance) })
		}
		return a
	}
}

func withoutInstance(a []EndpointAddress, id string) []EndpointAddress {
	return slices.DeleteFunc(slices.Clone(a), func(e EndpointAddress) bool { return e.Instance == id })
}

// endpointsOp computes a service's next endpoints row from the current one,
// an edit of its addresses (nil: keep) and its ports (nil: keep), and returns
// the conditional write when anything changed.
func endpointsOp(n NamespacedName, cur Entry[Endpoints], edit func([]EndpointAddress) []EndpointAddress, ports []EndpointPort) (orderedlog.Op, bool) {
	next := Endpoints{Service: n.Name, Namespace: n.Namespace, Addresses: []EndpointAddress{}, Ports: []EndpointPort{}}
	if cur.Value != nil {
		next.Addresses, next.Ports = cur.Value.Addresses, cur.Value.Ports
	}
	if edit != nil {
		next.Addresses = edit(next.Addresses)
	}
	if ports != nil {
		next.Ports = ports
	}
	b := next.encode()
	if cur.Value != nil && string(cur.Value.encode()) == string(b) {
		return orderedlog.Op{}, false
	}
	return orderedlog.PutIf(endpointsKey(n), b, cur.Rev), true
}

func endpointPorts(svc *Service) []EndpointPort {
	out := make([]EndpointPort, 0, len(svc.Ports))
	for _, p := range svc.Ports {
		out = append(out, EndpointPort{Name: p.Name, Port: p.Port, TargetPort: p.TargetPort, Protocol: p.Protocol})
	}
	return out
}

func countPublished(ns []NamespacedName) {
	for _, n := range ns {
		endpointsPublished.WithLabelValues(n.Name, n.Namespace).Inc()
	}
}

// serviceLock is the lock of writers to one service's instances; they hold
// the cluster lock shared.
type serviceLock struct {
	mu   sync.Mutex
	refs int // holders and waiters, under Controller.locksMu
}

func (c *Controller) serviceLock(n NamespacedName) sync.Locker { return instanceLock{c, n} }

type instanceLock struct {
	c *Controller
	n NamespacedName
}

func (l instanceLock) Lock() {
	l.c.clusterMu.RLock()
	l.c.locksMu.Lock()
	sl := l.c.serviceMu[l.n]
	if sl == nil {
		sl = &serviceLock{}
		l.c.serviceMu[l.n] = sl
	}
	sl.refs++
	l.c.locksMu.Unlock()
	sl.mu.Lock()
}

func (l instanceLock) Unlock() {
	l.c.locksMu.Lock()
	sl := l.c.serviceMu[l.n]
	if sl.refs--; sl.refs == 0 {
		delete(l.c.serviceMu, l.n)
	}
	l.c.locksMu.Unlock()
	sl.mu.Unlock()
	l.c.clusterMu.RUnlock()
}

// update runs a read-compute-propose cycle on a View caught up with the log,
// under lock, retrying when a precondition shows the state moved underneath
// it, and runs committed (still under lock) once a write is durable; then it
// waits, without the lock, for the local View to apply the write.
func (c *Controller) update(ctx context.Context, lock sync.Locker, compute func(*Snapshot) ([]orderedlog.Op, error), committed func()) (uint64, error) {
	seq, wrote, err := c.propose(ctx, lock, compute, committed)
	if wrote {
		c.awaitApplied(ctx, seq)
	}
	return seq, err
}

func (c *Controller) propose(ctx context.Context, lock sync.Locker, compute func(*Snapshot) ([]orderedlog.Op, error), committed func()) (uint64, bool, error) {
	lock.Lock()
	defer lock.Unlock()
	const attempts = 8
	_, replicated := c.log.(syncer)
	synced := false // reading at the cluster's commit point, not this node's tail
	for i := 0; ; i++ {
		point, err := c.readPoint(ctx, synced)
		if err != nil {
			return 0, false, err
		}
		if err := c.view.WaitFor(ctx, point); err != nil {
			return 0, false, err
		}
		ops, err := compute(c.view.Snapshot())
		if (err != nil || len(ops) == 0) && replicated && !synced {
			// A refusal or a "nothing to do" is not checked by any
			// precondition: decided on a follower's View that lags writes
			// acknowledged elsewhere, it would refuse wrongly or
			// acknowledge a write it never makes. Decide again on what
			// the cluster has committed.
			synced = true
			continue
		}
		if err != nil {
			return 0, false, err
		}
		if len(ops) == 0 {
			return c.view.Snapshot().Seq, false, nil
		}
		seq, err := c.log.Propose(ctx, ops)
		if err == nil {
			committed()
			return seq, true, nil
		}
		if errors.Is(err, orderedlog.ErrNoSpace) {
			return 0, false, &Error{Kind: KindNoSpace, Err: err}
		}
		if !errors.Is(err, orderedlog.ErrConflict) {
			return 0, false, err
		}
		if i >= attempts-1 {
			return 0, false, &Error{Kind: KindConflict, Msg: "the cluster state kept changing during this write; retry", Err: err}
		}
		// The state moved; this node may not have applied the move yet.
		synced = replicated
	}
}

// syncer is a replicated log's linearizable read point: orderedlog/raft's
// Sync, which returns once this node has applied everything the cluster
// committed before the call.
type syncer interface {
	Sync(ctx context.Context) (uint64, error)
}

// readPoint is the seq the View must reach before a write is computed:
// this node's tail, or with synced the cluster's commit point.
func (c *Controller) readPoint(ctx context.Context, synced bool) (uint64, error) {
	s, ok := c.log.(syncer)
	if !synced || !ok {
		return c.log.Tail(), nil
	}
	seq, err := s.Sync(ctx)
	if errors.Is(err, orderedlog.ErrOutcomeUnknown) {
		// Nothing was proposed yet: not reaching the leader is all it means.
		return 0, fmt.Errorf("reading the cluster's state before writing: %w (%v)", orderedlog.ErrUnavailable, err)
	}
	return seq, err
}

// awaitApplied holds a write's return until the local View has it, so a
// caller that reads right after (`rune cast` then `dig`) sees its own write.
// Timing out is not an error: the write is durable either way.
func (c *Controller) awaitApplied(ctx context.Context, seq uint64) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_ = c.view.WaitFor(ctx, seq)
}

func validateInstance(in *Instance) error {
	if in.Namespace == "" {
		in.Namespace = "default"
	}
	var problems []string
	if !validInstanceID(in.ID) {
		problems = append(problems, fmt.Sprintf("id %q must be 1-253 characters of a-z, 0-9, '-', '.', '_', starting with a letter or digit", in.ID))
	}
	for field, v := range map[string]string{"service": in.Service, "namespace": in.Namespace, "node": in.Node} {
		if msg := dns1123LabelProblem(v); msg != "" {
			problems = append(problems, fmt.Sprintf("%s %q %s", field, v, msg))
		}
	}
	if !in.IP.IsValid() || !in.IP.Is4() {
		problems = append(problems, "ip must be an IPv4 address")
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return errorf(KindInvalid, "instance: %s", strings.Join(problems, "; "))
	}
	return nil
}

func validInstanceID(id string) bool {
	if id == "" || len(id) > 253 {
		return false
	}
	for i, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case i > 0 && (r == '-' || r == '.' || r == '_'):
		default:
			return false
		}
	}
	return true
}
