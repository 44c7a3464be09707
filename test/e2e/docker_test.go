package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/test/dockerimg"
)

// TestDockerInstances runs the Docker instance source against the real
// Engine and a real Badger-backed cluster: containers become instances with
// their container IPs, follow their health, leave when stopped, and a
// restarted node reconciles with what changed while it was down.
func TestDockerInstances(t *testing.T) {
	env := newDockerEnv(t)
	// A namespace of its own, so labelled containers of any other run on
	// this Engine cannot land in this test's services.
	ns := dockerimg.RandomName("e2e")
	dir := t.TempDir()
	n := startDockerNode(t, dir, "node1")
	ctx := context.Background()
	var files []cluster.SourceFile
	for _, svc := range []string{"api", "flaky"} {
		files = append(files, cluster.SourceFile{Name: svc + ".yaml", Data: fmt.Appendf(nil,
			"service:\n  name: %s\n  namespace: %s\n  ports:\n    - name: http\n      port: 8080\n", svc, ns)})
	}
	res, _, err := n.ctl.Cast(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	labels := func(svc string) []string {
		return []string{"--label", "rune.service=" + svc, "--label", "rune.namespace=" + ns}
	}

	// Two containers without a healthcheck: ready as soon as they run.
	api1 := env.run(dockerimg.RandomName("rune-e2e-api"), append(labels("api"), "--no-healthcheck")...)
	api2 := env.run(dockerimg.RandomName("rune-e2e-api"), append(labels("api"), "--no-healthcheck")...)
	want := map[string]cluster.Instance{
		dockerInstanceID(api1): {ID: dockerInstanceID(api1), Service: "api", Namespace: ns, Node: "node1", IP: env.ip(api1), Ready: true},
		dockerInstanceID(api2): {ID: dockerInstanceID(api2), Service: "api", Namespace: ns, Node: "node1", IP: env.ip(api2), Ready: true},
	}
	dockerWait(t, n, "two ready api instances with their container IPs", func(s *cluster.Snapshot) bool {
		return maps.EqualFunc(dockerInstances(s, ns, "api"), want, sameDockerInstance)
	})
	dockerWait(t, n, "api endpoints with both containers", func(s *cluster.Snapshot) bool {
		return slices.Equal(dockerEndpointIPs(s, ns, "api"), []string{env.ip(api1).String(), env.ip(api2).String()}) ||
			slices.Equal(dockerEndpointIPs(s, ns, "api"), []string{env.ip(api2).String(), env.ip(api1).String()})
	})

	// A container with the image's healthcheck follows Docker's verdict.
	flaky := env.run(dockerimg.RandomName("rune-e2e-flaky"), labels("flaky")...)
	flakyID, flakyIP := dockerInstanceID(flaky), env.ip(flaky)
	ready := func(want bool) func(*cluster.Snapshot) bool {
		return func(s *cluster.Snapshot) bool {
			in, ok := s.Instance(flakyID)
			inEndpoints := slices.Equal(dockerEndpointIPs(s, ns, "flaky"), []string{flakyIP.String()})
			return ok && in.Value.Ready == want && in.Value.IP == flakyIP && inEndpoints == want
		}
	}
	dockerWait(t, n, "flaky ready once healthy", ready(true))
	docker(t, "exec", flaky, dockerimg.Binary, "sick")
	dockerWait(t, n, "flaky unready and out of its endpoints once unhealthy", ready(false))
	docker(t, "exec", flaky, dockerimg.Binary, "well")
	dockerWait(t, n, "flaky ready again once healthy", ready(true))

	// A stopped container leaves promptly (the stop is not waited on by
	// polling: the die event drives it).
	start := time.Now()
	docker(t, "stop", "-t", "1", api2)
	stopped := time.Since(start)
	dockerWait(t, n, "the stopped api container deregistered", func(s *cluster.Snapshot) bool {
		_, ok := s.Instance(dockerInstanceID(api2))
		return !ok
	})
	if d := time.Since(start) - stopped; d > 3*time.Second {
		t.Errorf("deregistration took %v after docker stop returned; want it within 3s", d)
	}
	delete(want, dockerInstanceID(api2))

	// runed restarts; while it is down one container is removed and
	// another starts. The restarted node drops the vanished instance,
	// registers the new one and keeps the ids and VIPs it had.
	n.stop()
	docker(t, "rm", "-f", flaky)
	api3 := env.run(dockerimg.RandomName("rune-e2e-api"), append(labels("api"), "--no-healthcheck")...)
	want[dockerInstanceID(api3)] = cluster.Instance{ID: dockerInstanceID(api3), Service: "api", Namespace: ns, Node: "node1", IP: env.ip(api3), Ready: true}
	before := dockerCounter(t, "rune_docker_reconcile_total")
	n = startDockerNode(t, dir, "node1")
	dockerWait(t, n, "reconcile: api-1 kept, api-3 added, flaky gone", func(s *cluster.Snapshot) bool {
		return maps.EqualFunc(dockerInstances(s, ns, ""), want, sameDockerInstance)
	})
	if after := dockerCounter(t, "rune_docker_reconcile_total"); after <= before {
		t.Errorf("rune_docker_reconcile_total = %v after the restart, was %v; want it counted", after, before)
	}
	snap := n.view.Snapshot()
	for _, r := range res {
		svc, ok := snap.Service(cluster.NamespacedName{Namespace: ns, Name: r.Name})
		if !ok || svc.Value.VIP != r.VIP {
			t.Errorf("service %s after the restart: %+v, want VIP %s", r.Name, svc.Value, r.VIP)
		}
	}
	if dockerCounter(t, "rune_docker_events_total") == 0 {
		t.Error("rune_docker_events_total counted no events")
	}
}

// sameDockerInstance compares what the source sets (not the Updated time).
func sameDockerInstance(a, b cluster.Instance) bool {
	a.Updated, b.Updated = time.Time{}, time.Time{}
	return a == b
}

func dockerEndpointIPs(s *cluster.Snapshot, ns, svc string) []string {
	ep, ok := s.Endpoints(cluster.NamespacedName{Namespace: ns, Name: svc})
	if !ok {
		return nil
	}
	var ips []string
	for _, a := range ep.Value.Addresses {
		ips = append(ips, a.IP.String())
	}
	return ips
}

// dockerCounter sums a counter of the default registry over its labels.
func dockerCounter(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
