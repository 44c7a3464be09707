package ingress

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/coredns/caddy"

	"github.com/runenet/runenet/ingress"
)

func TestParse(t *testing.T) {
	cfg, err := parse(caddy.NewTestController("dns", `ingress {
		data_dir /tmp/rune
		http 127.0.0.1:8081
		acme_email ops@example.com
		acme_ca staging
		acme_ca_root /dev/null
		fastpath off
		client_body_timeout 30s
		backend_header_timeout 2m
	}`))
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.options(cfg.node.DevMode)
	if cfg.node.DataDir != "/tmp/rune" || o.HTTPAddr != "127.0.0.1:8081" || o.HTTPSAddr != ":443" ||
		o.ACME.Email != "ops@example.com" || o.ACME.CA != certmagic.LetsEncryptStagingCA || o.ACME.CARootsFile != "/dev/null" ||
		!o.DisableFastPath || o.Timeouts != (ingress.Timeouts{ClientBody: 30 * time.Second, BackendHeader: 2 * time.Minute}) {
		t.Errorf("parsed %+v, options %+v", cfg, o)
	}
}

// Dev mode listens on loopback only, as everything else does on a laptop;
// http/https widen it.
func TestParseDevModeDefaults(t *testing.T) {
	cfg, err := parse(caddy.NewTestController("dns", "ingress"))
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.options(true); o.HTTPAddr != "127.0.0.1:8080" || o.HTTPSAddr != "127.0.0.1:8443" || o.ACME.CA != "" || o.HSTS != nil {
		t.Errorf("dev mode options %+v", o)
	}
	if o := cfg.options(false); o.HTTPAddr != ":80" || o.HTTPSAddr != ":443" {
		t.Errorf("options %+v", o)
	}
	cfg, err = parse(caddy.NewTestController("dns", "ingress {\nhttp :8080\nhttps 0.0.0.0:8443\n}"))
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.options(true); o.HTTPAddr != ":8080" || o.HTTPSAddr != "0.0.0.0:8443" {
		t.Errorf("widened dev mode options %+v", o)
	}
}

func TestParseHSTS(t *testing.T) {
	for input, want := range map[string]ingress.HSTS{
		"hsts 17520h":                           {MaxAge: 17520 * time.Hour},
		"hsts 8760h include_subdomains preload": {MaxAge: 8760 * time.Hour, IncludeSubDomains: true, Preload: true},
		"hsts 0s":                               {},
		"hsts 1h include_subdomains":            {MaxAge: time.Hour, IncludeSubDomains: true},
	} {
		cfg, err := parse(caddy.NewTestController("dns", "ingress {\n"+input+"\n}"))
		if err != nil {
			t.Errorf("%q: %v", input, err)
			continue
		}
		// Parsed twice, the settings compare equal: a reload keeps the ingress.
		again, _ := parse(caddy.NewTestController("dns", "ingress {\n"+input+"\n}"))
		if o := cfg.options(false); o.HSTS == nil || *o.HSTS != want || *cfg != *again {
			t.Errorf("%q: options %+v", input, o.HSTS)
		}
	}
}

// The ports the dev-mode data plane leaves to the ingress follow its
// listen addresses, defaults included.
func TestDevPorts(t *testing.T) {
	for input, want := range map[string][2]uint16{
		"ingress":                           {8080, 8443},
		"ingress {\nhttp 127.0.0.1:9080\n}": {9080, 8443},
		"ingress {\nhttp :81\nhttps 127.0.0.1:9443\n}": {81, 9443},
	} {
		cfg, err := parse(caddy.NewTestController("dns", input))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.devPorts(); got != want {
			t.Errorf("%q: dev ports %v, want %v", input, got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for input, want := range map[string]string{
		`ingress extra`:                                    "takes no arguments",
		"ingress {\nbogus 1\n}":                            `unknown property "bogus"`,
		"ingress {\nhttp 80\n}":                            "want [HOST]:PORT",
		"ingress {\nacme_ca_root /nonexistent\n}":          "no such file",
		"ingress {\ndev_mode yes\n}":                       "takes 0 argument",
		"ingress\ningress":                                 "only be used once",
		"ingress {\nhsts\n}":                               "hsts takes at least 1 argument(s), got 0",
		"ingress {\nhsts 1y\n}":                            `hsts: max-age "1y": want a duration such as 8760h`,
		"ingress {\nhsts 8760h preload\n}":                 "hsts: preload needs include_subdomains",
		"ingress {\nhsts 1h include_subdomains preload\n}": "preload needs a max-age of at least 8760h0m0s",
		"ingress {\nhsts 8760h includeSubDomains\n}":       `hsts: "includeSubDomains": want include_subdomains or preload`,
		"ingress {\nhsts 8760h preload preload\n}":         "each at most once",
		"ingress {\nhsts -1s\n}":                           "negative",
		"ingress {\nfastpath maybe\n}":                     `fastpath: "maybe": want on or off`,
		"ingress {\nsend_timeout 0s\n}":                    `send_timeout: "0s": want a positive duration`,
		"ingress {\nclient_idle_timeout x\n}":              `client_idle_timeout: "x": want a positive duration`,
	} {
		_, err := parse(caddy.NewTestController("dns", input))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error containing %q", input, err, want)
		}
	}
}
