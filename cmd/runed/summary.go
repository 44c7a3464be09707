package main

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/coredns/caddy"
	clog "github.com/coredns/coredns/plugin/pkg/log"

	"github.com/runenet/runenet/corefile"
	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/node/nodeconfig"
)

// startup is what runed says once it has started: what runs where.
type startup struct {
	node        nodeconfig.Config
	clusterCIDR string   // as bootstrapped in the store, which wins over the flag
	subnet      string   // this node's container subnet, of the container CIDR
	routes      bool     // whether it routes its peers' subnets
	dns         []string // the addresses DNS listens on
	// opts are the flags the Corefile was rendered from; nil with -conf,
	// whose file then says the rest.
	opts *corefile.Options
	conf string
}

func (s startup) String() string {
	mode := "production"
	if s.node.DevMode {
		mode = "dev mode"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "runed is running (%s) as node %s\n", mode, s.node.NodeName)
	line := func(what, where string) { fmt.Fprintf(&b, "  %-13s %s\n", what, where) }
	line("data dir", s.node.DataDir)
	api := s.node.APIAddr
	if s.node.APITLSCert != "" {
		api += " (TLS)"
	}
	line("API", api)
	answers := "service VIPs"
	if s.node.DevMode {
		answers = "127.0.0.1 for every service (dev mode)"
	}
	line("DNS", strings.Join(s.dns, ", ")+"; .rune names answer "+answers)
	if s.opts == nil {
		line("Corefile", s.conf+" (metrics, ready, ingress and forwarding as it sets them)")
	} else {
		o := s.opts
		line("metrics", "http://"+o.MetricsAddr+"/metrics")
		line("ready", "http://"+o.ReadyAddr+"/ready")
		if o.NodeRole == corefile.RoleEdge {
			line("ingress", "HTTP "+o.IngressHTTPAddr()+", HTTPS "+o.IngressHTTPSAddr())
		} else {
			line("ingress", "none (not an edge node: --node-role=edge)")
		}
		switch {
		case s.node.DevMode:
			line("forward", "proxy, listening on 127.0.0.1:<service port> (dev mode: no nftables)")
		case o.Forward == "kernel":
			line("forward", "kernel: nftables DNAT for TCP ports without an ingress policy, the proxy for the rest")
		default:
			line("forward", "proxy: nftables steers service VIPs into runed's proxy")
		}
	}
	line("cluster CIDR", s.clusterCIDR)
	peers := "routes to peers' subnets via their cluster addresses"
	if !s.routes {
		peers = "no routes to peers' subnets (--routes=false or dev mode)"
	}
	line("node subnet", s.subnet+"; "+peers)
	return strings.TrimSuffix(b.String(), "\n")
}

// logStartup logs the start-up block once, after the first instance of
// the server has started (a reload does not repeat it).
func logStartup(opts *corefile.Options, conf string) {
	var once sync.Once
	caddy.RegisterEventHook("runed-startup", func(ev caddy.EventName, info any) error {
		inst, ok := info.(*caddy.Instance)
		if ev != caddy.InstanceStartupEvent || !ok {
			return nil
		}
		once.Do(func() {
			r := node.Only()
			if r == nil {
				return // a Corefile without a rune block: a plain CoreDNS
			}
			s := startup{node: r.Config(), clusterCIDR: r.Config().ClusterCIDR, opts: opts, conf: conf}
			snap := r.View().Snapshot()
			if n := snap.Network; n != nil {
				s.clusterCIDR = n.CIDR.String()
			}
			if self, ok := snap.Node(r.Config().NodeName); ok && snap.ContainerNetwork != nil {
				s.subnet = self.Value.Subnet.String() + " of container CIDR " + snap.ContainerNetwork.CIDR.String()
			}
			s.routes = r.RoutesOn()
			s.dns = listenAddrs(inst)
			clog.Info(s.String())
		})
		return nil
	})
}

// listenAddrs are the addresses the instance's DNS servers listen on, sorted.
func listenAddrs(inst *caddy.Instance) []string {
	var out []string
	for _, sl := range inst.Servers() {
		var a net.Addr
		if a = sl.LocalAddr(); a == nil {
			a = sl.Addr()
		}
		if a != nil && !slices.Contains(out, a.String()) {
			out = append(out, a.String())
		}
	}
	slices.Sort(out)
	return out
}
