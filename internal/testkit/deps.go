package testkit

import (
	"os/exec"
	"strings"
	"testing"
)

// Deps lists what `go list -deps` says pkg (a pattern relative to the
// test's package directory, e.g. "." or "../../test/stockcoredns") links in.
func Deps(tb testing.TB, pkg string) []string {
	tb.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			tb.Fatalf("go list -deps %s: %v\n%s", pkg, err, ee.Stderr)
		}
		tb.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// Linked reports the packages of deps that match one of forbidden: a path,
// or as in go list, "path/..." for it and everything below.
func Linked(deps []string, forbidden ...string) []string {
	var bad []string
	for _, d := range deps {
		for _, f := range forbidden {
			if root, tree := strings.CutSuffix(f, "/..."); d == f || tree && (d == root || strings.HasPrefix(d, root+"/")) {
				bad = append(bad, d)
				break
			}
		}
	}
	return bad
}
