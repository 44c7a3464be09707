package badger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/internal/tmpfstest"
	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/badger"
	"github.com/runenet/runenet/orderedlog/logtest"
)

// On a filesystem filling up, the log refuses writes with ErrNoSpace while
// the free space is below its reserve — well before Badger could hit the
// end of the disk, which kills the process — keeps serving reads and
// watches, says so in a metric and a log line, and accepts writes again
// once space is freed. Nothing acknowledged is lost.
func TestDiskFullRefusesWritesAndRecovers(t *testing.T) {
	mnt := tmpfstest.Mount(t, 64<<20)
	const reserve = 16 << 20
	var logs testkit.SyncBuffer
	dir := filepath.Join(mnt, "store")
	opts := badger.Options{MemTableSize: 4 << 20, ValueLogFileSize: 4 << 20, DiskReserve: reserve, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	l := open(t, dir, opts)
	ctx := context.Background()
	logtest.MustPropose(t, l, orderedlog.Put("first", logtest.Val("1")))
	watch, err := l.Watch(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}

	release := tmpfstest.Fill(t, mnt, reserve+2<<20)
	value := bytes.Repeat([]byte("v"), 64<<10)
	acked := 0
	var refused error
	for i := 0; i < 10000 && refused == nil; i++ {
		if _, refused = l.Propose(ctx, []orderedlog.Op{orderedlog.Put(fmt.Sprintf("k%05d", i), value)}); refused == nil {
			acked++
		}
	}
	var nse *orderedlog.NoSpaceError
	if !errors.Is(refused, orderedlog.ErrNoSpace) || !errors.As(refused, &nse) || !strings.Contains(refused.Error(), "disk full") {
		t.Fatalf("filling the disk ended with %v, want a disk-full error", refused)
	}
	if acked == 0 {
		t.Fatal("no write was accepted with 2 MiB above the reserve")
	}
	if free := tmpfstest.Free(t, mnt); free < reserve/2 {
		t.Fatalf("only %d bytes free when writes were refused: the reserve was not kept", free)
	}
	if got := testkit.Metric(t, "rune_orderedlog_disk_full", nil); got != 1 {
		t.Errorf("rune_orderedlog_disk_full = %v while refusing, want 1", got)
	}
	if !strings.Contains(logs.String(), "disk nearly full") {
		t.Errorf("no log line says the disk is full:\n%s", logs.String())
	}
	if _, err := l.Propose(ctx, []orderedlog.Op{orderedlog.Put("small", logtest.Val("x"))}); !errors.Is(err, orderedlog.ErrNoSpace) {
		t.Fatalf("a small write while full: %v, want ErrNoSpace", err)
	}

	// Reads and watches go on.
	if kv, ok, _, err := l.Get(ctx, "first"); err != nil || !ok || string(kv.Value) != "1" {
		t.Fatalf("get while full: %v %v %q", err, ok, kv.Value)
	}
	if kvs, _, err := l.List(ctx, "k"); err != nil || len(kvs) != acked {
		t.Fatalf("list while full: %d keys, %v; want %d", len(kvs), err, acked)
	}
	batches := logtest.Collect(t, watch, 2, uint64(1+acked), 10*time.Second)
	if len(batches) != acked {
		t.Fatalf("the watch delivered %d batches, want %d", len(batches), acked)
	}
	heartbeat := time.After(10 * time.Second)
	for beat := false; !beat; {
		select {
		case ev := <-watch:
			beat = ev.Batch == nil && ev.Err == nil
		case <-heartbeat:
			t.Fatal("no heartbeat while the disk is full")
		}
	}

	release()
	logtest.MustPropose(t, l, orderedlog.Put("after", logtest.Val("2")))
	if got := testkit.Metric(t, "rune_orderedlog_disk_full", nil); got != 0 {
		t.Errorf("rune_orderedlog_disk_full = %v after space was freed, want 0", got)
	}
	if !strings.Contains(logs.String(), "accepting writes again") {
		t.Errorf("no log line says writes resumed:\n%s", logs.String())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, dir, opts)
	if kvs, _, err := l.List(ctx, "k"); err != nil || len(kvs) != acked {
		t.Fatalf("after reopening: %d of %d acknowledged writes, %v", len(kvs), acked, err)
	}
}

func open(t *testing.T, dir string, opts badger.Options) *badger.Log {
	t.Helper()
	l, err := badger.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
