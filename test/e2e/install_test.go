package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeInstall runs `make install` into a staging root (DESTDIR) and
// checks what lands: both binaries, which say which commit they are, and
// the systemd unit pointing at the installed runed. A second install with
// PREFIX in a temporary directory lets systemd-analyze verify the unit
// against a runed that exists, where systemd-analyze is installed.
func TestMakeInstall(t *testing.T) {
	// -short skips the two builds, except under RUNE_E2E (CI), where every
	// test must run.
	if testing.Short() && os.Getenv("RUNE_E2E") == "" {
		t.Skip("builds both binaries (set RUNE_E2E to run it under -short)")
	}
	git := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", "../.."}, args...)...).Output()
		if err != nil {
			t.Fatalf("git %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	commit, describe := git("rev-parse", "HEAD"), git("describe", "--tags", "--always", "--dirty")
	runMake := func(args ...string) {
		t.Helper()
		cmd := exec.Command("make", args...)
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %v: %v\n%s", args, err, out)
		}
	}
	root := t.TempDir()
	build := t.TempDir() // BIN: the source tree stays as it was
	runMake("install", "DESTDIR="+root, "BIN="+build)

	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{"usr/local/bin/runed", 0o755}, {"usr/local/bin/rune", 0o755}, {"usr/local/lib/systemd/system/runed.service", 0o644}} {
		st, err := os.Stat(filepath.Join(root, f.path))
		if err != nil {
			t.Errorf("make install did not install %s: %v", f.path, err)
		} else if st.Mode().Perm() != f.mode {
			t.Errorf("%s has mode %v, want %v", f.path, st.Mode().Perm(), f.mode)
		}
	}
	unit, err := os.ReadFile(filepath.Join(root, "usr/local/lib/systemd/system/runed.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=/usr/local/bin/runed ", "AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_ADMIN",
		"LimitNOFILE=", "Restart=on-failure", "StateDirectory=rune", "--data-dir /var/lib/rune"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("installed unit lacks %q:\n%s", want, unit)
		}
	}

	// Both binaries say which runenet they are, from the Makefile's -ldflags.
	for _, run := range [][]string{{"usr/local/bin/runed", "--version"}, {"usr/local/bin/rune", "version"}} {
		out, err := exec.Command(filepath.Join(root, run[0]), run[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", run[0], run[1], err, out)
		}
		for _, want := range []string{"runenet " + describe + "\n", "commit  " + commit + "\n", "CoreDNS 1.15.0\n"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s %s printed:\n%s\nwant a line %q", run[0], run[1], out, strings.TrimSpace(want))
			}
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		return
	}
	prefix := t.TempDir()
	runMake("install", "PREFIX="+prefix, "BIN="+build)
	if out, err := exec.Command(analyze, "verify", filepath.Join(prefix, "lib/systemd/system/runed.service")).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify runed.service: %v\n%s", err, out)
	}
}
