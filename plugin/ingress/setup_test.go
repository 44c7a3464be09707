package ingress

import (
	"strings"
	"testing"

	"github.com/caddyserver/certmagic"
	"github.com/coredns/caddy"
)

func TestParse(t *testing.T) {
	cfg, err := parse(caddy.NewTestController("dns", `ingress {
		data_dir /tmp/rune
		http 127.0.0.1:8081
		acme_email ops@example.com
		acme_ca staging
		acme_ca_root /dev/null
	}`))
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.options(cfg.node.DevMode)
	if cfg.node.DataDir != "/tmp/rune" || o.HTTPAddr != "127.0.0.1:8081" || o.HTTPSAddr != ":443" ||
		o.ACME.Email != "ops@example.com" || o.ACME.CA != certmagic.LetsEncryptStagingCA || o.ACME.CARootsFile != "/dev/null" {
		t.Errorf("parsed %+v, options %+v", cfg, o)
	}
}

func TestParseDevModeDefaults(t *testing.T) {
	cfg, err := parse(caddy.NewTestController("dns", "ingress"))
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.options(true); o.HTTPAddr != ":8080" || o.HTTPSAddr != ":8443" || o.ACME.CA != "" {
		t.Errorf("dev mode options %+v", o)
	}
}

func TestParseErrors(t *testing.T) {
	for input, want := range map[string]string{
		`ingress extra`:                           "takes no arguments",
		"ingress {\nbogus 1\n}":                   `unknown property "bogus"`,
		"ingress {\nhttp 80\n}":                   "want [HOST]:PORT",
		"ingress {\nacme_ca_root /nonexistent\n}": "no such file",
		"ingress {\ndev_mode yes\n}":              "takes 0 argument",
		"ingress\ningress":                        "only be used once",
	} {
		_, err := parse(caddy.NewTestController("dns", input))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error containing %q", input, err, want)
		}
	}
}
