package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/node/nodeconfig"
	"github.com/runenet/runenet/proxy"
)

// startRuned opens a real node runtime (Badger store, View, API on a unix
// socket) in a temp dir, as runed does.
func startRuned(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	rt, err := node.Acquire(nodeconfig.Config{DataDir: dir, NodeName: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Release() })
	return rt.APIAddr()
}

// run executes the CLI in-process and returns stdout and the error.
func run(t *testing.T, apiAddr string, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"--api", apiAddr}, args...))
	err := root.Execute()
	return out.String(), err
}

func mustRun(t *testing.T, apiAddr string, args ...string) string {
	t.Helper()
	out, err := run(t, apiAddr, args...)
	if err != nil {
		t.Fatalf("rune %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const apiYAML = `service:
  name: api
  image: ghcr.io/example/api:1.4.0
  ports:
    - name: http
      port: 8080
`

const webYAML = `service:
  name: web
  ports:
    - name: http
      port: 80
      targetPort: 8000
  networkPolicy:
    ingress:
      - from:
          - cidr: 10.0.0.0/8
`

func TestTour(t *testing.T) {
	addr := startRuned(t)
	apiFile, webFile := writeFile(t, "api.yaml", apiYAML), writeFile(t, "web.yaml", webYAML)

	out := mustRun(t, addr, "cast", apiFile, webFile)
	line := regexp.MustCompile(`(?m)^service/(api|web) \(default\) cast   vip (10\.96\.\d+\.\d+)$`)
	m := line.FindAllStringSubmatch(out, -1)
	if len(m) != 2 || m[0][2] == m[1][2] {
		t.Fatalf("cast output:\n%s", out)
	}
	apiVIP := m[0][2]

	if out := mustRun(t, addr, "cast", apiFile); !strings.Contains(out, "service/api (default) unchanged   vip "+apiVIP) {
		t.Fatalf("re-cast output:\n%s", out)
	}

	mustRun(t, addr, "instance", "register", "api-1", "--service", "api", "-n", "default", "--ip", "10.88.1.2", "--node", "node-1")
	mustRun(t, addr, "instance", "register", "api-2", "--service", "api", "--ip", "10.88.1.3", "--node", "node-1", "--ready=false")
	out = mustRun(t, addr, "get", "endpoints", "-n", "default")
	if !regexp.MustCompile(`(?m)^api\s+10\.88\.1\.2:8080$`).MatchString(out) || !regexp.MustCompile(`(?m)^web\s+<none>$`).MatchString(out) {
		t.Fatalf("get endpoints:\n%s", out)
	}
	mustRun(t, addr, "instance", "ready", "api-2")
	out = mustRun(t, addr, "get", "ep")
	if !strings.Contains(out, "10.88.1.2:8080,10.88.1.3:8080") {
		t.Fatalf("after ready:\n%s", out)
	}
	out = mustRun(t, addr, "get", "instances")
	if !regexp.MustCompile(`(?m)^api-2\s+api\s+node-1\s+10\.88\.1\.3\s+true\s`).MatchString(out) {
		t.Fatalf("get instances:\n%s", out)
	}

	out = mustRun(t, addr, "get", "services", "-A")
	if !regexp.MustCompile(`(?m)^NAMESPACE\s+NAME\s+VIP\s+PORTS\s+POLICY\s+EXPOSE\s+AGE$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^default\s+api\s+`+regexp.QuoteMeta(apiVIP)+`\s+http:8080/TCP\s+<none>\s+<none>\s+\d+s$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^default\s+web\s+\S+\s+http:80/TCP\s+ingress\s`).MatchString(out) {
		t.Fatalf("get services -A:\n%s", out)
	}

	var list struct {
		Items []struct {
			Status struct {
				VIP string `json:"vip"`
			} `json:"status"`
			Service struct {
				Name string `json:"name"`
			} `json:"service"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, addr, "get", "services", "-A", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.Items[0].Service.Name != "api" || list.Items[0].Status.VIP != apiVIP {
		t.Fatalf("json: %+v", list)
	}
	var y map[string]any
	if err := yaml.Unmarshal([]byte(mustRun(t, addr, "get", "svc", "-o", "yaml")), &y); err != nil || y["items"] == nil {
		t.Fatalf("yaml output does not parse: %v %v", err, y)
	}

	if out := mustRun(t, addr, "delete", "service", "web"); !strings.Contains(out, "service/web (default) deleted") {
		t.Fatalf("delete: %s", out)
	}
	if out := mustRun(t, addr, "get", "services"); strings.Contains(out, "web") {
		t.Fatalf("web still listed after delete:\n%s", out)
	}
	if out := mustRun(t, addr, "status"); !strings.Contains(out, "services:     1") || !strings.Contains(out, "cluster CIDR: 10.96.0.0/16") {
		t.Fatalf("status:\n%s", out)
	}
}

func TestFailuresExitWithAReason(t *testing.T) {
	addr := startRuned(t)
	bad := writeFile(t, "bad.yaml", "service:\n  name: api\n  netwrokPolicy: {}\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cast", bad}, `bad.yaml:3`},
		{[]string{"cast", "/no/such/file.yaml"}, "no such file"},
		{[]string{"delete", "service", "ghost"}, `service "default/ghost" not found`},
		{[]string{"instance", "ready", "ghost"}, `instance "ghost" not found`},
		{[]string{"instance", "register", "x", "--service", "api", "--ip", "nope", "--node", "n"}, `--ip "nope"`},
		{[]string{"get", "services", "-o", "xml"}, "unknown output format"},
		{[]string{"--api", "unix:///nonexistent/runed.sock", "status"}, "cannot reach runed"},
		{[]string{"--api", "ftp://x", "status"}, "want unix://"},
	} {
		out, err := run(t, addr, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("rune %s: got err %v (out %q), want one containing %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
}

// A dev-mode cast whose service port is one of the ingress's tells the user
// so, with the port-forward that reaches the service instead: on stderr
// after the table, or in the -o json document; rune status lists it too.
func TestCastWarnsOfDevPortClash(t *testing.T) {
	rt, err := node.Acquire(nodeconfig.Config{DataDir: t.TempDir(), NodeName: "node-1", DevMode: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Release() })
	// The data plane as the dataplane directive starts it beside an
	// ingress on 8080 (on its own loopback address here).
	devAddr := netip.MustParseAddr("127.0.99.7")
	dp, err := proxy.Start(rt.View(), proxy.DataplaneConfig{Proxy: proxy.Config{Dev: true, DevAddr: devAddr, Reserved: []uint16{8080, 8443}, Policy: rt.Policy}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	rt.SetWarner(dp.Proxy().ClashWarnings)

	want := "warning: default/api tcp port 8080: 127.0.99.7:8080 is reserved for the ingress; reach it with `rune port-forward -n default api 0:8080` (0: any free local port)\n"
	if out := mustRun(t, rt.APIAddr(), "cast", writeFile(t, "api.yaml", apiYAML)); !strings.Contains(out, want) {
		t.Errorf("cast output:\n%s\nwant the line\n%s", out, want)
	}
	var res struct{ Warnings []string }
	if err := json.Unmarshal([]byte(mustRun(t, rt.APIAddr(), "cast", "-o", "json", writeFile(t, "api.yaml", apiYAML))), &res); err != nil || len(res.Warnings) != 1 || "warning: "+res.Warnings[0]+"\n" != want {
		t.Errorf("cast -o json: warnings %q (%v), want the one above", res.Warnings, err)
	}
	if out := mustRun(t, rt.APIAddr(), "cast", writeFile(t, "web.yaml", webYAML)); strings.Contains(out, "warning") {
		t.Errorf("a cast without a clash warns:\n%s", out)
	}
	if out := mustRun(t, rt.APIAddr(), "status"); !strings.Contains(out, "warning:      default/api tcp port 8080: 127.0.99.7:8080 is reserved for the ingress") {
		t.Errorf("status does not show the clash:\n%s", out)
	}
}
