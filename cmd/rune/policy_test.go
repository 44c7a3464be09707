package main

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/policy"
)

const policyYAML = `service:
  name: api
  ports:
    - {name: http, port: 8080}
    - {name: dns, port: 5353, protocol: udp}
  networkPolicy:
    ingress:
      - from: [{service: web}, {service: worker, namespace: jobs}, {cidr: 10.0.0.0/8}]
        ports: [http]
    egress: []
---
service:
  name: web
  ports: [{port: 80}]
---
service:
  name: worker
  namespace: jobs
  networkPolicy:
    egress:
      - to: [{service: api, namespace: default}]
`

// startPolicyRuned is startRuned with the policy engine the netpolicy
// directive would run.
func startPolicyRuned(t *testing.T) string {
	t.Helper()
	addr := startRuned(t)
	rt, err := node.Attach("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	e := policy.NewEngine(rt.View(), "node-1", policy.EngineOptions{})
	go func() { defer close(done); e.Run(ctx) }()
	rt.SetPolicy(e)
	t.Cleanup(func() { rt.SetPolicy(nil); cancel(); <-done; rt.Release() })
	mustRun(t, addr, "cast", writeFile(t, "svc.yaml", policyYAML))
	return addr
}

func TestGetPolicies(t *testing.T) {
	addr := startPolicyRuned(t)
	out := mustRun(t, addr, "get", "policies")
	for _, re := range []string{
		`(?m)^SERVICE\s+INGRESS\s+EGRESS\s+RULES$`,
		`(?m)^api\s+1 rule\s+deny all\s+in\[0\] from web,worker\.jobs,10\.0\.0\.0/8 ports http$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("get policies: no line matching %s in\n%s", re, out)
		}
	}
	if regexp.MustCompile(`(?m)^web\s`).MatchString(out) {
		t.Errorf("web has no policy but is listed:\n%s", out)
	}
	out = mustRun(t, addr, "get", "netpol", "-A")
	if !regexp.MustCompile(`(?m)^NAMESPACE\s+SERVICE\s+INGRESS\s+EGRESS\s+RULES$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^jobs\s+worker\s+<none>\s+1 rule\s+eg\[0\] to api\.default$`).MatchString(out) {
		t.Errorf("get netpol -A:\n%s", out)
	}
	var list struct{ Items []struct{ Service string } }
	if err := json.Unmarshal([]byte(mustRun(t, addr, "get", "policies", "-A", "-o", "json")), &list); err != nil || len(list.Items) != 2 {
		t.Errorf("json: %+v %v", list, err)
	}
}

func TestPolicyCheck(t *testing.T) {
	addr := startPolicyRuned(t)
	for _, tc := range []struct {
		args []string
		want string
		err  error
	}{
		{[]string{"--from", "web.default", "--to", "api.default:8080"}, "allowed: rule 0 of default/api ingress (from service web.default on http 8080/tcp)\n", nil},
		{[]string{"--from", "worker.jobs", "--to", "api:http"}, "allowed: rule 0 of default/api ingress (from service worker.jobs on http 8080/tcp)\n", nil},
		{[]string{"--from", "10.1.2.3", "--to", "api:http"}, "allowed: rule 0 of default/api ingress (from 10.1.2.3 on http 8080/tcp)\n", nil},
		{[]string{"--from", "192.168.0.1", "--to", "api:8080"}, "denied: default deny of default/api ingress (no rule matches from 192.168.0.1 on http 8080/tcp)\n", errDenied},
		{[]string{"--from", "web", "--to", "api:dns"}, "denied: default deny of default/api ingress (no rule matches from service web.default on dns 5353/udp)\n", errDenied},
		{[]string{"--from", "worker.jobs", "--to", "web:80"}, "denied: default deny of jobs/worker egress (no rule matches to service web.default on 80/tcp)\n", errDenied},
		{[]string{"--from", "api", "--to", "web"}, "denied: default deny of default/api egress (no rule matches to service web.default on 80/tcp)\n", errDenied},
		{[]string{"--from", "web", "--to", "worker.jobs"}, "", errors.New(`service jobs/worker has no port ""`)},
		{[]string{"--from", "ghost", "--to", "api:http"}, "", errors.New(`service "default/ghost" not found`)},
		{[]string{"--to", "api:http"}, "", errors.New("needs --from and --to")},
		// -n qualifies the bare names, as kubectl's -n does.
		{[]string{"-n", "jobs", "--from", "worker", "--to", "web.default:80"}, "denied: default deny of jobs/worker egress (no rule matches to service web.default on 80/tcp)\n", errDenied},
		{[]string{"-n", "jobs", "--from", "10.1.2.3", "--to", "api:http"}, "", errors.New(`service "jobs/api" not found`)},
	} {
		out, err := run(t, addr, append([]string{"policy", "check"}, tc.args...)...)
		switch {
		case tc.err == nil && err != nil, tc.err == errDenied && err != errDenied,
			tc.err != nil && tc.err != errDenied && (err == nil || !strings.Contains(err.Error(), tc.err.Error())):
			t.Errorf("rune policy check %s: error %v, want %v", strings.Join(tc.args, " "), err, tc.err)
		case out != tc.want:
			t.Errorf("rune policy check %s:\n got %q\nwant %q", strings.Join(tc.args, " "), out, tc.want)
		}
	}

	out, err := run(t, addr, "policy", "check", "--from", "web", "--to", "api:http", "-o", "json")
	var res struct {
		Allowed bool
		Rule    int
		Policy  string
	}
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || !res.Allowed || res.Policy != "default/api" || res.Rule != 0 {
		t.Errorf("-o json: %v %q", err, out)
	}
}

func TestPolicyCheckNeedsNetpolicy(t *testing.T) {
	addr := startRuned(t)
	mustRun(t, addr, "cast", writeFile(t, "svc.yaml", policyYAML))
	if _, err := run(t, addr, "policy", "check", "--from", "web", "--to", "api:http"); err == nil || !strings.Contains(err.Error(), "network policy is not enabled on this node") {
		t.Errorf("without netpolicy: %v", err)
	}
}
