// Package nodeopt parses the node settings that the rune, dataplane and
// ingress Corefile blocks share: they configure one node runtime, so they read
// them one way.
package nodeopt

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/corefile"
	"github.com/runenet/runenet/node/nodeconfig"
)

// Set applies a node option to cfg. It reports whether opt is one, and for
// one, whether its arguments are right. dev_mode, debug and bootstrap take no
// argument, tls two (certificate and key), every other option exactly one.
func Set(cfg *nodeconfig.Config, opt string, args []string) (bool, error) {
	want := 1
	switch opt {
	case "dev_mode", "debug", "bootstrap":
		want = 0
	case "tls":
		want = 2
	case "docker":
		// Bare `docker` means the local Engine; `docker HOST` names one.
		if len(args) == 0 {
			cfg.Docker = "default"
			return true, nil
		}
	case "data_dir", "cluster_cidr", "api", "token", "token_file", "read_token_file", "stale_budget", "node_name", "vip_hold", "disk_reserve", "cluster_addr", "join", "join_token",
		"container_cidr", "node_subnet", "routes", "node_grace", "docker_network":
	default:
		return false, nil
	}
	if len(args) != want {
		return true, fmt.Errorf("%s takes %d argument(s), got %d", opt, want, len(args))
	}
	if opt == "tls" || strings.HasSuffix(opt, "token_file") {
		// Read when the runtime opens; a missing file is reported here, at its line.
		for _, f := range args {
			if _, err := os.Stat(f); err != nil {
				return true, fmt.Errorf("%s: %w", opt, err)
			}
		}
	}
	switch opt {
	case "dev_mode":
		cfg.DevMode = true
	case "bootstrap":
		cfg.Bootstrap = true
	case "cluster_addr":
		cfg.ClusterAddr = args[0]
	case "join":
		cfg.Join = args[0]
	case "join_token":
		cfg.JoinToken = args[0]
	case "debug":
		cfg.DebugAPI = true
	case "tls":
		cfg.APITLSCert, cfg.APITLSKey = args[0], args[1]
	case "token_file":
		cfg.APITokenFile = args[0]
	case "read_token_file":
		cfg.APIReadTokenFile = args[0]
	case "data_dir":
		cfg.DataDir = args[0]
	case "cluster_cidr":
		p, err := cluster.ParseClusterCIDR(args[0])
		if err != nil {
			return true, err
		}
		cfg.ClusterCIDR = p.String()
	case "container_cidr":
		p, err := cluster.ParseContainerCIDR(args[0])
		if err != nil {
			return true, err
		}
		cfg.ContainerCIDR = p.String()
	case "docker_network":
		if problem := dockerNetworkProblem(args[0]); problem != "" {
			return true, fmt.Errorf("docker_network %q: %s", args[0], problem)
		}
		cfg.DockerNetwork = args[0]
	case "node_subnet":
		p, err := netip.ParsePrefix(args[0])
		if err != nil || !p.Addr().Is4() || p.Masked() != p {
			return true, fmt.Errorf("node_subnet %q: want an IPv4 network inside container_cidr, e.g. 10.88.3.0/24", args[0])
		}
		cfg.NodeSubnet = p.String()
	case "routes":
		on, err := OnOff(args[0])
		if err != nil {
			return true, fmt.Errorf("routes: %w", err)
		}
		cfg.NoRoutes = !on
	case "api":
		if !strings.HasPrefix(args[0], "unix://") && !strings.HasPrefix(args[0], "tcp://") {
			return true, fmt.Errorf("api %q: want unix:///path/to/socket or tcp://host:port", args[0])
		}
		cfg.APIAddr = args[0]
	case "token":
		cfg.APIToken = args[0]
	case "docker":
		if !strings.HasPrefix(args[0], "unix://") && !strings.HasPrefix(args[0], "tcp://") {
			return true, fmt.Errorf("docker %q: want unix:///path/to/docker.sock or tcp://host:port", args[0])
		}
		cfg.Docker = args[0]
	case "node_name":
		cfg.NodeName = args[0]
	case "disk_reserve":
		n, err := corefile.ParseSize(args[0])
		if err != nil {
			return true, fmt.Errorf("disk_reserve %q: %v", args[0], err)
		}
		cfg.DiskReserve = n
		if n == 0 {
			cfg.DiskReserve = -1 // "0" turns the guard off; the zero Config means the default
		}
	case "stale_budget", "vip_hold", "node_grace":
		d, err := time.ParseDuration(args[0])
		if err != nil || d <= 0 {
			return true, fmt.Errorf("%s %q: want a positive duration such as 30s", opt, args[0])
		}
		switch opt {
		case "stale_budget":
			cfg.StaleBudget = d
		case "vip_hold":
			cfg.HoldPeriod = d
		default:
			cfg.NodeGrace = d
		}
	}
	return true, nil
}

// Defaults are the node settings a block starts from, as runed's flags
// render them.
func Defaults() nodeconfig.Config {
	return nodeconfig.Config{DataDir: corefile.DefaultDataDir, ClusterCIDR: corefile.DefaultClusterCIDR, ContainerCIDR: corefile.DefaultContainerCIDR, StaleBudget: corefile.DefaultStaleBudget}
}

// dockerNetworkProblem says what is wrong with a Docker network name, as
// the Engine judges them ([a-zA-Z0-9][a-zA-Z0-9_.-]*), or "".
func dockerNetworkProblem(name string) string {
	for i, c := range name {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return "want letters, digits, '_', '.' or '-', starting with a letter or digit"
		}
	}
	return ""
}
