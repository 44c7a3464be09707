// Package netpolicy is the Corefile glue for policy/: the `netpolicy`
// directive runs the node's network policy engine over the node runtime's
// View, mirrors it into nftables (unless in dev mode), and hands it to the
// node runtime, where the data plane proxy, the edge ingress and the API
// (`rune policy check`) find it. It answers no queries; it only reports
// readiness.
package netpolicy

import (
	"fmt"
	"runtime"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin"

	"github.com/runenet/runenet/plugin/pkg/datapath"
	"github.com/runenet/runenet/plugin/pkg/nodeopt"
	"github.com/runenet/runenet/plugin/pkg/subsystem"
)

func init() { plugin.Register("netpolicy", setup) }

// kernelMode is the `kernel` option; auto follows the node's dev mode.
type kernelMode int

const (
	kernelAuto kernelMode = iota
	kernelOn
	kernelOff
)

// config is one parsed `netpolicy` block. It is comparable, so a reload can
// tell whether the settings changed.
type config struct {
	dataDir string
	kernel  kernelMode
	table   string
	poll    time.Duration
}

// useKernel says whether to enforce in nftables too: on request, else on
// Linux outside dev mode (dev mode enforces at the proxy only).
func (cfg *config) useKernel(devMode bool) bool {
	switch cfg.kernel {
	case kernelOn:
		return true
	case kernelOff:
		return false
	}
	return runtime.GOOS == "linux" && !devMode
}

func setup(c *caddy.Controller) error {
	cfg, err := parse(c)
	if err != nil {
		return plugin.Error("netpolicy", err)
	}
	datapath.Of(c).NetPolicy = true
	subsystem.Setup(c, instance, *cfg)
	return nil
}

// parse reads
//
//	netpolicy {
//	    data_dir DIR       # the node runtime to attach to; default the only one open
//	    kernel on|off      # nftables enforcement; default on (Linux), off in dev mode
//	    table NAME         # nftables table (family inet); default rune_policy
//	    poll DURATION      # how often kernel drop counters are read; default 1s
//	}
func parse(c *caddy.Controller) (*config, error) {
	cfg := &config{}
	c.Next() // "netpolicy"
	if err := nodeopt.Block(c, nil, map[string]int{"data_dir": 1, "kernel": 1, "table": 1, "poll": 1}, cfg.set); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (cfg *config) set(opt string, args []string) error {
	switch opt {
	case "data_dir":
		cfg.dataDir = args[0]
	case "kernel":
		on, err := nodeopt.OnOff(args[0])
		if err != nil {
			return err
		}
		cfg.kernel = kernelOff
		if on {
			cfg.kernel = kernelOn
		}
	case "table":
		cfg.table = args[0]
	case "poll":
		d, err := time.ParseDuration(args[0])
		if err != nil || d <= 0 {
			return fmt.Errorf("%q: want a positive duration such as 1s", args[0])
		}
		cfg.poll = d
	}
	return nil
}
