// Package version says which runenet a binary is: its version and commit,
// and the CoreDNS release runed is built on. `make build` sets version and
// commit with -ldflags -X; a plain `go build` or `go install` falls back to
// what the Go toolchain stamped into the binary (module version, vcs.revision).
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// CoreDNS is the CoreDNS release runed is built on, the version of
// github.com/coredns/coredns in go.mod. It is a constant rather than read
// from coremain so that rune, which does not link CoreDNS, can print it too;
// cmd/runed's tests keep it equal to coremain.CoreVersion.
const CoreDNS = "1.15.0"

// Set by the Makefile: -ldflags "-X github.com/runenet/runenet/internal/version.version=v1.2.3 -X ...commit=abc123".
var version, commit string

// Info is what a binary knows about its own build.
type Info struct {
	Version string // e.g. v0.3.0, or "devel" for an untagged build
	Commit  string // the git commit, with "-dirty" if the tree had changes; "unknown" without VCS data
	Go      string // the Go release it was built with
}

// Get returns this binary's build information.
func Get() Info {
	i := Info{Version: version, Commit: commit, Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if ok && i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		i.Version = bi.Main.Version
	}
	if ok && i.Commit == "" {
		var modified bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				i.Commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if i.Commit != "" && modified {
			i.Commit += "-dirty"
		}
	}
	if i.Version == "" {
		i.Version = "devel"
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	return i
}

// String is the block `rune version` and `runed --version` print, e.g.
//
//	runenet v0.3.0
//	commit  1f2e3d4c5b6a...
//	CoreDNS 1.15.0
//	go      go1.26.8 linux/amd64
func (i Info) String() string {
	return fmt.Sprintf("runenet %s\ncommit  %s\nCoreDNS %s\ngo      %s %s/%s\n", i.Version, i.Commit, CoreDNS, i.Go, runtime.GOOS, runtime.GOARCH)
}
