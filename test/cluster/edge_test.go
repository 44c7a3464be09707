package e2ecluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runenet/runenet/ingress"
	"github.com/runenet/runenet/ingress/status"
	"github.com/runenet/runenet/internal/pebbletest"
)

// Issue 16's acceptance with several edge nodes, on real runed processes:
// n1 is a plain node, n2 and n3 are edge nodes ordering from a Pebble in a
// namespace of its own on the bridge.

// edgeNodeGrace is every node's --node-grace: a killed edge node is marked
// down well within the certificate lock's lease.
const edgeNodeGrace = 5 * time.Second

func exposedService(name, host string) string {
	return fmt.Sprintf(`service:
  name: %s
  ports:
    - {name: http, port: 8080}
  expose:
    host: %s
    port: http
    tls: {auto: true}
`, name, host)
}

// row is n's `rune get ingresses` row for host, read linearizably.
func row(n *Node, host string) (status.Row, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	l, err := n.LinAPI.Ingresses(ctx, "")
	if err != nil {
		return status.Row{}, err
	}
	for _, r := range l.Items {
		if r.Host == host {
			return r, nil
		}
	}
	return status.Row{}, fmt.Errorf("%s lists no ingress for %s", n.Name, host)
}

// waitReady waits until n's row for host says its certificate is ready.
func waitReady(t *testing.T, n *Node, host string, timeout time.Duration) status.Row {
	t.Helper()
	var r status.Row
	var err error
	if !waitUntil(timeout, func() bool {
		r, err = row(n, host)
		return err == nil && r.Cert == ingress.CertReady
	}) {
		t.Fatalf("%s: certificate for %s not ready within %v: %+v %v", n.Name, host, timeout, r, err)
	}
	return r
}

// otherEdge routes each validation of host to the edge node that does not
// hold host's certificate lock, as the log (read on n1) says, and keeps
// who ordered and who answered.
type otherEdge struct {
	nt   *Net
	host string

	mu     sync.Mutex
	routed []string // "n2 ordered, n3 answered"
}

func (o *otherEdge) route() (pebbletest.Target, error) {
	var holder string
	waitUntil(5*time.Second, func() bool {
		r, err := row(o.nt.Nodes[0], o.host)
		holder = r.Ordering
		return err == nil && holder != ""
	})
	for _, e := range o.nt.Nodes[1:] {
		if holder != "" && e.Name != holder {
			o.mu.Lock()
			o.routed = append(o.routed, holder+" ordered, "+e.Name+" answered")
			o.mu.Unlock()
			return httpOf(e), nil
		}
	}
	return pebbletest.Target{}, errors.New("no edge node holds the lock of " + o.host)
}

// httpOf is where n's ingress answers HTTP-01: port 80 at its address.
func httpOf(n *Node) pebbletest.Target {
	return pebbletest.Target{Name: n.Name, Addr: net.JoinHostPort(n.Addr.String(), "80")}
}

func (o *otherEdge) log() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.routed...)
}

