package e2e

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/internal/testkit"
)

// TestREADMETour runs the README's tour, command by command, against a
// dev-mode runed and checks each prints what the README shows, so the tour
// cannot drift from what rune does. In the expected output, runs of spaces
// match any run (column widths follow the values), a VIP matches any VIP, an
// age (5s, 89d) any age, a date any date, and a line "..." whatever follows.
// `$ cat FILE` shows a file the tour uses: the test writes it from there. A
// command ending in & runs in the background until the test ends.
func TestREADMETour(t *testing.T) {
	steps := readTour(t)
	n := newNode(t, "rune-e2e-tour")
	n.ns.ResolvConf(t, "127.0.0.1")
	n.flags = []string{"--dev-mode", "--data-dir", n.dataDir, "--node-name", "laptop"}
	n.start(t)
	n.waitSOA(t, 30*time.Second)

	work := t.TempDir()
	certPEM, keyPEM := testkit.SelfSigned(t, "api.example.com", 90*24*time.Hour)
	for name, data := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(work, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "PATH="+filepath.Dir(n.rune)+":"+os.Getenv("PATH"), "RUNE_API="+n.api[1])
	shell := func(cmdline string) *exec.Cmd {
		c := n.ns.Command("sh", "-c", cmdline)
		c.Dir, c.Env = work, env
		return c
	}
	for _, s := range steps {
		if file, ok := strings.CutPrefix(s.cmd, "cat "); ok {
			if err := os.WriteFile(filepath.Join(work, file), []byte(strings.Join(s.want, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if bg, ok := strings.CutSuffix(s.cmd, "&"); ok {
			c := shell("exec " + bg)
			out, err := c.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Process.Kill(); c.Wait() })
			var got []string
			sc := bufio.NewScanner(out)
			for len(got) < len(s.want) && sc.Scan() {
				got = append(got, sc.Text())
			}
			go io.Copy(io.Discard, out)
			if !s.matches(strings.Join(got, "\n")) {
				t.Errorf("$ %s\ngot:\n%s\nwant:\n%s", s.cmd, strings.Join(got, "\n"), strings.Join(s.want, "\n"))
			}
			continue
		}
		// A read may run ahead of what is still settling (the ingress
		// loading a certificate): reads are retried, writes run once.
		read := regexp.MustCompile(`^(rune (get|status)|dig) `).MatchString(s.cmd + " ")
		var got string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			out, err := shell(s.cmd).CombinedOutput()
			got = strings.TrimRight(string(out), "\n")
			failed := err != nil
			if s.matches(got) && failed == s.fails() || !read || time.Now().After(deadline) {
				if failed != s.fails() {
					t.Errorf("$ %s: exit status %v", s.cmd, err)
				}
				break
			}
		}
		if !s.matches(got) {
			t.Errorf("$ %s\ngot:\n%s\nwant:\n%s", s.cmd, got, strings.Join(s.want, "\n"))
		}
	}
}

// tourStep is one `$ command` of the tour and the lines it prints.
type tourStep struct {
	cmd  string
	want []string
}

// fails is whether the step is shown failing: rune's errors start "rune: ".
func (s tourStep) fails() bool {
	return len(s.want) > 0 && strings.HasPrefix(s.want[len(s.want)-1], "rune: ")
}

var (
	tourVIP    = regexp.MustCompile(`10\\\.96\\\.\d+\\\.\d+`)
	tourAge    = regexp.MustCompile(`\b\d+[smhd]\b`)
	tourDate   = regexp.MustCompile(`\b\d{4}-\d\d-\d\d\b`)
	tourSpaces = regexp.MustCompile(`  +`)
	// A node's APPLIED seq counts its heartbeats too, so it depends on
	// how long the tour took.
	tourApplied = regexp.MustCompile(`\b(voter +(?:leader|follower|candidate) +)\d+\b`)
)

func (s tourStep) matches(got string) bool {
	var pat strings.Builder
	pat.WriteString(`^`)
	for i, w := range s.want {
		if w == "..." {
			pat.WriteString(`(?s:.*)`)
			break
		}
		if i > 0 {
			pat.WriteString(`\n`)
		}
		p := regexp.QuoteMeta(w)
		p = tourVIP.ReplaceAllString(p, `10\.96\.\d+\.\d+`)
		p = tourAge.ReplaceAllString(p, `\d+[smhd]`)
		p = tourDate.ReplaceAllString(p, `\d{4}-\d\d-\d\d`)
		p = tourApplied.ReplaceAllString(p, `${1}\d+`)
		p = tourSpaces.ReplaceAllString(p, ` +`)
		pat.WriteString(p)
	}
	if len(s.want) == 0 || s.want[len(s.want)-1] != "..." {
		pat.WriteString(`$`)
	}
	return regexp.MustCompile(pat.String()).MatchString(got)
}

// readTour reads the console block under "## A short tour" in README.md.
func readTour(t *testing.T) []tourStep {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, tour, ok := strings.Cut(string(b), "## A short tour\n")
	if ok {
		_, tour, ok = strings.Cut(tour, "```console\n")
	}
	if ok {
		tour, _, ok = strings.Cut(tour, "```\n")
	}
	if !ok {
		t.Fatal("README.md has no console block under ## A short tour")
	}
	var steps []tourStep
	for _, line := range strings.Split(strings.TrimSuffix(tour, "\n"), "\n") {
		if cmd, ok := strings.CutPrefix(line, "$ "); ok {
			// The comment is the reader's; the & is the shell's.
			if c, _, found := strings.Cut(cmd, " #"); found {
				cmd = c
			}
			steps = append(steps, tourStep{cmd: strings.TrimSpace(cmd)})
			continue
		}
		if len(steps) == 0 {
			t.Fatalf("README tour starts with %q, not a command", line)
		}
		steps[len(steps)-1].want = append(steps[len(steps)-1].want, line)
	}
	return steps
}
