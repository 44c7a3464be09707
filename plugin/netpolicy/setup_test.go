package netpolicy

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"

	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/node/nodeconfig"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		input string
		want  config
		err   string
	}{
		{input: `netpolicy`, want: config{}},
		{input: "netpolicy {\n}", want: config{}},
		{input: "netpolicy {\ndata_dir /tmp/rune\nkernel off\ntable pol\npoll 250ms\n}",
			want: config{dataDir: "/tmp/rune", kernel: kernelOff, table: "pol", poll: 250 * time.Millisecond}},
		{input: "netpolicy {\nkernel on\n}", want: config{kernel: kernelOn}},
		{input: `netpolicy extra`, err: "takes no arguments"},
		{input: "netpolicy {\nkernel maybe\n}", err: `kernel: "maybe": want on or off`},
		{input: "netpolicy {\nkernel\n}", err: "kernel takes 1 argument(s), got 0"},
		{input: "netpolicy {\npoll 0s\n}", err: "positive duration"},
		{input: "netpolicy {\npoll soon\n}", err: "positive duration"},
		{input: "netpolicy {\nbogus x\n}", err: `unknown property "bogus"`},
		{input: "netpolicy {\ntable a b\n}", err: "table takes 1 argument(s), got 2"},
		{input: "netpolicy\nnetpolicy", err: "only be used once"},
	} {
		cfg, err := parse(caddy.NewTestController("dns", tc.input))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %v, want an error containing %q", tc.input, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.input, err)
		case *cfg != tc.want:
			t.Errorf("%q: parsed %+v, want %+v", tc.input, *cfg, tc.want)
		}
	}
}

func TestUseKernel(t *testing.T) {
	linux := runtime.GOOS == "linux"
	for _, tc := range []struct {
		mode kernelMode
		dev  bool
		want bool
	}{
		{kernelAuto, false, linux},
		{kernelAuto, true, false},
		{kernelOn, true, true},
		{kernelOff, false, false},
	} {
		cfg := config{kernel: tc.mode}
		if got := cfg.useKernel(tc.dev); got != tc.want {
			t.Errorf("kernel mode %d, dev %v: %v, want %v", tc.mode, tc.dev, got, tc.want)
		}
	}
}

// TestAcquire attaches to an open dev-mode node runtime (no nftables), and
// checks that the engine is handed to the runtime (where the proxy, the edge
// ingress and the API ask for it) and withdrawn once the last reference goes.
func TestAcquire(t *testing.T) {
	dir := t.TempDir()
	if _, err := instance.Acquire(config{dataDir: dir}); err == nil || !strings.Contains(err.Error(), "no node runtime is open") {
		t.Fatalf("without a runtime: %v", err)
	}
	rt, err := node.Acquire(nodeconfig.Config{DataDir: dir, DevMode: true, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Release()
	if rt.Policy() != nil {
		t.Fatal("a policy engine before netpolicy started")
	}
	cfg := config{dataDir: dir}
	a, err := instance.Acquire(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := instance.Acquire(cfg) // a reload's new instance shares the engine
	if err != nil || b != a {
		t.Fatalf("second acquire: %v, %v", b, err)
	}
	if _, err := instance.Acquire(config{dataDir: dir, kernel: kernelOff}); err == nil || !strings.Contains(err.Error(), "different settings") {
		t.Errorf("acquire with other settings: %v", err)
	}
	if e := a.(*running).engine; rt.Policy() != e {
		t.Fatalf("the runtime has engine %p, want %p", rt.Policy(), e)
	}
	deadline := time.Now().Add(5 * time.Second)
	for ok, why := rt.Readiness().Ready(); !ok; ok, why = rt.Readiness().Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", why)
		}
		time.Sleep(10 * time.Millisecond)
	}

	if err := instance.Release(); err != nil || rt.Policy() == nil {
		t.Fatalf("first release: %v; engine withdrawn early: %v", err, rt.Policy() == nil)
	}
	if err := instance.Release(); err != nil {
		t.Fatal(err)
	}
	if rt.Policy() != nil {
		t.Error("engine still in the runtime after the last release")
	}
}
