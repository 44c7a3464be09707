package e2ecluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runenet/runenet/api"
	"github.com/runenet/runenet/orderedlog"
)

// opTimeout bounds one API call of a test client: past the log's 10s retry
// window, so the node answers (outcome unknown, or unavailable) first.
const opTimeout = 20 * time.Second

// outcome is what a client learnt of a write.
type outcome int

const (
	outcomeOK         outcome = iota
	outcomeRefused            // a definite no (conflict, not found): nothing applied
	outcomeNotApplied         // certainly not applied: runed unreachable, or no leader reachable
	outcomeUnknown            // may or may not have applied
)

// errorCounts tallies the errors clients saw, by outcome and message, for
// the test's log.
type errorCounts struct {
	mu sync.Mutex
	m  map[string]int
}

func (e *errorCounts) add(oc outcome, err error) {
	if err == nil {
		return
	}
	msg := err.Error()
	for _, r := range normalize {
		msg = r.re.ReplaceAllString(msg, r.with)
	}
	if len(msg) > 120 {
		msg = msg[:120] + "…"
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string]int{}
	}
	e.m[fmt.Sprintf("%s: %s", oc, msg)]++
}

func (e *errorCounts) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	keys := slices.Sorted(maps.Keys(e.m))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %5d× %s", e.m[k], k)
	}
	return b.String()
}

var clientErrors errorCounts

// normalize folds the names of clients' objects and sockets out of error
// messages, so the tally groups them.
var normalize = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\b(reg|flip)-c\d+\b`), "$1-cN"},
	{regexp.MustCompile(`\bs-c\d+-\d+\b`), "s-cN-K"},
	{regexp.MustCompile(`unix://\S+runed.sock`), "unix://…/runed.sock"},
	{regexp.MustCompile(`@->\S+runed.sock`), "@->…/runed.sock"},
}

func (o outcome) String() string {
	return [...]string{"ok", "refused", "not applied", "unknown"}[o]
}

// classify maps an API call's error to what the client knows of its write,
// and tallies the error.
func classify(err error) outcome {
	oc := classifyErr(err)
	clientErrors.add(oc, err)
	return oc
}

func classifyErr(err error) outcome {
	var ae *api.APIError
	switch {
	case err == nil:
		return outcomeOK
	case isDialError(err):
		return outcomeNotApplied
	case errors.As(err, &ae) && ae.Kind == "unavailable":
		return outcomeNotApplied // "no leader reachable; nothing was applied"
	case errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500:
		return outcomeRefused
	default: // outcome_unknown, a broken connection, a timeout
		return outcomeUnknown
	}
}

// Dump is a node's whole state (what GET /v1/list shows) and its seq.
type Dump struct {
	Node  string
	Seq   uint64
	State []byte // the KVs as JSON: keys, values, revisions
}

func (n *Node) dump() (Dump, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kvs, seq, err := n.API.List(ctx, "")
	if err != nil {
		return Dump{}, err
	}
	b, err := json.Marshal(kvs)
	return Dump{Node: n.Name, Seq: seq, State: b}, err
}

// Converged waits until every node in nodes dumps the same seq, and fails
// the test if their states then differ by a byte; it returns the dump.
func Converged(t *testing.T, nodes []*Node, timeout time.Duration) Dump {
	t.Helper()
	var dumps []Dump
	var lastErr error
	if !waitUntil(timeout, func() bool {
		dumps = dumps[:0]
		for _, n := range nodes {
			d, err := n.dump()
			if err != nil {
				lastErr = fmt.Errorf("%s: %w", n.Name, err)
				return false
			}
			dumps = append(dumps, d)
		}
		for _, d := range dumps[1:] {
			if d.Seq != dumps[0].Seq {
				lastErr = fmt.Errorf("seqs differ: %s", describeDumps(dumps))
				return false
			}
		}
		return true
	}) {
		t.Fatalf("nodes did not reach one seq within %v: %v", timeout, lastErr)
	}
	for _, d := range dumps[1:] {
		if !bytes.Equal(d.State, dumps[0].State) {
			t.Fatalf("at seq %d %s's state differs from %s's:\n%s\n%s", d.Seq, d.Node, dumps[0].Node, d.State, dumps[0].State)
		}
	}
	return dumps[0]
}

func describeDumps(ds []Dump) string {
	s := ""
	for _, d := range ds {
		s += fmt.Sprintf(" %s@%d", d.Node, d.Seq)
	}
	return s
}

// History reads n's batches 1..upTo through its watch API and fails the
// test unless they come gapless, in order. The tests stay far below Raft's
// snapshot threshold (8192 entries), so even a node restarted many times
// replays its log from the first entry and its watch history reaches back
// to seq 1.
func History(t *testing.T, n *Node, upTo uint64) []orderedlog.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch, err := n.API.Watch(ctx, 1)
	if err != nil {
		t.Fatalf("%s: watch from 1: %v", n.Name, err)
	}
	var out []orderedlog.Batch
	for ev := range ch {
		if ev.Err != nil {
			t.Fatalf("%s: watch from 1 after seq %d: %v", n.Name, len(out), ev.Err)
		}
		if ev.Batch == nil {
			continue
		}
		if want := uint64(len(out)) + 1; ev.Batch.Seq != want {
			t.Fatalf("%s: the watch delivered seq %d after %d: the seqs have a gap", n.Name, ev.Batch.Seq, want-1)
		}
		out = append(out, *ev.Batch)
		if ev.Batch.Seq == upTo {
			return out
		}
	}
	t.Fatalf("%s: the watch ended at seq %d before %d: %v", n.Name, len(out), upTo, ctx.Err())
	return nil
}

// SameHistories fails the test unless every node's batches 1..upTo hold the
// same operations.
func SameHistories(t *testing.T, nodes []*Node, upTo uint64) []orderedlog.Batch {
	t.Helper()
	first := History(t, nodes[0], upTo)
	for _, n := range nodes[1:] {
		h := History(t, n, upTo)
		for i := range first {
			a, _ := json.Marshal(first[i].Ops)
			b, _ := json.Marshal(h[i].Ops)
			if !bytes.Equal(a, b) {
				t.Fatalf("seq %d differs between %s and %s:\n%s\n%s", i+1, nodes[0].Name, n.Name, a, b)
			}
		}
	}
	return first
}
