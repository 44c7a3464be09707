package node

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/ingress"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/node/nodeconfig"
	"github.com/runenet/runenet/orderedlog"
)

// state is everything a node serves: every key with its value and
// revision, the seq, and each service's VIP as the View shows it.
type state struct {
	seq  uint64
	kvs  []orderedlog.KV
	vips map[cluster.NamespacedName]netip.Addr
}

func stateOf(t *testing.T, r *Runtime) state {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kvs, seq, err := r.Log().List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.View().WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
	st := state{seq: seq, kvs: kvs, vips: map[cluster.NamespacedName]netip.Addr{}}
	for _, e := range r.View().Snapshot().Services("") {
		st.vips[cluster.NamespacedName{Namespace: e.Value.Spec.Namespace, Name: e.Value.Spec.Name}] = e.Value.VIP
	}
	return st
}

// sameState compares got with want, but for the node records: a runed
// rewrites its own at every start and heartbeat, so they are left out, and
// got's seq may be past want's by those writes alone.
func sameState(t *testing.T, what string, got, want state) {
	t.Helper()
	gotRecords, lastRecord := withoutNodeRecords(&got)
	withoutNodeRecords(&want)
	if got.seq != want.seq && (got.seq < want.seq || got.seq != lastRecord) {
		t.Errorf("%s: seq %d, want %d (or the revision of a node record written since: %v)", what, got.seq, want.seq, gotRecords)
	}
	if !slices.EqualFunc(got.kvs, want.kvs, func(a, b orderedlog.KV) bool {
		return a.Key == b.Key && a.Rev == b.Rev && string(a.Value) == string(b.Value)
	}) {
		t.Errorf("%s: %d keys differ from the %d before", what, len(got.kvs), len(want.kvs))
	}
	if len(got.vips) != len(want.vips) {
		t.Errorf("%s: %d services, want %d", what, len(got.vips), len(want.vips))
	}
	for n, vip := range want.vips {
		if got.vips[n] != vip {
			t.Errorf("%s: service %s has VIP %v, want %v", what, n, got.vips[n], vip)
		}
	}
}

// withoutNodeRecords drops the node records from st's keys, returning
// their names and the newest revision among them.
func withoutNodeRecords(st *state) ([]string, uint64) {
	var names []string
	var newest uint64
	st.kvs = slices.DeleteFunc(slices.Clone(st.kvs), func(kv orderedlog.KV) bool {
		name, ok := strings.CutPrefix(kv.Key, orderedlog.PrefixNodes)
		if ok {
			names, newest = append(names, name), max(newest, kv.Rev)
		}
		return ok
	})
	return names, newest
}

