package raft

import (
	"bufio"
	"bytes"
	"reflect"
	"testing"

	hraft "github.com/hashicorp/raft"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/logtest"
)

// A snapshot brings back the state, the seq and the dedup window exactly;
// any truncation of it is refused.
func TestSnapshotRoundTrip(t *testing.T) {
	f := newFSM(3, 16, QuietLogger())
	var logs []*hraft.Log
	for i, op := range []orderedlog.Op{
		orderedlog.Put("services/a", logtest.Val("1")),
		orderedlog.Put("\x00\xff", nil),
		orderedlog.PutIf("services/a", nil, 0), // conflicts
		orderedlog.Delete("services/missing"),
		orderedlog.Put("services/b", logtest.Val("2")),
	} {
		logs = append(logs, &hraft.Log{Index: uint64(i + 3), Type: hraft.LogCommand, Data: encodeCommand(newRequestID(), mustEncode(op))})
	}
	f.ApplyBatch(logs)
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := writeSnapshot(w, f.applied()); err != nil || w.Flush() != nil {
		t.Fatal(err)
	}
	st, err := readSnapshot(bufio.NewReader(bytes.NewReader(buf.Bytes())))
	if err != nil {
		t.Fatal(err)
	}
	want := f.applied()
	if st.seq != 4 || st.seq != want.seq || st.index != want.index || st.n != want.n || st.kept != 3 {
		t.Fatalf("restored seq %d index %d n %d kept %d, want %d %d %d 3", st.seq, st.index, st.n, st.kept, want.seq, want.index, want.n)
	}
	restored := &fsm{}
	restored.cur.Store(st)
	orig := &fsm{}
	orig.cur.Store(want)
	if a, b := listAll(restored), listAll(orig); !logtest.SameKVs(a, b) {
		t.Fatalf("restored state %v, want %v", a, b)
	}
	for _, l := range logs[2:] { // the window keeps the newest 3
		id, _, _ := decodeCommand(l.Data)
		got, ok := st.ids.Get(id[:])
		orig, _ := want.ids.Get(id[:])
		if !ok || !reflect.DeepEqual(got, orig) {
			t.Fatalf("request at index %d: restored %+v, want %+v", l.Index, got, orig)
		}
	}
	for cut := range buf.Len() {
		if _, err := readSnapshot(bufio.NewReader(bytes.NewReader(buf.Bytes()[:cut]))); err == nil {
			t.Fatalf("reading %d of %d bytes succeeded", cut, buf.Len())
		}
	}
}

func listAll(f *fsm) []orderedlog.KV {
	var kvs []orderedlog.KV
	it := f.applied().kv.Root().Iterator()
	for k, v, ok := it.Next(); ok; k, v, ok = it.Next() {
		e := v.(*kvEntry)
		kvs = append(kvs, orderedlog.KV{Key: string(k), Value: e.value, Rev: e.rev})
	}
	return kvs
}
