package nodeopt

import (
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/node/nodeconfig"
)

func TestSet(t *testing.T) {
	for _, tc := range []struct {
		opt     string
		args    []string
		handled bool
		err     string
		check   func(nodeconfig.Config) bool
	}{
		{"dev_mode", nil, true, "", func(c nodeconfig.Config) bool { return c.DevMode }},
		{"dev_mode", []string{"yes"}, true, "takes 0 argument(s)", nil},
		{"data_dir", []string{"/x"}, true, "", func(c nodeconfig.Config) bool { return c.DataDir == "/x" }},
		{"data_dir", nil, true, "takes 1 argument(s), got 0", nil},
		{"cluster_cidr", []string{"100.64.0.0/16"}, true, "", func(c nodeconfig.Config) bool { return c.ClusterCIDR == "100.64.0.0/16" }},
		{"cluster_cidr", []string{"8.8.8.0/24"}, true, "not private", nil},
		{"api", []string{"tcp://127.0.0.1:7070"}, true, "", func(c nodeconfig.Config) bool { return c.APIAddr == "tcp://127.0.0.1:7070" }},
		{"api", []string{"127.0.0.1:7070"}, true, "want unix://", nil},
		{"token", []string{"t"}, true, "", func(c nodeconfig.Config) bool { return c.APIToken == "t" }},
		{"stale_budget", []string{"5s"}, true, "", func(c nodeconfig.Config) bool { return c.StaleBudget == 5*time.Second }},
		{"stale_budget", []string{"-1s"}, true, "positive duration", nil},
		{"vip_hold", []string{"10m"}, true, "", func(c nodeconfig.Config) bool { return c.HoldPeriod == 10*time.Minute }},
		{"node_name", []string{"n1"}, true, "", func(c nodeconfig.Config) bool { return c.NodeName == "n1" }},
		{"disk_reserve", []string{"512MiB"}, true, "", func(c nodeconfig.Config) bool { return c.DiskReserve == 512<<20 }},
		{"disk_reserve", []string{"65536"}, true, "", func(c nodeconfig.Config) bool { return c.DiskReserve == 65536 }},
		{"disk_reserve", []string{"0"}, true, "", func(c nodeconfig.Config) bool { return c.DiskReserve < 0 }},
		{"disk_reserve", []string{"1GB"}, true, "want a size such as 256MiB", nil},
		{"disk_reserve", []string{"-1MiB"}, true, "want a size", nil},
		{"cluster_addr", []string{"10.0.0.1:7946"}, true, "", func(c nodeconfig.Config) bool { return c.ClusterAddr == "10.0.0.1:7946" }},
		{"cluster_addr", nil, true, "takes 1 argument(s)", nil},
		{"bootstrap", nil, true, "", func(c nodeconfig.Config) bool { return c.Bootstrap }},
		{"bootstrap", []string{"yes"}, true, "takes 0 argument(s)", nil},
		{"container_cidr", []string{"10.89.0.0/16"}, true, "", func(c nodeconfig.Config) bool { return c.ContainerCIDR == "10.89.0.0/16" }},
		{"container_cidr", []string{"10.89.0.0/25"}, true, "want a /8 to /24", nil},
		{"node_subnet", []string{"10.88.7.0/24"}, true, "", func(c nodeconfig.Config) bool { return c.NodeSubnet == "10.88.7.0/24" }},
		{"node_subnet", []string{"10.88.7.1/24"}, true, "want an IPv4 network", nil},
		{"routes", []string{"off"}, true, "", func(c nodeconfig.Config) bool { return c.NoRoutes }},
		{"routes", []string{"on"}, true, "", func(c nodeconfig.Config) bool { return !c.NoRoutes }},
		{"routes", []string{"maybe"}, true, "routes:", nil},
		{"node_grace", []string{"1m"}, true, "", func(c nodeconfig.Config) bool { return c.NodeGrace == time.Minute }},
		{"node_grace", []string{"0s"}, true, "positive duration", nil},
		{"docker_network", []string{"rune-e2e_1.x"}, true, "", func(c nodeconfig.Config) bool { return c.DockerNetwork == "rune-e2e_1.x" }},
		{"docker_network", []string{"-rune"}, true, "starting with a letter or digit", nil},
		{"docker_network", []string{"ru ne"}, true, "want letters", nil},
		{"ttl", []string{"5"}, false, "", nil},
	} {
		var cfg nodeconfig.Config
		handled, err := Set(&cfg, tc.opt, tc.args)
		if handled != tc.handled || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s %v: handled %v err %v, want %v %q", tc.opt, tc.args, handled, err, tc.handled, tc.err)
		}
		if tc.check != nil && !tc.check(cfg) {
			t.Errorf("%s %v: config %+v", tc.opt, tc.args, cfg)
		}
	}
}
