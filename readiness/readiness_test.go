package readiness

import (
	"reflect"
	"testing"
)

func TestRegistry(t *testing.T) {
	var r Registry
	if ok, why := r.Ready(); ok || len(why) != 1 {
		t.Fatalf("empty registry: ready=%v %v, want not ready (nothing says the data path exists)", ok, why)
	}
	view, proxy := false, false
	r.Register("view", func() (bool, string) { return view, "loading" })
	r.Register("dataplane", func() (bool, string) { return proxy, "installing interception" })
	if ok, why := r.Ready(); ok || !reflect.DeepEqual(why, []string{"dataplane: installing interception", "view: loading"}) {
		t.Fatalf("got %v %v", ok, why)
	}
	view = true
	if ok, why := r.Ready(); ok || !reflect.DeepEqual(why, []string{"dataplane: installing interception"}) {
		t.Fatalf("got %v %v", ok, why)
	}
	proxy = true
	if ok, why := r.Ready(); !ok || len(why) != 0 {
		t.Fatalf("all ready: got %v %v", ok, why)
	}
	r.Unregister("dataplane")
	r.Register("view", func() (bool, string) { return false, "stale" }) // replaces
	if ok, why := r.Ready(); ok || !reflect.DeepEqual(why, []string{"view: stale"}) {
		t.Fatalf("after replace/unregister: %v %v", ok, why)
	}
}
