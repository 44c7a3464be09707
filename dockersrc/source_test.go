package dockersrc

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/runenet/runenet/cluster"
)

func TestInstanceOf(t *testing.T) {
	s := &Source{cfg: Config{Node: "n1", Network: NetworkName}, log: slog.New(slog.DiscardHandler)}
	const cid = "0123456789abcdef0123"
	mk := func(running bool, health string, labels map[string]string, nets map[string]string) *container {
		c := &container{ID: cid, Name: "/api-1"}
		c.Config.Labels = labels
		c.State.Running = running
		if health != "" {
			c.State.Health = &struct{ Status string }{health}
		}
		c.NetworkSettings.Networks = map[string]struct{ IPAddress string }{}
		for n, ip := range nets {
			c.NetworkSettings.Networks[n] = struct{ IPAddress string }{ip}
		}
		return c
	}
	api := map[string]string{LabelService: "api"}
	bridge := map[string]string{"bridge": "172.17.0.2"}
	want := func(ns, ip string, ready bool) *cluster.Instance {
		return &cluster.Instance{ID: "docker-0123456789ab", Service: "api", Namespace: ns, Node: "n1", IP: netip.MustParseAddr(ip), Ready: ready}
	}
	for _, tc := range []struct {
		name string
		c    *container
		want *cluster.Instance // nil: not an instance
	}{
		{"no healthcheck is ready", mk(true, "", api, bridge), want("default", "172.17.0.2", true)},
		{"disabled healthcheck is ready", mk(true, "none", api, bridge), want("default", "172.17.0.2", true)},
		{"healthy", mk(true, "healthy", api, bridge), want("default", "172.17.0.2", true)},
		{"starting is not ready", mk(true, "starting", api, bridge), want("default", "172.17.0.2", false)},
		{"unhealthy", mk(true, "unhealthy", api, bridge), want("default", "172.17.0.2", false)},
		{"stopped", mk(false, "", api, bridge), nil},
		{"unlabelled", mk(true, "", map[string]string{}, bridge), nil},
		{"namespace label", mk(true, "", map[string]string{LabelService: "api", LabelNamespace: "jobs"}, bridge), want("jobs", "172.17.0.2", true)},
		{"first network by name", mk(true, "", api, map[string]string{"zeta": "10.1.0.2", "alpha": "", "beta": "10.2.0.2"}), want("default", "10.2.0.2", true)},
		{"the node's network first", mk(true, "", api, map[string]string{"alpha": "10.2.0.2", NetworkName: "10.88.0.2"}), want("default", "10.88.0.2", true)},
		{"network label", mk(true, "", map[string]string{LabelService: "api", LabelNetwork: "zeta"}, map[string]string{"zeta": "10.1.0.2", "beta": "10.2.0.2"}), want("default", "10.1.0.2", true)},
		{"network label without an address", mk(true, "", map[string]string{LabelService: "api", LabelNetwork: "gone"}, bridge), nil},
		{"host network: no address", mk(true, "", api, map[string]string{"host": ""}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := s.instanceOf(tc.c)
			switch {
			case tc.want == nil && ok:
				t.Errorf("got instance %+v, want none", got)
			case tc.want != nil && (!ok || got != *tc.want):
				t.Errorf("got %+v (ok=%v), want %+v", got, ok, *tc.want)
			}
		})
	}
}
