package ingress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/ingress/status"
	"github.com/runenet/runenet/internal/pebbletest"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/orderedlog"
)

// Several edge nodes on one log: each Ingress here is what one edge node
// runs, with its own listeners, certmagic cache and Storage, sharing the
// log as nodes of a cluster share the replicated one. In one process they
// also share what certmagic keeps in package variables (the challenges it
// started), so edgeprocess_test.go runs the node that orders in a process
// of its own, where a challenge can only be answered from the log.

// edge is one edge node's ingress and its view of the log.
type edge struct {
	name string
	ing  *Ingress
	log  *cutLog
}

func startEdge(t *testing.T, n *node, name string, acme ACMEOptions) *edge {
	t.Helper()
	return startEdgeOn(t, n.Log, n.View, name, acme)
}

// startEdgeOn starts edge node name on log, following view.
func startEdgeOn(t *testing.T, log orderedlog.Log, view *cluster.View, name string, acme ACMEOptions) *edge {
	t.Helper()
	e := &edge{name: name, log: &cutLog{Log: log}}
	ing, err := New(e.log, view, Options{HTTPAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", NodeName: name, ACME: acme})
	if err != nil {
		t.Fatal(err)
	}
	if err := ing.Start(); err != nil {
		t.Fatal(err)
	}
	e.ing = ing
	t.Cleanup(func() { ing.Close() })
	return e
}

// kill makes the edge node stop as one cut off from the cluster does, as
// far as the rest of the cluster can tell: it can no longer write (no lock
// renewal, no unlock, no clean-up of its challenge tokens) and stops
// listening. (TestEdgeProcessKilledMidOrderIsTakenOver SIGKILLs one.)
func (e *edge) kill() {
	e.log.cut.Store(true)
	e.ing.Close()
}

// serial is the serial number of the certificate e serves for host, "" if
// the handshake fails.
func (e *edge) serial(host string, roots *x509.CertPool) string {
	return serialAt(e.ing.HTTPSAddr().String(), host, roots)
}

func serialAt(addr, host string, roots *x509.CertPool) string {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{ServerName: host, RootCAs: roots})
	if err != nil {
		return ""
	}
	defer conn.Close()
	return serialHex(conn.ConnectionState().PeerCertificates[0])
}

func waitCertReady(t *testing.T, e *edge, host string) {
	t.Helper()
	waitFor(t, 90*time.Second, e.name+"'s certificate for "+host, func() bool {
		r, _ := statusOf(e.ing, host)
		return r.Cert == CertReady
	})
}

// issueLockHolder is the edge node whose lock record orders host's
// certificate, "" when there is none.
func issueLockHolder(log orderedlog.Log, host string) string {
	kv, ok, _, err := log.Get(context.Background(), lockKey("issue_cert_"+host))
	var rec lockRecord
	if err != nil || !ok || json.Unmarshal(kv.Value, &rec) != nil {
		return ""
	}
	return rec.Node
}

// validations is Pebble's HTTP-01 port on loopback, forwarding each
// validation to the edge node its route picks.
type validations struct {
	*pebbletest.Validations
	port int
}

func newValidations(t *testing.T) *validations {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	v := &validations{Validations: pebbletest.NewValidations(nil), port: ln.Addr().(*net.TCPAddr).Port}
	testkit.Serve(t, ln, v.Forward)
	return v
}

// routeTo sends validations to the edge node pick returns (nowhere when
// it returns nil).
func (v *validations) routeTo(pick func() *edge) {
	v.SetRoute(func() (pebbletest.Target, error) {
		e := pick()
		if e == nil {
			return pebbletest.Target{}, errors.New("no edge node picked")
		}
		return pebbletest.Target{Name: e.name, Addr: e.ing.HTTPAddr().String()}, nil
	})
}

func TestEdgesOrderOnceAndAnswerChallengesOnTheOtherNode(t *testing.T) {
	const host = "api.example.test"
	n := newNode(t)
	port := startBackend(t, "api-1", "127.0.0.1", 0)
	peb := newPebble(t, 90*24*time.Hour)
	val := newValidations(t)
	peb.start(t, val.port)
	a := startEdge(t, n, "edge-a", peb.acme(0))
	b := startEdge(t, n, "edge-b", peb.acme(0))
	// Pebble's validation goes to the node that did not place the order.
	var mu sync.Mutex
	var routed []string
	val.routeTo(func() *edge {
		holder := issueLockHolder(n.Log, host)
		to := a
		if holder == a.name {
			to = b
		}
		mu.Lock()
		routed = append(routed, holder+" ordered, "+to.name+" answered")
		mu.Unlock()
		return to
	})

	n.cast(t, "api", port, host, tlsAuto)
	n.addInstance(t, "api", "api-1", "127.0.0.1")
	waitCertReady(t, a, host)
	waitCertReady(t, b, host)

	mu.Lock()
	t.Logf("validations: %v", routed)
	if len(routed) == 0 {
		t.Error("Pebble validated no HTTP-01 challenge through the forwarder")
	}
	for _, r := range routed {
		if r != "edge-a ordered, edge-b answered" && r != "edge-b ordered, edge-a answered" {
			t.Errorf("validation %q: want the node that did not order to answer", r)
		}
	}
	mu.Unlock()
	if got := peb.Orders(); got != 1 {
		t.Errorf("Pebble created %d orders for one certificate on two edge nodes, want 1", got)
	}
	roots := peb.Issuing
	sa, sb := a.serial(host, roots), b.serial(host, roots)
	if sa == "" || sa != sb {
		t.Errorf("edge-a serves serial %q, edge-b %q: want one certificate", sa, sb)
	}
	for _, e := range []*edge{a, b} {
		if resp, body := get(t, client(e.ing.HTTPSAddr(), peb.Issuing), "https://"+host+"/"); resp.StatusCode != 200 {
			t.Errorf("HTTPS through %s: %d %q", e.name, resp.StatusCode, body)
		}
		// Status shows the log's certificate, the one both serve.
		if r, _ := statusOf(e.ing, host); r.Serial != sa || !strings.HasPrefix(r.Issuer, "Pebble Intermediate CA") || r.Ordering != "" {
			t.Errorf("%s's status row %+v, want serial %s from Pebble's intermediate and no order under way", e.name, r, sa)
		}
	}
	// So does a node that runs no ingress, from the log alone.
	if r, _ := clusterRow(n, host); r.Cert != CertReady || r.Serial != sa || !strings.HasPrefix(r.Issuer, "Pebble Intermediate CA") || r.Expires(time.Now()) != "89d" {
		t.Errorf("the cluster's row %+v, want ready with serial %s", r, sa)
	}
}

func TestEdgesTakeOverTheOrderOfACutOffLockHolder(t *testing.T) {
	const host = "takeover.example.test"
	const lease = 2 * time.Second
	n := newNode(t)
	port := startBackend(t, "api-1", "127.0.0.1", 0)
	peb := newPebble(t, 90*24*time.Hour)
	val := newValidations(t)
	peb.start(t, val.port)
	a := startEdge(t, n, "edge-a", peb.acme(lease))
	b := startEdge(t, n, "edge-b", peb.acme(lease))
	var mu sync.Mutex
	var survivor *edge
	val.routeTo(func() *edge {
		mu.Lock()
		defer mu.Unlock()
		return survivor
	})
	val.Hold()

	n.cast(t, "api", port, host, tlsAuto)
	n.addInstance(t, "api", "api-1", "127.0.0.1")
	// The holder has ordered and its challenge is being validated: kill it.
	waitFor(t, 30*time.Second, "Pebble to start validating the first order", func() bool { return val.Waiting() > 0 })
	holder, other := a, b
	if issueLockHolder(n.Log, host) == b.name {
		holder, other = b, a
	}
	if got := issueLockHolder(n.Log, host); got != holder.name {
		t.Fatalf("lock holder while its order is validated: %q", got)
	}
	for _, e := range []*edge{a, b} {
		if r, _ := statusOf(e.ing, host); r.Ordering != holder.name || r.Cert != CertPending || r.Serial != "" {
			t.Errorf("%s's status row while %s orders: %+v", e.name, holder.name, r)
		}
	}
	if r, _ := clusterRow(n, host); r.Ordering != holder.name || r.Cert != CertPending {
		t.Errorf("the cluster's row while %s orders: %+v", holder.name, r)
	}
	killed := time.Now()
	holder.kill()
	mu.Lock()
	survivor = other
	mu.Unlock()
	val.Release()

	waitCertReady(t, other, host)
	t.Logf("%s cut off mid-order; %s had the certificate %v later", holder.name, other.name, time.Since(killed).Round(100*time.Millisecond))
	if d := time.Since(killed); d < lease {
		t.Errorf("the certificate came %v after the holder was cut off, sooner than its lease (%v) could lapse", d, lease)
	}
	if got := peb.Orders(); got != 2 {
		t.Errorf("Pebble created %d orders, want 2: the killed holder's and the survivor's", got)
	}
	// certmagic releases the lock after it has stored the certificate,
	// which the edge may already serve.
	waitFor(t, 10*time.Second, "the issue lock to be released", func() bool { return issueLockHolder(n.Log, host) == "" })
	if resp, body := get(t, client(other.ing.HTTPSAddr(), peb.Issuing), "https://"+host+"/"); resp.StatusCode != 200 {
		t.Errorf("HTTPS through the survivor: %d %q", resp.StatusCode, body)
	}
}

func TestEdgesServeACertificateRenewedByAnotherNodeWithoutRestart(t *testing.T) {
	const host = "renewed.example.test"
	n := newNode(t)
	port := startBackend(t, "api-1", "127.0.0.1", 0)
	// 40s certificates. a renews with half the lifetime left and checks
	// every second; b would only notice at its own maintenance (every 10
	// minutes), so b serving a's renewal is the log watch's doing.
	peb := newPebble(t, 40*time.Second)
	val := newValidations(t)
	peb.start(t, val.port)
	acmeA := peb.acme(0)
	acmeA.RenewalWindowRatio, acmeA.RenewCheckInterval = 0.5, time.Second
	a := startEdge(t, n, "edge-a", acmeA)
	b := startEdge(t, n, "edge-b", peb.acme(0))
	val.routeTo(func() *edge { return a })

	n.cast(t, "api", port, host, tlsAuto)
	n.addInstance(t, "api", "api-1", "127.0.0.1")
	waitCertReady(t, a, host)
	waitCertReady(t, b, host)
	roots := peb.Issuing
	first := a.serial(host, roots)
	if got := b.serial(host, roots); first == "" || got != first {
		t.Fatalf("edge-a serves %q, edge-b %q", first, got)
	}

	var renewed string
	waitFor(t, 45*time.Second, "edge-a to renew", func() bool {
		renewed = a.serial(host, roots)
		return renewed != "" && renewed != first
	})
	at := time.Now()
	waitFor(t, 5*time.Second, "edge-b to serve edge-a's renewal", func() bool { return b.serial(host, roots) == renewed })
	t.Logf("edge-b served the renewed certificate %v after edge-a did", time.Since(at).Round(time.Millisecond))
}

// A challenge token another edge node stored is answered from the log: it
// was never in this process's memory (certmagic keeps the challenges it
// started itself there), so only the stored token can answer it.
func TestEdgeAnswersAChallengeStoredByAnotherNode(t *testing.T) {
	n := newNode(t)
	e := startEdge(t, n, "edge-b", ACMEOptions{CA: "https://acme.example.test/dir"})
	const host, token = "stored.example.test", "tok_only-in-the-log"
	chal := map[string]any{
		"type": "http-01", "url": "https://acme.example.test/chal/1", "status": "pending", "token": token,
		"keyAuthorization": token + ".thumbprint", "identifier": map[string]string{"type": "dns", "value": host},
	}
	if _, ok := certmagic.GetACMEChallenge(host); ok {
		t.Fatal("the challenge is in this process's memory; the test would prove nothing")
	}
	raw, _ := json.Marshal(chal)
	other := NewStorage(n.Log, "edge-a", 0)
	key := "acme/" + certmagic.StorageKeys.Safe(e.ing.issuer.IssuerKey()) + "/challenge_tokens/" + certmagic.StorageKeys.Safe(host) + ".json"
	if err := other.Store(context.Background(), key, raw); err != nil {
		t.Fatal(err)
	}
	c := client(e.ing.HTTPAddr(), nil)
	resp, body := get(t, c, "http://"+host+"/.well-known/acme-challenge/"+token)
	if resp.StatusCode != http.StatusOK || body != token+".thumbprint" {
		t.Errorf("challenge stored by another node: %d %q, want 200 with its key authorization", resp.StatusCode, body)
	}
	// Only for its own host (certmagic's DNS-rebinding check) and token.
	if resp, body := get(t, c, "http://other.example.test/.well-known/acme-challenge/"+token); resp.StatusCode == http.StatusOK {
		t.Errorf("the token answered for another host: %q", body)
	}
}

// The edge nodes serving a host are the live edge-role node records, and
// the node answering.
func TestStatusNamesTheEdgeNodesServingAHost(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	if err := cluster.BootstrapContainerNetwork(ctx, n.Log, netip.MustParsePrefix("10.88.0.0/16")); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []cluster.NodeSpec{
		{Name: "edge-a", Roles: []string{"edge"}}, {Name: "core-1"}, {Name: "edge-c", Roles: []string{"edge"}},
	} {
		if _, _, err := n.Ctl.RegisterNode(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "the node records in the View", func() bool { _, ok := n.View.Snapshot().Node("edge-c"); return ok })
	c, _ := n.View.Snapshot().Node("edge-c")
	if _, _, err := n.Ctl.MarkNodeDown(ctx, "edge-c", c.Rev); err != nil {
		t.Fatal(err)
	}
	e := startEdge(t, n, "edge-b", ACMEOptions{})
	n.cast(t, "web", 8080, "web.example.test", "")
	waitFor(t, 5*time.Second, "web's row to name edge-a and edge-b (edge-c is down, core-1 no edge)", func() bool {
		r, _ := statusOf(e.ing, "web.example.test")
		return slices.Equal(r.Edges, []string{"edge-a", "edge-b"})
	})
}

// clusterRow is host's row as a node without an ingress answers it.
func clusterRow(n *node, host string) (status.Row, bool) {
	for _, r := range (ClusterStatus{Log: n.Log, View: n.View}).Status() {
		if r.Host == host {
			return r, true
		}
	}
	return status.Row{}, false
}