// fillSingleNode runs a single-node (Badger) runed on dir and fills it
// through the Controller: services in two namespaces (one deleted again,
// so its VIP is held), instances and a TLS secret. It returns the state.
func fillSingleNode(t *testing.T, dir string) state {
	t.Helper()
	r, err := Acquire(nodeconfig.Config{DataDir: dir, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var files []cluster.SourceFile
	for i := range 12 {
		files = append(files, cluster.SourceFile{Name: fmt.Sprintf("s%d.yaml", i), Data: fmt.Appendf(nil, "service:\n  name: svc%d\n  namespace: ns%d\n  ports:\n    - name: http\n      port: 80\n", i, i%2)})
	}
	if _, _, err := r.Controller().Cast(ctx, files); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		in := cluster.Instance{ID: fmt.Sprintf("svc%d-1", i), Service: fmt.Sprintf("svc%d", i), Namespace: fmt.Sprintf("ns%d", i%2), Node: "n1", IP: netip.AddrFrom4([4]byte{172, 17, 0, byte(2 + i)}), Ready: i%3 != 0}
		if _, err := r.Controller().RegisterInstance(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Controller().DeleteService(ctx, cluster.NamespacedName{Namespace: "ns1", Name: "svc11"}); err != nil {
		t.Fatal(err)
	}
	cert, key := testkit.SelfSigned(t, "api.example.com", time.Hour)
	if _, err := ingress.StoreTLSSecret(ctx, r.Log(), "ns0", "api-tls", cert, key); err != nil {
		t.Fatal(err)
	}
	return stateOf(t, r)
}

// --bootstrap on a single-node data dir makes its Badger state the first
// cluster node's: every key, value and revision, the seq, every VIP. The
// old store is kept renamed; writes (compare-and-set included) work on,
// and the state survives a restart.
func TestBootstrapMigratesASingleNodeStore(t *testing.T) {
	dir := t.TempDir()
	before := fillSingleNode(t, dir)

	cfg := nodeconfig.Config{DataDir: dir, NodeName: "n1", ClusterAddr: testkit.FreeAddr(t), Bootstrap: true}
	r, err := Acquire(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, "after migration", stateOf(t, r), before)
	if _, err := os.Stat(filepath.Join(dir, "store")); !os.IsNotExist(err) {
		t.Errorf("the migrated store is still at store/ (%v)", err)
	}
	if kept, _ := filepath.Glob(filepath.Join(dir, "store.migrated-*")); len(kept) != 1 {
		t.Errorf("kept stores %v, want one store.migrated-*", kept)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Registering an instance checks the service's revision; a new
	// service must not take a VIP an existing or held one has.
	if _, err := r.Controller().RegisterInstance(ctx, cluster.Instance{ID: "svc1-2", Service: "svc1", Namespace: "ns1", Node: "n1", IP: netip.MustParseAddr("172.17.0.20"), Ready: true}); err != nil {
		t.Fatalf("registering an instance after migration: %v", err)
	}
	_, seq, err := r.Controller().Cast(ctx, []cluster.SourceFile{{Name: "new.yaml", Data: []byte("service:\n  name: new\n  ports:\n    - name: http\n      port: 80\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if seq <= before.seq {
		t.Fatalf("a write after migration got seq %d, not past the store's %d", seq, before.seq)
	}
	after := stateOf(t, r)
	newVIP := after.vips[cluster.NamespacedName{Namespace: "default", Name: "new"}]
	for n, vip := range before.vips {
		if vip == newVIP {
			t.Fatalf("the new service got %v, the VIP of %s", vip, n)
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
	if err := r.View().WaitFor(ctx, after.seq); err != nil { // a restarted node replays its log once it leads
		t.Fatal(err)
	}
	sameState(t, "after a restart", stateOf(t, r), after)
}

// A migration that stopped midway loses nothing and a rerun finishes it:
// a half-built Raft directory left by a crash is replaced, and a start
// that stopped after the Raft directory was in place but before the store
// was renamed away only renames it.
func TestBootstrapMigrationResumesAfterACrash(t *testing.T) {
	dir := t.TempDir()
	before := fillSingleNode(t, dir)
	if err := os.MkdirAll(filepath.Join(dir, "raft.migrating", "snapshots", "1-1-0-tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "raft.migrating", "raft.db"), []byte("torn"), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := nodeconfig.Config{DataDir: dir, NodeName: "n1", ClusterAddr: testkit.FreeAddr(t), Bootstrap: true}
	r, err := Acquire(cfg)
	if err != nil {
		t.Fatalf("migrating over a torn earlier attempt: %v", err)
	}
	sameState(t, "after migrating over a torn attempt", stateOf(t, r), before)
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}

	kept, _ := filepath.Glob(filepath.Join(dir, "store.migrated-*"))
	if len(kept) != 1 {
		t.Fatalf("kept stores %v, want one", kept)
	}
	if err := os.Rename(kept[0], filepath.Join(dir, "store")); err != nil { // as if the last rename never happened
		t.Fatal(err)
	}
	r, err = Acquire(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	sameState(t, "after finishing an interrupted migration", stateOf(t, r), before)
	if _, err := os.Stat(filepath.Join(dir, "store")); !os.IsNotExist(err) {
		t.Errorf("the interrupted migration's store is still at store/ (%v)", err)
	}
}
