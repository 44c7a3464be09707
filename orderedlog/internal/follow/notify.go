package follow

import "sync/atomic"

// Notifier wakes every waiter at once: a waiter takes Wait's channel before
// it reads the state it waits on, so it either sees the new state or is woken.
type Notifier struct{ ch atomic.Pointer[chan struct{}] }

func NewNotifier() *Notifier {
	n := &Notifier{}
	ch := make(chan struct{})
	n.ch.Store(&ch)
	return n
}

// Wait returns a channel closed at the next Wake.
func (n *Notifier) Wait() <-chan struct{} { return *n.ch.Load() }

// Wake closes the current channel and starts a new one.
func (n *Notifier) Wake() {
	next := make(chan struct{})
	close(*n.ch.Swap(&next))
}
