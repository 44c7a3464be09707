package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/orderedlog/raft"
	"github.com/runenet/runenet/readiness"
)

// A runed on a cluster node cut off from the majority answers writes with
// 503 and says why, and a remote View following it over /v1/watch goes
// stale, though the node's own stream keeps beating.
func TestClusterNodeCutOff(t *testing.T) {
	opts := raft.TestOptions()
	opts.RetryWindow = time.Second
	rc := raft.NewTestCluster(t, 3, opts)
	cut := (rc.WaitLeader() + 1) % 3
	ctx, c := serveNode(t, rc, cut)
	remote := cluster.NewView(c, cluster.ViewOptions{StaleBudget: time.Second})
	go remote.Run(ctx)

	api := []CastFile{{Name: "api.yaml", Data: "service:\n  name: api\n  ports:\n    - name: http\n      port: 80\n"}}
	if _, err := c.Cast(ctx, api); err != nil {
		t.Fatalf("cast through a follower: %v", err)
	}
	rc.Isolate(cut)
	_, err := c.Cast(ctx, []CastFile{{Name: "web.yaml", Data: strings.ReplaceAll(api[0].Data, "api", "web")}})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || (ae.Kind != "unavailable" && ae.Kind != "outcome_unknown") {
		t.Fatalf("cast on a cut-off node: %v, want 503 unavailable or outcome_unknown", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !remote.Stale() {
		if time.Now().After(deadline) {
			t.Fatalf("the remote View is not stale 30s after the cut (lag %v)", remote.Lag())
		}
		time.Sleep(20 * time.Millisecond)
	}
	rc.Heal(cut)
	for remote.Stale() {
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatalf("the remote View still stale 30s after the heal (lag %v)", remote.Lag())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serveNode serves the API over node i of rc, from a unix socket, and
// returns a client of it and a context that ends with the test.
func serveNode(t *testing.T, rc *raft.TestCluster, i int, opts ...ClientOption) (context.Context, *Client) {
	t.Helper()
	view, ctl := testkit.Run(t, rc.Node(i), "10.96.0.0/16", cluster.ViewOptions{})
	sock := filepath.Join(t.TempDir(), "runed.sock")
	l, err := Listen("unix://"+sock, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &http.Server{
		Handler:     (&Server{Controller: ctl, View: view, Log: rc.Node(i), Readiness: &readiness.Registry{}}).Handler(),
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	go srv.Serve(l)
	t.Cleanup(func() { cancel(); srv.Close() })
	c, err := NewClient("unix://"+sock, "", opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, c
}

// A linearizable read on a follower cut off from the leader is refused
// (it cannot know what the cluster committed), where a plain read answers
// the node's own, possibly stale, state; on heal it answers again.
func TestLinearizableReadNeedsTheLeader(t *testing.T) {
	opts := raft.TestOptions()
	opts.RetryWindow = time.Second
	rc := raft.NewTestCluster(t, 3, opts)
	cut := (rc.WaitLeader() + 1) % 3
	ctx, c := serveNode(t, rc, cut)
	lc, err := NewClient(c.addr, "", LinearizableReads())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cast(ctx, []CastFile{{Name: "api.yaml", Data: "service:\n  name: api\n  ports:\n    - name: http\n      port: 80\n"}}); err != nil {
		t.Fatalf("cast through a follower: %v", err)
	}
	if l, err := lc.Services(ctx, ""); err != nil || len(l.Items) != 1 {
		t.Fatalf("linearizable read on a connected follower: %v, %+v; want the one service", err, l)
	}
	rc.Isolate(cut)
	if _, err := c.Services(ctx, ""); err != nil {
		t.Fatalf("plain read on a cut-off node: %v, want its own state", err)
	}
	for _, read := range []func() error{
		func() error { _, err := lc.Services(ctx, ""); return err },
		func() error { _, _, err := lc.List(ctx, ""); return err },
	} {
		var ae *APIError
		if err := read(); !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
			t.Fatalf("linearizable read on a cut-off node: %v, want 503", err)
		}
	}
	rc.Heal(cut)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := lc.Services(ctx, "")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("linearizable read 30s after the heal: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
