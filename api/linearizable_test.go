package api

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/orderedlog/raft"
	"github.com/runenet/runenet/readiness"
)

// A write acknowledged by the leader is missing from a lagging follower's
// plain read and present in its linearizable one (?linearizable=true,
// `rune get --linearizable`).
func TestLinearizableReadOnALaggingFollower(t *testing.T) {
	opts := raft.TestOptions()
	// A follower learns that an entry committed from the leader's next
	// append (heartbeats do not say). With no idle commit notices, the
	// last write stays unapplied on the followers until something else is
	// appended: a lag of a minute instead of a few milliseconds.
	opts.CommitTimeout = time.Minute
	rc := raft.NewTestCluster(t, 3, opts)
	lead := rc.WaitLeader()
	follower := rc.Node((lead + 1) % 3)
	_, leaderCtl := testkit.Run(t, rc.Node(lead), "10.96.0.0/16", cluster.ViewOptions{})
	view := cluster.NewView(follower, cluster.ViewOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); view.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	sock := "unix://" + filepath.Join(t.TempDir(), "runed.sock")
	serveOn(t, sock, Server{View: view, Log: follower, Readiness: &readiness.Registry{}}, nil)
	plain, err := NewClient(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	lin, err := NewClient(sock, "", LinearizableReads())
	if err != nil {
		t.Fatal(err)
	}

	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if _, _, err := leaderCtl.Cast(wctx, []cluster.SourceFile{{Name: "api.yaml", Data: []byte("service:\n  name: api\n  ports:\n    - name: http\n      port: 80\n")}}); err != nil {
		t.Fatal(err)
	}
	got, err := plain.Services(wctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Items) != 0 {
		t.Fatalf("the follower's plain read already has %d services: it does not lag, so this test shows nothing", len(got.Items))
	}
	start := time.Now()
	got, err = lin.Services(wctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Items) != 1 || got.Items[0].Spec.Name != "api" {
		t.Fatalf("linearizable read on the follower: %+v, want the service the leader acknowledged", got.Items)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the linearizable read took %v: it waited for the lag, not for a read index", d)
	}

	// The raw listing honours it too.
	if kvs, _, err := lin.List(wctx, ""); err != nil || len(kvs) == 0 {
		t.Fatalf("linearizable list: %d keys, %v", len(kvs), err)
	}
}
