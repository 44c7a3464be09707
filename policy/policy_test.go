package policy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/runenet/runenet/cluster"
)

const localNode, remoteNode = "n1", "n2"

// semanticsDocs is the cluster the table test runs against.
var semanticsDocs = []string{`
service:
  name: api
  ports:
    - {name: http, port: 8080, targetPort: 80}
    - {name: grpc, port: 9090}
    - {name: metrics, port: 9100}
    - {name: dns, port: 5353, protocol: udp}
  networkPolicy:
    ingress:
      - from: [{service: web}]
        ports: [http]
      - from: [{service: worker, namespace: jobs}]
        ports: [grpc, 8080]
      - from: [{cidr: 10.0.0.0/8}]
        ports: [9100]
      - from: [{service: web}]
        ports: [dns]
      - from: [{cidr: 192.168.1.0/24}, {cidr: "fd00::/8"}]
    egress:
      - to: [{service: db}]
        ports: [5432]
      - to: [{cidr: 203.0.113.0/24}]
        ports: [443]
      - to: [{cidr: 198.51.100.0/24}]
`, `
service:
  name: web
  ports: [{name: http, port: 80}]
`, `
service:
  name: db
  ports: [{name: pg, port: 5432}]
  networkPolicy:
    ingress: []
`, `
service:
  name: open
  ports: [{name: http, port: 80}]
  networkPolicy:
    egress: []
`, `
service:
  name: public
  ports: [{name: http, port: 8080}]
  expose: {host: public.example.com}
  networkPolicy:
    ingress:
      - from: [{cidr: 0.0.0.0/0}]
        ports: [http]
`, `
service:
  name: private
  ports: [{name: http, port: 8080}]
  expose: {host: private.example.com}
  networkPolicy:
    ingress:
      - from: [{service: web}]
`, `
service:
  name: worker
  namespace: jobs
  ports: [{name: http, port: 80}]
`, `
service:
  name: web
  namespace: jobs
  ports: [{name: http, port: 80}]
`}

// Instance IPs: web 172.17.0.10 (n1) and .11 (n2), worker .20, jobs/web .30,
// api .40 (n1) and .41 (n2), db .50 (n1) and .51 (n2), open .60.
func semanticsCluster(t testing.TB) *testCluster {
	c := newTestCluster(t, cluster.ViewOptions{})
	c.Cast(t, semanticsDocs...)
	for _, in := range [][5]string{
		{"web-1", "default", "web", localNode, "172.17.0.10"},
		{"web-2", "default", "web", remoteNode, "172.17.0.11"},
		{"worker-1", "jobs", "worker", localNode, "172.17.0.20"},
		{"jobsweb-1", "jobs", "web", localNode, "172.17.0.30"},
		{"api-1", "default", "api", localNode, "172.17.0.40"},
		{"api-2", "default", "api", remoteNode, "172.17.0.41"},
		{"db-1", "default", "db", localNode, "172.17.0.50"},
		{"db-2", "default", "db", remoteNode, "172.17.0.51"},
		{"open-1", "default", "open", localNode, "172.17.0.60"},
	} {
		c.instance(t, in[0], in[1], in[2], in[3], in[4])
	}
	return c
}

