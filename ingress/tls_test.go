package ingress

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// exposeManual casts service name on host with TLS from a secret holding
// certPEM/keyPEM, one instance on ip:port, and waits for the route and its
// certificate.
func exposeManual(t *testing.T, n *node, ing *Ingress, name, host, ip string, port int, certPEM, keyPEM []byte) {
	t.Helper()
	if _, err := StoreTLSSecret(context.Background(), n.Log, "default", name+"-tls", certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	n.cast(t, name, port, strconv.Quote(host), fmt.Sprintf("    tls:\n      mode: manual\n      secret: %s-tls\n", name))
	n.addInstance(t, name, name+"-1", ip)
	waitRoute(t, ing, host, 1)
	waitFor(t, 5*time.Second, host+"'s certificate", func() bool { r, _ := statusOf(ing, host); return r.Cert == CertReady })
}

// handshake runs a TLS handshake with the ingress's HTTPS listener and
// reports what was negotiated, and whether the server showed a certificate.
func handshake(ing *Ingress, cfg *tls.Config) (st tls.ConnectionState, sawCert bool, err error) {
	cfg.InsecureSkipVerify = true // what is checked here is what the server offers, not the chain
	cfg.VerifyPeerCertificate = func([][]byte, [][]*x509.Certificate) error { sawCert = true; return nil }
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ing.HTTPSAddr().String(), cfg)
	if err != nil {
		return st, sawCert, err
	}
	defer c.Close()
	return c.ConnectionState(), sawCert, nil
}

