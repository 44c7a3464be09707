package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/ingress"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/node/nodeconfig"
)

// selfSigned returns PEM cert and key for host, and a second, unrelated key.
func selfSigned(t *testing.T, host string) (certPEM, keyPEM, otherKeyPEM []byte) {
	t.Helper()
	certPEM, keyPEM = testkit.SelfSigned(t, host, 90*24*time.Hour)
	_, otherKeyPEM = testkit.SelfSigned(t, host, time.Hour)
	return certPEM, keyPEM, otherKeyPEM
}

func TestIngressesAndTLSSecrets(t *testing.T) {
	dir := t.TempDir()
	rt, err := node.Acquire(nodeconfig.Config{DataDir: dir, NodeName: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Release()
	addr := rt.APIAddr()

	cert, key, otherKey := selfSigned(t, "api.example.test")
	certFile, keyFile, otherFile := writeFile(t, "tls.crt", string(cert)), writeFile(t, "tls.key", string(key)), writeFile(t, "other.key", string(otherKey))
	tail := rt.Log().Tail()
	if _, err := run(t, addr, "secret", "tls", "create", "api-tls", "--cert", certFile, "--key", otherFile); err == nil || !strings.Contains(err.Error(), "key") {
		t.Fatalf("mismatched key: %v, want a refusal", err)
	}
	if rt.Log().Tail() != tail {
		t.Fatal("a refused secret was written")
	}
	if out := mustRun(t, addr, "secret", "tls", "create", "api-tls", "--cert", certFile, "--key", keyFile); !strings.Contains(out, "secret/api-tls (default) created") {
		t.Fatalf("secret create: %s", out)
	}

	// Not an edge node yet: the cluster's ingresses as the log has them,
	// served by no edge node.
	mustRun(t, addr, "cast", writeFile(t, "api.yaml", apiYAML+"  expose:\n    host: api.example.test\n    port: http\n    tls:\n      mode: manual\n      secret: api-tls\n"))
	logRow := regexp.MustCompile(`(?m)^api\s+api\.example\.test\s+manual\s+ready\s+(89|90)d\s+-\s+-$`)
	var out string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !logRow.MatchString(out); time.Sleep(50 * time.Millisecond) {
		out = mustRun(t, addr, "get", "ingresses")
	}
	if !logRow.MatchString(out) {
		t.Fatalf("get ingresses on a node without an ingress:\n%s", out)
	}

	ing, err := ingress.New(rt.Log(), rt.View(), ingress.Options{HTTPAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", NodeName: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ing.Start(); err != nil {
		t.Fatal(err)
	}
	defer ing.Close()
	rt.SetIngress(ing)
	defer rt.SetIngress(nil)
	mustRun(t, addr, "cast", writeFile(t, "api.yaml", apiYAML+"  expose:\n    host: api.example.test\n    port: http\n    tls:\n      mode: manual\n      secret: api-tls\n"))
	row := regexp.MustCompile(`(?m)^api\s+api\.example\.test\s+manual\s+ready\s+(89|90)d\s+node-1\s+-$`)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		out = mustRun(t, addr, "get", "ingresses")
		if row.MatchString(out) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !regexp.MustCompile(`(?m)^SERVICE\s+HOST\s+TLS\s+CERT\s+EXPIRES\s+EDGES\s+REASON$`).MatchString(out) || !row.MatchString(out) {
		t.Fatalf("get ingresses:\n%s", out)
	}
	// -o wide names the certificate: a self-signed one is its own issuer.
	if out := mustRun(t, addr, "get", "ingresses", "-o", "wide"); !regexp.MustCompile(`(?m)^SERVICE\s+HOST\s+TLS\s+CERT\s+EXPIRES\s+EDGES\s+REASON\s+ISSUER\s+SERIAL\s+ORDERING$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^api\s+api\.example\.test\s+manual\s+ready\s+(89|90)d\s+node-1\s+-\s+api\.example\.test\s+1\s+-$`).MatchString(out) {
		t.Fatalf("get ingresses -o wide:\n%s", out)
	}
	if out := mustRun(t, addr, "get", "ing", "-o", "json"); !strings.Contains(out, `"host": "api.example.test"`) {
		t.Fatalf("json: %s", out)
	}

	// Why a certificate is in error shows in the table, not only in -o json.
	mustRun(t, addr, "cast", writeFile(t, "other.yaml", "service:\n  name: other\n  ports:\n    - port: 80\n  expose:\n    host: other.example.test\n    tls:\n      mode: manual\n      secret: api-tls\n"))
	bad := regexp.MustCompile(`(?m)^other\s+other\.example\.test\s+manual\s+error\s+-\s+node-1\s+the certificate in secret api-tls \(api\.example\.test\) does not cover other\.example\.test$`)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		// Until the ingress has the route, the name is not found.
		if out, _ = run(t, addr, "get", "ingresses", "other"); bad.MatchString(out) {
			break
		}
	}
	if !bad.MatchString(out) {
		t.Fatalf("get ingresses other:\n%s", out)
	}
}

func TestSecrets(t *testing.T) {
	addr := startRuned(t)
	cert, key, otherKey := selfSigned(t, "api.example.test")
	cert2, key2, _ := selfSigned(t, "api.example.test")
	certFile, keyFile := writeFile(t, "tls.crt", string(cert)), writeFile(t, "tls.key", string(key))
	_, err := run(t, addr, "secret", "tls", "create", "api-tls", "--cert", certFile, "--key", writeFile(t, "other.key", string(otherKey)))
	if err == nil || strings.Count(err.Error(), "default/api-tls") != 1 {
		t.Errorf("mismatched key: %v, want the secret named once", err)
	}
	for i, want := range []string{"created", "unchanged", "configured"} {
		c, k := certFile, keyFile
		if i == 2 {
			c, k = writeFile(t, "tls2.crt", string(cert2)), writeFile(t, "tls2.key", string(key2))
		}
		if out := mustRun(t, addr, "secret", "tls", "create", "api-tls", "--cert", c, "--key", k); out != "secret/api-tls (default) "+want+"\n" {
			t.Errorf("create #%d: %q, want %s", i+1, out, want)
		}
	}
	out := mustRun(t, addr, "get", "secrets")
	if !regexp.MustCompile(`(?m)^NAME\s+TYPE\s+HOSTS\s+EXPIRES$`).MatchString(out) || !regexp.MustCompile(`(?m)^api-tls\s+tls\s+api\.example\.test\s+\d{4}-\d\d-\d\d$`).MatchString(out) {
		t.Errorf("get secrets:\n%s", out)
	}
	if out := mustRun(t, addr, "get", "secret", "api-tls", "-o", "yaml"); strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, "CERTIFICATE") || !strings.Contains(out, "name: api-tls") {
		t.Errorf("get secret -o yaml shows key material or no name:\n%s", out)
	}
	if out := mustRun(t, addr, "delete", "secret", "api-tls"); out != "secret/api-tls (default) deleted\n" {
		t.Errorf("delete secret: %q", out)
	}
	if _, err := run(t, addr, "delete", "secret", "api-tls"); err == nil || err.Error() != `secret "default/api-tls" not found` {
		t.Errorf("delete a missing secret: %v", err)
	}
	if out := mustRun(t, addr, "get", "secrets", "-o", "json"); !strings.Contains(out, `"items": []`) {
		t.Errorf("no secrets: %s", out)
	}
}
