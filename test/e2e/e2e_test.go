// Package e2e holds whole-binary tests: runed and rune built from this tree,
// run inside network namespaces the tests create and remove.
package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildMu  sync.Mutex
	binaries = map[string]string{}
	binDir   string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildBinary builds a main package of this module (e.g. "./cmd/runed")
// once per test process and returns the executable's path.
func buildBinary(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := binaries[pkg]; ok {
		return p
	}
	if binDir == "" {
		// Not t.TempDir: the binaries outlive the first test that asks.
		d, err := exec.Command("mktemp", "-d", "-t", "rune-e2e-bin-XXXXXX").Output()
		if err != nil {
			t.Fatal(err)
		}
		binDir = string(d[:len(d)-1])
	}
	out := filepath.Join(binDir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = "../.."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	binaries[pkg] = out
	return out
}
