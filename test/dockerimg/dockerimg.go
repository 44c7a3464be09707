// Package dockerimg builds the e2e tests' container image locally: this
// machine has a Docker Engine but no registry, so the image is FROM scratch
// with a statically linked test program (testd) of ours.
package dockerimg

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Binary is the path of testd inside the image.
const Binary = "/testd"

// dockerfile gives every container a fast healthcheck (testd health);
// containers that should have none run with --no-healthcheck. The
// healthcheck is here, not on `docker run`, because --health-cmd is always
// run through /bin/sh, which a scratch image does not have.
const dockerfile = `FROM scratch
COPY testd /testd
HEALTHCHECK --interval=500ms --timeout=2s --retries=1 CMD ["/testd", "health"]
ENTRYPOINT ["/testd"]
CMD ["serve"]
`

// RandomName returns prefix-<8 hex>, unique per run, for images, containers
// and networks the tests create.
func RandomName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Build builds the image and removes it when the test ends; it returns the
// image's tag.
func Build(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	_, self, _, _ := runtime.Caller(0)
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "testd"), "./testd")
	build.Dir = filepath.Dir(self)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("building testd: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		tb.Fatal(err)
	}
	tag := RandomName("rune-e2e") + ":test"
	tb.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	if out, err := exec.Command("docker", "build", "-q", "-t", tag, dir).CombinedOutput(); err != nil {
		tb.Fatalf("docker build: %v\n%s", err, out)
	}
	return tag
}
