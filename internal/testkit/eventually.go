package testkit

import (
	"testing"
	"time"
)

// Eventually polls cond until it holds, failing the test if it does not
// within the deadline: the way to wait for something asynchronous without
// sleeping a guessed time.
func Eventually(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
