package node

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/runenet/runenet/api"
	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/raft"
	"github.com/runenet/runenet/policy"
	"github.com/runenet/runenet/proxy"
)

// The API defines the small interfaces it needs, in its own types, so that
// its clients (the CLI, a stock CoreDNS) link no data-path package. These
// adapters give it the node's subsystems.

// PolicyAPI is e as the API reads it (`rune policy check`).
func PolicyAPI(e *policy.Engine) api.Policy { return enginePolicy{e} }

type enginePolicy struct{ e *policy.Engine }

func (p enginePolicy) WaitFor(ctx context.Context, seq uint64) error { return p.e.WaitFor(ctx, seq) }
func (p enginePolicy) Tables() api.PolicyTables                      { return policyTables{p.e.Tables()} }

type policyTables struct{ t *policy.Tables }

func verdict(v policy.Verdict) api.Verdict {
	return api.Verdict{Allowed: v.Allowed, Policy: v.Policy, Rule: v.Rule, Reason: v.Reason}
}

func (t policyTables) Seq() uint64 { return t.t.Seq }

func (t policyTables) Egress(src, dst netip.Addr, port uint16, proto cluster.Protocol) api.Verdict {
	return verdict(t.t.Egress(src, dst, port, proto))
}

func (t policyTables) EgressFromService(src, dst cluster.NamespacedName, dstAddr netip.Addr, port uint16, proto cluster.Protocol) api.Verdict {
	return verdict(t.t.EgressFromService(src, dst, dstAddr, port, proto))
}

func (t policyTables) Ingress(src netip.Addr, dst cluster.NamespacedName, port uint16, proto cluster.Protocol) api.Verdict {
	return verdict(t.t.Ingress(src, dst, port, proto))
}

func (t policyTables) IngressFromService(src, dst cluster.NamespacedName, port uint16, proto cluster.Protocol) api.Verdict {
	return verdict(t.t.IngressFromService(src, dst, port, proto))
}

// forwarder is the proxy as `rune port-forward` uses it.
type forwarder struct{ p *proxy.Proxy }

func (f forwarder) PortForward(svc cluster.NamespacedName, port uint16, local netip.AddrPort, denied func(api.PortForwardDenial)) (api.Forward, error) {
	fwd, err := f.p.PortForward(svc, port, local, func(from netip.AddrPort, v policy.Verdict) {
		denied(api.PortForwardDenial{From: from, Policy: v.Policy, Reason: v.Reason})
	})
	if err != nil {
		return nil, err // not a typed nil
	}
	return fwd, nil
}

// clusterAPI is the node's membership as the API reads it: the Raft
// configuration on a cluster node, this node alone on the Badger backend.
func clusterAPI(name string, lg orderedlog.Log, view *cluster.View, since time.Time) api.Cluster {
	if rl, ok := lg.(*raft.Log); ok {
		return withRecords{raftCluster{rl, since}, view}
	}
	return withRecords{singleNode{name, lg, since}, view}
}

// withRecords adds what the node records say (subnet, heartbeat) to a
// membership list.
type withRecords struct {
	api.Cluster
	view *cluster.View
}

func (w withRecords) Nodes() (api.NodeList, error) {
	list, err := w.Cluster.Nodes()
	if err != nil {
		return list, err
	}
	s := w.view.Snapshot()
	for i := range list.Items {
		if rec, ok := s.Node(list.Items[i].Name); ok {
			if rec.Value.Subnet.IsValid() {
				list.Items[i].Subnet = rec.Value.Subnet.String()
			}
			list.Items[i].Heartbeat, list.Items[i].Down = rec.Value.Heartbeat, rec.Value.Down
		}
	}
	return list, nil
}

type singleNode struct {
	name  string
	lg    orderedlog.Log
	since time.Time
}

// errSingleNode refuses cluster changes on the Badger backend.
var errSingleNode = &cluster.Error{Kind: cluster.KindInvalid, Msg: "this node keeps its log on its own (single-node Badger): it has no cluster to join or leave; start runed with --cluster-addr --bootstrap to create one"}

func (s singleNode) JoinToken(context.Context, time.Duration) (api.JoinToken, error) {
	return api.JoinToken{}, errSingleNode
}

func (s singleNode) RemoveNode(context.Context, string) error { return errSingleNode }

func (s singleNode) CheckRemove(string) error { return errSingleNode }

func (s singleNode) Nodes() (api.NodeList, error) {
	applied, lag := s.lg.Tail(), uint64(0)
	return api.NodeList{Backend: api.BackendBadger, Leader: s.name, Items: []api.Node{{
		Name: s.name, Role: "voter", State: "leader", Self: true, Applied: &applied, Lag: &lag, Since: s.since,
	}}}, nil
}

type raftCluster struct {
	lg    *raft.Log
	since time.Time
}

func (c raftCluster) JoinToken(ctx context.Context, ttl time.Duration) (api.JoinToken, error) {
	tok, expires, err := c.lg.CreateJoinToken(ctx, ttl)
	if err != nil {
		return api.JoinToken{}, err
	}
	return api.JoinToken{Token: tok, Expires: expires}, nil
}

func (c raftCluster) RemoveNode(ctx context.Context, name string) error {
	return removeErr(name, c.lg.RemoveMember(ctx, name))
}

func (c raftCluster) CheckRemove(name string) error {
	return removeErr(name, c.lg.CheckRemove(name))
}

// removeErr words a refused removal for the API.
func removeErr(name string, err error) error {
	switch {
	case errors.Is(err, raft.ErrNotMember):
		return &cluster.Error{Kind: cluster.KindNotFound, Msg: fmt.Sprintf("node %q not found", name)}
	case err != nil && raft.IsRefused(err):
		return &cluster.Error{Kind: cluster.KindConflict, Err: err}
	}
	return err
}

func (c raftCluster) Nodes() (api.NodeList, error) {
	members, err := c.lg.Members()
	if err != nil {
		return api.NodeList{}, err
	}
	leader, _ := c.lg.Leader()
	out := api.NodeList{Backend: api.BackendRaft, Leader: leader, Items: make([]api.Node, 0, len(members))}
	for _, m := range members {
		n := api.Node{Name: m.ID, Address: m.Address, Role: raft.RoleName(m.Voter), Self: m.Self}
		if m.State != "" {
			n.State = raft.StateName(m.State)
		}
		if m.Self {
			applied, lag, contact := m.Applied, m.CommitLag, m.LastContact.Seconds()
			n.Applied, n.Lag, n.LastContactSeconds, n.Since = &applied, &lag, &contact, c.since
		}
		out.Items = append(out.Items, n)
	}
	return out, nil
}
