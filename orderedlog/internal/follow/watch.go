// Package follow is the watch machinery the OrderedLog backends share: a ring
// of recent batches, a wake-everyone notifier, and the loop that feeds one
// watcher its batches and heartbeats. Watchers pull from what the backend has
// published; nothing is pushed at them, so a slow watcher costs writers
// nothing.
package follow

import (
	"context"
	"errors"
	"time"

	"github.com/runenet/runenet/orderedlog"
)

// Source is what a watch follows.
type Source interface {
	// Tail is the last seq published to readers.
	Tail() uint64
	// Floor is the highest compacted seq: watching from it or below fails.
	Floor() uint64
	// Changed returns a channel closed at the next publish; a watcher takes
	// it before reading Tail.
	Changed() <-chan struct{}
	// Batches appends batches from..to (to <= Tail) to buf, failing with
	// orderedlog.ErrCompacted when from is no longer held and with
	// orderedlog.ErrClosed once the source closes.
	Batches(from, to uint64, buf []*orderedlog.Batch) ([]*orderedlog.Batch, error)
	// Heartbeat is the event sent while nothing new is published.
	Heartbeat() orderedlog.Event
}

// chunk bounds how many batches one Batches call fetches.
const chunk = 256

// Serve delivers batches from next on, then follows src with a heartbeat
// every interval, until ctx ends, closing closes, or a read fails (sent as the
// last event, except a close). It does not close ch.
func Serve(ctx context.Context, closing <-chan struct{}, src Source, next uint64, interval time.Duration, ch chan<- orderedlog.Event) {
	send := func(ev orderedlog.Event) bool {
		select {
		case ch <- ev:
			return true
		case <-ctx.Done():
		case <-closing:
		}
		return false
	}
	if next <= src.Floor() {
		send(orderedlog.Event{Err: orderedlog.ErrCompacted})
		return
	}
	heartbeat := time.NewTicker(interval)
	defer heartbeat.Stop()
	buf := make([]*orderedlog.Batch, 0, chunk)
	for {
		changed := src.Changed()
		tail := src.Tail()
		for next <= tail {
			var err error
			buf, err = src.Batches(next, min(tail, next+chunk-1), buf[:0])
			if errors.Is(err, orderedlog.ErrClosed) {
				return // like any other watch ended by Close: no event
			}
			if err != nil {
				send(orderedlog.Event{Err: err})
				return
			}
			for _, b := range buf {
				if !send(orderedlog.Event{Batch: b, Tail: tail}) {
					return
				}
			}
			next += uint64(len(buf))
		}
		select {
		case <-changed:
		case <-heartbeat.C:
			if !send(src.Heartbeat()) {
				return
			}
		case <-ctx.Done():
			return
		case <-closing:
			return
		}
	}
}
