package rune

import (
	"context"
	"fmt"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/orderedlog"
)

// remoteIdle is how long a remote watch may go without a single event before
// it is taken for dead. runed's log sends a heartbeat every 200ms even when
// nothing is written, so this is many missed heartbeats, not a quiet cluster.
const remoteIdle = 5 * time.Second

// idleSource ends a watch that has gone silent. A runed that crashes closes
// its connections and the View reconnects at once; a host that vanishes or a
// partition closes nothing, and the stream would sit until TCP gave up,
// minutes later, with the View neither reconnecting nor resuming.
type idleSource struct {
	cluster.Source
	idle time.Duration
}

func (s idleSource) Watch(ctx context.Context, from uint64) (<-chan orderedlog.Event, error) {
	ctx, cancel := context.WithCancel(ctx)
	in, err := s.Source.Watch(ctx, from)
	if err != nil {
		cancel()
		return nil, err
	}
	// As deep as the source's buffer, so the View still finds bursts queued
	// and applies them as one snapshot.
	out := make(chan orderedlog.Event, cap(in))
	go func() {
		defer close(out)
		// Ends the source's stream (and its connection) however this ends.
		defer cancel()
		timer := time.NewTimer(s.idle)
		defer timer.Stop()
		for {
			// Only time spent waiting on the source counts: a View that is
			// slow to take events (or paused) is not a silent runed.
			timer.Reset(s.idle)
			var ev orderedlog.Event
			select {
			case e, ok := <-in:
				if !ok {
					return
				}
				ev = e
			case <-timer.C:
				ev = orderedlog.Event{Err: fmt.Errorf("watch from %d: no event from runed for %s, not even a heartbeat; reconnecting", from, s.idle)}
			case <-ctx.Done():
				return
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
			if ev.Err != nil {
				return
			}
		}
	}()
	return out, nil
}
