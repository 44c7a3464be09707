package raft

import (
	"bufio"
	"fmt"
	"io"

	hraft "github.com/hashicorp/raft"
)

// A snapshot is the whole state machine:
//
//	magic        "RUNEOL" + version byte
//	header       uvarints seq, index, n
//	kv count     uvarint, then per key in key order:
//	             key len, key, rev, value len, value
//	window count uvarint, then per request, oldest first:
//	             16-byte id, n, seq, index, conflict flag byte
//	             [key len, key, want rev, actual rev, op index]
//
// The FileSnapshotStore checksums the file; a snapshot that does not decode
// is refused whole, and Raft keeps the previous state.
var snapshotMagic = []byte("RUNEOL\x01")

func (f *fsm) Snapshot() (hraft.FSMSnapshot, error) { return &fsmSnapshot{st: f.cur.Load()}, nil }

type fsmSnapshot struct{ st *state }

func (s *fsmSnapshot) Release() {}

func (s *fsmSnapshot) Persist(sink hraft.SnapshotSink) error {
	w := bufio.NewWriterSize(sink, 1<<16)
	err := writeSnapshot(w, s.st)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("orderedlog/raft: writing snapshot: %w", err)
	}
	return sink.Close()
}

func writeSnapshot(w *bufio.Writer, st *state) error {
	e := &encoder{buf: append([]byte(nil), snapshotMagic...)}
	flush := func(force bool) error {
		if !force && len(e.buf) < 1<<15 {
			return nil
		}
		_, err := w.Write(e.buf)
		e.buf = e.buf[:0]
		return err
	}
	e.uv(st.seq)
	e.uv(st.index)
	e.uv(st.n)
	e.uv(uint64(st.kv.Len()))
	it := st.kv.Root().Iterator()
	for k, v, ok := it.Next(); ok; k, v, ok = it.Next() {
		kv := v.(*kvEntry)
		e.bytes(k)
		e.uv(kv.rev)
		e.bytes(kv.value)
		if err := flush(false); err != nil {
			return err
		}
	}
	e.uv(uint64(st.kept))
	it = st.order.Root().Iterator()
	for _, v, ok := it.Next(); ok; _, v, ok = it.Next() {
		id := v.(requestID)
		o, _ := st.ids.Get(id[:])
		e.raw(id[:])
		e.outcome(o.(*outcome))
		if err := flush(false); err != nil {
			return err
		}
	}
	return flush(true)
}

// Restore replaces the state with a snapshot's, on start-up and when the
// leader sends one to a follower that fell behind its log. Watch history
// before the snapshot is gone: watchers get ErrCompacted and re-list.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := readSnapshot(bufio.NewReaderSize(rc, 1<<16))
	if err != nil {
		return fmt.Errorf("orderedlog/raft: restoring snapshot: %w", err)
	}
	f.ring.Reset(st.seq)
	f.floor.Store(st.seq)
	f.cur.Store(st)
	f.notify.Wake()
	return nil
}

func readSnapshot(r *bufio.Reader) (*state, error) {
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != string(snapshotMagic) {
		return nil, fmt.Errorf("%w snapshot: bad header (written by a newer runed?)", errMalformed)
	}
	d := &decoder{r: r}
	st := emptyState()
	st.seq, st.index, st.n = d.uv(), d.uv(), d.uv()
	kv := st.kv.Txn()
	for count := d.uv(); d.err == nil && count > 0; count-- {
		k := d.bytes()
		e := &kvEntry{rev: d.uv(), value: d.bytes()}
		kv.Insert(k, e)
	}
	ids, order := st.ids.Txn(), st.order.Txn()
	for count := d.uv(); d.err == nil && count > 0; count-- {
		var id requestID
		d.raw(id[:])
		o := d.outcome()
		ids.Insert(id[:], o)
		order.Insert(orderKey(o.n), id)
		st.kept++
	}
	d.end()
	if d.err != nil {
		return nil, fmt.Errorf("snapshot: %w", d.err)
	}
	st.kv, st.ids, st.order = kv.CommitOnly(), ids.CommitOnly(), order.CommitOnly()
	return st, nil
}
