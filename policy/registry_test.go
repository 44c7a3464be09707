package policy

import (
	"slices"
	"testing"
)

func TestRegistry(t *testing.T) {
	var r Registry
	a, b := &Engine{}, &Engine{}
	var got []*Engine
	stop := r.Follow(func(e *Engine) { got = append(got, e) })
	r.Publish(a)
	r.Publish(b)  // a reload's engine replaces the old one
	r.Withdraw(a) // the old one stopping must not clear it
	var late *Engine
	r.Follow(func(e *Engine) { late = e })
	if late != b {
		t.Fatalf("a follower joining late got %p, want the current %p", late, b)
	}
	r.Withdraw(b)
	stop()
	r.Publish(a)
	if want := []*Engine{nil, a, b, nil}; !slices.Equal(got, want) {
		t.Errorf("follower saw %v, want %v", got, want)
	}
	if late != a {
		t.Errorf("a follower that did not stop missed the last publication")
	}
}
