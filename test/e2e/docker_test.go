package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/api"
	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/proxy/netnstest"
	"github.com/runenet/runenet/test/dockerimg"

	"github.com/runenet/runenet/internal/testkit"
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
	dockerWait(t, n.view, "two ready api instances with their container IPs", func(s *cluster.Snapshot) bool {
		return maps.EqualFunc(dockerInstances(s, ns, "api"), want, sameDockerInstance)
	})
	apiIPs := []string{env.ip(api1).String(), env.ip(api2).String()}
	slices.Sort(apiIPs)
	dockerWait(t, n.view, "api endpoints with both containers", func(s *cluster.Snapshot) bool {
		return slices.Equal(slices.Sorted(slices.Values(dockerEndpointIPs(s, ns, "api"))), apiIPs)
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
	dockerWait(t, n.view, "flaky ready once healthy", ready(true))
	docker(t, "exec", flaky, dockerimg.Binary, "sick")
	dockerWait(t, n.view, "flaky unready and out of its endpoints once unhealthy", ready(false))
	docker(t, "exec", flaky, dockerimg.Binary, "well")
	dockerWait(t, n.view, "flaky ready again once healthy", ready(true))

	// A stopped container leaves promptly: its die event drives it, no
	// polling interval in between.
	start := time.Now()
	docker(t, "stop", "-t", "1", api2)
	stopped := time.Since(start)
	dockerWait(t, n.view, "the stopped api container deregistered", func(s *cluster.Snapshot) bool {
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
	before := testkit.Metric(t, "rune_docker_reconcile_total", nil)
	n = startDockerNode(t, dir, "node1")
	dockerWait(t, n.view, "reconcile: api-1 kept, api-3 added, flaky gone", func(s *cluster.Snapshot) bool {
		return maps.EqualFunc(dockerInstances(s, ns, ""), want, sameDockerInstance)
	})
	if after := testkit.Metric(t, "rune_docker_reconcile_total", nil); after <= before {
		t.Errorf("rune_docker_reconcile_total = %v after the restart, was %v; want it counted", after, before)
	}
	snap := n.view.Snapshot()
	for _, r := range res {
		svc, ok := snap.Service(cluster.NamespacedName{Namespace: ns, Name: r.Name})
		if !ok || svc.Value.VIP != r.VIP {
			t.Errorf("service %s after the restart: %+v, want VIP %s", r.Name, svc.Value, r.VIP)
		}
	}
	if testkit.Metric(t, "rune_docker_events_total", nil) == 0 {
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

// TestDockerFullPath runs runed in the network namespace of a "node"
// container and client containers that use it through Docker's --dns
// injection, one on a user-defined network (queries go through Docker's
// embedded DNS) and one on the default bridge (queries go to runed
// directly). Each client routes the cluster CIDR to the node container, so
// VIP interception happens only in the node container's namespace.
func TestDockerFullPath(t *testing.T) { testDockerFullPath(t) }

// TestDockerFullPathKernelForwarding: the same with runed --forward kernel,
// where the node container DNATs the clients' connections to api containers
// (one client shares their network, one comes from another bridge) and
// masquerades them so the replies come back through it.
func TestDockerFullPathKernelForwarding(t *testing.T) { testDockerFullPath(t, "--forward", "kernel") }

func testDockerFullPath(t *testing.T, runedFlags ...string) {
	netnstest.RequireRoot(t) // nsenter into the containers' namespaces
	env := newDockerEnv(t)
	ns := dockerimg.RandomName("e2e")
	node := env.run(dockerimg.RandomName("rune-e2e-node"), "--no-healthcheck")
	docker(t, "network", "connect", "bridge", node)
	nodeIP, nodeBridgeIP := env.ip(node), env.ipOn(node, "bridge")
	r := startDockerRuned(t, env, node, runedFlags, nodeIP, nodeBridgeIP)
	ctx := context.Background()
	var files []api.CastFile
	for _, svc := range []string{"api", "web"} {
		files = append(files, api.CastFile{Name: svc + ".yaml", Data: fmt.Sprintf(
			"service:\n  name: %s\n  namespace: %s\n  ports:\n    - name: http\n      port: 8080\n", svc, ns)})
	}
	cast, err := r.client.Cast(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	vips := map[string]netip.Addr{}
	for _, res := range cast.Results {
		vips[res.Name] = res.VIP
	}
	view := followRuned(t, r.client) // runed's own Docker source (--docker) registers the instances

	labels := func(svc string) []string {
		return []string{"--label", "rune.service=" + svc, "--label", "rune.namespace=" + ns}
	}
	// api containers keep the image's healthcheck; clients are web instances.
	api1 := env.run(dockerimg.RandomName("rune-e2e-api"), labels("api")...)
	api2 := env.run(dockerimg.RandomName("rune-e2e-api"), labels("api")...)
	dnsFlags := func(server netip.Addr) []string {
		return append(labels("web"), "--no-healthcheck", "--dns", server.String(), "--dns-search", ns+".rune")
	}
	clients := map[string]netip.Addr{ // client → the node address it routes the cluster CIDR to
		env.run(dockerimg.RandomName("rune-e2e-client"), dnsFlags(nodeIP)...):                   nodeIP,
		env.runOn("bridge", dockerimg.RandomName("rune-e2e-client"), dnsFlags(nodeBridgeIP)...): nodeBridgeIP,
	}
	for c, via := range clients {
		env.runIn(c, "ip", "route", "add", dpCIDR, "via", via.String())
	}
	apiReady := func(want ...string) func(*cluster.Snapshot) bool {
		return func(s *cluster.Snapshot) bool {
			ep, ok := s.Endpoints(cluster.NamespacedName{Namespace: ns, Name: "api"})
			if !ok || len(ep.Value.Addresses) != len(want) {
				return false
			}
			for i, a := range ep.Value.Addresses {
				if a.Instance != want[i] {
					return false
				}
			}
			return true
		}
	}
	id1, id2 := dockerInstanceID(api1), dockerInstanceID(api2)
	sorted := func(ids ...string) []string { return slices.Sorted(slices.Values(ids)) }
	dockerWait(t, view, "both api containers in the endpoints", apiReady(sorted(id1, id2)...))

	// Short and full names resolve to the VIP through the injected resolver.
	for c := range clients {
		for _, name := range []string{"api", "api." + ns + ".rune"} {
			out := docker(t, "exec", c, dockerimg.Binary, "resolve", name)
			if want := name + " " + vips["api"].String(); out != want {
				t.Errorf("client %.12s: resolve %s = %q, want %q", c, name, out, want)
			}
		}
	}
	host1, host2 := api1[:12], api2[:12] // testd answers its hostname
	expect := func(what string, want ...string) {
		t.Helper()
		for c := range clients {
			names, errs := dockerAnswers(dockerGet(t, c, "-n", "20", "http://api:8080/"))
			if len(errs) > 0 || !slices.Equal(slices.Sorted(maps.Keys(names)), sorted(want...)) {
				t.Fatalf("%s: client %.12s got answers %v and errors %q, want answers from %v only", what, c, names, errs, want)
			}
		}
	}
	expect("both api containers", host1, host2)
	if slices.Contains(runedFlags, "kernel") {
		// The answers came through DNAT, not the proxy: the node's
		// endpoint maps hold both api containers.
		eps := env.runIn(node, "nft", "list", "table", "ip", "rune")
		for _, c := range []string{api1, api2} {
			if ip := env.ip(c).String(); !strings.Contains(eps, ip+" . 8080") {
				t.Errorf("kernel forwarding: api container %s missing from the node's endpoint map:\n%s", ip, eps)
			}
		}
	}

	// An unhealthy container stops receiving traffic, and gets it back.
	docker(t, "exec", api1, dockerimg.Binary, "sick")
	dockerWait(t, view, "the unhealthy api container out of the endpoints", apiReady(id2))
	expect("api-1 unhealthy", host2)
	docker(t, "exec", api1, dockerimg.Binary, "well")
	dockerWait(t, view, "the recovered api container back in the endpoints", apiReady(sorted(id1, id2)...))

	// A stopped container's traffic moves to the other: no request sent
	// after the stop is seen fails.
	var client string
	for c := range clients {
		client = c
		break
	}
	load := exec.Command("docker", "exec", client, dockerimg.Binary, "get", "-n", "150", "-interval", "20ms", "http://api."+ns+".rune:8080/")
	var out testkit.SyncBuffer
	load.Stdout, load.Stderr = &out, &out
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	// The stop comes once api-2 is answering the load.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), " OK "+host2+"\n"); {
		if time.Now().After(deadline) {
			t.Fatalf("the load got no answer from api-2 (%s) in 30s:\n%s", host2, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	docker(t, "stop", "-t", "1", api2)
	dockerWait(t, view, "the stopped api container out of the endpoints", apiReady(id1))
	seen := time.Now()
	if err := load.Wait(); err != nil {
		t.Fatalf("testd get: %v\n%s", err, out.String())
	}
	var after, failedBefore int
	for _, q := range dockerParseGet(t, out.String()) {
		if q.sent.Before(seen) {
			if !q.ok {
				failedBefore++
			}
			continue
		}
		after++
		if !q.ok || q.answer != host1 {
			t.Errorf("request sent %v after the stop was seen: ok=%v answer %q", q.sent.Sub(seen), q.ok, q.answer)
		}
	}
	if after == 0 {
		t.Fatal("no request was sent after the stop was seen; the load ran too short")
	}
	t.Logf("stop: %d requests sent after it was seen, all answered; %d failed in the window before", after, failedBefore)

	// runed restarts while the containers run: same VIPs, same instances.
	instances := dockerInstances(view.Snapshot(), ns, "")
	r.stop()
	r.start()
	svcs, err := r.client.Services(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs.Items {
		if s.VIP != vips[s.Spec.Name] {
			t.Errorf("service %s has VIP %s after the restart, had %s", s.Spec.Name, s.VIP, vips[s.Spec.Name])
		}
	}
	dockerWait(t, view, "the same instances after the restart", func(s *cluster.Snapshot) bool {
		return maps.EqualFunc(dockerInstances(s, ns, ""), instances, sameDockerInstance)
	})
	expect("after the runed restart", host1)

	// Network policy on the container path: api admits only web. The web
	// clients keep getting answers; a container that is no instance of any
	// service (no identity) is refused by the proxy.
	other := env.run(dockerimg.RandomName("rune-e2e-other"), "--no-healthcheck", "--dns", nodeIP.String(), "--dns-search", ns+".rune")
	env.runIn(other, "ip", "route", "add", dpCIDR, "via", nodeIP.String())
	if names, errs := dockerAnswers(dockerGet(t, other, "-n", "3", "http://api:8080/")); len(errs) > 0 || names[host1] != 3 {
		t.Fatalf("before the policy: the unlabelled client got %v, errors %q", names, errs)
	}
	if _, err := r.client.Cast(ctx, []api.CastFile{{Name: "api.yaml", Data: fmt.Sprintf(
		"service:\n  name: api\n  namespace: %s\n  ports:\n    - name: http\n      port: 8080\n  networkPolicy:\n    ingress:\n      - from:\n          - service: web\n", ns)}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		names, errs := dockerAnswers(dockerGet(t, other, "-n", "3", "http://api:8080/"))
		if len(names) == 0 && len(errs) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the policy does not refuse the unlabelled client: answers %v, errors %q", names, errs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	expect("web admitted by api's policy", host1)
}
