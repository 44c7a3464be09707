// Package ingress is the Corefile glue for ingress/: the `ingress` directive
// runs the edge HTTP(S) router with automatic TLS over the node runtime's
// log and View. It answers no queries; it only reports readiness.
package ingress

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin"

	"github.com/runenet/runenet/ingress"
	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/node/nodeconfig"
	"github.com/runenet/runenet/plugin/pkg/datapath"
	"github.com/runenet/runenet/plugin/pkg/nodeopt"
	"github.com/runenet/runenet/plugin/pkg/subsystem"
	"github.com/runenet/runenet/readiness"
)

func init() { plugin.Register("ingress", setup) }

// config is one parsed `ingress` block; comparable, so a reload can tell
// whether the settings changed.
type config struct {
	node       nodeconfig.Config
	http       string
	https      string
	acmeEmail  string
	acmeCA     string
	acmeCARoot string
	hsts       ingress.HSTS
	hstsSet    bool // false: no Strict-Transport-Security
	timeouts   ingress.Timeouts
	noFastPath bool
}

// timeoutOptions maps the timeout options to their Timeouts fields.
var timeoutOptions = map[string]func(*ingress.Timeouts) *time.Duration{
	"client_header_timeout":   func(t *ingress.Timeouts) *time.Duration { return &t.ClientHeader },
	"client_idle_timeout":     func(t *ingress.Timeouts) *time.Duration { return &t.ClientIdle },
	"client_body_timeout":     func(t *ingress.Timeouts) *time.Duration { return &t.ClientBody },
	"send_timeout":            func(t *ingress.Timeouts) *time.Duration { return &t.Send },
	"backend_connect_timeout": func(t *ingress.Timeouts) *time.Duration { return &t.BackendConnect },
	"backend_header_timeout":  func(t *ingress.Timeouts) *time.Duration { return &t.BackendHeader },
	"backend_idle_timeout":    func(t *ingress.Timeouts) *time.Duration { return &t.BackendIdle },
}

func (cfg *config) options(dev bool) ingress.Options {
	// Dev mode runs on a laptop, where everything else listens on loopback:
	// exposing its services to the LAN takes an explicit http/https.
	http, https := cfg.http, cfg.https
	if http == "" {
		http = map[bool]string{false: ":80", true: "127.0.0.1:8080"}[dev]
	}
	if https == "" {
		https = map[bool]string{false: ":443", true: "127.0.0.1:8443"}[dev]
	}
	o := ingress.Options{
		HTTPAddr: http, HTTPSAddr: https,
		ACME:     ingress.ACMEOptions{Email: cfg.acmeEmail, CA: cfg.acmeCA, CARootsFile: cfg.acmeCARoot},
		Timeouts: cfg.timeouts, DisableFastPath: cfg.noFastPath,
	}
	if cfg.hstsSet {
		h := cfg.hsts
		o.HSTS = &h
	}
	return o
}

// devPorts are the ports of the listeners in dev mode, which the dev-mode
// data plane leaves to the ingress (see plugin/pkg/datapath).
func (cfg *config) devPorts() [2]uint16 {
	o := cfg.options(true)
	var ports [2]uint16
	for i, addr := range []string{o.HTTPAddr, o.HTTPSAddr} {
		if _, p, err := net.SplitHostPort(addr); err == nil {
			n, _ := strconv.ParseUint(p, 10, 16)
			ports[i] = uint16(n)
		}
	}
	return ports
}

func setup(c *caddy.Controller) error {
	cfg, err := parse(c)
	if err == nil {
		err = datapath.RequireNetPolicy(c, "ingress")
	}
	if err != nil {
		return plugin.Error("ingress", err)
	}
	datapath.Of(c).IngressDevPorts = cfg.devPorts()
	subsystem.Setup(c, instance, *cfg)
	return nil
}

