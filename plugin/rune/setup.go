package rune

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"

	"github.com/runenet/runenet/api"
	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/node/nodeconfig"
	"github.com/runenet/runenet/plugin/pkg/lifecycle"
	"github.com/runenet/runenet/plugin/pkg/nodeopt"
)

func init() { plugin.Register("rune", setup) }

// OpenLocal opens the node runtime in this process and returns its View and
// how to let go of it.
type OpenLocal func(nodeconfig.Config) (*cluster.View, func() error, error)

// local is the in-process mode: runed links it in (plugin/rune/inprocess),
// so a block without endpoint opens the store there. A stock CoreDNS has
// none, and there a block needs endpoint; the plugin then links nothing of
// the node runtime (no store, no data path).
var local OpenLocal

// SetLocal installs the in-process mode; plugin/rune/inprocess calls it.
func SetLocal(open OpenLocal) { local = open }

// Options left out of the Corefile take runed's flag defaults (corefile/);
// the API address defaults to the node runtime's own choice,
// unix://DATA_DIR/runed.sock, which is where the CLI looks.
const (
	DefaultTTL = 5
	maxTTL     = 3600
)

// config is one parsed `rune` block.
type config struct {
	node     nodeconfig.Config
	endpoint string // remote mode: watch a runed over its API instead of opening a store
	ca       string // remote mode: PEM roots for a TLS endpoint
	ttl      uint32
	fastpath bool
}

func setup(c *caddy.Controller) error {
	cfg, err := parse(c)
	if err != nil {
		return plugin.Error("rune", err)
	}
	r := &Rune{TTL: cfg.ttl, DevMode: cfg.node.DevMode}

	// The view is opened at startup rather than in setup: a reload sets up
	// the new instance before shutting down the old one, and caddy discards
	// a new instance whose later directives fail to set up without running
	// its shutdown hooks. Opening on start keeps the node runtime's refcount
	// exact, and the overlap keeps it open across the reload; lifecycle
	// releases it if caddy discards the instance after its startup.
	var release func() error
	lifecycle.Run(c, func() error {
		v, rel, err := cfg.open()
		if err != nil {
			return plugin.Error("rune", err)
		}
		r.SetView(v)
		release = rel
		return nil
	}, func() error {
		r.stopFast()
		return release()
	})

	dc := dnsserver.GetConfig(c)
	dc.AddPlugin(func(next plugin.Handler) plugin.Handler {
		r.Next = next
		return r
	})
	fast := cfg.fastpath && dc.UDPDecorateWriterFunc == nil
	// At startup, before a reload stops the instance before this one:
	// that one's fast path sockets wait for this one's, or go back to
	// CoreDNS's (reusegroup.go).
	c.OnStartup(func() error {
		takeOver(dc, fast)
		return nil
	})
	c.OnRestartFailed(func() error {
		r.restartFailed()
		return nil
	})
	switch {
	case !cfg.fastpath:
	case dc.UDPDecorateWriterFunc != nil:
		log.Infof("fast path off: another plugin of the block decorates UDP replies")
	default:
		// CoreDNS calls this as each UDP server of the block starts
		// serving: the hook that hands a plugin its *dnsserver.Server.
		dc.UDPDecorateWriterFunc = func(s *dnsserver.Server) dns.DecorateWriter {
			r.startFast(dc, s)
			return nil
		}
	}
	return nil
}

// open returns the View to answer from and how to let go of it: the node
// runtime's own (opening the store and API in this process), or, with
// endpoint, one that watches a runed over its API, reconnecting with
// back-off and failing closed past the stale budget like the local one.
func (cfg *config) open() (*cluster.View, func() error, error) {
	if cfg.endpoint == "" {
		return local(cfg.node)
	}
	token := cfg.node.APIToken
	if f := cfg.node.APITokenFile; f != "" {
		var err error
		if token, err = nodeconfig.ReadToken(f); err != nil {
			return nil, nil, fmt.Errorf("token_file: %w", err)
		}
	}
	var opts []api.ClientOption
	if cfg.ca != "" {
		opts = append(opts, api.WithCA(cfg.ca))
	}
	client, err := api.NewClient(cfg.endpoint, token, opts...)
	if err != nil {
		return nil, nil, err
	}
	v := cluster.NewView(idleSource{Source: client, idle: remoteIdle}, cluster.ViewOptions{StaleBudget: cfg.node.StaleBudget})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		v.Run(ctx)
	}()
	return v, func() error { cancel(); <-done; return nil }, nil
}

