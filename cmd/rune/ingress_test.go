package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/ingress"
	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/node/nodeconfig"
)

// selfSigned returns PEM cert and key for host, and a second, unrelated key.
func selfSigned(t *testing.T, host string) (certPEM, keyPEM, otherKeyPEM []byte) {
	t.Helper()
	keyOf := func() (*ecdsa.PrivateKey, []byte) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	k, keyPEM := keyOf()
	_, otherKeyPEM = keyOf()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, otherKeyPEM
}

func TestIngressesAndTLSSecrets(t *testing.T) {
	dir := t.TempDir()
	rt, err := node.Acquire(nodeconfig.Config{DataDir: dir, NodeName: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Release()
	addr := rt.APIAddr()

	// Not an edge node yet: a clear refusal.
	if _, err := run(t, addr, "get", "ingresses"); err == nil || !strings.Contains(err.Error(), "edge") {
		t.Fatalf("get ingresses without an ingress: %v", err)
	}

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

	ing, err := ingress.New(rt.Log(), rt.View(), ingress.Options{HTTPAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0"})
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
	row := regexp.MustCompile(`(?m)^api\s+api\.example\.test\s+manual\s+ready\s+(89|90)d\s+-$`)
	deadline := time.Now().Add(5 * time.Second)
	var out string
	for time.Now().Before(deadline) {
		out = mustRun(t, addr, "get", "ingresses")
		if row.MatchString(out) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !regexp.MustCompile(`(?m)^SERVICE\s+HOST\s+TLS\s+CERT\s+EXPIRES\s+REASON$`).MatchString(out) || !row.MatchString(out) {
		t.Fatalf("get ingresses:\n%s", out)
	}
	if out := mustRun(t, addr, "get", "ing", "-o", "json"); !strings.Contains(out, `"host": "api.example.test"`) {
		t.Fatalf("json: %s", out)
	}
}
