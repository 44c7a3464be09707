package subsystem

import (
	"errors"
	"strings"
	"testing"

	"github.com/runenet/runenet/readiness"
)

type fake struct {
	closed *int
	ready  bool
	reg    *readiness.Registry
}

func (f *fake) Ready() (bool, string)          { return f.ready, "warming up" }
func (f *fake) Readiness() *readiness.Registry { return f.reg }
func (f *fake) Close() error                   { *f.closed++; return nil }

// One instance serves every acquisition with the same settings (a reload
// acquires before it releases), refuses other settings, registers its
// readiness while it runs, and stops after the last release only.
func TestSharedLifecycle(t *testing.T) {
	starts, closed := 0, 0
	var reg readiness.Registry // the node runtime's, in runed
	s := &Shared[string]{Name: "subsystem-test", Start: func(cfg string) (Running, error) {
		if cfg == "bad" {
			return nil, errors.New("cannot start")
		}
		starts++
		return &fake{closed: &closed, reg: &reg}, nil
	}}
	if _, err := s.Acquire("bad"); err == nil {
		t.Fatal("a failed start was accepted")
	}
	a, err := s.Acquire("x")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Acquire("x")
	if err != nil || a != b || starts != 1 {
		t.Fatalf("second acquire: %v, same %v, starts %d", err, a == b, starts)
	}
	if _, err := s.Acquire("y"); err == nil || !strings.Contains(err.Error(), "different settings") {
		t.Fatalf("other settings: %v", err)
	}
	if _, why := reg.Ready(); !strings.Contains(strings.Join(why, ","), "subsystem-test: warming up") {
		t.Fatalf("readiness does not report the running instance: %v", why)
	}
	if err := s.Release(); err != nil || closed != 0 {
		t.Fatalf("first release closed it: %v %d", err, closed)
	}
	if err := s.Release(); err != nil || closed != 1 {
		t.Fatalf("last release: %v, closed %d", err, closed)
	}
	if _, why := reg.Ready(); strings.Contains(strings.Join(why, ","), "subsystem-test") {
		t.Fatalf("readiness still lists the stopped instance: %v", why)
	}
	if err := s.Release(); err == nil {
		t.Fatal("an extra release was accepted")
	}
}
