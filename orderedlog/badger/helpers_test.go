package badger

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"testing"
	"time"

	badgerdb "github.com/dgraph-io/badger/v4"
	"github.com/runenet/runenet/orderedlog"
)

// quietLogger keeps Badger's warnings out of test output unless -v.
func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func openTestLog(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustPropose(t testing.TB, l orderedlog.Log, ops ...orderedlog.Op) uint64 {
	t.Helper()
	seq, err := l.Propose(context.Background(), ops)
	if err != nil {
		t.Fatalf("Propose(%v): %v", ops, err)
	}
	return seq
}

// collect reads batch events until it has seen seq `until`, failing on gaps,
// duplicates, Err events, an early close or a timeout. from is the first seq
// expected (0: whatever comes first).
func collect(t testing.TB, ch <-chan orderedlog.Event, from, until uint64, timeout time.Duration) []*orderedlog.Batch {
	t.Helper()
	var got []*orderedlog.Batch
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	next := from
	for next == 0 || next <= until {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed after %d batches, waiting for seq %d", len(got), next)
			}
			if ev.Err != nil {
				t.Fatalf("watch error waiting for seq %d: %v", next, ev.Err)
			}
			if ev.Batch == nil {
				continue
			}
			if next != 0 && ev.Batch.Seq != next {
				t.Fatalf("watch delivered seq %d, want %d (gap or duplicate)", ev.Batch.Seq, next)
			}
			if ev.Tail < ev.Batch.Seq {
				t.Fatalf("event for seq %d reports tail %d", ev.Batch.Seq, ev.Tail)
			}
			got = append(got, ev.Batch)
			next = ev.Batch.Seq + 1
		case <-timer.C:
			t.Fatalf("timed out waiting for seq %d (got %d batches)", next, len(got))
		}
	}
	return got
}

// opsChecksum fingerprints a batch's content; the crash test's child prints
// it so the parent can check acknowledged batches byte for byte.
func opsChecksum(ops []orderedlog.Op) uint32 {
	h := crc32.NewIEEE()
	var buf []byte
	for _, op := range ops {
		buf = buf[:0]
		buf = append(buf, byte(op.Type))
		buf = binary.AppendUvarint(buf, op.Rev)
		if op.HasPrecondition {
			buf = append(buf, 1)
		}
		buf = binary.AppendUvarint(buf, uint64(len(op.Key)))
		buf = append(buf, op.Key...)
		buf = binary.AppendUvarint(buf, uint64(len(op.Value)))
		buf = append(buf, op.Value...)
		h.Write(buf)
	}
	return h.Sum32()
}

// logSeqs lists the seqs of the log entries physically present, bypassing
// the code under test.
func logSeqs(t testing.TB, l *Log) []uint64 {
	t.Helper()
	var seqs []uint64
	err := l.db.View(func(txn *badgerdb.Txn) error {
		it := txn.NewIterator(badgerdb.IteratorOptions{Prefix: []byte{nsLog}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			seqs = append(seqs, binary.BigEndian.Uint64(it.Item().Key()[1:]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

func checkContiguous(t testing.TB, seqs []uint64, from, to uint64) {
	t.Helper()
	if uint64(len(seqs)) != to+1-from {
		t.Fatalf("log holds %d entries, want %d..%d", len(seqs), from, to)
	}
	for i, s := range seqs {
		if s != from+uint64(i) {
			t.Fatalf("log entry %d is seq %d, want %d (gap)", i, s, from+uint64(i))
		}
	}
}

func val(format string, args ...any) []byte { return fmt.Appendf(nil, format, args...) }
