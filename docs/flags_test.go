package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// otherTools are the long flags of the other programs the guide shows (docker,
// curl, wrk, systemctl), and cobra's own --help.
var otherTools = []string{"dns", "dns-search", "label", "network", "ulimit", "resolve", "latency", "now", "help"}

var (
	docFlagRE = regexp.MustCompile(`(?:^|[^A-Za-z0-9-])--([a-z][a-z0-9-]*)`)
	// runed registers its flags as fs.XxxVar(&f, "name", ...) or
	// fs.Func("name", ...); CoreDNS's (-conf, -version) it looks up by name.
	runedFlagRE = regexp.MustCompile(`fs\.[A-Za-z]+\((?:&[^,]+, )?"([a-z][a-z0-9-]*)"`)
	// rune's are cobra flags: cmd.Flags().StringVarP(&x, "name", "n", ...).
	runeFlagRE = regexp.MustCompile(`Flags\(\)\.[A-Za-z]+\([^"]*"([a-z][a-z0-9-]*)"`)
)

// TestDocumentedFlagsExist fails when the README or the guide names a long
// flag that neither runed nor rune defines (nor one of the few other tools it
// shows): a renamed or invented flag.
func TestDocumentedFlagsExist(t *testing.T) {
	root := filepath.Join("..")
	known := append(sourceFlags(t, root, "cmd/runed/*.go", runedFlagRE), sourceFlags(t, root, "cmd/rune/*.go", runeFlagRE)...)
	for _, must := range []string{"dev-mode", "dns-allow", "stale-budget", "namespace", "from"} {
		if !slices.Contains(known, must) {
			t.Fatalf("flag --%s not found in the sources: the patterns no longer match how flags are registered (found %v)", must, known)
		}
	}
	known = append(known, otherTools...)
	for _, doc := range guide(t, root) {
		text, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(text), "\n") {
			for _, m := range docFlagRE.FindAllStringSubmatch(line, -1) {
				if !slices.Contains(known, m[1]) {
					t.Errorf("%s:%d: --%s is no flag of runed or rune (another tool's? add it to otherTools)", doc, i+1, m[1])
				}
			}
		}
	}
}

// sourceFlags returns the flag names the non-test Go files matching glob
// register, as re's first group finds them.
func sourceFlags(t *testing.T, root, glob string, re *regexp.Regexp) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(glob)))
	if err != nil {
		t.Fatal(err)
	}
	var flags []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			flags = append(flags, m[1])
		}
	}
	return flags
}
