package badger

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runenet/runenet/internal/testseed"
	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/logtest"
)

const (
	crashDirEnv = "ORDEREDLOG_CRASH_CHILD_DIR"
	crashRunEnv = "ORDEREDLOG_CRASH_CHILD_RUN"

	crashWorkers = 4
	pairA        = "crash/pair/a"
	pairB        = "crash/pair/b"
	counterKey   = "crash/counter"
	vipPrefix    = orderedlog.PrefixNetwork + "vips/"
)

// The acceptance test for durability and atomicity: a child process (this
// test binary, re-executed) proposes batches as fast as it can and prints
// every acknowledged one; the parent SIGKILLs it at random moments and, after
// each kill, checks the reopened log against what was acknowledged and
// against a model of the state rebuilt from the log itself.
func TestCrashSafety(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		run, _ := strconv.Atoi(os.Getenv(crashRunEnv))
		crashChild(dir, run)
		return
	}
	if testing.Short() && os.Getenv("RUNE_E2E") == "" { // CI (RUNE_E2E=1) always runs it
		t.Skip("re-executes the test binary 24 times")
	}
	dir := t.TempDir()
	rng := testseed.Rand(t)
	m := &crashModel{state: map[string]orderedlog.KV{}, allocations: map[string]string{}, acked: map[uint64]uint32{}}
	start := time.Now()
	const rounds = 24
	for round := range rounds {
		acks, stderr := runAndKill(t, dir, round, rng)
		l := openTestLog(t, dir, Options{KeepEntries: -1})
		m.verify(t, l, round, acks, stderr)
		// Compact now and then, only up to what the model has already
		// folded, so later rounds check contiguity above a floor.
		if round%6 == 5 && m.tail > 10 {
			if err := l.Compact(context.Background(), m.tail-10); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if len(m.acked) < 100 {
		t.Fatalf("only %d batches acknowledged over %d kills; the child barely ran", len(m.acked), rounds)
	}
	t.Logf("%d kills, %d acknowledged batches, tail %d, %d allocations, %v", rounds, len(m.acked), m.tail, len(m.allocations), time.Since(start))
}

type ack struct {
	seq uint64
	sum uint32
}

// runAndKill starts a child on dir and SIGKILLs it after a random delay,
// returning the batches it acknowledged.
func runAndKill(t *testing.T, dir string, round int, rng *rand.Rand) ([]ack, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashSafety$", "-test.count=1", "-test.v=false")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashRunEnv+"="+strconv.Itoa(round))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	var acks []ack
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 1 && f[0] == "ready":
				close(ready)
			case len(f) == 3 && f[0] == "ack":
				seq, err1 := strconv.ParseUint(f[1], 10, 64)
				sum, err2 := strconv.ParseUint(f[2], 16, 32)
				if err1 == nil && err2 == nil {
					acks = append(acks, ack{seq, uint32(sum)})
				}
			}
		}
	}()
	// Most kills land while batches are flowing; every fourth may land
	// anywhere, including inside Badger's open/replay.
	if round%4 == 3 {
		time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
	} else {
		select {
		case <-ready:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("round %d: child never became ready; stderr:\n%s", round, stderr.String())
		}
		time.Sleep(time.Duration(10+rng.IntN(150)) * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("round %d: kill: %v", round, err)
	}
	<-readDone
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("round %d: child ended with %v before being killed; stderr:\n%s", round, err, stderr.String())
	}
	return acks, stderr.String()
}

func crashChild(dir string, run int) {
	l, err := Open(dir, Options{KeepEntries: -1, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	fmt.Println("ready")
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range crashWorkers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(run), uint64(w)))
			for i := 0; ; i++ {
				ops, err := crashBatch(ctx, l, rng, fmt.Sprintf("%d.%d.%d", run, w, i))
				if err == nil {
					var seq uint64
					seq, err = l.Propose(ctx, ops)
					if err == nil {
						// One write per line, so a kill never leaves half
						// an acknowledgement.
						mu.Lock()
						fmt.Fprintf(os.Stdout, "ack %d %08x\n", seq, opsChecksum(ops))
						mu.Unlock()
						continue
					}
				}
				if !errors.Is(err, orderedlog.ErrConflict) {
					fmt.Fprintln(os.Stderr, "propose:", err)
					os.Exit(3)
				}
			}
		})
	}
	wg.Wait()
}

