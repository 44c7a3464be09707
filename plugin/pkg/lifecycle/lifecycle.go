// Package lifecycle pairs what a plugin starts with a CoreDNS instance and
// what stops it, including for an instance a reload discards.
//
// caddy runs an instance's startup callbacks before it starts the
// instance's servers; when a server then fails to start (a port taken),
// or a later startup callback fails, it discards the new instance without
// running its shutdown callbacks, and the old one goes on serving.
// Whatever the new instance's startup acquired (a node runtime reference,
// a goroutine) would be held for good. The old instance's restart-failed
// callbacks are the one place that hears of it, so the stops of the
// instances started during a restart are kept here until it settles.
package lifecycle

import (
	"sync"

	"github.com/coredns/caddy"
)

var pending = struct {
	sync.Mutex
	stops []func() error
}{}

// Run has start run at the startup of c's instance and stop at its
// shutdown, or when a reload discards the instance after start ran.
func Run(c *caddy.Controller, start, stop func() error) {
	var once sync.Once
	var err error
	stopOnce := func() error {
		once.Do(func() { err = stop() })
		return err
	}
	started := false
	c.OnStartup(func() error {
		if err := start(); err != nil {
			return err
		}
		started = true
		pending.Lock()
		pending.stops = append(pending.stops, stopOnce)
		pending.Unlock()
		return nil
	})
	c.OnShutdown(func() error {
		if !started {
			return nil
		}
		return stopOnce()
	})
	// Callbacks of the running instance: a restart begins (whatever is
	// pending belongs to instances that have settled) or has failed (what
	// is pending belongs to the instance it discarded). Every plugin
	// registers them, so both are idempotent.
	c.OnRestart(func() error {
		pending.Lock()
		pending.stops = nil
		pending.Unlock()
		return nil
	})
	c.OnRestartFailed(func() error {
		pending.Lock()
		stops := pending.stops
		pending.stops = nil
		pending.Unlock()
		for _, s := range stops {
			s()
		}
		return nil
	})
}
