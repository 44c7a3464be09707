package ingress

import (
	"context"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
)

// A deleted service's rune_ingress_requests_total series go with its route.
func TestDeletedServiceDropsItsRequestSeries(t *testing.T) {
	n := newNode(t)
	port := startBackend(t, "gone-1", "127.0.0.1", 0)
	ing := startIngress(t, n, ACMEOptions{})
	n.cast(t, "gone", port, "gone.example.test", "")
	n.cast(t, "kept", port, "kept.example.test", "")
	n.addInstance(t, "gone", "gone-1", "127.0.0.1")
	n.addInstance(t, "kept", "kept-1", "127.0.0.2")
	waitRoute(t, ing, "gone.example.test", 1)
	c := client(ing.HTTPAddr(), nil)
	get(t, c, "http://gone.example.test/")
	get(t, c, "http://kept.example.test/")
	series := func(host string) float64 {
		return testkit.Metric(t, "rune_ingress_requests_total", map[string]string{"host": host})
	}
	if series("gone.example.test") == 0 || series("kept.example.test") == 0 {
		t.Fatal("requests were not counted")
	}
	if _, err := n.Ctl.DeleteService(context.Background(), cluster.NamespacedName{Namespace: "default", Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the deleted service's route to go", func() bool { return ing.table.Load().lookup("gone.example.test") == nil })
	if got := series("gone.example.test"); got != 0 {
		t.Fatalf("rune_ingress_requests_total still counts %v requests for the deleted service's host", got)
	}
	if series("kept.example.test") == 0 {
		t.Fatal("deleting one service dropped another's series")
	}
}

// A manual-TLS host's certificate expiry is exported while its route lives,
// and its series goes with the route.
func TestCertificateExpiryGauge(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	ca := newTestCA(t)
	port := startBackend(t, "exp-1", "127.0.0.1", 0)
	ing := startIngress(t, n, ACMEOptions{})
	notAfter := time.Now().Add(20 * 24 * time.Hour).Truncate(time.Second)
	certPEM, keyPEM := ca.issue(t, notAfter, "exp.example.test")
	if _, err := StoreTLSSecret(ctx, n.Log, "default", "exp-tls", certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	n.cast(t, "exp", port, "exp.example.test", "    tls:\n      mode: manual\n      secret: exp-tls\n")
	n.addInstance(t, "exp", "exp-1", "127.0.0.1")
	waitFor(t, 5*time.Second, "the manual certificate", func() bool { r, _ := statusOf(ing, "exp.example.test"); return r.Cert == CertReady })
	expiry := func() float64 {
		return testkit.Metric(t, "rune_acme_certificate_expiry_timestamp_seconds", map[string]string{"host": "exp.example.test"})
	}
	if got := expiry(); got != float64(notAfter.Unix()) {
		t.Fatalf("rune_acme_certificate_expiry_timestamp_seconds = %v, want the certificate's NotAfter %d", got, notAfter.Unix())
	}
	if _, err := n.Ctl.DeleteService(ctx, cluster.NamespacedName{Namespace: "default", Name: "exp"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the deleted service's route to go", func() bool { return ing.table.Load().lookup("exp.example.test") == nil })
	if got := expiry(); got != 0 {
		t.Fatalf("rune_acme_certificate_expiry_timestamp_seconds still %v for a host that has no route", got)
	}
}

// A proxied request is observed in rune_ingress_request_duration_seconds on
// the fast path and on the net/http path.
func TestRequestDurationObservedOnBothPaths(t *testing.T) {
	for _, mode := range servingPaths {
		t.Run(mode.name, func(t *testing.T) {
			sb := startScriptedBackend(t, "127.0.0.1")
			ing := setupTo(t, sb.port, Options{DisableFastPath: mode.off})
			observed := func() float64 {
				return testkit.Metric(t, "rune_ingress_request_duration_seconds", map[string]string{"host": fastHost})
			}
			before := observed()
			rc := dialRaw(t, ing.HTTPAddr())
			rc.send("GET / HTTP/1.1\r\nHost: " + fastHost + "\r\n\r\n")
			resp, _ := rc.read("GET")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if fast := resp.Status == "200 Fast"; fast == mode.off {
				t.Fatalf("status %q: not served by the path under test", resp.Status)
			}
			// Observed before the response's last flush, so already there.
			if got := observed() - before; got != 1 {
				t.Fatalf("%v requests observed, want 1", got)
			}
		})
	}
}
