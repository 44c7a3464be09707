// Package tmpfstest gives tests a small filesystem of their own to fill, to
// show what the store does when its disk runs out.
package tmpfstest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/runenet/runenet/proxy/netnstest"
)

// Mount mounts a tmpfs of size bytes on a fresh temp dir and unmounts it
// when the test ends. It needs root (RUNE_E2E=1 makes its absence a failure).
func Mount(tb testing.TB, size int64) string {
	tb.Helper()
	netnstest.RequireRoot(tb)
	dir := tb.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		tb.Fatalf("mounting a %d-byte tmpfs on %s: %v", size, dir, err)
	}
	tb.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			tb.Errorf("unmounting %s: %v", dir, err)
			_ = unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	return dir
}

// Free is the space left on dir's filesystem for an unprivileged writer.
func Free(tb testing.TB, dir string) uint64 {
	tb.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		tb.Fatal(err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize)
}

// Fill allocates a file on dir's filesystem so that only leave bytes stay
// free, and returns a function that deletes it again.
func Fill(tb testing.TB, dir string, leave uint64) (release func()) {
	tb.Helper()
	free := Free(tb, dir)
	if free <= leave {
		tb.Fatalf("%s has only %d bytes free, cannot leave %d", dir, free, leave)
	}
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, int64(free-leave)); err != nil {
		tb.Fatalf("filling %s: %v", dir, err)
	}
	return func() {
		if err := os.Remove(path); err != nil {
			tb.Error(err)
		}
	}
}
