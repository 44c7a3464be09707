package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/runenet/runenet/cluster"
)

// Policy is the node's network policy engine, as the API reads it: the
// compiled tables, and a way to wait until they reflect a seq.
type Policy interface {
	Tables() PolicyTables
	WaitFor(ctx context.Context, seq uint64) error
}

// PolicyTables are the rule tables of one snapshot, asked as the proxy asks
// them for a new connection.
type PolicyTables interface {
	// Seq is the snapshot the tables were compiled from.
	Seq() uint64
	Egress(src, dst netip.Addr, port uint16, proto cluster.Protocol) Verdict
	EgressFromService(src, dst cluster.NamespacedName, dstAddr netip.Addr, port uint16, proto cluster.Protocol) Verdict
	Ingress(src netip.Addr, dst cluster.NamespacedName, port uint16, proto cluster.Protocol) Verdict
	IngressFromService(src, dst cluster.NamespacedName, port uint16, proto cluster.Protocol) Verdict
}

// Verdict is one direction's decision.
type Verdict struct {
	Allowed bool
	Policy  string // "namespace/name" of the deciding policy, "" when none applied
	Rule    int    // the deciding rule's index; -1 for a default
	Reason  string // ReasonNoPolicy, ReasonRuleMatch or ReasonDefaultDeny
}

// Reasons, as PolicyCheckResponse.Reason reports them.
const (
	ReasonNoPolicy    = "no-policy"
	ReasonRuleMatch   = "rule-match"
	ReasonDefaultDeny = "default-deny"
)

// PolicyList answers GET /v1/policies: every service with a networkPolicy
// block, from the cluster state (whether or not this node enforces it).
type PolicyList struct {
	Seq   uint64       `json:"seq"`
	Items []PolicyItem `json:"items"`
}

type PolicyItem struct {
	Namespace string                `json:"namespace"`
	Service   string                `json:"service"`
	Policy    cluster.NetworkPolicy `json:"policy"`
}

// PolicyCheckRequest asks how this node would decide a new connection.
type PolicyCheckRequest struct {
	// From is a service ("web.default", or "web" in namespace default) or
	// an IP address. A service stands for one of its instances, on any
	// node; an IP has a service identity if it is an instance of any node,
	// and then its service's egress policy applies (its own node enforces it).
	From string `json:"from"`
	// To is the destination service ("api.default" or "api").
	To string `json:"to"`
	// Port names a port of To by name or number; empty means its only port.
	Port PortSpec `json:"port,omitempty"`
	// Protocol (tcp, udp) picks between ports that share a number; empty
	// means the named port's own, or tcp.
	Protocol cluster.Protocol `json:"protocol,omitempty"`
}

// PortSpec is a port name or number; JSON accepts "http", "8080" or 8080.
type PortSpec string

func (p *PortSpec) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*p = PortSpec(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("port: want a name or a number, got %s", b)
	}
	*p = PortSpec(s)
	return nil
}

// PolicyCheckResponse is the verdict and what decided it: the first
// direction that denies (the source's egress, then the destination's
// ingress), else the policy that allowed it.
type PolicyCheckResponse struct {
	Seq      uint64           `json:"seq"`
	Allowed  bool             `json:"allowed"`
	Port     int              `json:"port"`
	Protocol cluster.Protocol `json:"protocol"`
	// Direction is "ingress" or "egress": whose policy decided ("" if none).
	Direction string `json:"direction,omitempty"`
	// Policy is "namespace/name" of the deciding policy ("" if none).
	Policy string `json:"policy,omitempty"`
	// Rule is the deciding rule's index in Direction's list; -1 for a default.
	Rule int `json:"rule"`
	// Reason is no-policy, rule-match or default-deny.
	Reason string `json:"reason"`
	// Explanation says it in a sentence, e.g. "rule 0 of default/api
	// ingress (from service web.default)".
	Explanation string `json:"explanation"`
}

// policyRoutes serves the policy API.
func (s *Server) policyRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/policies", s.listPolicies)
	mux.HandleFunc("POST /v1/policy/check", s.checkPolicy)
}

