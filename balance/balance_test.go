package balance

import (
	"testing"
	"time"
)

func TestEjectionBackOffExpires(t *testing.T) {
	var e Health
	now := time.Now().UnixNano()
	if !e.Failed(now, 10*time.Millisecond, time.Second) {
		t.Fatal("first failure should eject")
	}
	if !e.Ejected(now + int64(5*time.Millisecond)) {
		t.Error("should be ejected within the back-off")
	}
	if e.Ejected(now + int64(11*time.Millisecond)) {
		t.Error("should be back after the back-off")
	}
	e.Failed(now, 10*time.Millisecond, time.Second)
	if !e.Ejected(now + int64(15*time.Millisecond)) {
		t.Error("second consecutive failure should double the back-off")
	}
	e.Succeeded()
	e.Failed(now, 10*time.Millisecond, time.Second)
	if e.Ejected(now + int64(11*time.Millisecond)) {
		t.Error("a success should reset the back-off to its base")
	}
}
