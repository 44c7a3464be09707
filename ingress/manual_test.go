package ingress

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/orderedlog"
)

func TestManualTLSEndToEnd(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	ca := newTestCA(t)
	port := startBackend(t, "shop-1", "127.0.0.1", 0)
	ing := startIngress(t, n, ACMEOptions{})

	certPEM, keyPEM := ca.issue(t, time.Now().Add(30*24*time.Hour+time.Hour), "shop.example.test")
	if _, err := StoreTLSSecret(ctx, n.Log, "default", "shop-tls", certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	n.cast(t, "shop", port, "shop.example.test", "    tls:\n      mode: manual\n      secret: shop-tls\n")
	n.addInstance(t, "shop", "shop-1", "127.0.0.1")
	waitRoute(t, ing, "shop.example.test", 1)
	waitFor(t, 5*time.Second, "the manual certificate", func() bool { r, _ := statusOf(ing, "shop.example.test"); return r.Cert == CertReady })

	c := client(ing.HTTPSAddr(), ca.pool())
	resp, body := get(t, c, "https://shop.example.test/cart")
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("HTTPS: %s %d %q, want HTTP/2 200", resp.Proto, resp.StatusCode, body)
	}
	mustContain(t, "backend saw", body, "shop-1", "proto=https", "path=/cart")
	// Plain HTTP now redirects to HTTPS, on the HTTPS listener's port.
	hc := client(ing.HTTPAddr(), nil)
	resp, _ = get(t, hc, "http://shop.example.test/cart?x=1")
	wantLoc := "https://shop.example.test:" + portOf(ing.HTTPSAddr()) + "/cart?x=1"
	if resp.StatusCode != 308 || resp.Header.Get("Location") != wantLoc {
		t.Errorf("HTTP: %d Location %q, want 308 to %s", resp.StatusCode, resp.Header.Get("Location"), wantLoc)
	}
	row, _ := statusOf(ing, "shop.example.test")
	if row.Namespace != "default" || row.Service != "shop" || row.TLS != TLSManual || row.Cert != CertReady || row.Expires(time.Now()) != "30d" {
		t.Errorf("status row %+v (expires %s), want default/shop manual ready 30d", row, row.Expires(time.Now()))
	}

	// Rotating the secret is picked up without a restart.
	certPEM2, keyPEM2 := ca.issue(t, time.Now().Add(60*24*time.Hour+time.Hour), "shop.example.test")
	if _, err := StoreTLSSecret(ctx, n.Log, "default", "shop-tls", certPEM2, keyPEM2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the rotated certificate", func() bool {
		r, _ := statusOf(ing, "shop.example.test")
		return r.Expires(time.Now()) == "60d"
	})
}

func TestStoreTLSSecretRefusesBadInputAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	ca := newTestCA(t)
	certPEM, keyPEM := ca.issue(t, time.Now().Add(time.Hour), "a.example.test")
	_, otherKey := ca.issue(t, time.Now().Add(time.Hour), "a.example.test")
	expired, expiredKey := ca.issue(t, time.Now().Add(-time.Hour), "old.example.test")
	for _, tc := range []struct {
		name, ns, secret string
		cert, key        []byte
		want             string
	}{
		{"mismatched key", "default", "s", certPEM, otherKey, "private key does not match the certificate"},
		{"expired", "default", "s", expired, expiredKey, "expired on"},
		{"key as cert", "default", "s", keyPEM, keyPEM, `certificate has no "CERTIFICATE" PEM block (found PRIVATE KEY)`},
		{"not PEM", "default", "s", []byte("hello"), keyPEM, "certificate is not PEM"},
		{"bad name", "default", "Bad_Name", certPEM, keyPEM, `secret name "Bad_Name" is invalid`},
	} {
		_, err := StoreTLSSecret(ctx, n.Log, tc.ns, tc.secret, tc.cert, tc.key)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to say %q", tc.name, err, tc.want)
		}
	}
	if kvs, _, _ := n.Log.List(ctx, orderedlog.PrefixSecrets); len(kvs) != 0 {
		t.Errorf("refused secrets wrote %d keys", len(kvs))
	}
}

func portOf(a interface{ String() string }) string {
	s := a.String()
	return s[strings.LastIndexByte(s, ':')+1:]
}
