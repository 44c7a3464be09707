package ingress

import (
	"bufio"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// With an HSTS policy every HTTPS response carries it first, ahead of a
// backend's own (browsers heed the first), on HTTP/1.1 (the fast path) and
// HTTP/2 (net/http), the edge's error responses included; plain HTTP and a
// 421 for another host carry none.
func TestHSTSOnEveryHTTPSResponse(t *testing.T) {
	n := newNode(t)
	ca := newTestCA(t)
	port := startHandler(t, "127.0.0.1", 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/own" {
			w.Header().Set("Strict-Transport-Security", "max-age=1")
		}
		w.Write([]byte("ok"))
	}))

	ing := startIngressWith(t, n, Options{HSTS: &HSTS{MaxAge: 2 * 365 * 24 * time.Hour, IncludeSubDomains: true}})
	const want = "max-age=63072000; includeSubDomains"
	certPEM, keyPEM := ca.issue(t, time.Now().Add(time.Hour), "shop.example.test", "down.example.test", "idle.example.test")
	exposeManual(t, n, ing, "shop", "shop.example.test", "127.0.0.1", port, certPEM, keyPEM)
	// Nothing listens behind down (the fast path answers 502); idle has no
	// endpoints (net/http answers 503).
	exposeManual(t, n, ing, "down", "down.example.test", "127.0.0.2", port, certPEM, keyPEM)
	if _, err := StoreTLSSecret(t.Context(), n.Log, "default", "idle-tls", certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	n.cast(t, "idle", port, "idle.example.test", "    tls:\n      mode: manual\n      secret: idle-tls\n")
	waitFor(t, 5*time.Second, "idle's certificate", func() bool { r, _ := statusOf(ing, "idle.example.test"); return r.Cert == CertReady })
	n.cast(t, "plain", port, "plain.example.test", "")
	n.addInstance(t, "plain", "plain-1", "127.0.0.3")
	startBackend(t, "plain", "127.0.0.3", port)
	waitRoute(t, ing, "plain.example.test", 1)

	check := func(what string, h http.Header, code, wantCode int, wantSTS ...string) {
		t.Helper()
		if got := h.Values("Strict-Transport-Security"); code != wantCode || !slices.Equal(got, wantSTS) {
			t.Errorf("%s: %d with Strict-Transport-Security %q, want %d with %q", what, code, got, wantCode, wantSTS)
		}
	}
	for _, host := range []string{"shop.example.test", "down.example.test", "idle.example.test"} {
		c := rawTLS(t, ing, ca, host, "http/1.1")
		br := bufio.NewReader(c)
		resp, _ := roundTrip(t, c, br, host)
		check("HTTP/1.1 "+host, resp.Header, resp.StatusCode, map[string]int{"shop.example.test": 200, "down.example.test": 502, "idle.example.test": 503}[host], want)
	}
	c := rawTLS(t, ing, ca, "shop.example.test", "http/1.1")
	br := bufio.NewReader(c)
	if _, err := c.Write([]byte("GET /own HTTP/1.1\r\nHost: shop.example.test\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	check("HTTP/1.1 with the backend's own", resp.Header, resp.StatusCode, 200, want, "max-age=1")
	resp, _ = roundTrip(t, c, br, "plain.example.test")
	check("HTTP/1.1 421", resp.Header, resp.StatusCode, 421)

	h2 := client(ing.HTTPSAddr(), ca.pool())
	resp, _ = get(t, h2, "https://shop.example.test/own")
	check("HTTP/2 with the backend's own", resp.Header, resp.StatusCode, 200, want, "max-age=1")
	if resp.ProtoMajor != 2 {
		t.Errorf("got %s, want HTTP/2", resp.Proto)
	}
	resp, _ = get(t, client(ing.HTTPAddr(), nil), "http://plain.example.test/")
	check("plain HTTP", resp.Header, resp.StatusCode, 200)
	resp, _ = get(t, client(ing.HTTPAddr(), nil), "http://shop.example.test/")
	check("plain HTTP redirect", resp.Header, resp.StatusCode, http.StatusPermanentRedirect)
}

func TestHSTSValidation(t *testing.T) {
	year := 365 * 24 * time.Hour
	for _, tc := range []struct {
		h    HSTS
		want string // "" for valid; else part of the error
	}{
		{HSTS{MaxAge: year, IncludeSubDomains: true, Preload: true}, ""},
		{HSTS{MaxAge: 0}, ""},
		{HSTS{MaxAge: -time.Second}, "negative"},
		{HSTS{MaxAge: 1500 * time.Millisecond}, "whole number of seconds"},
		{HSTS{MaxAge: year, Preload: true}, "preload needs include_subdomains"},
		{HSTS{MaxAge: year / 2, IncludeSubDomains: true, Preload: true}, "at least 8760h0m0s"},
	} {
		err := tc.h.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.h, err, tc.want)
		}
	}
	if got := (&HSTS{MaxAge: year, IncludeSubDomains: true, Preload: true}).value(); got != "max-age=31536000; includeSubDomains; preload" {
		t.Errorf("value %q", got)
	}
	if _, err := New(nil, nil, Options{HSTS: &HSTS{MaxAge: -1}}); err == nil || !strings.Contains(err.Error(), "hsts:") {
		t.Errorf("New with a bad policy: %v", err)
	}
}
