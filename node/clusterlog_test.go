package node

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/node/nodeconfig"
)

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// --cluster-addr --bootstrap makes a one-node Raft cluster with its own CA;
// a service cast on it survives a restart without --bootstrap.
func TestClusterNodeBootstrapsAndRestarts(t *testing.T) {
	dir := t.TempDir()
	cfg := nodeconfig.Config{DataDir: dir, NodeName: "n1", ClusterAddr: freeAddr(t), Bootstrap: true}
	r, err := Acquire(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, seq, err := r.Controller().Cast(ctx, []cluster.SourceFile{{Name: "api.yaml", Data: []byte("service:\n  name: api\n  ports:\n    - name: http\n      port: 80\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.View().WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
	vip, _ := r.View().Snapshot().Service(cluster.NamespacedName{Namespace: "default", Name: "api"})
	for _, f := range []string{"ca.pem", "ca-key.pem", "node.pem", "node-key.pem"} {
		if fi, err := os.Stat(filepath.Join(dir, "cluster-tls", f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("cluster-tls/%s: %v (mode %v), want a private file", f, err, fi)
		}
	}
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}

	cfg.Bootstrap = false
	r, err = Acquire(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if err := r.View().WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
	got, ok := r.View().Snapshot().Service(cluster.NamespacedName{Namespace: "default", Name: "api"})
	if !ok || got.Value.VIP != vip.Value.VIP {
		t.Fatalf("after restart: service %+v (found %v), want VIP %v", got, ok, vip.Value.VIP)
	}
}

func TestClusterConfigRefusals(t *testing.T) {
	for _, tc := range []struct {
		cfg  nodeconfig.Config
		want string
	}{
		{nodeconfig.Config{ClusterAddr: "0.0.0.0:7946"}, "needs a concrete IP"},
		{nodeconfig.Config{ClusterAddr: "node1:7946"}, "not a host name"},
		{nodeconfig.Config{Bootstrap: true}, "--bootstrap creates a cluster: it needs --cluster-addr"},
		{nodeconfig.Config{ClusterAddr: "127.0.0.1:7946"}, "start the first node with --bootstrap"},
	} {
		tc.cfg.DataDir, tc.cfg.NodeName = t.TempDir(), "n1"
		if tc.cfg.ClusterAddr == "127.0.0.1:7946" {
			tc.cfg.ClusterAddr = freeAddr(t)
		}
		if r, err := Acquire(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			if err == nil {
				r.Release()
			}
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}

	// A single-node store is never hidden behind a fresh cluster.
	dir := t.TempDir()
	r, err := Acquire(nodeconfig.Config{DataDir: dir, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	r.Release()
	if _, err := Acquire(nodeconfig.Config{DataDir: dir, NodeName: "n1", ClusterAddr: freeAddr(t), Bootstrap: true}); err == nil || !strings.Contains(err.Error(), "holds a single-node store") {
		t.Fatalf("bootstrap over a Badger store: %v, want a refusal", err)
	}
}
