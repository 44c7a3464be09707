package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	buildMu  sync.Mutex
	binaries = map[string]string{}
	binDir   string
)

// Binary builds a main package of this module (e.g. "./cmd/runed", relative
// to the module root) once per test process and returns the executable's
// path. Call RemoveBinaries from TestMain after m.Run.
func Binary(tb testing.TB, pkg string) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := binaries[pkg]; ok {
		return p
	}
	if binDir == "" {
		// Not tb.TempDir: the binaries outlive the first test that asks.
		d, err := os.MkdirTemp("", "rune-test-bin-")
		if err != nil {
			tb.Fatal(err)
		}
		binDir = d
	}
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		tb.Fatalf("go env GOMOD: %v", err)
	}
	out := filepath.Join(binDir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(root)))
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	binaries[pkg] = out
	return out
}

// RemoveBinaries deletes what Binary built.
func RemoveBinaries() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}
