package main

import (
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runenet/runenet/api"
	"github.com/runenet/runenet/internal/tmpfstest"
	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/node/nodeconfig"
)

// With the node's disk below its reserve, `rune cast` fails saying the disk
// is full, reads keep answering, the node stays ready, and casting works
// again once space is freed.
func TestCastOnAFullDiskSaysSo(t *testing.T) {
	mnt := tmpfstest.Mount(t, 96<<20)
	const reserve = 48 << 20
	rt, err := node.Acquire(nodeconfig.Config{DataDir: filepath.Join(mnt, "data"), NodeName: "node-1", DiskReserve: reserve})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Release() })
	addr := rt.APIAddr()
	mustRun(t, addr, "cast", writeFile(t, "api.yaml", apiYAML))

	release := tmpfstest.Fill(t, mnt, reserve-(1<<20))
	out, err := run(t, addr, "cast", writeFile(t, "web.yaml", webYAML))
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "writes resume once space is freed") {
		t.Fatalf("cast on a full disk: %v\n%s", err, out)
	}
	if ae, ok := errors.AsType[*api.APIError](err); !ok || ae.Status != http.StatusInsufficientStorage || ae.Kind != "disk_full" {
		t.Fatalf("cast on a full disk: %#v, want 507 disk_full from the API", err)
	}
	if out := mustRun(t, addr, "get", "services"); !strings.Contains(out, "api") || strings.Contains(out, "web") {
		t.Fatalf("get services while the disk is full:\n%s", out)
	}
	if v := rt.View(); v.Stale() || !v.Loaded() {
		t.Fatal("the node's view stopped following the log while the disk is full")
	}

	release()
	if out := mustRun(t, addr, "cast", writeFile(t, "web.yaml", webYAML)); !strings.Contains(out, "service/web (default) cast") {
		t.Fatalf("cast after space was freed:\n%s", out)
	}
}