// crashBatch builds a multi-op batch: the pair keys (always written
// together), a few per-worker keys of random size, sometimes a delete, a CAS
// increment of a shared counter, and sometimes a once-only VIP allocation.
func crashBatch(ctx context.Context, l orderedlog.Log, rng *rand.Rand, tag string) ([]orderedlog.Op, error) {
	ops := []orderedlog.Op{orderedlog.Put(pairA, []byte(tag)), orderedlog.Put(pairB, []byte(tag))}
	for range 1 + rng.IntN(3) {
		v := make([]byte, rng.IntN(2048))
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		ops = append(ops, orderedlog.Put(fmt.Sprintf("crash/k%d", rng.IntN(40)), v))
	}
	if rng.IntN(4) == 0 {
		ops = append(ops, orderedlog.Delete(fmt.Sprintf("crash/k%d", rng.IntN(40))))
	}
	if rng.IntN(2) == 0 {
		kv, _, _, err := l.Get(ctx, counterKey)
		if err != nil {
			return nil, err
		}
		n, _ := strconv.Atoi(string(kv.Value))
		ops = append(ops, orderedlog.PutIf(counterKey, []byte(strconv.Itoa(n+1)), kv.Rev))
	}
	if rng.IntN(5) == 0 {
		ops = append(ops, orderedlog.PutIf(fmt.Sprintf("%ss%d", vipPrefix, rng.IntN(60)), []byte(tag), 0))
	}
	return ops, nil
}

// crashModel is the parent's independent view of the log: the state folded
// from every batch up to tail, and what must never change.
type crashModel struct {
	tail        uint64
	state       map[string]orderedlog.KV
	counter     int // committed counter increments
	allocations map[string]string
	acked       map[uint64]uint32
}

func (m *crashModel) verify(t *testing.T, l *Log, round int, acks []ack, stderr string) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("round %d: %s\nchild stderr:\n%s", round, fmt.Sprintf(format, args...), stderr)
	}
	tail, floor := l.Tail(), l.floor.Load()
	if tail < m.tail {
		fail("tail went back from %d to %d", m.tail, tail)
	}
	if floor > m.tail {
		fail("floor %d above the last verified seq %d", floor, m.tail)
	}
	logtest.CheckContiguous(t, logSeqs(t, l), floor+1, tail)

	for _, a := range acks {
		if a.seq <= m.tail || a.seq > tail {
			fail("acknowledged seq %d outside this run's range (%d, %d]: lost or reused", a.seq, m.tail, tail)
		}
		if _, dup := m.acked[a.seq]; dup {
			fail("seq %d acknowledged twice", a.seq)
		}
		m.acked[a.seq] = a.sum
	}

	if tail > m.tail {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ch, err := l.Watch(ctx, m.tail+1)
		if err != nil {
			fail("watch: %v", err)
		}
		for _, b := range logtest.Collect(t, ch, m.tail+1, tail, 10*time.Second) {
			if sum, ok := m.acked[b.Seq]; ok && sum != opsChecksum(b.Ops) {
				fail("batch %d differs from what was acknowledged", b.Seq)
			}
			m.apply(t, fail, b)
		}
		m.tail = tail
	}

	kvs, seq, err := l.List(context.Background(), "")
	if err != nil || seq != tail {
		fail("List: seq %d (tail %d), err %v", seq, tail, err)
	}
	got := make(map[string]orderedlog.KV, len(kvs))
	for _, kv := range kvs {
		got[kv.Key] = kv
	}
	if !maps.EqualFunc(got, m.state, func(a, b orderedlog.KV) bool { return a.Rev == b.Rev && bytes.Equal(a.Value, b.Value) }) {
		fail("state differs from the fold of the log: a batch was applied partially or not logged")
	}
	if a, b := got[pairA], got[pairB]; a.Rev != b.Rev || !bytes.Equal(a.Value, b.Value) {
		fail("pair keys split: %s@%d vs %s@%d", a.Value, a.Rev, b.Value, b.Rev)
	}
	if n, _ := strconv.Atoi(string(got[counterKey].Value)); n != m.counter {
		fail("CAS counter = %d, but %d increments were committed", n, m.counter)
	}
	for key, v := range m.allocations {
		if string(got[key].Value) != v {
			fail("allocation %s changed from %q to %q", key, v, got[key].Value)
		}
	}
	for key, kv := range got {
		if strings.HasPrefix(key, vipPrefix) {
			m.allocations[key] = string(kv.Value)
		}
	}
}

// apply folds one committed batch into the model, first checking that its
// preconditions really held: a committed CAS against the wrong revision
// would be a lost update.
func (m *crashModel) apply(t *testing.T, fail func(string, ...any), b *orderedlog.Batch) {
	t.Helper()
	for _, op := range b.Ops {
		if op.HasPrecondition && m.state[op.Key].Rev != op.Rev {
			fail("batch %d committed with %q at rev %d, precondition wanted %d", b.Seq, op.Key, m.state[op.Key].Rev, op.Rev)
		}
	}
	for _, op := range b.Ops {
		switch op.Type {
		case orderedlog.OpPut:
			m.state[op.Key] = orderedlog.KV{Key: op.Key, Value: op.Value, Rev: b.Seq}
			if op.Key == counterKey {
				m.counter++
			}
		case orderedlog.OpDelete:
			delete(m.state, op.Key)
		}
	}
}
