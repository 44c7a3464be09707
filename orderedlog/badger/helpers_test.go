package badger

import (
	"encoding/binary"
	"hash/crc32"
	"io"
	"log/slog"
	"testing"

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
