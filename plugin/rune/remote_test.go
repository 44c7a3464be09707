package rune

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/orderedlog"
)

// silentSource delivers s.heartbeats heartbeats, then nothing, and never
// closes: a connection to a runed that vanished without a goodbye.
type silentSource struct {
	heartbeats int
	ended      chan struct{}
}

func (s silentSource) ListFunc(context.Context, string, func(orderedlog.KV) error) (uint64, error) {
	return 0, nil
}

func (s silentSource) Watch(ctx context.Context, from uint64) (<-chan orderedlog.Event, error) {
	ch := make(chan orderedlog.Event, 1)
	go func() {
		for range s.heartbeats {
			select {
			case ch <- orderedlog.Event{Tail: from - 1}:
			case <-ctx.Done():
			}
		}
		<-ctx.Done()
		close(s.ended)
	}()
	return ch, nil
}

func TestIdleSourceEndsASilentWatch(t *testing.T) {
	src := silentSource{heartbeats: 1, ended: make(chan struct{})}
	ch, err := idleSource{Source: src, idle: 100 * time.Millisecond}.Watch(context.Background(), 8)
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-ch; ev.Err != nil || ev.Tail != 7 {
		t.Fatalf("first event %+v, want the heartbeat", ev)
	}
	start := time.Now()
	ev := <-ch
	if ev.Err == nil || !strings.Contains(ev.Err.Error(), "not even a heartbeat") {
		t.Fatalf("after silence: %+v, want an error that ends the watch", ev)
	}
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Errorf("gave up after %s, before the idle time", d)
	}
	if _, ok := <-ch; ok {
		t.Error("the watch went on after its error")
	}
	select {
	case <-src.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the source's watch was not cancelled, so its connection stays open")
	}
}

// A View that does not take events is not a silent runed: time the watch
// spends waiting for it to read does not count towards the idle time.
func TestIdleSourceWaitsForASlowReader(t *testing.T) {
	src := silentSource{heartbeats: 2, ended: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := idleSource{Source: src, idle: 100 * time.Millisecond}.Watch(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The second heartbeat waits for room in the one-event buffer, well past
	// the idle time.
	time.Sleep(300 * time.Millisecond)
	for i := range 2 {
		if ev := <-ch; ev.Err != nil {
			t.Fatalf("event %d after a slow read: %v, want a heartbeat", i, ev.Err)
		}
	}
	start := time.Now()
	if ev := <-ch; ev.Err == nil {
		t.Fatalf("after the heartbeats: %+v, want the idle error", ev)
	}
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Errorf("idle error %s after the reader caught up, want the full idle time", d)
	}
}
