package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runenet/runenet/internal/testkit"
)

// TestRunedRefusesDataPathWithoutNetPolicy: an operator's Corefile with
// dataplane but no netpolicy makes runed exit at start, before it opens
// anything, with an error naming the directive, the line and the fix.
func TestRunedRefusesDataPathWithoutNetPolicy(t *testing.T) {
	runed := testkit.Binary(t, "./cmd/runed")
	dir := t.TempDir()
	conf := filepath.Join(dir, "Corefile")
	body := "rune.:0 {\n\tbind 127.0.0.1\n\trune {\n\t\tdata_dir " + filepath.Join(dir, "data") + "\n\t}\n\tdataplane\n}\n"
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exitOutput(t, exec.Command(runed, "-conf", conf))
	if err == nil || !strings.Contains(string(out), conf+":6 - Error during parsing: dataplane needs the netpolicy directive") || !strings.Contains(string(out), "add a line `netpolicy`") {
		t.Fatalf("runed: %v\n%s", err, out)
	}
	if _, serr := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(serr) {
		t.Errorf("runed opened its data directory before refusing the Corefile: %v", serr)
	}
}
