package raft

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/logtest"
)

// A node opened on a seeded directory leads a one-voter cluster serving
// the source's keys, values and revisions at its seq; compare-and-set on
// a seeded revision works and the next batch is seq+1.
func TestSeedStartsAClusterFromAnotherLogsState(t *testing.T) {
	src := NewTestCluster(t, 1, TestOptions()).Node(0)
	for i := range 20 {
		logtest.MustPropose(t, src, orderedlog.Put(fmt.Sprintf("services/s%d", i%7), logtest.Val("v%d", i)))
	}
	logtest.MustPropose(t, src, orderedlog.Delete("services/s3"))
	want, wantSeq, err := src.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "raft")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seq, keys, err := Seed(ctx, dir, "seeded", "inmem-seeded", src, QuietLogger())
	if err != nil {
		t.Fatal(err)
	}
	if seq != wantSeq || keys != len(want) {
		t.Fatalf("seeded seq %d with %d keys, want %d with %d", seq, keys, wantSeq, len(want))
	}
	if _, _, err := Seed(ctx, dir, "seeded", "inmem-seeded", src, QuietLogger()); err == nil {
		t.Fatal("seeding a directory that holds a snapshot succeeded")
	}

	opts := TestOptions()
	opts.NodeID, opts.Dir, opts.Transport = "seeded", dir, NewInmemNetwork().Transport("inmem-seeded")
	l, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got, gotSeq, err := l.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if gotSeq != wantSeq || !slices.EqualFunc(got, want, func(a, b orderedlog.KV) bool {
		return a.Key == b.Key && a.Rev == b.Rev && string(a.Value) == string(b.Value)
	}) {
		t.Fatalf("seeded node serves %v at seq %d, want %v at %d", got, gotSeq, want, wantSeq)
	}
	s0, _, _, _ := src.Get(ctx, "services/s0")
	next, err := l.Propose(ctx, []orderedlog.Op{orderedlog.PutIf("services/s0", []byte("cas"), s0.Rev)})
	if err != nil || next != wantSeq+1 {
		t.Fatalf("compare-and-set on a seeded revision: seq %d, %v; want seq %d", next, err, wantSeq+1)
	}
	if members, err := l.Members(); err != nil || len(members) != 1 || !members[0].Voter || members[0].ID != "seeded" {
		t.Fatalf("members %+v, %v: want the seeded node as the one voter", members, err)
	}
}
