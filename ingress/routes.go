package ingress

import (
	"crypto/tls"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/runenet/runenet/cluster"
)

// TLS modes and certificate states, as `rune get ingresses` prints them.
const (
	TLSNone   = "none"
	TLSACME   = "acme"
	TLSManual = "manual"

	CertPending = "pending"
	CertReady   = "ready"
	CertError   = "error"
)

// route is one exposed host. Routes are immutable once published in a table.
type route struct {
	service  cluster.NamespacedName
	port     uint16 // the exposed service port, which network policy rules name
	host     string // lower case; "*.example.com" for a wildcard
	tlsMode  string
	secret   string
	backends []*backend
	policed  bool // the service has an ingress policy

	cert     *tls.Certificate // manual mode only
	state    string           // certificate state; "" for TLSNone
	notAfter time.Time
	certErr  string
}

// certReady reports whether HTTPS can be served for the route, which is when
// plain HTTP starts redirecting to it.
func (r *route) certReady() bool { return r.state == CertReady }

// table maps request hosts to routes. A new table replaces the old one
// atomically, so a request sees either the old routes or the new ones.
type table struct {
	seq       uint64 // of the snapshot it was built from
	exact     map[string]*route
	wildcards map[string]*route // by the parent domain: "example.com" for "*.example.com"
	ordered   []*route          // in service order, for status
}

func (t *table) lookup(host string) *route {
	if r, ok := t.exact[host]; ok {
		return r
	}
	if _, parent, ok := strings.Cut(host, "."); ok {
		return t.wildcards[parent]
	}
	return nil
}

// requestHost normalizes a Host header or SNI name for lookup: no port, no
// trailing dot, lower case. It avoids allocating for the common case of an
// already lower-case host.
func requestHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// buildTable derives routes from every service's expose block. Casts refuse
// a host that another service exposes (see cluster.Snapshot.HostClaims); in a
// store written before they did, two services may claim one host, and the
// first in namespace/name order keeps it, so every edge node routes it alike
// whatever the order the services were cast in.
func buildTable(snap *cluster.Snapshot, backendFor func(addr string) *backend) *table {
	t := &table{seq: snap.Seq, exact: map[string]*route{}, wildcards: map[string]*route{}}
	for _, e := range snap.Services("") {
		svc := &e.Value.Spec
		if svc.Expose == nil || svc.Expose.Host == "" {
			continue
		}
		host := strings.ToLower(strings.TrimSuffix(svc.Expose.Host, "."))
		r := &route{service: cluster.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}, host: host, tlsMode: TLSNone}
		r.policed = svc.NetworkPolicy != nil && svc.NetworkPolicy.HasIngress
		if tl := svc.Expose.TLS; tl != nil {
			switch {
			case tl.Mode == TLSManual:
				r.tlsMode, r.secret = TLSManual, tl.Secret
			case tl.Auto || tl.Mode == TLSACME:
				r.tlsMode = TLSACME
			}
		}
		if ep, ok := snap.Endpoints(r.service); ok {
			if port, ok := exposedPort(ep.Value.Ports, svc.Expose.Port); ok {
				r.port = uint16(port.Port)
				for _, a := range ep.Value.Addresses {
					if b := backendFor(netip.AddrPortFrom(a.IP, uint16(port.TargetPort)).String()); b != nil {
						r.backends = append(r.backends, b)
					}
				}
			}
		}
		if parent, ok := strings.CutPrefix(host, "*."); ok {
			if _, taken := t.wildcards[parent]; taken {
				continue
			}
			t.wildcards[parent] = r
		} else {
			if _, taken := t.exact[host]; taken {
				continue
			}
			t.exact[host] = r
		}
		t.ordered = append(t.ordered, r)
	}
	return t
}

// exposedPort resolves expose.port (a port name, or a service port number as
// text) to the service port, which carries the port the instances listen on.
func exposedPort(ports []cluster.EndpointPort, ref string) (cluster.EndpointPort, bool) {
	n, err := strconv.Atoi(ref)
	for _, p := range ports {
		if p.Protocol != cluster.TCP && p.Protocol != "" {
			continue
		}
		if (err == nil && p.Port == n) || (err != nil && p.Name == ref) {
			return p, true
		}
	}
	return cluster.EndpointPort{}, false
}
