package dataplane

import (
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"

	"github.com/runenet/runenet/plugin/pkg/nodeopt"
)

func TestParse(t *testing.T) {
	c := caddy.NewTestController("dns", `dataplane {
		data_dir /tmp/rune
		dev_mode
		listen 15001
		dial_timeout 500ms
		dial_attempts 2
		eject 2s 1m
		udp_idle_timeout 90s
		table myrune
	}`)
	cfg, err := parse(c)
	if err != nil {
		t.Fatal(err)
	}
	dp := cfg.dataplane(cfg.node.DevMode)
	if cfg.node.DataDir != "/tmp/rune" || !dp.Proxy.Dev || dp.Proxy.InterceptAddr.Port() != 15001 ||
		dp.Proxy.DialTimeout != 500*time.Millisecond || dp.Proxy.DialAttempts != 2 ||
		dp.Proxy.EjectBase != 2*time.Second || dp.Proxy.EjectMax != time.Minute ||
		dp.Proxy.UDPIdleTimeout != 90*time.Second || dp.NFT.Table != "myrune" {
		t.Errorf("parsed %+v", cfg)
	}
}

func TestParseForwardKernel(t *testing.T) {
	cfg, err := parse(caddy.NewTestController("dns", "dataplane {\nforward kernel\n}"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.dataplane(false).Proxy.Kernel {
		t.Errorf("forward kernel not set: %+v", cfg)
	}
}

func TestParseDefaults(t *testing.T) {
	cfg, err := parse(caddy.NewTestController("dns", `dataplane`))
	if err != nil {
		t.Fatal(err)
	}
	// No node settings: the block attaches to the rune block's runtime.
	if cfg.node != nodeopt.Defaults() || cfg.listen != 0 || cfg.kernel {
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestParseErrors(t *testing.T) {
	for input, want := range map[string]string{
		`dataplane extra`:                          "takes no arguments",
		"dataplane {\nbogus 1\n}":                  `unknown property "bogus"`,
		"dataplane {\nlisten 70000\n}":             "want a port number",
		"dataplane {\neject 10s 1s\n}":             "below base",
		"dataplane {\ndial_timeout -1s\n}":         "positive duration",
		"dataplane {\ncluster_cidr fd00::/64\n}":   "only IPv4",
		"dataplane {\ndev_mode yes\n}":             "takes 0 argument",
		"dataplane\ndataplane":                     "only be used once",
		"dataplane {\nforward ebpf\n}":             "want proxy or kernel",
		"dataplane {\nforward\n}":                  "takes 1 argument",
		"dataplane {\ndev_mode\nforward kernel\n}": "dev mode has no nftables",
	} {
		_, err := parse(caddy.NewTestController("dns", input))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error containing %q", input, err, want)
		}
	}
}
