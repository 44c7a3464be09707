package ingress

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/runenet/runenet/orderedlog"
)

const tlsAuto = "    tls:\n      auto: true\n"

func TestACMEEndToEndWithPebble(t *testing.T) {
	n := newNode(t)
	port := startBackend(t, "api-1", "127.0.0.1", 0)
	ing, peb := startACMEIngress(t, n, 90*24*time.Hour, ACMEOptions{})
	readyBefore := testutil.ToFloat64(acmeCertificates.WithLabelValues(CertReady))
	okBefore := testutil.ToFloat64(ingressRequests.WithLabelValues("api.example.test", "200"))

	n.cast(t, "api", port, "api.example.test", tlsAuto)
	n.addInstance(t, "api", "api-1", "127.0.0.1")
	waitRoute(t, ing, "api.example.test", 1)
	waitFor(t, 5*time.Second, "the certificate to be pending", func() bool {
		r, _ := statusOf(ing, "api.example.test")
		return r.Cert == CertPending || r.Cert == CertReady
	})
	waitFor(t, 60*time.Second, "the ACME certificate", func() bool {
		r, _ := statusOf(ing, "api.example.test")
		if r.Cert == CertError {
			t.Fatalf("certificate error: %s", r.Error)
		}
		return r.Cert == CertReady
	})

	c := client(ing.HTTPSAddr(), peb.Issuing)
	resp, body := get(t, c, "https://api.example.test/v1/things")
	if resp.StatusCode != 200 {
		t.Fatalf("HTTPS through the ingress: %d %q", resp.StatusCode, body)
	}
	mustContain(t, "backend saw", body, "api-1", "proto=https", "host=api.example.test", "path=/v1/things")
	if got := resp.TLS.PeerCertificates[0].DNSNames; len(got) != 1 || got[0] != "api.example.test" {
		t.Errorf("served certificate names %v", got)
	}
	if resp, _ := get(t, client(ing.HTTPAddr(), nil), "http://api.example.test/v1"); resp.StatusCode != 308 {
		t.Errorf("plain HTTP after issuance: %d, want a redirect", resp.StatusCode)
	}

	row, _ := statusOf(ing, "api.example.test")
	if row.TLS != TLSACME || row.Cert != CertReady || row.Expires(time.Now()) != "89d" {
		t.Errorf("status row %+v (expires %s), want acme ready 89d", row, row.Expires(time.Now()))
	}
	if got := testutil.ToFloat64(acmeCertificates.WithLabelValues(CertReady)) - readyBefore; got != 1 {
		t.Errorf("rune_acme_certificates{state=ready} moved by %v, want 1", got)
	}
	if got := testutil.ToFloat64(ingressRequests.WithLabelValues("api.example.test", "200")) - okBefore; got < 1 {
		t.Errorf("rune_ingress_requests_total{host=api.example.test,status=200} moved by %v", got)
	}
	// Certificate, key and ACME account are in the OrderedLog, not on disk.
	kvs, _, _ := n.Log.List(context.Background(), orderedlog.PrefixCerts)
	var crt, acct bool
	for _, kv := range kvs {
		crt = crt || strings.HasSuffix(kv.Key, "/api.example.test.crt")
		acct = acct || strings.Contains(kv.Key, "/users/ops@example.test/")
	}
	if !crt || !acct {
		t.Errorf("certs/ holds %d keys; certificate stored: %v, account stored: %v", len(kvs), crt, acct)
	}
}

func TestACMERenewalWithoutFailedRequests(t *testing.T) {
	n := newNode(t)
	port := startBackend(t, "api-1", "127.0.0.1", 0)
	// 40s certificates renewed with half their lifetime left, checked every
	// second: the first renewal comes about 20s after issuance.
	ing, peb := startACMEIngress(t, n, 40*time.Second, ACMEOptions{RenewalWindowRatio: 0.5, RenewCheckInterval: time.Second})
	n.cast(t, "api", port, "renew.example.test", tlsAuto)
	n.addInstance(t, "api", "api-1", "127.0.0.1")
	waitRoute(t, ing, "renew.example.test", 1)
	waitFor(t, 60*time.Second, "the first certificate", func() bool {
		r, _ := statusOf(ing, "renew.example.test")
		return r.Cert == CertReady
	})
	c := client(ing.HTTPSAddr(), peb.Issuing) // a new connection, and handshake, per request

	first := ""
	requests, failures := 0, 0
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.Get("https://renew.example.test/")
		requests++
		if err != nil {
			failures++
			t.Errorf("request during renewal: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			failures++
			t.Errorf("request during renewal: status %d", resp.StatusCode)
		}
		serial := resp.TLS.PeerCertificates[0].SerialNumber.String()
		if first == "" {
			first = serial
		} else if serial != first {
			t.Logf("certificate replaced after %d requests, %d failed", requests, failures)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("certificate %s was not replaced within 45s (%d requests)", first, requests)
}
