package main

import (
	"strings"
	"testing"

	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/node/nodeconfig"
)

// A cast warns of what an exposed service's own settings will make fail at
// the edge: a manual TLS secret that does not exist, and an ingress policy
// no edge client can pass (only CIDR peers admit requests through the
// ingress). Fixing either ends its warning.
func TestCastWarnsOfExposeThatWouldFail(t *testing.T) {
	rt, err := node.Acquire(nodeconfig.Config{DataDir: t.TempDir(), NodeName: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Release() })
	addr := rt.APIAddr()
	doc := func(rules string) string {
		return `service:
  name: api
  ports: [{name: http, port: 8080}, {name: admin, port: 9000}]
  expose:
    host: api.example.test
    port: http
    tls: {mode: manual, secret: api-tls}
  networkPolicy:
    ingress:
` + rules
	}
	const (
		servicesOnly  = "      - from: [{service: web}]\n"
		cidrOnOther   = "      - from: [{cidr: 0.0.0.0/0}]\n        ports: [admin]\n"
		cidrOnExposed = "      - from: [{service: web}]\n      - from: [{cidr: 0.0.0.0/0}]\n        ports: [http]\n"
		noSecret      = `warning: default/api exposes api.example.test with TLS secret "api-tls", which does not exist in namespace default`
		no403         = "warning: default/api exposes api.example.test, but its networkPolicy.ingress has no cidr peer on the exposed port"
	)
	for _, tc := range []struct {
		name, rules string
		secret      bool
		want        []string
	}{
		{"services only, no secret", servicesOnly, false, []string{noSecret, no403}},
		{"a cidr on another port", cidrOnOther, false, []string{noSecret, no403}},
		{"a cidr on the exposed port", cidrOnExposed, false, []string{noSecret}},
		{"and the secret exists", cidrOnExposed, true, nil},
	} {
		if tc.secret {
			cert, key, _ := selfSigned(t, "api.example.test")
			mustRun(t, addr, "secret", "tls", "create", "api-tls", "--cert", writeFile(t, "tls.crt", string(cert)), "--key", writeFile(t, "tls.key", string(key)))
		}
		out := mustRun(t, addr, "cast", writeFile(t, "api.yaml", doc(tc.rules)))
		if got := strings.Count(out, "warning:"); got != len(tc.want) {
			t.Errorf("%s: %d warnings, want %d:\n%s", tc.name, got, len(tc.want), out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: cast output lacks %q:\n%s", tc.name, w, out)
			}
		}
	}
}