// parse reads
//
//	rune {
//	    data_dir DIR
//	    cluster_cidr CIDR
//	    api unix:///PATH | tcp://HOST:PORT
//	    token TOKEN
//	    stale_budget DURATION
//	    ttl SECONDS
//	    dev_mode
//	    node_name NAME
//	    token_file FILE
//	    read_token_file FILE
//	    tls CERT KEY
//	    debug
//	    endpoint URL
//	    ca FILE
//	    fastpath on|off
//	}
func (cfg *config) set(opt string, args []string) error {
	v := args[0]
	switch opt {
	case "ttl":
		t, err := strconv.ParseUint(v, 10, 32)
		if err != nil || t > maxTTL {
			return fmt.Errorf("%q: want seconds between 0 and %d", v, maxTTL)
		}
		cfg.ttl = uint32(t)
	case "endpoint":
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "unix" && u.Scheme != "tcp" && u.Scheme != "http" && u.Scheme != "https") {
			return fmt.Errorf("%q: want unix:///path/to/socket, tcp://host:port or http(s)://host:port of a runed API", v)
		}
		cfg.endpoint = v
	case "ca":
		if _, err := os.Stat(v); err != nil {
			return err
		}
		cfg.ca = v
	case "fastpath":
		on, err := nodeopt.OnOff(v)
		if err != nil {
			return err
		}
		cfg.fastpath = on
	}
	return nil
}

func parse(c *caddy.Controller) (*config, error) {
	cfg := &config{node: nodeopt.Defaults(), ttl: DefaultTTL, fastpath: true}
	c.Next() // "rune"
	if args := c.RemainingArgs(); len(args) > 0 {
		return nil, c.Errf("rune takes no zones (it answers for %s and the cluster CIDR's reverse zones), got %q", Zone, strings.Join(args, " "))
	}
	defaults := cfg.node
	if err := nodeopt.Block(c, &cfg.node, map[string]int{"ttl": 1, "endpoint": 1, "ca": 1, "fastpath": 1}, cfg.set); err != nil {
		return nil, err
	}
	if cfg.endpoint == "" {
		if local == nil {
			return nil, c.Err("endpoint is required: this CoreDNS cannot open a runed store in-process (only runed can), so it follows a runed over its API (endpoint URL)")
		}
		if cfg.ca != "" {
			return nil, c.Err("ca is for endpoint (remote mode): the in-process API's certificate is set with tls CERT KEY")
		}
		return cfg, nil
	}
	// Remote mode opens no store and serves no API: the settings of those
	// make no sense.
	for _, o := range []struct {
		opt string
		set bool
	}{
		{"data_dir", cfg.node.DataDir != defaults.DataDir},
		{"cluster_cidr", cfg.node.ClusterCIDR != defaults.ClusterCIDR},
		{"api", cfg.node.APIAddr != ""},
		{"node_name", cfg.node.NodeName != ""},
		{"docker", cfg.node.Docker != ""},
		{"vip_hold", cfg.node.HoldPeriod != 0},
		{"read_token_file", cfg.node.APIReadTokenFile != ""},
		{"tls", cfg.node.APITLSCert != ""},
		{"debug", cfg.node.DebugAPI},
		{"cluster_addr", cfg.node.ClusterAddr != ""},
		{"bootstrap", cfg.node.Bootstrap},
		{"join", cfg.node.Join != ""},
		{"join_token", cfg.node.JoinToken != ""},
		{"container_cidr", cfg.node.ContainerCIDR != defaults.ContainerCIDR},
		{"node_subnet", cfg.node.NodeSubnet != ""},
		{"routes", cfg.node.NoRoutes},
		{"node_grace", cfg.node.NodeGrace != 0},
		{"docker_network", cfg.node.DockerNetwork != ""},
	} {
		if o.set {
			return nil, c.Errf("%s configures the local store or its API and cannot be combined with endpoint (remote mode)", o.opt)
		}
	}
	if cfg.node.APIToken != "" && cfg.node.APITokenFile != "" {
		return nil, c.Err("token and token_file are exclusive: give the token one way")
	}
	return cfg, nil
}
