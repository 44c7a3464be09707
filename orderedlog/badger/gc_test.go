package badger

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/logtest"
)

func vlogBytes(t *testing.T, dir string) int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// Overwritten values and compacted log entries give their value-log space
// back once GC runs (Badger never runs it on its own).
func TestValueLogGCReclaimsSpace(t *testing.T) {
	dir := t.TempDir()
	opts := Options{MemTableSize: 1 << 20, ValueLogFileSize: 1 << 20, KeepEntries: -1, GCInterval: -1}
	l := openTestLog(t, dir, opts)
	ctx := context.Background()
	value := bytes.Repeat([]byte("v"), 200<<10) // above the value threshold: stored in the value log
	// Each round overwrites every key and drops the log entries, then
	// reopens, which flushes the memtable into a table of its own: enough
	// tables that flattening compacts them, and the compaction tells Badger
	// which value-log entries nothing points at any more.
	for round := 0; round < 7; round++ {
		for i := 0; i < 10; i++ {
			logtest.MustPropose(t, l, orderedlog.Put(fmt.Sprintf("k%d", i), value))
		}
		if err := l.Compact(ctx, l.Tail()); err != nil {
			t.Fatal(err)
		}
		l.Close()
		l = openTestLog(t, dir, opts)
	}
	if err := l.db.Flatten(1); err != nil {
		t.Fatal(err)
	}
	before := vlogBytes(t, dir)
	rewritten := testutil.ToFloat64(valueLogGC.WithLabelValues("rewritten"))
	l.collectValueLog()
	after := vlogBytes(t, dir)
	t.Logf("value log %d → %d bytes", before, after)
	if testutil.ToFloat64(valueLogGC.WithLabelValues("rewritten")) == rewritten || after >= before {
		t.Fatalf("value-log GC reclaimed nothing: %d → %d bytes", before, after)
	}
	for i := 0; i < 10; i++ {
		if kv, ok, _, err := l.Get(ctx, fmt.Sprintf("k%d", i)); err != nil || !ok || !bytes.Equal(kv.Value, value) {
			t.Fatalf("k%d after GC: %v %v", i, ok, err)
		}
	}
}

// The log runs value-log GC by itself, every GCInterval.
func TestValueLogGCRunsPeriodically(t *testing.T) {
	runs := func() float64 {
		return testutil.ToFloat64(valueLogGC.WithLabelValues("nothing")) + testutil.ToFloat64(valueLogGC.WithLabelValues("rewritten"))
	}
	start := runs()
	openTestLog(t, t.TempDir(), Options{GCInterval: 10 * time.Millisecond})
	deadline := time.Now().Add(30 * time.Second)
	for runs() < start+2 {
		if time.Now().After(deadline) {
			t.Fatalf("value-log GC ran %v times in 30s at a 10ms interval", runs()-start)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
