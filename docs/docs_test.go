// Package docs is the user guide. Its test keeps the guide readable from a
// clone: every relative link must lead to a file of the repository (and an
// anchor to a heading of it), and no document may send readers to ../shared,
// which a clone does not have.
package docs

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// guide lists the documents whose links are checked, relative to the
// repository root: the README and the guide.
func guide(t *testing.T, root string) []string {
	t.Helper()
	files := []string{"README.md"}
	md, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range md {
		rel, _ := filepath.Rel(root, f)
		files = append(files, rel)
	}
	if len(files) < 2 {
		t.Fatalf("no docs/*.md under %s", root)
	}
	return files
}

// documents lists every document a reader of a clone meets: the guide, the
// READMEs next to the code and Corefile.example.
func documents(t *testing.T, root string) []string {
	t.Helper()
	files := guide(t, root)
	for _, pattern := range []string{"*/README.md", "*/*/README.md", "Corefile.example"} {
		more, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range more {
			rel, _ := filepath.Rel(root, f)
			if !slices.Contains(files, rel) {
				files = append(files, rel)
			}
		}
	}
	return files
}

func TestGuideLinksResolve(t *testing.T) {
	root := filepath.Join("..")
	for _, f := range guide(t, root) {
		for _, p := range checkLinks(root, f) {
			t.Error(p)
		}
	}
}

func TestNoDocumentPointsAtShared(t *testing.T) {
	root := filepath.Join("..")
	for _, f := range documents(t, root) {
		for _, p := range checkShared(root, f) {
			t.Error(p)
		}
	}
}

// TestCheckerFindsProblems shows the two checks above can fail: a broken
// link, a missing anchor, a link out of the repository and a ../shared
// mention are each reported, and a sound document is not.
func TestCheckerFindsProblems(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("README.md", "# Top\n\nSee [the guide](docs/README.md) and [TLS](docs/tls.md#the-tls-profile).\n")
	write("docs/README.md", "# Guide\n\n[`tls`](tls.md), [back](../README.md#top), [web](https://example.com/x).\n\n"+
		"```\n[not a link](nowhere.md)\n```\n\nAnd `[code](nowhere.md)` is no link either.\n")
	write("docs/tls.md", "# TLS\n\n## The TLS profile\n\n## Disk full (507)\n\n[self](#disk-full-507)\n")
	write("docs/bad.md", "# Bad\n\n[gone](missing.md)\n[no anchor](tls.md#no-such-heading)\n[here](#nor-here)\n"+
		"[outside](../../etc/passwd)\n[absolute](/etc/hosts)\nRead ../shared/spec/networking.md.\n")

	for _, f := range []string{"README.md", "docs/README.md", "docs/tls.md"} {
		if p := append(checkLinks(root, f), checkShared(root, f)...); len(p) != 0 {
			t.Errorf("%s: want no problems, got %q", f, p)
		}
	}
	got := append(checkLinks(root, "docs/bad.md"), checkShared(root, "docs/bad.md")...)
	for _, want := range []string{
		"docs/bad.md:3: missing.md: no such file",
		"docs/bad.md:4: tls.md#no-such-heading: no heading",
		"docs/bad.md:5: #nor-here: no heading",
		"docs/bad.md:6: ../../etc/passwd: outside the repository",
		"docs/bad.md:7: /etc/hosts: not a relative link",
		"docs/bad.md:8: mentions ../shared",
	} {
		if !slices.ContainsFunc(got, func(p string) bool { return strings.HasPrefix(p, want) }) {
			t.Errorf("problem %q not reported; got %q", want, got)
		}
	}
	if len(got) != 6 {
		t.Errorf("want 6 problems, got %d: %q", len(got), got)
	}
}

var (
	linkRE = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	codeRE = regexp.MustCompile("`[^`]*`")
)

// lines calls fn for every line of file outside fenced code blocks, with
// inline code removed, numbered from 1.
func lines(path string, fn func(n int, line string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	fenced := false
	for n := 1; s.Scan(); n++ {
		line := s.Text()
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~") {
			fenced = !fenced
			continue
		}
		if !fenced {
			fn(n, codeRE.ReplaceAllString(line, "``"))
		}
	}
	return s.Err()
}

// checkLinks reports the relative links of doc (a path relative to root)
// that lead to no file of the repository, or to an anchor no heading has.
func checkLinks(root, doc string) []string {
	var problems []string
	report := func(n int, target, msg string) {
		problems = append(problems, fmt.Sprintf("%s:%d: %s: %s", doc, n, target, msg))
	}
	absRoot, _ := filepath.Abs(root)
	err := lines(filepath.Join(root, doc), func(n int, line string) {
		for _, m := range linkRE.FindAllStringSubmatch(line, -1) {
			target := m[1]
			if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if strings.HasPrefix(target, "/") {
				report(n, target, "not a relative link (a clone has no such path)")
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := filepath.Join(root, doc)
			if file != "" {
				path = filepath.Join(filepath.Dir(path), filepath.FromSlash(file))
				abs, _ := filepath.Abs(path)
				if rel, err := filepath.Rel(absRoot, abs); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
					report(n, target, "outside the repository")
					continue
				}
				if _, err := os.Stat(path); err != nil {
					report(n, target, "no such file")
					continue
				}
			}
			if anchor == "" {
				continue
			}
			slugs, err := headingSlugs(path)
			if err != nil {
				report(n, target, err.Error())
			} else if !slugs[anchor] {
				report(n, target, "no heading with this anchor in "+filepath.Base(path))
			}
		}
	})
	if err != nil {
		problems = append(problems, fmt.Sprintf("%s: %v", doc, err))
	}
	return problems
}

// checkShared reports every line of doc that mentions ../shared.
func checkShared(root, doc string) []string {
	var problems []string
	f, err := os.ReadFile(filepath.Join(root, doc))
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", doc, err)}
	}
	for i, line := range strings.Split(string(f), "\n") {
		if strings.Contains(line, "../shared") {
			problems = append(problems, fmt.Sprintf("%s:%d: mentions ../shared, which a clone does not have", doc, i+1))
		}
	}
	return problems
}

var headingLinkRE = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)

// headingSlugs returns the anchors GitHub gives the headings of a Markdown
// file: the heading's text lower-cased, without punctuation, spaces as
// hyphens, repeats suffixed -1, -2, ...
func headingSlugs(path string) (map[string]bool, error) {
	slugs := map[string]bool{}
	seen := map[string]int{}
	if !strings.HasSuffix(path, ".md") {
		return slugs, fmt.Errorf("anchor into %s, which is not Markdown", filepath.Base(path))
	}
	f, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fenced := false
	for _, line := range strings.Split(string(f), "\n") {
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~") {
			fenced = !fenced
			continue
		}
		text, ok := strings.CutPrefix(line, "#")
		if fenced || !ok {
			continue
		}
		text = strings.TrimLeft(text, "#")
		if !strings.HasPrefix(text, " ") {
			continue
		}
		text = headingLinkRE.ReplaceAllString(strings.TrimSpace(text), "$1")
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		slug := b.String()
		if k := seen[slug]; k > 0 {
			slugs[fmt.Sprintf("%s-%d", slug, k)] = true
		} else {
			slugs[slug] = true
		}
		seen[slug]++
	}
	return slugs, nil
}
