package ingress

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/runenet/runenet/orderedlog"
)

func TestStorageKeysAndDirectories(t *testing.T) {
	ctx := context.Background()
	n := newNode(t)
	s := NewStorage(n.Log, "edge1", 0)
	files := map[string]string{
		"certificates/ca/a.test/a.test.crt": "A",
		"certificates/ca/a.test/a.test.key": "AK",
		"certificates/ca/b.test/b.test.crt": "B",
		"acme/ca/users/me/me.json":          "U",
	}
	for k, v := range files {
		if err := s.Store(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := s.Load(ctx, "certificates/ca/a.test/a.test.key"); err != nil || string(v) != "AK" {
		t.Errorf("Load = %q, %v", v, err)
	}
	if _, err := s.Load(ctx, "certificates/ca/none"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing key: %v, want fs.ErrNotExist (certmagic relies on it)", err)
	}
	if !s.Exists(ctx, "certificates/ca") || !s.Exists(ctx, "acme/ca/users/me/me.json") || s.Exists(ctx, "certificates/c") {
		t.Error("Exists: want directories and files to exist, and a mere name prefix not to")
	}
	got, err := s.List(ctx, "certificates/ca", false)
	if want := []string{"certificates/ca/a.test", "certificates/ca/b.test"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("List non-recursive = %v, %v; want %v", got, err, want)
	}
	got, _ = s.List(ctx, "certificates", true)
	if want := []string{"certificates/ca", "certificates/ca/a.test", "certificates/ca/a.test/a.test.crt", "certificates/ca/a.test/a.test.key", "certificates/ca/b.test", "certificates/ca/b.test/b.test.crt"}; !slices.Equal(got, want) {
		t.Errorf("List recursive = %v, want %v", got, want)
	}
	info, err := s.Stat(ctx, "certificates/ca/b.test/b.test.crt")
	if err != nil || !info.IsTerminal || info.Size != 1 || time.Since(info.Modified) > time.Minute {
		t.Errorf("Stat file = %+v, %v", info, err)
	}
	if info, err := s.Stat(ctx, "certificates/ca"); err != nil || info.IsTerminal {
		t.Errorf("Stat directory = %+v, %v", info, err)
	}
	if err := s.Delete(ctx, "certificates/ca/a.test"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "certificates/ca/a.test/a.test.crt") || !s.Exists(ctx, "certificates/ca/b.test/b.test.crt") {
		t.Error("Delete of a directory must remove exactly what is under it")
	}
	if err := s.Delete(ctx, "never/was"); err != nil {
		t.Errorf("Delete of a missing key: %v, want nil", err)
	}
	// Everything lives in the OrderedLog under certs/, nowhere else.
	kvs, _, _ := n.Log.List(ctx, orderedlog.PrefixCerts)
	if len(kvs) != 2 {
		t.Errorf("%d keys under certs/, want 2", len(kvs))
	}
}
