package api

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/badger"
)

// gatedSource holds a View's first load until open is closed, as a big
// store does right after a restart.
type gatedSource struct {
	cluster.Source
	open chan struct{}
}

func (g gatedSource) ListFunc(ctx context.Context, prefix string, fn func(orderedlog.KV) error) (uint64, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return g.Source.ListFunc(ctx, prefix, fn)
}

// Reads before the View has loaded wait for it, and past LoadWait answer
// 503 "not ready" — never an empty success that says the services are gone.
func TestReadsBeforeTheViewLoadsAreNotEmpty(t *testing.T) {
	k := testkit.NewCluster(t, "10.96.0.0/16", badger.Options{}, cluster.ViewOptions{})
	k.Cast(t, "service: {name: api, ports: [{port: 80}]}")
	src := gatedSource{Source: k.Log, open: make(chan struct{})}
	view := cluster.NewView(src, cluster.ViewOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); view.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	client := func(wait time.Duration) *Client {
		sock := filepath.Join(t.TempDir(), "s")
		l, err := Listen("unix://"+sock, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: (&Server{Controller: k.Ctl, View: view, Log: k.Log, LoadWait: wait}).Handler(), BaseContext: func(net.Listener) context.Context { return ctx }}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		c, err := NewClient("unix://"+sock, "")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	short := client(100 * time.Millisecond)
	reads := map[string]func() error{
		"services":  func() error { _, err := short.Services(ctx, ""); return err },
		"endpoints": func() error { _, err := short.Endpoints(ctx, ""); return err },
		"instances": func() error { _, err := short.Instances(ctx, ""); return err },
		"policies":  func() error { _, err := short.Policies(ctx, ""); return err },
		"service":   func() error { return short.do(ctx, http.MethodGet, "/v1/services/default/api", nil, nil) },
	}
	for name, read := range reads {
		var ae *APIError
		if err := read(); !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Kind != "not_ready" || !strings.Contains(ae.Msg, "not ready") {
			t.Errorf("%s before the View loaded: %v (%+v), want 503 not_ready", name, err, ae)
		}
	}

	// A read that arrives while the load is under way gets the loaded state.
	patient := client(time.Minute)
	got := make(chan *ServiceList, 1)
	go func() {
		list, err := patient.Services(ctx, "")
		if err != nil {
			t.Error(err)
		}
		got <- list
	}()
	close(src.open)
	if list := <-got; list == nil || len(list.Items) != 1 || list.Items[0].Spec.Name != "api" {
		t.Fatalf("read waiting for the load answered %+v, want the one service", list)
	}
}

// A write refused by a full disk is 507 disk_full whatever path wrote it
// (the controller, or a handler writing the log itself, like TLS secrets).
func TestDiskFullIs507(t *testing.T) {
	full := &orderedlog.NoSpaceError{Dir: "/var/lib/rune/store", Free: 1 << 20, Reserve: 256 << 20}
	for _, err := range []error{
		&cluster.Error{Kind: cluster.KindNoSpace, Err: full},
		&cluster.Error{Kind: cluster.KindInvalid, Msg: "tls secret default/x", Err: full},
	} {
		rec := httptest.NewRecorder()
		writeError(rec, err)
		var body ErrorResponse
		if err := json.NewDecoder(rec.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if rec.Code != http.StatusInsufficientStorage || body.Kind != "disk_full" || !strings.Contains(body.Error, "disk full") {
			t.Errorf("%v: %d %+v, want 507 disk_full", err, rec.Code, body)
		}
	}
}
