package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/runenet/runenet/api"
	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/orderedlog/badger"
	"github.com/runenet/runenet/policy"
)

const policyDocs = `service:
  name: api
  ports:
    - {name: http, port: 8080}
    - {name: metrics, port: 9090}
    - {name: dns, port: 5353, protocol: udp}
  networkPolicy:
    ingress:
      - from: [{service: web}]
        ports: [http]
      - from: [{cidr: 10.0.0.0/8}]
---
service:
  name: web
  ports: [{port: 80}]
  networkPolicy:
    egress:
      - to: [{service: api}]
        ports: [8080, 5353]
---
service:
  name: other
  namespace: jobs
  ports: [{port: 80}]
`

// policyServer runs the API with a real policy engine (or none), as the node
// runtime hands it to the API, over a cluster holding policyDocs and
// instances on node n1 (the API's) and on n2. It returns a client and the server's URL.
func policyServer(t *testing.T, withEngine bool) (*api.Client, string) {
	t.Helper()
	k := testkit.NewCluster(t, "10.96.0.0/16", badger.Options{}, cluster.ViewOptions{})
	k.Cast(t, policyDocs)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, in := range []cluster.Instance{
		{ID: "web-1", Service: "web", Namespace: "default", Node: "n1", IP: netip.MustParseAddr("172.30.0.2"), Ready: true},
		{ID: "other-1", Service: "other", Namespace: "jobs", Node: "n1", IP: netip.MustParseAddr("172.30.0.3"), Ready: true},
		// Instances on another node: the checks answer for them too.
		{ID: "web-2", Service: "web", Namespace: "default", Node: "n2", IP: netip.MustParseAddr("172.30.1.2"), Ready: true},
		{ID: "other-2", Service: "other", Namespace: "jobs", Node: "n2", IP: netip.MustParseAddr("172.30.1.3"), Ready: true},
	} {
		if _, err := k.Ctl.RegisterInstance(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	srv := &api.Server{Controller: k.Ctl, View: k.View, Log: k.Log}
	if withEngine {
		e := policy.NewEngine(k.View, "n1", policy.EngineOptions{})
		go e.Run(ctx)
		srv.Policy = func() api.Policy { return node.PolicyAPI(e) }
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	c, err := api.NewClient(hs.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	return c, hs.URL
}

func TestPolicyCheck(t *testing.T) {
	c, _ := policyServer(t, true)
	for _, tc := range []struct {
		from, to, port string
		proto          cluster.Protocol
		allowed        bool
		direction      string
		rule           int
		explanation    string
	}{
		{"web.default", "api.default", "http", "", true, "ingress", 0, "rule 0 of default/api ingress (from service web.default on http 8080/tcp)"},
		{"web", "api", "8080", "", true, "ingress", 0, "rule 0 of default/api ingress"},
		{"172.30.0.2", "api", "http", "", true, "ingress", 0, "(from 172.30.0.2 (instance web-1 of service web.default on node n1) on http 8080/tcp)"},
		// web's instance on n2 has web's identity here too, and web's egress.
		{"172.30.1.2", "api", "http", "", true, "ingress", 0, "(from 172.30.1.2 (instance web-2 of service web.default on node n2) on http 8080/tcp)"},
		{"172.30.1.2", "api", "metrics", "", false, "egress", -1, "default deny of default/web egress"},
		{"172.30.1.2", "other.jobs", "80", "", false, "egress", -1, "default deny of default/web egress"},
		{"172.30.1.3", "api", "http", "", false, "ingress", -1, "default deny of default/api ingress (no rule matches from 172.30.1.3 (instance other-2 of service other.jobs on node n2)"},
		{"10.1.2.3", "api", "metrics", "", true, "ingress", 1, "rule 1 of default/api ingress"},
		{"other.jobs", "api", "http", "", false, "ingress", -1, "default deny of default/api ingress (no rule matches from service other.jobs on http 8080/tcp)"},
		{"172.30.0.3", "api.default", "8080", "tcp", false, "ingress", -1, "default deny of default/api ingress"},
		{"192.168.1.1", "api", "http", "", false, "ingress", -1, "default deny of default/api ingress"},
		// The source's egress is judged first: web may reach api on 8080
		// and 5353 only.
		{"web", "api", "metrics", "", false, "egress", -1, "default deny of default/web egress (no rule matches to service api.default on metrics 9090/tcp)"},
		{"web", "other.jobs", "", "", false, "egress", -1, "default deny of default/web egress (no rule matches to service other.jobs on 80/tcp)"},
		{"172.30.0.2", "other.jobs", "80", "", false, "egress", -1, "default deny of default/web egress"},
		// Egress allows, and api's ingress has no rule for dns from web.
		{"web", "api", "dns", "", false, "ingress", -1, "on dns 5353/udp"},
		{"10.9.9.9", "api", "5353", "udp", true, "ingress", 1, "rule 1 of default/api ingress"},
		// No policy on either side.
		{"other.jobs", "web", "80", "", true, "", -1, "no policy applies"},
		// An address that is no instance here has no egress policy.
		{"10.1.2.3", "web", "", "", true, "", -1, "no policy applies"},
	} {
		res, err := c.CheckPolicy(context.Background(), api.PolicyCheckRequest{From: tc.from, To: tc.to, Port: api.PortSpec(tc.port), Protocol: tc.proto})
		if err != nil {
			t.Errorf("%s → %s:%s: %v", tc.from, tc.to, tc.port, err)
			continue
		}
		if res.Allowed != tc.allowed || res.Direction != tc.direction || res.Rule != tc.rule || !strings.Contains(res.Explanation, tc.explanation) {
			t.Errorf("%s → %s:%s: got %+v\nwant allowed=%v direction=%q rule=%d explanation containing %q",
				tc.from, tc.to, tc.port, res, tc.allowed, tc.direction, tc.rule, tc.explanation)
		}
	}
}

func TestPolicyCheckErrors(t *testing.T) {
	c, url := policyServer(t, true)
	for _, tc := range []struct {
		req    api.PolicyCheckRequest
		status int
		msg    string
	}{
		{api.PolicyCheckRequest{From: "web", To: "nope"}, http.StatusNotFound, `service "default/nope" not found`},
		{api.PolicyCheckRequest{From: "ghost.default", To: "api", Port: "http"}, http.StatusNotFound, `service "default/ghost" not found`},
		{api.PolicyCheckRequest{From: "web", To: "api", Port: "1234"}, http.StatusBadRequest, `service default/api has no port "1234" (ports: http 8080/tcp, metrics 9090/tcp, dns 5353/udp)`},
		{api.PolicyCheckRequest{From: "web", To: "api", Port: "http", Protocol: "udp"}, http.StatusBadRequest, `no port "http/udp"`},
		{api.PolicyCheckRequest{From: "web", To: "api"}, http.StatusBadRequest, "has several ports"},
		{api.PolicyCheckRequest{From: "web", To: "api", Port: "http", Protocol: "sctp"}, http.StatusBadRequest, "want tcp or udp"},
		{api.PolicyCheckRequest{From: "a.b.c", To: "api", Port: "http"}, http.StatusBadRequest, "want SERVICE.NAMESPACE"},
	} {
		_, err := c.CheckPolicy(context.Background(), tc.req)
		var ae *api.APIError
		if !errors.As(err, &ae) || ae.Status != tc.status || !strings.Contains(ae.Msg, tc.msg) {
			t.Errorf("%+v: got %v, want %d with %q", tc.req, err, tc.status, tc.msg)
		}
	}

	// A port may be sent as a JSON number too.
	resp, err := http.Post(url+"/v1/policy/check", "application/json", strings.NewReader(`{"from": "web", "to": "api", "port": 8080}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("numeric port: status %d", resp.StatusCode)
	}
}

func TestPolicyCheckWithoutEngine(t *testing.T) {
	c, _ := policyServer(t, false)
	_, err := c.CheckPolicy(context.Background(), api.PolicyCheckRequest{From: "web", To: "api", Port: "http"})
	var ae *api.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || !strings.Contains(ae.Msg, "not enabled on this node") {
		t.Fatalf("without an engine: %v, want 503 not enabled", err)
	}
	// Listing reads the cluster state, so it works on any node.
	list, err := c.Policies(context.Background(), "")
	if err != nil || len(list.Items) != 2 {
		t.Fatalf("policies: %+v, %v", list, err)
	}
}

func TestListPolicies(t *testing.T) {
	c, _ := policyServer(t, true)
	list, err := c.Policies(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range list.Items {
		got = append(got, it.Namespace+"/"+it.Service)
		if it.Service == "api" && (!it.Policy.HasIngress || it.Policy.HasEgress || len(it.Policy.Ingress) != 2) {
			t.Errorf("api policy: %+v", it.Policy)
		}
	}
	if strings.Join(got, ",") != "default/api,default/web" {
		t.Errorf("policies in default: %v", got)
	}
	if list, err := c.Policies(context.Background(), "jobs"); err != nil || len(list.Items) != 0 {
		t.Errorf("policies in jobs (other has none): %+v, %v", list, err)
	}
}