// The checks testssl.sh makes of a server, on the HTTPS listener: Mozilla's
// "intermediate" profile (TLS 1.2 and 1.3 only; at 1.2 only ECDHE with an
// AEAD cipher, so no CBC and no SHA-1 MAC), no certificate at all for a
// name without a TLS route (the unrecognized_name alert), HTTP/2 by ALPN.
func TestTLSProfileIsMozillaIntermediate(t *testing.T) {
	n := newNode(t)
	ca := newTestCA(t)
	port := startBackend(t, "shop-1", "127.0.0.1", 0)
	ing := startIngress(t, n, ACMEOptions{})
	certPEM, keyPEM := ca.issue(t, time.Now().Add(time.Hour), "ec.example.test")
	exposeManual(t, n, ing, "ec", "ec.example.test", "127.0.0.1", port, certPEM, keyPEM)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM = ca.issueFor(t, rsaKey, time.Now().Add(time.Hour), "rsa.example.test")
	startBackend(t, "shop-2", "127.0.0.2", port)
	exposeManual(t, n, ing, "rsa", "rsa.example.test", "127.0.0.2", port, certPEM, keyPEM)
	n.cast(t, "plain", port, "plain.example.test", "")
	waitRoute(t, ing, "plain.example.test", 0)

	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		if st, _, err := handshake(ing, &tls.Config{ServerName: "ec.example.test", MinVersion: v, MaxVersion: v}); err == nil {
			t.Errorf("%s: negotiated %s, want it refused", tls.VersionName(v), tls.CipherSuiteName(st.CipherSuite))
		} else if !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("%s: %v, want a protocol_version alert", tls.VersionName(v), err)
		}
	}
	if st, _, err := handshake(ing, &tls.Config{ServerName: "ec.example.test", MinVersion: tls.VersionTLS13}); err != nil || st.Version != tls.VersionTLS13 {
		t.Errorf("TLS 1.3: %v (version %x)", err, st.Version)
	}

	// Offer every suite crypto/tls knows, one at a time, at TLS 1.2.
	var all []*tls.CipherSuite
	all = append(append(all, tls.CipherSuites()...), tls.InsecureCipherSuites()...)
	for _, tc := range []struct {
		host string
		want []uint16
	}{
		{"ec.example.test", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}},
		{"rsa.example.test", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}},
	} {
		var got []uint16
		for _, cs := range all {
			if !slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
				continue
			}
			st, _, err := handshake(ing, &tls.Config{ServerName: tc.host, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{cs.ID}})
			if err == nil {
				got = append(got, st.CipherSuite)
			}
		}
		slices.Sort(got)
		slices.Sort(tc.want)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: TLS 1.2 suites negotiable: %v, want exactly %v", tc.host, suiteNames(got), suiteNames(tc.want))
		}
	}

	for _, sni := range []string{"", "nobody.example.test", "plain.example.test"} {
		st, sawCert, err := handshake(ing, &tls.Config{ServerName: sni})
		switch {
		case err == nil:
			t.Errorf("SNI %q: handshake succeeded with a certificate for %v; want it refused", sni, st.PeerCertificates[0].DNSNames)
		case sawCert:
			t.Errorf("SNI %q: the server showed a certificate before failing", sni)
		case !strings.Contains(err.Error(), "unrecognized name"):
			t.Errorf("SNI %q: %v, want the unrecognized_name alert", sni, err)
		}
	}

	st, _, err := handshake(ing, &tls.Config{ServerName: "ec.example.test", NextProtos: []string{"h2", "http/1.1"}})
	if err != nil || st.NegotiatedProtocol != "h2" {
		t.Fatalf("ALPN: %v, negotiated %q, want h2", err, st.NegotiatedProtocol)
	}
	resp, body := get(t, client(ing.HTTPSAddr(), ca.pool()), "https://ec.example.test/")
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || !strings.Contains(body, "shop-1") {
		t.Errorf("HTTP/2 request: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
}

func suiteNames(ids []uint16) []string {
	var out []string
	for _, id := range ids {
		out = append(out, tls.CipherSuiteName(id))
	}
	return out
}

// rawTLS opens a TLS connection to the ingress for serverName, trusting ca.
func rawTLS(t *testing.T, ing *Ingress, ca *testCA, serverName string, alpn ...string) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ing.HTTPSAddr().String(),
		&tls.Config{ServerName: serverName, RootCAs: ca.pool(), NextProtos: alpn})
	if err != nil {
		t.Fatalf("TLS to %s: %v", serverName, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// roundTrip sends a GET for host on an HTTP/1.1 connection and reads the
// response.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, host string) (*http.Response, string) {
	t.Helper()
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("Host %s: %v", host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// A TLS connection is for the route its server name chose: asking it for
// another route's Host is 421 Misdirected Request, on HTTP/1.1 (which the
// fast path serves) and on HTTP/2 (net/http), even where the certificate
// would cover both. Hosts of one wildcard route share its connections.
func TestHostMustMatchTheConnectionsServerName(t *testing.T) {
	n := newNode(t)
	ca := newTestCA(t)
	ing := startIngress(t, n, ACMEOptions{})
	// One certificate for all: a client could coalesce connections.
	certPEM, keyPEM := ca.issue(t, time.Now().Add(time.Hour), "a.example.test", "b.example.test", "*.w.example.test")
	exposeManual(t, n, ing, "a", "a.example.test", "127.0.0.1", startBackend(t, "backend-a", "127.0.0.1", 0), certPEM, keyPEM)
	exposeManual(t, n, ing, "b", "b.example.test", "127.0.0.2", startBackend(t, "backend-b", "127.0.0.2", 0), certPEM, keyPEM)
	exposeManual(t, n, ing, "w", "*.w.example.test", "127.0.0.3", startBackend(t, "backend-w", "127.0.0.3", 0), certPEM, keyPEM)
	before := testutil.ToFloat64(ingressRequests.WithLabelValues("b.example.test", "421"))

	// HTTP/1.1: a first request the fast path forwards, then another route's.
	c := rawTLS(t, ing, ca, "a.example.test", "http/1.1")
	br := bufio.NewReader(c)
	if resp, body := roundTrip(t, c, br, "A.example.test:443"); resp.StatusCode != 200 || !strings.Contains(body, "backend-a") {
		t.Fatalf("SNI a, Host a: %d %q", resp.StatusCode, body)
	}
	resp, body := roundTrip(t, c, br, "b.example.test")
	if resp.StatusCode != http.StatusMisdirectedRequest || strings.Contains(body, "backend") || !resp.Close {
		t.Errorf("SNI a, Host b over HTTP/1.1: %d close=%v %q, want 421 and the connection closed", resp.StatusCode, resp.Close, body)
	}
	if got := testutil.ToFloat64(ingressRequests.WithLabelValues("b.example.test", "421")); got != before+1 {
		t.Errorf("421s counted: %v, want %v", got, before+1)
	}
	for _, tc := range []struct {
		sni, host string
		code      int
		backend   string // "" for none
	}{
		{"a.example.test", "nobody.example.test", 421, ""},
		{"x.w.example.test", "y.w.example.test", 200, "backend-w"},
		{"x.w.example.test", "a.example.test", 421, ""},
	} {
		c := rawTLS(t, ing, ca, tc.sni, "http/1.1")
		resp, body := roundTrip(t, c, bufio.NewReader(c), tc.host)
		if resp.StatusCode != tc.code || strings.Contains(body, "backend") != (tc.backend != "") || !strings.Contains(body, tc.backend) {
			t.Errorf("SNI %s, Host %s: %d %q, want %d from %q", tc.sni, tc.host, resp.StatusCode, body, tc.code, tc.backend)
		}
	}

	// HTTP/2, as a browser coalescing connections would send it.
	h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		ForceAttemptHTTP2: true,
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := &tls.Dialer{Config: &tls.Config{ServerName: "a.example.test", RootCAs: ca.pool(), NextProtos: []string{"h2"}}}
			return d.DialContext(ctx, "tcp", ing.HTTPSAddr().String())
		},
	}}
	for host, want := range map[string]int{"a.example.test": 200, "b.example.test": 421} {
		resp, body := get(t, h2, "https://"+host+"/")
		if resp.ProtoMajor != 2 || resp.StatusCode != want {
			t.Errorf("HTTP/2 on a connection for a, Host %s: %s %d %q, want %d", host, resp.Proto, resp.StatusCode, body, want)
		}
	}
}
