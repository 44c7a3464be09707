package api

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/badger"
	"github.com/runenet/runenet/readiness"
)

// serve runs the API over a real Badger log on addr and returns a client.
// Fault injection is on, as tests of it need.
func serve(t *testing.T, addr, token string) (*Client, *badger.Log) {
	t.Helper()
	bound, lg := serveWith(t, addr, Server{Token: token, Debug: true}, nil)
	c, err := NewClient(bound, token)
	if err != nil {
		t.Fatal(err)
	}
	return c, lg
}

// serveWith runs srv (its Controller, View, Log and Readiness filled in) on
// addr, over TLS with tlsConfig, and returns the address it is bound to.
func serveWith(t *testing.T, addr string, srv Server, tlsConfig *tls.Config) (string, *badger.Log) {
	t.Helper()
	k := testkit.NewCluster(t, "10.96.0.0/16", badger.Options{}, cluster.ViewOptions{})
	srv.Controller, srv.View, srv.Log, srv.Readiness = k.Ctl, k.View, k.Log, &readiness.Registry{}
	return serveOn(t, addr, srv, tlsConfig), k.Log
}

// serveOn runs srv as it is on addr, over TLS with tlsConfig, and returns
// the address it is bound to.
func serveOn(t *testing.T, addr string, srv Server, tlsConfig *tls.Config) string {
	t.Helper()
	l, err := Listen(addr, srv.Token, tlsConfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hs := &http.Server{
		Handler:     srv.Handler(),
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	go hs.Serve(l)
	t.Cleanup(func() { cancel(); hs.Close() })
	if strings.HasPrefix(addr, "tcp://") {
		addr = "tcp://" + l.Addr().String()
	}
	return addr
}

func TestUnixSocketIsPrivate(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "runed.sock")
	c, _ := serve(t, "unix://"+sock, "")
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A second runed on the same socket is refused rather than stealing it.
	if _, err := Listen("unix://"+sock, "", nil); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second listener on a live socket: %v", err)
	}
}

func TestTCPRequiresAToken(t *testing.T) {
	if _, err := Listen("tcp://127.0.0.1:0", "", nil); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("TCP without a token: %v, want a refusal", err)
	}
	c, _ := serve(t, "tcp://127.0.0.1:0", "s3cret")
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("with the token: %v", err)
	}
	for _, token := range []string{"", "wrong"} {
		bad := *c
		bad.token = token
		var ae *APIError
		if _, err := bad.Status(context.Background()); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
			t.Fatalf("token %q: got %v, want 401", token, err)
		}
	}
}

func TestErrorsMapToStatuses(t *testing.T) {
	c, lg := serve(t, "unix://"+filepath.Join(t.TempDir(), "s"), "")
	ctx := context.Background()
	tail := lg.Tail()
	for _, tc := range []struct {
		name   string
		do     func() error
		status int
		kind   string
	}{
		{"bad spec", func() error {
			_, err := c.Cast(ctx, []CastFile{{Name: "x.yaml", Data: "service: {name: Bad}"}})
			return err
		}, 400, "invalid"},
		{"no files", func() error { _, err := c.Cast(ctx, nil); return err }, 400, "invalid"},
		{"unknown service", func() error { _, err := c.DeleteService(ctx, "default", "nope"); return err }, 404, "not_found"},
		{"unknown body field", func() error {
			return c.do(ctx, http.MethodPut, "/v1/instances/x/ready", map[string]any{"redy": true}, nil)
		}, 400, "invalid"},
		{"bad watch seq", func() error { _, err := c.send(ctx, http.MethodGet, "/v1/watch?from=x", nil); return err }, 400, "invalid"},
		{"pause out of range", func() error { return c.PauseWatch(ctx, -1) }, 400, "invalid"},
	} {
		var ae *APIError
		if err := tc.do(); !errors.As(err, &ae) || ae.Status != tc.status || ae.Kind != tc.kind {
			t.Errorf("%s: got %v (%+v), want %d %s", tc.name, err, ae, tc.status, tc.kind)
		}
	}
	if lg.Tail() != tail {
		t.Fatal("rejected requests wrote to the log")
	}
}

// The remote View (plugin/rune in a stock CoreDNS) follows runed through
// List + Watch; it must see what runed's own View sees, and never secrets.
func TestRemoteViewFollowsTheAPI(t *testing.T) {
	c, lg := serve(t, "unix://"+filepath.Join(t.TempDir(), "s"), "")
	ctx := context.Background()
	if _, err := c.Cast(ctx, []CastFile{{Name: "a.yaml", Data: "service:\n  name: api\n  ports: [{name: http, port: 80}]\n"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := lg.Propose(ctx, []orderedlog.Op{orderedlog.Put(orderedlog.PrefixSecrets+"default/tls", []byte("PRIVATE KEY"))}); err != nil {
		t.Fatal(err)
	}
	remote := cluster.NewView(c, cluster.ViewOptions{})
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go remote.Run(rctx)
	waitCtx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if err := remote.WaitFor(waitCtx, lg.Tail()); err != nil {
		t.Fatal(err)
	}
	res, err := c.Cast(ctx, []CastFile{{Name: "w.yaml", Data: "service:\n  name: web\n  ports: [{name: http, port: 80}]\n"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WaitFor(waitCtx, res.Seq); err != nil {
		t.Fatal(err)
	}
	e, ok := remote.Snapshot().ServiceByVIP(res.Results[0].VIP)
	if !ok || e.Value.Spec.Name != "web" {
		t.Fatalf("remote view does not resolve web's VIP %s", res.Results[0].VIP)
	}
	kvs, _, err := c.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range kvs {
		if strings.HasPrefix(kv.Key, orderedlog.PrefixSecrets) {
			t.Fatalf("list leaked %s", kv.Key)
		}
	}
	ch, err := c.Watch(rctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= lg.Tail(); {
		ev := <-ch
		if ev.Err != nil {
			t.Fatal(ev.Err)
		}
		if ev.Batch == nil {
			continue
		}
		if ev.Batch.Seq != seq {
			t.Fatalf("watch delivered seq %d, want %d", ev.Batch.Seq, seq)
		}
		for _, op := range ev.Batch.Ops {
			if strings.HasPrefix(op.Key, orderedlog.PrefixSecrets) {
				t.Fatalf("watch leaked %s", op.Key)
			}
		}
		seq++
	}
}
