package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A service with every kind of field a get must print back castable: named
// and numbered policy ports, peers, a deny-all direction, an expose block.
const shopYAML = `service:
  name: shop
  image: ghcr.io/example/shop:2
  scale: 2
  ports:
    - name: http
      port: 80
      targetPort: 8000
    - port: 9090
      protocol: udp
  networkPolicy:
    ingress:
      - from:
          - service: web
          - cidr: 10.0.0.0/8
        ports: [http, 9090]
    egress: []
  expose:
    host: shop.example.test
    port: http
`

// runIn is run with stdin.
func runIn(t *testing.T, apiAddr, stdin string, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"--api", apiAddr}, args...))
	err := root.Execute()
	return out.String(), err
}

func TestGetOneByName(t *testing.T) {
	addr := startRuned(t)
	mustRun(t, addr, "cast", writeFile(t, "api.yaml", apiYAML), writeFile(t, "web.yaml", webYAML))
	mustRun(t, addr, "instance", "register", "api-1", "--service", "api", "--ip", "10.88.1.2", "--node", "node-1")

	for _, tc := range []struct {
		args []string
		row  string
	}{
		{[]string{"get", "services", "api"}, `^api\s+10\.96\.\d+\.\d+\s+http:8080/TCP\s`},
		{[]string{"get", "svc", "web", "-n", "default"}, `^web\s+10\.96\.`},
		{[]string{"get", "endpoints", "api"}, `^api\s+10\.88\.1\.2:8080$`},
		{[]string{"get", "instances", "api-1"}, `^api-1\s+api\s+node-1\s+10\.88\.1\.2\s+true\s`},
		{[]string{"get", "policies", "web"}, `^web\s+1 rule\s+<none>\s+in\[0\] from 10\.0\.0\.0/8$`},
	} {
		out := mustRun(t, addr, tc.args...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !regexp.MustCompile(tc.row).MatchString(lines[1]) {
			t.Errorf("rune %s:\n%s", strings.Join(tc.args, " "), out)
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "services", "ghost"}, `service "default/ghost" not found`},
		{[]string{"get", "services", "api", "-n", "prod"}, `service "prod/api" not found`},
		{[]string{"get", "endpoints", "ghost"}, `endpoints "default/ghost" not found`},
		{[]string{"get", "instances", "ghost"}, `instance "default/ghost" not found`},
		{[]string{"get", "policies", "api"}, `policy "default/api" not found`},
		{[]string{"delete", "service", "ghost"}, `service "default/ghost" not found`},
		{[]string{"instance", "ready", "ghost"}, `instance "ghost" not found`},
		{[]string{"instance", "unready", "api-1", "-n", "prod"}, `instance "prod/api-1" not found`},
		{[]string{"instance", "deregister", "api-1", "-n", "prod"}, `instance "prod/api-1" not found`},
		{[]string{"instance", "register", "x", "--service", "ghost", "--ip", "10.88.1.9", "--node", "n"}, `service "default/ghost" not found`},
	} {
		if _, err := run(t, addr, tc.args...); err == nil || err.Error() != tc.want && !strings.HasPrefix(err.Error(), tc.want+":") {
			t.Errorf("rune %s: %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	// Found and missing names together: the found ones print, the exit fails.
	out, err := run(t, addr, "get", "svc", "api", "ghost", "-o", "name")
	if out != "service/api\n" || err == nil || !strings.Contains(err.Error(), `service "default/ghost" not found`) {
		t.Errorf("get svc api ghost: %q, %v", out, err)
	}
	if out := mustRun(t, addr, "instance", "unready", "api-1", "-n", "default"); out != "instance/api-1 unready\n" {
		t.Errorf("instance unready -n default: %q", out)
	}
}

func TestGetOutputFormats(t *testing.T) {
	addr := startRuned(t)
	mustRun(t, addr, "cast", writeFile(t, "shop.yaml", shopYAML), writeFile(t, "api.yaml", apiYAML))

	if out := mustRun(t, addr, "get", "svc", "-o", "name"); out != "service/api\nservice/shop\n" {
		t.Errorf("-o name: %q", out)
	}
	out := mustRun(t, addr, "get", "svc", "shop", "-o", "wide")
	if !regexp.MustCompile(`(?m)^NAME\s+VIP\s+PORTS\s+POLICY\s+EXPOSE\s+AGE\s+TARGETS\s+IMAGE$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^shop\s.*\s8000,9090\s+ghcr\.io/example/shop:2$`).MatchString(out) {
		t.Errorf("-o wide:\n%s", out)
	}
	for _, kind := range []string{"services", "endpoints", "instances", "policies", "secrets", "nodes"} {
		for _, o := range outputFormats {
			if _, err := run(t, addr, "get", kind, "-o", o); err != nil {
				t.Errorf("get %s -o %s: %v", kind, o, err)
			}
		}
	}

	// What get prints of one service, or of all, casts again unchanged.
	for _, args := range [][]string{
		{"get", "service", "shop", "-o", "yaml"},
		{"get", "service", "shop", "-o", "json"},
		{"get", "services", "-o", "yaml"},
		{"get", "services", "-o", "json"},
	} {
		doc := mustRun(t, addr, args...)
		if strings.Contains(doc, "hasIngress") || strings.Contains(doc, "hasEgress") || strings.Contains(doc, "null") {
			t.Errorf("rune %s shows internal fields or nulls:\n%s", strings.Join(args, " "), doc)
		}
		out, err := runIn(t, addr, doc, "cast", "-f", "-")
		if err != nil || strings.Count(out, " unchanged ") != strings.Count(doc, "vip") {
			t.Errorf("rune %s | rune cast -f -: %v\n%s\nof:\n%s", strings.Join(args, " "), err, out, doc)
		}
	}
	doc := mustRun(t, addr, "get", "svc", "shop", "-o", "yaml")
	for _, want := range []string{"service:\n  name: shop\n  namespace: default\n", "    egress: []\n", "        ports:\n          - http\n          - 9090\n", "status:\n  vip: 10.96."} {
		if !strings.Contains(doc, want) {
			t.Errorf("get svc shop -o yaml lacks %q:\n%s", want, doc)
		}
	}
	// A service with no endpoints lists them as [], never null.
	var ep struct {
		Addresses []any `json:"addresses"`
	}
	raw := mustRun(t, addr, "get", "ep", "shop", "-o", "json")
	if err := json.Unmarshal([]byte(raw), &ep); err != nil || ep.Addresses == nil {
		t.Errorf("get ep shop -o json: %v\n%s", err, raw)
	}
	if out := mustRun(t, addr, "get", "secrets"); out != "No secrets found in namespace default.\n" {
		t.Errorf("get secrets with none: %q", out)
	}
	if out := mustRun(t, addr, "get", "instances", "-A"); out != "No instances found.\n" {
		t.Errorf("get instances -A with none: %q", out)
	}
	if _, err := run(t, addr, "get", "svc", "-o", "xml"); err == nil || !strings.Contains(err.Error(), "use table, wide, name, json, yaml") {
		t.Errorf("-o xml: %v", err)
	}
}

func TestCastFilesAndNamespace(t *testing.T) {
	addr := startRuned(t)
	if _, err := run(t, addr, "cast"); err == nil || !strings.Contains(err.Error(), "rune cast FILE..., rune cast -f FILE|DIR, or - for standard input") {
		t.Errorf("cast with no files: %v", err)
	}

	dir := t.TempDir()
	for name, data := range map[string]string{"api.yaml": apiYAML, "web.yml": webYAML, "README.md": "not a spec", "sub/x.yaml": "broken: ["} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := mustRun(t, addr, "cast", "-f", dir, "-n", "staging")
	if !strings.Contains(out, "service/api (staging) cast") || !strings.Contains(out, "service/web (staging) cast") {
		t.Errorf("cast -f DIR -n staging:\n%s", out)
	}
	if out := mustRun(t, addr, "get", "svc", "-A", "-o", "name"); out != "service/api\nservice/web\n" {
		t.Errorf("only staging should have services: %q", out)
	}
	if out, err := runIn(t, addr, apiYAML, "cast", "-", "--namespace", "dev"); err != nil || !strings.Contains(out, "service/api (dev) cast") {
		t.Errorf("cast - -n dev: %v %s", err, out)
	}

	prod := writeFile(t, "prod.yaml", "service:\n  name: db\n  namespace: prod\n")
	if _, err := run(t, addr, "cast", "-f", prod, "-n", "staging"); err == nil || !strings.Contains(err.Error(), `prod.yaml:3:14: service.namespace: is "prod", but the cast is into namespace "staging"`) {
		t.Errorf("cast of another namespace: %v", err)
	}
	if _, err := run(t, addr, "cast", prod, "-n", "Bad_NS"); err == nil || !strings.Contains(err.Error(), `namespace "Bad_NS" is not a valid DNS-1123 label`) {
		t.Errorf("cast -n Bad_NS: %v", err)
	}
	if _, err := run(t, addr, "get", "svc", "db", "-n", "prod"); err == nil {
		t.Error("a refused cast was written")
	}
	mustRun(t, addr, "instance", "register", "api-1", "--service", "api", "-n", "staging", "--ip", "10.88.1.2", "--node", "node-1")
	if out := mustRun(t, addr, "instance", "deregister", "api-1", "-n", "staging"); out != "instance/api-1 deregistered\n" {
		t.Errorf("deregister -n staging: %q", out)
	}
}

func TestUnknownCommandsAndKindsFail(t *testing.T) {
	addr := startRuned(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "foo"}, `unknown kind "foo" for rune get`},
		{[]string{"get", "service"}, ""}, // an alias: fine
		{[]string{"get", "servces"}, `(did you mean "services"?)`},
		{[]string{"get"}, "rune get needs a kind: endpoints, ingresses, instances, nodes, policies, secrets, services"},
		{[]string{"delete", "foo", "x"}, `unknown kind "foo" for rune delete`},
		{[]string{"secret", "tls", "delete", "x"}, `unknown command "delete" for rune secret tls; use one of: create`},
		{[]string{"instance"}, "rune instance needs a command"},
		{[]string{"debug", "nope"}, `unknown command "nope" for rune debug`},
		{[]string{"policy"}, "rune policy needs a command"},
		{[]string{"nope"}, `unknown command "nope" for "rune"`},
		{[]string{"completion"}, "rune completion needs a shell: bash, fish, powershell, zsh"},
		{[]string{"completion", "tcsh"}, `unknown shell "tcsh" for rune completion`},
	} {
		_, err := run(t, addr, tc.args...)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("rune %s: %v", strings.Join(tc.args, " "), err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("rune %s: %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}