// parse reads
//
//	ingress {
//	    data_dir DIR          # node runtime: same values as the rune block
//	    cluster_cidr CIDR
//	    api ADDR
//	    token TOKEN
//	    stale_budget DURATION
//	    node_name NAME
//	    dev_mode
//	    http ADDR             # default :80 (dev_mode 127.0.0.1:8080)
//	    https ADDR            # default :443 (dev_mode 127.0.0.1:8443)
//	    acme_email EMAIL
//	    acme_ca URL|production|staging   # default production (Let's Encrypt)
//	    acme_ca_root FILE     # extra PEM roots for the ACME server's HTTPS
//	    hsts MAX_AGE [include_subdomains] [preload]
//	    fastpath on|off       # default on; off: every request through net/http
//	    client_header_timeout DURATION    # 10s
//	    client_idle_timeout DURATION      # 75s
//	    client_body_timeout DURATION      # 60s
//	    send_timeout DURATION             # 60s
//	    backend_connect_timeout DURATION  # 5s
//	    backend_header_timeout DURATION   # 60s
//	    backend_idle_timeout DURATION     # 60s
//	}
func parse(c *caddy.Controller) (*config, error) {
	cfg := &config{node: nodeopt.Defaults()}
	c.Next() // "ingress"
	arity := map[string]int{"http": 1, "https": 1, "acme_email": 1, "acme_ca": 1, "acme_ca_root": 1, "fastpath": 1, "hsts": -1}
	for opt := range timeoutOptions {
		arity[opt] = 1
	}
	if err := nodeopt.Block(c, &cfg.node, arity, cfg.set); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (cfg *config) set(opt string, args []string) error {
	if field, ok := timeoutOptions[opt]; ok {
		d, err := time.ParseDuration(args[0])
		if err != nil || d <= 0 {
			return fmt.Errorf("%q: want a positive duration, such as 30s", args[0])
		}
		*field(&cfg.timeouts) = d
		return nil
	}
	switch opt {
	case "fastpath":
		on, err := nodeopt.OnOff(args[0])
		if err != nil {
			return err
		}
		cfg.noFastPath = !on
	case "http", "https":
		if _, _, err := net.SplitHostPort(args[0]); err != nil {
			return fmt.Errorf("%q: want [HOST]:PORT, such as :%s", args[0], map[string]string{"http": "80", "https": "443"}[opt])
		}
		if opt == "http" {
			cfg.http = args[0]
		} else {
			cfg.https = args[0]
		}
	case "acme_email":
		cfg.acmeEmail = args[0]
	case "acme_ca":
		switch args[0] {
		case "production":
			cfg.acmeCA = certmagic.LetsEncryptProductionCA
		case "staging":
			cfg.acmeCA = certmagic.LetsEncryptStagingCA
		default:
			cfg.acmeCA = args[0]
		}
	case "acme_ca_root":
		if _, err := os.Stat(args[0]); err != nil {
			return err
		}
		cfg.acmeCARoot = args[0]
	case "hsts":
		h, err := parseHSTS(args)
		if err != nil {
			return err
		}
		cfg.hsts, cfg.hstsSet = h, true
	}
	return nil
}

// parseHSTS reads `MAX_AGE [include_subdomains] [preload]`, MAX_AGE a
// duration such as 8760h (one year).
func parseHSTS(args []string) (ingress.HSTS, error) {
	age, err := time.ParseDuration(args[0])
	if err != nil {
		return ingress.HSTS{}, fmt.Errorf("max-age %q: want a duration such as 8760h (one year) or 0 to withdraw the policy", args[0])
	}
	h := ingress.HSTS{MaxAge: age}
	for _, a := range args[1:] {
		switch {
		case a == "include_subdomains" && !h.IncludeSubDomains:
			h.IncludeSubDomains = true
		case a == "preload" && !h.Preload:
			h.Preload = true
		default:
			return ingress.HSTS{}, fmt.Errorf("%q: want include_subdomains or preload, each at most once", a)
		}
	}
	return h, h.Validate()
}

// instance is the process's one ingress: :80 and :443 can be bound once.
var instance = &subsystem.Shared[config]{Name: "ingress", Start: start}

type running struct {
	rt  *node.Runtime
	ing *ingress.Ingress
}

func start(cfg config) (subsystem.Running, error) {
	rt, err := subsystem.Runtime(cfg.node)
	if err != nil {
		return nil, err
	}
	opts := cfg.options(rt.Config().DevMode)
	// The node's name as the runtime has it (the rune block's node_name, or
	// the host name's first label): the name its node record, and so the
	// EDGES of `rune get ingresses` and the certificate locks, know it by.
	opts.NodeName = rt.Config().NodeName
	// Exposed services' policies apply at the edge too: the router asks the
	// runtime for netpolicy's engine on every request, and refuses what a
	// policy governs while there is none.
	opts.Policy = rt.Policy
	ing, err := ingress.New(rt.Log(), rt.View(), opts)
	if err == nil {
		err = ing.Start()
	}
	if err != nil {
		return nil, errors.Join(err, rt.Release())
	}
	rt.SetIngress(ing)
	return &running{rt: rt, ing: ing}, nil
}

// Ready: both listeners are bound.
func (r *running) Ready() (bool, string) { return r.ing.Ready() }

func (r *running) Readiness() *readiness.Registry { return r.rt.Readiness() }

// Close stops the ingress and releases the node runtime.
func (r *running) Close() error {
	r.rt.SetIngress(nil)
	return errors.Join(r.ing.Close(), r.rt.Release())
}