func TestSemantics(t *testing.T) {
	c := semanticsCluster(t)
	tables := Compile(c.View.Snapshot(), localNode)
	const (
		web, webRemote, worker, jobsWeb = "172.17.0.10", "172.17.0.11", "172.17.0.20", "172.17.0.30"
		api, db, dbRemote, open         = "172.17.0.40", "172.17.0.50", "172.17.0.51", "172.17.0.60"
	)
	// kind: "in" (Ingress), "out" (Egress), "edge" (Edge). For "out", dst is
	// an address or "vip:<ns>/<name>"; otherwise the destination service.
	cases := []struct {
		name       string
		kind       string
		src, dst   string
		port       uint16
		proto      cluster.Protocol
		allowed    bool
		rule       int
		reason     string
		wantPolicy string
	}{
		{"same ns service peer, named port", "in", web, "default/api", 8080, "tcp", true, 0, "rule-match", "default/api"},
		{"same ns service peer, port of no rule", "in", web, "default/api", 9090, "tcp", false, -1, "default-deny", "default/api"},
		{"service peer on another node matches", "in", webRemote, "default/api", 8080, "tcp", true, 0, "rule-match", "default/api"},
		{"service peer on another node, port of no rule", "in", webRemote, "default/api", 9090, "tcp", false, -1, "default-deny", "default/api"},
		{"same name in another namespace does not match", "in", jobsWeb, "default/api", 8080, "tcp", false, -1, "default-deny", "default/api"},
		{"other ns peer, named port", "in", worker, "default/api", 9090, "tcp", true, 1, "rule-match", "default/api"},
		{"other ns peer, numbered port", "in", worker, "default/api", 8080, "tcp", true, 1, "rule-match", "default/api"},
		{"other ns peer, unlisted port", "in", worker, "default/api", 9100, "tcp", false, -1, "default-deny", "default/api"},
		{"CIDR peer, numbered port", "in", "10.1.2.3", "default/api", 9100, "tcp", true, 2, "rule-match", "default/api"},
		{"CIDR peer, far end of the prefix", "in", "10.250.0.1", "default/api", 9100, "tcp", true, 2, "rule-match", "default/api"},
		{"CIDR peer, unlisted port", "in", "10.1.2.3", "default/api", 8080, "tcp", false, -1, "default-deny", "default/api"},
		{"outside every CIDR", "in", "11.0.0.1", "default/api", 9100, "tcp", false, -1, "default-deny", "default/api"},
		{"udp port by name", "in", web, "default/api", 5353, "udp", true, 3, "rule-match", "default/api"},
		{"udp port asked over tcp", "in", web, "default/api", 5353, "tcp", false, -1, "default-deny", "default/api"},
		{"tcp port asked over udp", "in", web, "default/api", 8080, "udp", false, -1, "default-deny", "default/api"},
		{"rule without ports allows every port", "in", "192.168.1.7", "default/api", 12345, "tcp", true, 4, "rule-match", "default/api"},
		{"rule without ports allows udp", "in", "192.168.1.7", "default/api", 5353, "udp", true, 4, "rule-match", "default/api"},
		{"neighbouring CIDR", "in", "192.168.2.7", "default/api", 8080, "tcp", false, -1, "default-deny", "default/api"},
		{"IPv6 CIDR peer", "in", "fd00::1", "default/api", 8080, "tcp", true, 4, "rule-match", "default/api"},
		{"IPv6 outside CIDR", "in", "fe80::1", "default/api", 8080, "tcp", false, -1, "default-deny", "default/api"},
		{"IPv4-mapped IPv6 source", "in", "::ffff:10.1.2.3", "default/api", 9100, "tcp", true, 2, "rule-match", "default/api"},
		{"unknown source IP", "in", "172.17.99.99", "default/api", 8080, "tcp", false, -1, "default-deny", "default/api"},
		{"no policy: local peer", "in", api, "default/web", 80, "tcp", true, -1, "no-policy", ""},
		{"no policy: any address", "in", "11.0.0.1", "default/web", 80, "tcp", true, -1, "no-policy", ""},
		{"unknown destination service", "in", web, "default/nosuch", 80, "tcp", true, -1, "no-policy", ""},
		{"empty ingress list denies a local peer", "in", api, "default/db", 5432, "tcp", false, -1, "default-deny", "default/db"},
		{"empty ingress list denies any address", "in", "10.1.1.1", "default/db", 5432, "tcp", false, -1, "default-deny", "default/db"},
		{"egress-only policy leaves ingress open", "in", "11.0.0.1", "default/open", 80, "tcp", true, -1, "no-policy", ""},
		{"rule without ports, service peer", "in", web, "default/private", 8080, "tcp", true, 0, "rule-match", "default/private"},
		{"rule without ports, other service", "in", worker, "default/private", 8080, "tcp", false, -1, "default-deny", "default/private"},

		{"egress to service VIP, listed port", "out", api, "vip:default/db", 5432, "tcp", true, 0, "rule-match", "default/api"},
		{"egress to local instance of the service", "out", api, db, 5432, "tcp", true, 0, "rule-match", "default/api"},
		{"egress to remote instance of the service", "out", api, dbRemote, 5432, "tcp", true, 0, "rule-match", "default/api"},
		{"egress to remote instance, other port", "out", api, dbRemote, 5433, "tcp", false, -1, "default-deny", "default/api"},
		{"egress to service VIP, other port", "out", api, "vip:default/db", 5433, "tcp", false, -1, "default-deny", "default/api"},
		{"egress to a service not listed", "out", api, "vip:default/web", 80, "tcp", false, -1, "default-deny", "default/api"},
		{"egress CIDR, tcp port", "out", api, "203.0.113.5", 443, "tcp", true, 1, "rule-match", "default/api"},
		{"egress CIDR, same number over udp", "out", api, "203.0.113.5", 443, "udp", true, 1, "rule-match", "default/api"},
		{"egress CIDR, unlisted port", "out", api, "203.0.113.5", 80, "tcp", false, -1, "default-deny", "default/api"},
		{"egress CIDR without ports", "out", api, "198.51.100.9", 22, "tcp", true, 2, "rule-match", "default/api"},
		{"egress outside every peer", "out", api, "8.8.8.8", 53, "udp", false, -1, "default-deny", "default/api"},
		{"no egress policy", "out", web, "8.8.8.8", 53, "udp", true, -1, "no-policy", ""},
		{"ingress-only policy leaves egress open", "out", db, "8.8.8.8", 53, "udp", true, -1, "no-policy", ""},
		{"egress of a source on another node is its node's to judge", "out", webRemote, "8.8.8.8", 53, "udp", true, -1, "no-policy", ""},
		{"egress of a remote api instance is not judged here", "out", "172.17.0.41", "8.8.8.8", 53, "udp", true, -1, "no-policy", ""},
		{"source not an instance", "out", "172.17.99.99", "8.8.8.8", 53, "udp", true, -1, "no-policy", ""},
		{"empty egress list denies a VIP", "out", open, "vip:default/web", 80, "tcp", false, -1, "default-deny", "default/open"},
		{"empty egress list denies any address", "out", open, "8.8.8.8", 53, "udp", false, -1, "default-deny", "default/open"},

		{"edge: client inside a CIDR peer", "edge", "203.0.113.7", "default/public", 8080, "tcp", true, 0, "rule-match", "default/public"},
		{"edge: service peers never match the edge hop", "edge", web, "default/private", 8080, "tcp", false, -1, "default-deny", "default/private"},
		{"edge: outside client, service-only policy", "edge", "203.0.113.7", "default/private", 8080, "tcp", false, -1, "default-deny", "default/private"},
		{"edge: no policy", "edge", "203.0.113.7", "default/web", 80, "tcp", true, -1, "no-policy", ""},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d cases", len(cases))
	}
	name := func(s string) cluster.NamespacedName {
		ns, n, _ := strings.Cut(s, "/")
		return cluster.NamespacedName{Namespace: ns, Name: n}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := netip.MustParseAddr(tc.src)
			var v Verdict
			switch tc.kind {
			case "in":
				v = tables.Ingress(src, name(tc.dst), tc.port, tc.proto)
			case "edge":
				v = tables.Edge(src, name(tc.dst), tc.port)
			case "out":
				var dst netip.Addr
				if svc, ok := strings.CutPrefix(tc.dst, "vip:"); ok {
					n := name(svc)
					dst = c.vip(t, n.Namespace, n.Name)
				} else {
					dst = netip.MustParseAddr(tc.dst)
				}
				v = tables.Egress(src, dst, tc.port, tc.proto)
			}
			if v.Allowed != tc.allowed || v.Rule != tc.rule || v.Reason != tc.reason || v.Policy != tc.wantPolicy {
				t.Errorf("got %+v, want allowed=%v rule=%d reason=%s policy=%q", v, tc.allowed, tc.rule, tc.reason, tc.wantPolicy)
			}
		})
	}
	byService := []struct {
		src, dst string
		port     uint16
		allowed  bool
	}{
		{"default/web", "default/api", 8080, true},
		{"jobs/worker", "default/api", 9090, true},
		{"jobs/web", "default/api", 8080, false},
		{"default/web", "default/db", 5432, false},
		{"default/db", "default/web", 80, true},
	}
	for _, tc := range byService {
		if v := tables.IngressFromService(name(tc.src), name(tc.dst), tc.port, cluster.TCP); v.Allowed != tc.allowed {
			t.Errorf("IngressFromService(%s → %s:%d) = %+v, want allowed=%v", tc.src, tc.dst, tc.port, v, tc.allowed)
		}
	}
	egressByService := []struct {
		src, dst string
		port     uint16
		allowed  bool
		rule     int
	}{
		{"default/api", "default/db", 5432, true, 0},
		{"default/api", "default/db", 5433, false, -1},
		{"default/api", "default/web", 80, false, -1},
		{"default/open", "default/web", 80, false, -1},
		{"default/web", "default/db", 5432, true, -1}, // no egress policy
	}
	for _, tc := range egressByService {
		dst := name(tc.dst)
		v := tables.EgressFromService(name(tc.src), dst, c.vip(t, dst.Namespace, dst.Name), tc.port, cluster.TCP)
		if v.Allowed != tc.allowed || v.Rule != tc.rule {
			t.Errorf("EgressFromService(%s → %s:%d) = %+v, want allowed=%v rule=%d", tc.src, tc.dst, tc.port, v, tc.allowed, tc.rule)
		}
	}
	if got := tables.LocalInstances(); got != 6 {
		t.Errorf("LocalInstances = %d, want 6 (three instances are on %s)", got, remoteNode)
	}
	if got := tables.Identities(); got != 9 {
		t.Errorf("Identities = %d, want 9 (every node's instances)", got)
	}
}
