package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/node/nodeconfig"
)

func TestStatus(t *testing.T) {
	rt, err := node.Acquire(nodeconfig.Config{DataDir: t.TempDir(), NodeName: "node-7", StaleBudget: 300 * time.Millisecond, DebugAPI: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Release()
	addr := rt.APIAddr()

	out := mustRun(t, addr, "status")
	viewReady := regexp.MustCompile(`(?m)^  view\s+ready$`)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !viewReady.MatchString(out); time.Sleep(20 * time.Millisecond) {
		out = mustRun(t, addr, "status")
	}
	for _, want := range []string{
		`(?m)^node:\s+node-7$`,
		`(?m)^ready:\s+(true|false)$`,
		`(?m)^watch:\s+current: 0\.0 s behind the log \(budget 0\.3 s\)$`,
		`(?m)^cluster CIDR:\s+10\.96\.0\.0/16$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("status lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "seq") {
		t.Errorf("status shows log positions rather than the lag:\n%s", out)
	}

	mustRun(t, addr, "debug", "pause-watch", "20s")
	stale := regexp.MustCompile(`(?m)^watch:\s+stale: \d+\.\d s behind the log \(budget 0\.3 s\)$`)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !stale.MatchString(out); time.Sleep(50 * time.Millisecond) {
		out = mustRun(t, addr, "status")
	}
	if !stale.MatchString(out) || !regexp.MustCompile(`(?m)^  view\s+not ready: `).MatchString(out) {
		t.Errorf("paused past the budget:\n%s", out)
	}
}

// With runed down, the error names the socket tried and where rune looks
// by default, and no URL of the client's own.
func TestUnreachableRuned(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/home/u/.local/state")
	_, err := run(t, "unix:///nonexistent/runed.sock", "status")
	if err == nil {
		t.Fatal("status with no runed succeeded")
	}
	msg := explain(err).Error()
	for _, want := range []string{
		"cannot reach runed at unix:///nonexistent/runed.sock: connect: no such file or directory",
		"/var/lib/rune/runed.sock (production)",
		"/home/u/.local/state/rune/runed.sock (dev mode)",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "http://") || strings.Contains(msg, "/v1/") {
		t.Errorf("%q shows an internal URL", msg)
	}
}
