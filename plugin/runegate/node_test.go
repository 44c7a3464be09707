package runegate

import (
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/node/nodeconfig"
)

// The gate asks the readiness registry of the node runtime the rune block
// opens — closed, saying why, while there is none — and lets go of the
// runtime on shutdown.
func TestGateAsksTheNodeRuntime(t *testing.T) {
	nr := &nodeReadiness{}
	if ok, why := nr.Ready(); ok || len(why) != 1 || !strings.Contains(why[0], "no node runtime is open") {
		t.Fatalf("without a runtime: %v %v, want closed naming the missing runtime", ok, why)
	}
	rt, err := node.Acquire(nodeconfig.Config{DataDir: t.TempDir(), NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	proxyReady := false
	rt.Readiness().Register("dataplane", func() (bool, string) { return proxyReady, "installing interception" })
	if ok, why := nr.Ready(); ok || !strings.Contains(strings.Join(why, ";"), "dataplane: installing interception") {
		t.Fatalf("with the data plane not ready: %v %v", ok, why)
	}
	proxyReady = true
	deadline := time.Now().Add(10 * time.Second)
	for ok, why := nr.Ready(); !ok; ok, why = nr.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %v", why)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := rt.Release(); err != nil {
		t.Fatal(err)
	}
	// The gate still holds the runtime: it is open until the gate lets go.
	if held, err := node.Attach(""); err != nil {
		t.Fatalf("runtime closed while the gate holds it: %v", err)
	} else {
		held.Release()
	}
	if err := nr.release(); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Attach(""); err == nil {
		t.Fatal("runtime still open after the gate released it")
	}
	if ok, _ := nr.Ready(); ok {
		t.Fatal("a released gate reports ready")
	}
}
