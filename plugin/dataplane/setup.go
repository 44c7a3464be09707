// Package dataplane is the Corefile glue for proxy/: the `dataplane`
// directive starts the node's L4 data plane (VIP interception and
// forwarding) over the node runtime's View. It answers no queries; it only
// reports readiness.
package dataplane

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin"

	"github.com/runenet/runenet/node/nodeconfig"
	"github.com/runenet/runenet/plugin/pkg/datapath"
	"github.com/runenet/runenet/plugin/pkg/nodeopt"
	"github.com/runenet/runenet/plugin/pkg/subsystem"
	"github.com/runenet/runenet/proxy"
)

func init() { plugin.Register("dataplane", setup) }

// config is one parsed `dataplane` block: the node runtime to attach to
// (the same settings as the rune block, so both share one runtime) and the
// data plane's own tuning. It is comparable, so a reload can tell whether
// the settings changed.
type config struct {
	node                nodeconfig.Config // nodeopt.Defaults(): the rune block's runtime
	listen              uint16
	dialTimeout         time.Duration
	dialAttempts        int
	ejectBase, ejectMax time.Duration
	udpIdleTimeout      time.Duration
	table, guardTable   string
	kernel              bool
	// reserved are the dev ingress's ports (datapath.Facts), which dev
	// mode never binds for a service.
	reserved [2]uint16
}

// dataplane is the data plane's configuration on a node in dev mode or not.
func (cfg *config) dataplane(dev bool) proxy.DataplaneConfig {
	var reserved []uint16
	for _, p := range cfg.reserved {
		if p != 0 {
			reserved = append(reserved, p)
		}
	}
	return proxy.DataplaneConfig{
		Proxy: proxy.Config{
			Dev:            dev,
			Reserved:       reserved,
			Kernel:         cfg.kernel,
			InterceptAddr:  netip.AddrPortFrom(netip.IPv4Unspecified(), cfg.listen),
			DialTimeout:    cfg.dialTimeout,
			DialAttempts:   cfg.dialAttempts,
			EjectBase:      cfg.ejectBase,
			EjectMax:       cfg.ejectMax,
			UDPIdleTimeout: cfg.udpIdleTimeout,
		},
		NFT: proxy.NFTConfig{Table: cfg.table, GuardTable: cfg.guardTable},
	}
}

func setup(c *caddy.Controller) error {
	cfg, err := parse(c)
	if err == nil {
		err = datapath.RequireNetPolicy(c, "dataplane")
	}
	if err != nil {
		return plugin.Error("dataplane", err)
	}
	cfg.reserved = datapath.Of(c).IngressDevPorts
	subsystem.Setup(c, instance, *cfg)
	return nil
}

// parse reads
//
//	dataplane {
//	    data_dir DIR              # node runtime: normally none (the rune block's); else as there
//	    cluster_cidr CIDR
//	    api ADDR
//	    token TOKEN
//	    stale_budget DURATION
//	    node_name NAME
//	    dev_mode
//	    listen PORT               # where nftables redirects TCP; default 0 (any free port)
//	    dial_timeout DURATION     # default 2s
//	    dial_attempts N           # default 3
//	    eject BASE MAX            # default 1s 30s
//	    udp_idle_timeout DURATION # default 60s
//	    table NAME                # default rune
//	    guard_table NAME          # default rune_guard
//	    forward proxy|kernel      # how TCP is forwarded; default proxy
//	}
func parse(c *caddy.Controller) (*config, error) {
	cfg := &config{node: nodeopt.Defaults()}
	c.Next() // "dataplane"
	if err := nodeopt.Block(c, &cfg.node, map[string]int{"forward": 1, "listen": 1, "dial_timeout": 1, "dial_attempts": 1, "eject": 2, "udp_idle_timeout": 1, "table": 1, "guard_table": 1}, cfg.set); err != nil {
		return nil, err
	}
	if cfg.kernel && cfg.node.DevMode {
		return nil, c.Err("forward kernel: dev mode has no nftables to forward with")
	}
	return cfg, nil
}

func (cfg *config) set(opt string, args []string) error {
	var err error
	switch opt {
	case "forward":
		switch args[0] {
		case "proxy", "kernel":
			cfg.kernel = args[0] == "kernel"
		default:
			return fmt.Errorf("%q: want proxy or kernel", args[0])
		}
	case "listen":
		port, perr := strconv.ParseUint(args[0], 10, 16)
		if perr != nil {
			return fmt.Errorf("%q: want a port number (0 lets the kernel choose)", args[0])
		}
		cfg.listen = uint16(port)
	case "dial_timeout":
		cfg.dialTimeout, err = positiveDuration(args[0])
	case "dial_attempts":
		n, perr := strconv.Atoi(args[0])
		if perr != nil || n < 1 || n > 10 {
			return fmt.Errorf("%q: want a number from 1 to 10", args[0])
		}
		cfg.dialAttempts = n
	case "eject":
		if cfg.ejectBase, err = positiveDuration(args[0]); err == nil {
			cfg.ejectMax, err = positiveDuration(args[1])
		}
		if err == nil && cfg.ejectMax < cfg.ejectBase {
			err = fmt.Errorf("max %s is below base %s", args[1], args[0])
		}
	case "udp_idle_timeout":
		cfg.udpIdleTimeout, err = positiveDuration(args[0])
	case "table":
		cfg.table = args[0]
	case "guard_table":
		cfg.guardTable = args[0]
	}
	return err
}

func positiveDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q: want a positive duration such as 30s", s)
	}
	return d, nil
}