func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.snapshot(w, r)
	if !ok {
		return
	}
	out := PolicyList{Seq: snap.Seq, Items: []PolicyItem{}}
	for _, e := range snap.Services(r.URL.Query().Get("namespace")) {
		n := cluster.NamespacedName{Namespace: e.Value.Spec.Namespace, Name: e.Value.Spec.Name}
		if p, ok := snap.Policy(n); ok {
			out.Items = append(out.Items, PolicyItem{Namespace: n.Namespace, Service: n.Name, Policy: *p.Value})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// checkWait bounds how long a check waits for the policy tables to catch up
// with the View (a cast just before the check).
const checkWait = 2 * time.Second

func (s *Server) checkPolicy(w http.ResponseWriter, r *http.Request) {
	var pol Policy
	if s.Policy != nil {
		pol = s.Policy()
	}
	if pol == nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: "network policy is not enabled on this node (the Corefile has no netpolicy block)", Kind: "unavailable"})
		return
	}
	var req PolicyCheckRequest
	if !decode(w, r, &req) {
		return
	}
	snap := s.View.Snapshot()
	ctx, cancel := context.WithTimeout(r.Context(), checkWait)
	defer cancel()
	if err := pol.WaitFor(ctx, snap.Seq); err != nil {
		writeError(w, err)
		return
	}
	res, err := check(pol.Tables(), snap, req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func invalid(format string, args ...any) error {
	return &cluster.Error{Kind: cluster.KindInvalid, Msg: fmt.Sprintf(format, args...)}
}

// parseService reads "name.namespace" or "name" (namespace default).
func parseService(what, s string) (cluster.NamespacedName, error) {
	name, ns, dotted := strings.Cut(s, ".")
	if !dotted {
		ns = "default"
	}
	if name == "" || ns == "" || strings.ContainsAny(ns, "./:") {
		return cluster.NamespacedName{}, invalid("%s %q: want SERVICE.NAMESPACE, SERVICE (namespace default) or an IP address", what, s)
	}
	return cluster.NamespacedName{Namespace: ns, Name: name}, nil
}

func service(snap *cluster.Snapshot, n cluster.NamespacedName) (*cluster.ServiceRecord, error) {
	e, ok := snap.Service(n)
	if !ok {
		return nil, cluster.NotFound("service", n)
	}
	return e.Value, nil
}

// resolvePort finds the port of svc that spec and proto name.
func resolvePort(svc *cluster.Service, spec PortSpec, proto cluster.Protocol) (cluster.Port, error) {
	var match []cluster.Port
	num, numErr := strconv.Atoi(string(spec))
	for _, p := range svc.Ports {
		if p.Protocol == "" {
			p.Protocol = cluster.TCP
		}
		if (spec == "" || p.Name == string(spec) || (numErr == nil && p.Port == num)) && (proto == "" || p.Protocol == proto) {
			match = append(match, p)
		}
	}
	if len(match) > 1 && spec != "" && proto == "" {
		// A number declared for TCP and UDP: TCP unless asked otherwise.
		for _, p := range match {
			if p.Protocol == cluster.TCP {
				return p, nil
			}
		}
	}
	if len(match) == 1 {
		return match[0], nil
	}
	var have []string
	for _, p := range svc.Ports {
		have = append(have, portString(p))
	}
	svcName := svc.Namespace + "/" + svc.Name
	if spec == "" && len(match) > 1 {
		return cluster.Port{}, invalid("service %s has several ports (%s): name one, e.g. %s.%s:%s", svcName, strings.Join(have, ", "), svc.Name, svc.Namespace, portRef(svc.Ports[0]))
	}
	want := string(spec)
	if proto != "" {
		want += "/" + string(proto)
	}
	return cluster.Port{}, invalid("service %s has no port %q (ports: %s)", svcName, want, strings.Join(have, ", "))
}

func portRef(p cluster.Port) string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(p.Port)
}

func portString(p cluster.Port) string {
	proto := p.Protocol
	if proto == "" {
		proto = cluster.TCP
	}
	s := fmt.Sprintf("%d/%s", p.Port, proto)
	if p.Name != "" {
		s = p.Name + " " + s
	}
	return s
}

// check decides req on t as the proxy would for a new connection: the
// source's egress, then the destination's ingress. The View's staleness is
// not applied: check answers what the policy says.
func check(t PolicyTables, snap *cluster.Snapshot, req PolicyCheckRequest) (*PolicyCheckResponse, error) {
	if req.Protocol != "" && req.Protocol != cluster.TCP && req.Protocol != cluster.UDP {
		return nil, invalid("protocol %q: want tcp or udp", req.Protocol)
	}
	dst, err := parseService("to", req.To)
	if err != nil {
		return nil, err
	}
	rec, err := service(snap, dst)
	if err != nil {
		return nil, err
	}
	p, err := resolvePort(&rec.Spec, req.Port, req.Protocol)
	if err != nil {
		return nil, err
	}
	port, proto := uint16(p.Port), p.Protocol
	var egress, ingress Verdict
	var from string
	if ip, perr := netip.ParseAddr(req.From); perr == nil {
		from = "from " + ip.String()
		egress = t.Egress(ip, rec.VIP, port, proto)
		if in, ok := snap.InstanceByIP(ip.Unmap()); ok {
			// An instance of any node: its service's egress decides, as its
			// own node's proxy and kernel judge it.
			src := cluster.NamespacedName{Namespace: in.Value.Namespace, Name: in.Value.Service}
			from = fmt.Sprintf("from %s (instance %s of service %s.%s on node %s)", ip, in.Value.ID, src.Name, src.Namespace, in.Value.Node)
			egress = t.EgressFromService(src, dst, rec.VIP, port, proto)
		}
		ingress = t.Ingress(ip, dst, port, proto)
	} else {
		src, err := parseService("from", req.From)
		if err != nil {
			return nil, err
		}
		if _, err := service(snap, src); err != nil {
			return nil, err
		}
		from = "from service " + src.Name + "." + src.Namespace
		egress = t.EgressFromService(src, dst, rec.VIP, port, proto)
		ingress = t.IngressFromService(src, dst, port, proto)
	}
	to := "to service " + dst.Name + "." + dst.Namespace
	on := fmt.Sprintf("on %s", portString(p))
	res := &PolicyCheckResponse{Seq: t.Seq(), Port: p.Port, Protocol: proto}
	v, dir, peer := ingress, "ingress", from
	if !egress.Allowed || ingress.Reason == ReasonNoPolicy {
		v, dir, peer = egress, "egress", to
	}
	res.Allowed, res.Policy, res.Rule, res.Reason = v.Allowed, v.Policy, v.Rule, v.Reason
	switch v.Reason {
	case ReasonNoPolicy:
		res.Explanation = fmt.Sprintf("no policy applies (no egress policy %s, no ingress policy %s)", from, to)
	case ReasonRuleMatch:
		res.Direction = dir
		res.Explanation = fmt.Sprintf("rule %d of %s %s (%s %s)", v.Rule, v.Policy, dir, peer, on)
	default: // default-deny: Tables never answer stale
		res.Direction = dir
		res.Explanation = fmt.Sprintf("default deny of %s %s (no rule matches %s %s)", v.Policy, dir, peer, on)
	}
	return res, nil
}
