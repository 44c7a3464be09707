package api

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runenet/runenet/internal/testkit"
)

func wantStatus(t *testing.T, what string, err error, status int, msg string) {
	t.Helper()
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != status || !strings.Contains(ae.Msg, msg) {
		t.Errorf("%s: got %v, want %d with %q", what, err, status, msg)
	}
}

// The read-only token follows runed (list and watch, as a stock CoreDNS
// does) and can change nothing; the full token can.
func TestReadOnlyToken(t *testing.T) {
	addr, lg := serveWith(t, "tcp://127.0.0.1:0", Server{Token: "full-token", ReadToken: "read-token"}, nil)
	read, err := NewClient(addr, "read-token")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, seq, err := read.List(ctx, ""); err != nil || seq == 0 {
		t.Fatalf("list with the read-only token: seq %d, %v", seq, err)
	}
	ch, err := read.Watch(ctx, 1)
	if err != nil {
		t.Fatalf("watch with the read-only token: %v", err)
	}
	if ev := <-ch; ev.Err != nil {
		t.Fatalf("watch event: %v", ev.Err)
	}

	tail := lg.Tail()
	_, err = read.Cast(ctx, []CastFile{{Name: "a.yaml", Data: "service:\n  name: api\n  ports: [{port: 80}]\n"}})
	wantStatus(t, "cast with the read-only token", err, http.StatusForbidden, "read-only")
	_, err = read.DeleteService(ctx, "default", "api")
	wantStatus(t, "delete with the read-only token", err, http.StatusForbidden, "not DELETE /v1/services/default/api")
	_, err = read.Status(ctx)
	wantStatus(t, "status with the read-only token", err, http.StatusForbidden, "list and watch")
	if lg.Tail() != tail {
		t.Fatal("a request with the read-only token wrote to the log")
	}

	full, err := NewClient(addr, "full-token")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := full.Cast(ctx, []CastFile{{Name: "a.yaml", Data: "service:\n  name: api\n  ports: [{port: 80}]\n"}}); err != nil {
		t.Fatalf("cast with the full token: %v", err)
	}
	none, _ := NewClient(addr, "")
	_, _, err = none.List(ctx, "")
	wantStatus(t, "list without a token", err, http.StatusUnauthorized, "bearer token")
}

// Fault injection answers 403, saying how to enable it, unless the node
// enables it.
func TestDebugNeedsTheDebugOption(t *testing.T) {
	addr, _ := serveWith(t, "unix://"+filepath.Join(t.TempDir(), "s"), Server{}, nil)
	c, _ := NewClient(addr, "")
	err := c.PauseWatch(context.Background(), 1)
	wantStatus(t, "pause-watch without debug", err, http.StatusForbidden, "--debug-api (Corefile: debug in the rune block)")

	on, _ := serve(t, "unix://"+filepath.Join(t.TempDir(), "s"), "")
	if err := on.PauseWatch(context.Background(), 0.01); err != nil {
		t.Fatalf("pause-watch with debug: %v", err)
	}
}

// A TCP API over TLS: a client that trusts the certificate reaches it as
// tcp:// (with a CA) or https://; one that does not, or talks plain HTTP,
// does not.
func TestTLSListener(t *testing.T) {
	certFile, keyFile := testkit.ServerCert(t)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}}
	addr, _ := serveWith(t, "tcp://127.0.0.1:0", Server{Token: "t"}, cfg)
	hostPort := strings.TrimPrefix(addr, "tcp://")
	ctx := context.Background()
	for _, a := range []string{addr, "https://" + hostPort} {
		c, err := NewClient(a, "t", WithCA(certFile))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Status(ctx); err != nil {
			t.Errorf("%s with the CA: %v", a, err)
		}
	}
	plain, _ := NewClient(addr, "t")
	if _, err := plain.Status(ctx); err == nil || !strings.Contains(err.Error(), "serves TLS") {
		t.Errorf("plain HTTP to the TLS API: %v, want a hint that it serves TLS", err)
	}
	untrusting, _ := NewClient("https://"+hostPort, "t")
	if _, err := untrusting.Status(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("https without trusting the certificate: %v, want a certificate error", err)
	}
	if _, err := Listen("unix://"+filepath.Join(t.TempDir(), "s"), "", cfg); err == nil || !strings.Contains(err.Error(), "TLS is for a tcp:// API") {
		t.Errorf("TLS on a unix socket: %v", err)
	}
	if _, err := NewClient("unix:///x.sock", "", WithCA(certFile)); err == nil {
		t.Error("a CA for a unix socket was accepted")
	}
}
