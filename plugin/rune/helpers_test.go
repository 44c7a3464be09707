package rune

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/orderedlog/badger"
)

// testCluster is a real single-node control plane (Badger log, View,
// Controller) that tests cast services into, as runed does.
type testCluster struct {
	view *cluster.View
	ctl  *cluster.Controller
}

func newCluster(t testing.TB, cidr string, budget time.Duration) *testCluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lg, err := badger.Open(t.TempDir(), badger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.Bootstrap(ctx, lg, netip.MustParsePrefix(cidr)); err != nil {
		t.Fatal(err)
	}
	v := cluster.NewView(lg, cluster.ViewOptions{StaleBudget: budget})
	done := make(chan struct{})
	go func() { defer close(done); v.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; lg.Close() })
	if err := v.WaitFor(ctx, lg.Tail()); err != nil {
		t.Fatal(err)
	}
	return &testCluster{view: v, ctl: cluster.NewController(lg, v, cluster.ControllerOptions{})}
}

// cast casts YAML documents and waits until the View has applied them.
func (c *testCluster) cast(t testing.TB, docs ...string) {
	t.Helper()
	files := make([]cluster.SourceFile, len(docs))
	for i, d := range docs {
		files[i] = cluster.SourceFile{Name: fmt.Sprintf("svc%d.yaml", i), Data: []byte(d)}
	}
	_, seq, err := c.ctl.Cast(context.Background(), files)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.view.WaitFor(context.Background(), seq); err != nil {
		t.Fatal(err)
	}
}

// vip returns the VIP the cluster gave ns/name.
func (c *testCluster) vip(t testing.TB, ns, name string) netip.Addr {
	t.Helper()
	e, ok := c.view.Snapshot().Service(cluster.NamespacedName{Namespace: ns, Name: name})
	if !ok {
		t.Fatalf("no service %s/%s", ns, name)
	}
	return e.Value.VIP
}

func (c *testCluster) handler() *Rune {
	r := &Rune{TTL: DefaultTTL}
	r.SetView(c.view)
	return r
}

func service(ns, name string, ports ...string) string {
	doc := fmt.Sprintf("service:\n  name: %s\n  namespace: %s\n", name, ns)
	if len(ports) > 0 {
		doc += "  ports:\n" + strings.Join(ports, "")
	}
	return doc
}

// testServices is the cluster most handler tests answer from.
var testServices = []string{
	service("default", "api",
		"    - name: http\n      port: 8080\n",
		"    - name: dns\n      port: 53\n      protocol: udp\n",
		"    - port: 9000\n"),
	service("default", "web", "    - name: http\n      port: 80\n"),
	service("jobs", "db", "    - name: pg\n      port: 5432\n"),
}

// withServices is a cluster over 10.96.0.0/16 holding testServices, and a
// replacer for the placeholders test cases use: {api} {web} {db} for VIPs,
// {api-rev} {db-rev-upper} for reverse names, {serial} for the SOA serial.
func withServices(t testing.TB, budget time.Duration) (*testCluster, *strings.Replacer) {
	c := newCluster(t, "10.96.0.0/16", budget)
	c.cast(t, testServices...)
	api, web, db := c.vip(t, "default", "api"), c.vip(t, "default", "web"), c.vip(t, "jobs", "db")
	apiRev, _ := dns.ReverseAddr(api.String())
	dbRev, _ := dns.ReverseAddr(db.String())
	return c, strings.NewReplacer(
		"{api}", api.String(), "{web}", web.String(), "{db}", db.String(),
		"{api-rev}", apiRev, "{db-rev-upper}", strings.ToUpper(dbRev),
		"{serial}", fmt.Sprint(uint32(c.view.Snapshot().Seq)))
}
