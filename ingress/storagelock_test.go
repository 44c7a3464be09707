package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runenet/runenet/orderedlog"
)

// cutLog is an edge node's view of the shared log that can be cut off: once
// cut, every read and write fails, as for a node that crashed or lost the
// cluster. The others' view of the log is unaffected.
type cutLog struct {
	orderedlog.Log
	cut atomic.Bool
}

var errCut = errors.New("test: this edge node is cut off from the log")

func (l *cutLog) Propose(ctx context.Context, ops []orderedlog.Op) (uint64, error) {
	if l.cut.Load() {
		return 0, errCut
	}
	return l.Log.Propose(ctx, ops)
}

func (l *cutLog) Get(ctx context.Context, key string) (orderedlog.KV, bool, uint64, error) {
	if l.cut.Load() {
		return orderedlog.KV{}, false, 0, errCut
	}
	return l.Log.Get(ctx, key)
}

// Sync passes the Raft log's linearizable read point through, as the
// storage uses it on a miss; a single-node log has nothing to wait for.
// Without it, an edge on a lagging replica could miss the challenge token
// another edge just stored (the storage would not know to wait).
func (l *cutLog) Sync(ctx context.Context) (uint64, error) {
	if l.cut.Load() {
		return 0, errCut
	}
	if sy, ok := l.Log.(syncer); ok {
		return sy.Sync(ctx)
	}
	return 0, nil
}

func lockHolder(t *testing.T, log orderedlog.Log, name string) (lockRecord, bool) {
	t.Helper()
	kv, ok, _, err := log.Get(context.Background(), lockKey(name))
	if err != nil {
		t.Fatal(err)
	}
	var rec lockRecord
	if ok {
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			t.Fatalf("lock record %s: %v", kv.Value, err)
		}
	}
	return rec, ok
}

func TestStorageLockRenewedTakenOverAndReleasedOnlyByItsHolder(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	const lease = 600 * time.Millisecond
	const name = "issue_cert_x.test"
	bLog := &cutLog{Log: n.Log}
	a, b := NewStorage(n.Log, "edge-a", lease), NewStorage(bLog, "edge-b", lease)

	if ok, err := a.TryLock(ctx, name); !ok || err != nil {
		t.Fatalf("TryLock of a free lock = %v, %v", ok, err)
	}
	if ok, err := b.TryLock(ctx, name); ok || err != nil {
		t.Fatalf("TryLock of a held lock = %v, %v; want false, nil", ok, err)
	}
	// a is alive and renews: b cannot take it, even after several leases.
	short, cancel := context.WithTimeout(ctx, 3*lease)
	err := b.Lock(short, name)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock while another holder renews: %v, want to wait until its deadline", err)
	}
	if rec, _ := lockHolder(t, n.Log, name); rec.Node != "edge-a" || rec.Lease != lease {
		t.Errorf("lock record %+v, want edge-a's with its lease", rec)
	}
	if err := b.RenewLockLease(ctx, name, time.Hour); !errors.Is(err, errLockLost) {
		t.Errorf("RenewLockLease of a lock another node holds: %v, want errLockLost", err)
	}
	if err := a.Unlock(ctx, name); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryLock(ctx, name); !ok || err != nil {
		t.Fatalf("TryLock right after Unlock = %v, %v", ok, err)
	}
	if err := b.RenewLockLease(ctx, name, time.Hour); err != nil {
		t.Errorf("RenewLockLease by the holder: %v", err)
	}

	// b is cut off without unlocking: a takes over once b's record went a
	// lease without renewal, not before.
	bLog.cut.Store(true)
	start := time.Now()
	if err := a.Lock(ctx, name); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < lease || d > lease+time.Second {
		t.Errorf("takeover of a cut-off holder's lock after %v, want a lease (%v) and little more", d, lease)
	}
	// b comes back: neither its renewal nor its Unlock may touch a's lock,
	// and RenewLockLease tells it the lock is gone.
	bLog.cut.Store(false)
	if err := b.RenewLockLease(ctx, name, time.Hour); !errors.Is(err, errLockLost) {
		t.Errorf("RenewLockLease after a takeover: %v, want errLockLost", err)
	}
	if err := b.Unlock(ctx, name); err != nil { // returns once b's renewer ended
		t.Fatal(err)
	}
	if rec, ok := lockHolder(t, n.Log, name); !ok || rec.Node != "edge-a" {
		t.Fatalf("after the old holder came back and unlocked, the lock record is %+v (present %v), want edge-a's", rec, ok)
	}
	if err := a.Unlock(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, ok := lockHolder(t, n.Log, name); ok {
		t.Error("Unlock left the lock record")
	}
	if err := a.Unlock(ctx, name); err == nil {
		t.Error("Unlock of a lock not held: no error")
	}
}

func TestStorageTryLockRaceHasOneWinner(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	var wins atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 8 {
		s := NewStorage(n.Log, "edge", time.Minute)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ok, err := s.TryLock(ctx, "issue_cert_race.test")
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d of 8 racing TryLocks won, want exactly 1", wins.Load())
	}
}
