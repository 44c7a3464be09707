package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDevIngressOwnsItsPorts runs runed --dev-mode (an edge node: the
// ingress on 8080/8443) with a service on 8080, the product description's
// own example. The ingress's ports are reserved: the service gets no
// listener of its own whether it is cast while runed runs or is already in
// the store when runed starts (where the data plane used to bind 8080 first
// and runed exited). runed starts either way, the ingress answers on 8080,
// and the clash is in the cast's output (with the port-forward hint), in
// rune status, in runed's log and in rune_proxy_dev_port_clashes.
func TestDevIngressOwnsItsPorts(t *testing.T) {
	n := newDNSNode(t, "--dev-mode")
	n.start(t)
	n.waitReady(t)

	f := filepath.Join(t.TempDir(), "api.yaml")
	if err := os.WriteFile(f, []byte("service:\n  name: api\n  ports: [{name: http, port: 8080}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := n.cli(t, "cast", f)
	const warning = "warning: default/api tcp port 8080: 127.0.0.1:8080 is reserved for the ingress; reach it with `rune port-forward -n default api 0:8080`"
	if !strings.Contains(out, warning) {
		t.Errorf("cast output:\n%s\nwant the warning %q", out, warning)
	}
	check := func(when string) {
		t.Helper()
		// The ingress answers a host it has no route for with 404; the data
		// plane would have reset (api has no endpoints).
		if code, body := n.httpGet(t, "http://127.0.0.1:8080/"); code != 404 || !strings.Contains(body, "404 page not found") {
			t.Errorf("%s: 127.0.0.1:8080 answered %d %q, want the ingress's 404", when, code, body)
		}
		if _, metrics := n.httpGet(t, "http://127.0.0.1:9100/metrics"); !strings.Contains(metrics, "\nrune_proxy_dev_port_clashes 1\n") {
			t.Errorf("%s: rune_proxy_dev_port_clashes is not 1", when)
		}
		if !strings.Contains(n.log.String(), "is reserved for the ingress") {
			t.Errorf("%s: runed's log does not report the clash", when)
		}
		if out := n.cli(t, "status"); !strings.Contains(out, "warning:      default/api tcp port 8080: 127.0.0.1:8080 is reserved for the ingress") {
			t.Errorf("%s: rune status does not report the clash:\n%s", when, out)
		}
	}
	check("cast while running")

	n.stop(t)
	n.start(t)
	n.waitReady(t)
	check("restart with api in the store")
}

// waitReady polls /ready (runed's default ready address) until it answers
// 200; a runed that exited never does.
func (n *dnsNode) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _, err := n.tryGet(t, "http://127.0.0.1:8181/ready"); err == nil && code == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("runed not ready within 30s; its output:\n%s", n.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