func TestEdgeNodesOrderOnceServeOneCertificateAndTakeOverAKilledHolder(t *testing.T) {
	start := time.Now()
	nt := NewNet(t, 3)
	acme := startACME(t, nt)
	plain, edges := nt.Nodes[0], nt.Nodes[1:]
	nt.Flags = func(n *Node) []string {
		grace := []string{"--node-grace", edgeNodeGrace.String()}
		if n == plain {
			return grace
		}
		return append(grace, acme.edgeFlags()...)
	}
	nt.Form(t)

	// One order for the host, its HTTP-01 validation sent to the edge node
	// that did not place it.
	const host = "api.example.test"
	other := &otherEdge{nt: nt, host: host}
	acme.val.SetRoute(other.route)
	plain.Cast(t, exposedService("api", host))
	r := waitReady(t, plain, host, 60*time.Second)
	if got := acme.peb.Orders(); got != 1 {
		t.Errorf("Pebble created %d orders for %s on two edge nodes, want 1", got, host)
	}
	// Every validation went to the node that did not order: the certificate
	// exists because that node answered from the log.
	if routed, all := other.log(), acme.val.AnsweredBy(); len(routed) == 0 || len(routed) != len(all) {
		t.Errorf("validations of %s: %v, forwarded: %v; want each to the node that did not order", host, routed, all)
	} else {
		t.Logf("%s: %v", host, routed)
	}
	for _, e := range edges {
		var got string
		if !waitUntil(10*time.Second, func() bool { got = acme.serial(e, host); return got != "" }) {
			t.Fatalf("%s serves no certificate for %s that Pebble's root verifies", e.Name, host)
		}
		if got != r.Serial {
			t.Errorf("%s serves serial %s for %s, the log's certificate is %s: want one certificate", e.Name, got, host, r.Serial)
		}
	}
	listsEdges(t, plain, host, edges)
	if t.Failed() {
		return
	}

	// A second host: its order's validation held while its lock holder is
	// SIGKILLed; the surviving edge node completes the certificate.
	const host2 = "web.example.test"
	before := acme.peb.Orders()
	acme.val.Hold()
	plain.Cast(t, exposedService("web", host2))
	if !waitUntil(60*time.Second, func() bool { return acme.val.Waiting() > 0 }) {
		t.Fatalf("no validation of %s's order reached Pebble's HTTP port within 60s", host2)
	}
	r2, err := row(plain, host2)
	if err != nil || r2.Ordering == "" {
		t.Fatalf("no lock holder for %s while its order is validated: %+v %v", host2, r2, err)
	}
	holder, survivor := edges[0], edges[1]
	switch r2.Ordering {
	case holder.Name:
	case survivor.Name:
		holder, survivor = survivor, holder
	default:
		t.Fatalf("%s's lock holder is %q, not an edge node's name (%s or %s)", host2, r2.Ordering, holder.Name, survivor.Name)
	}
	holder.Kill(t)
	killed := time.Now()
	acme.val.SetRoute(func() (pebbletest.Target, error) { return httpOf(survivor), nil })
	acme.val.Release()
	r2 = waitReady(t, survivor, host2, 60*time.Second)
	d := time.Since(killed)
	t.Logf("%s SIGKILLed mid-order for %s; %s had the certificate %v later", holder.Name, host2, survivor.Name, d.Round(100*time.Millisecond))
	// The holder renewed its lease every third of it, the last time up to a
	// third of a lease before it was killed: the lease lapses no sooner
	// than two thirds of it after the kill.
	if lapse := ingress.DefaultLockLease * 2 / 3; d < lapse {
		t.Errorf("%s had the certificate %v after %s was killed, before its lock lease (%v, last renewed at most %v before) could lapse",
			survivor.Name, d, holder.Name, ingress.DefaultLockLease, ingress.DefaultLockLease-lapse)
	}
	if got := acme.peb.Orders() - before; got != 2 {
		t.Errorf("Pebble created %d orders for %s, want 2: the killed holder's and the survivor's", got, host2)
	}
	if got := acme.serial(survivor, host2); got != r2.Serial {
		t.Errorf("%s serves serial %q for %s, its row says %s", survivor.Name, got, host2, r2.Serial)
	}
	var r3 status.Row
	if !waitUntil(10*time.Second, func() bool {
		r3, err = row(plain, host2)
		return err == nil && r3.Serial == r2.Serial && r3.Ordering == ""
	}) {
		t.Errorf("%s's row for %s after the takeover: %+v %v, want serial %s and no ordering node", plain.Name, host2, r3, err, r2.Serial)
	}
	// Past its --node-grace the killed node is marked down: no longer
	// among the edge nodes serving the hosts.
	listsEdges(t, plain, host2, []*Node{survivor})
	t.Logf("whole test %v", time.Since(start).Round(100*time.Millisecond))
}

// listsEdges checks that `rune get ingresses` on n, a node that runs no
// ingress, lists host with the edge nodes serving it (from their node
// records, which runed writes with its roles).
func listsEdges(t *testing.T, n *Node, host string, edges []*Node) {
	t.Helper()
	var names []string
	for _, e := range edges {
		names = append(names, e.Name)
	}
	want := strings.Join(names, ",")
	var line string
	if !waitUntil(15*time.Second, func() bool {
		line = ""
		for l := range strings.Lines(n.CLI(t, "get", "ingresses")) {
			if f := strings.Fields(l); slices.Contains(f, host) {
				line = l
				return slices.Contains(f, want)
			}
		}
		return false
	}) {
		t.Errorf("rune get ingresses on %s: %q for %s, want the edge nodes %s listed", n.Name, line, host, want)
	}
}
