package ingress

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/ingress/status"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/orderedlog/badger"
)

// node is a single-node control plane as runed runs it: a real Badger log, a
// View following it and a Controller writing to it.
type node struct{ *testkit.Cluster }

func newNode(t *testing.T) *node {
	t.Helper()
	return &node{testkit.NewCluster(t, "10.96.0.0/16", badger.Options{}, cluster.ViewOptions{})}
}

// cast casts one service whose instances listen on targetPort, exposing host
// (no expose block when host is ""); tlsYAML is appended under expose.
func (n *node) cast(t *testing.T, name string, targetPort int, host, tlsYAML string) {
	t.Helper()
	castOn(t, n.Ctl, name, targetPort, host, tlsYAML)
}

// castOn is node.cast through any node's Controller.
func castOn(t *testing.T, ctl *cluster.Controller, name string, targetPort int, host, tlsYAML string) {
	t.Helper()
	y := fmt.Sprintf("service:\n  name: %s\n  namespace: default\n  ports:\n    - name: http\n      port: 80\n      targetPort: %d\n", name, targetPort)
	if host != "" {
		y += fmt.Sprintf("  expose:\n    host: %s\n    port: http\n%s", host, tlsYAML)
	}
	if _, _, err := ctl.Cast(context.Background(), []cluster.SourceFile{{Name: name + ".yaml", Data: []byte(y)}}); err != nil {
		t.Fatalf("cast %s: %v", name, err)
	}
}

// addInstance registers a ready instance and returns the log seq it was
// written at, for tests that must wait for a follower of the View.
func (n *node) addInstance(t *testing.T, svc, id, ip string) uint64 {
	t.Helper()
	return addInstanceOn(t, n.Ctl, svc, id, ip)
}

// addInstanceOn is node.addInstance through any node's Controller.
func addInstanceOn(t *testing.T, ctl *cluster.Controller, svc, id, ip string) uint64 {
	t.Helper()
	seq, err := ctl.RegisterInstance(context.Background(), cluster.Instance{
		ID: id, Service: svc, Namespace: "default", Node: "edge1", IP: netip.MustParseAddr(ip), Ready: true,
	})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
	return seq
}

func startIngress(t *testing.T, n *node, acme ACMEOptions) *Ingress {
	t.Helper()
	return startIngressWith(t, n, Options{ACME: acme})
}

// startIngressWith starts an ingress with opts on loopback ports.
func startIngressWith(t *testing.T, n *node, opts Options) *Ingress {
	t.Helper()
	opts.HTTPAddr, opts.HTTPSAddr = "127.0.0.1:0", "127.0.0.1:0"
	ing, err := New(n.Log, n.View, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := ing.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ing.Close() })
	return ing
}

// startBackend serves on ip:port (port 0 picks one) and answers with its
// name and what the ingress forwarded.
func startBackend(t *testing.T, name, ip string, port int) int {
	t.Helper()
	return startHandler(t, ip, port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s host=%s path=%s xff=%s proto=%s xfh=%s", name, r.Host, r.URL.Path,
			r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"))
	}))
}

// startHandler serves h on ip:port (port 0 picks one) until the test ends.
func startHandler(t *testing.T, ip string, port int, h http.Handler) int {
	t.Helper()
	ln, err := net.Listen("tcp4", net.JoinHostPort(ip, fmt.Sprint(port)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// client sends every request to addr whatever the URL's host, the way a
// client resolving the exposed name to this edge node would.
func client(addr net.Addr, roots *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "tcp", addr.String())
			},
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			ForceAttemptHTTP2: true,
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitRoute waits until host routes to n endpoints.
func waitRoute(t *testing.T, ing *Ingress, host string, n int) {
	t.Helper()
	waitFor(t, 5*time.Second, fmt.Sprintf("%s to route to %d endpoints", host, n), func() bool {
		r := ing.table.Load().lookup(host)
		return r != nil && len(r.backends) == n
	})
}

func statusOf(ing *Ingress, host string) (status.Row, bool) {
	for _, r := range ing.Status() {
		if r.Host == host {
			return r, true
		}
	}
	return status.Row{}, false
}

// testCA issues certificates for tests: Pebble's HTTPS certificate and
// manual-mode secrets.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	PEM  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "runenet test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue returns a PEM certificate and ECDSA P-256 key for names (DNS names
// or IPs).
func (ca *testCA) issue(t *testing.T, notAfter time.Time, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return ca.issueFor(t, key, notAfter, names...)
}

// issueFor is issue for a given key.
func (ca *testCA) issueFor(t *testing.T, key crypto.Signer, notAfter time.Time, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s = %q, want it to contain %q", what, got, w)
		}
	}
}
