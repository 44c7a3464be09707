package logtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/runenet/runenet/orderedlog"
)

// MustPropose proposes ops and fails the test on any error.
func MustPropose(t testing.TB, l orderedlog.Proposer, ops ...orderedlog.Op) uint64 {
	t.Helper()
	seq, err := l.Propose(context.Background(), ops)
	if err != nil {
		t.Fatalf("Propose(%v): %v", ops, err)
	}
	return seq
}

// Collect reads batch events until it has seen seq until, failing on gaps,
// duplicates, Err events, an early close or a timeout. from is the first seq
// expected (0: whatever comes first).
func Collect(t testing.TB, ch <-chan orderedlog.Event, from, until uint64, timeout time.Duration) []*orderedlog.Batch {
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

// CheckContiguous fails unless seqs are exactly from..to in order.
func CheckContiguous(t testing.TB, seqs []uint64, from, to uint64) {
	t.Helper()
	if uint64(len(seqs)) != to+1-from {
		t.Fatalf("%d seqs, want %d..%d", len(seqs), from, to)
	}
	for i, s := range seqs {
		if s != from+uint64(i) {
			t.Fatalf("seq %d at position %d, want %d (gap)", s, i, from+uint64(i))
		}
	}
}

// Val formats a value.
func Val(format string, args ...any) []byte { return fmt.Appendf(nil, format, args...) }
