package e2e

import (
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/proxy/netnstest"
)

// TestClusterNetworkBetweenNodes: real runed processes, one namespace each
// on a bridge (one layer-2 network), n2 and n3 joining n1's cluster. Each
// installs a route to the others' container subnets via their cluster
// addresses, and a container namespace on n1's subnet reaches one on n2's
// directly, the destination seeing the container's own address (routed, no
// NAT). Then n2 is killed: past --node-grace the leader marks its instance
// unready, and every node's endpoints keep n1's only.
func TestClusterNetworkBetweenNodes(t *testing.T) {
	n1, n2, n3 := newNode(t, "rune-e2e-cn"), newNode(t, "rune-e2e-cn"), newNode(t, "rune-e2e-cn")
	sw := netnstest.New(t, "rune-e2e-sw")
	netnstest.Bridge(t, sw, "br0")
	dev1 := netnstest.Attach(t, sw, "br0", n1.ns, "192.168.77.1/24")
	dev2 := netnstest.Attach(t, sw, "br0", n2.ns, "192.168.77.2/24")
	netnstest.Attach(t, sw, "br0", n3.ns, "192.168.77.3/24")
	n3.ns.ResolvConf(t, "127.0.0.1")
	// A container namespace per node on its subnet, its node the gateway.
	c1, c2 := netnstest.New(t, "rune-e2e-c"), netnstest.New(t, "rune-e2e-c")
	for _, c := range []struct {
		node      *dnsNode
		ctr       *netnstest.NS
		gw, addr  string
		gwAddress string
	}{{n1, c1, "10.88.10.1/24", "10.88.10.2/24", "10.88.10.1"}, {n2, c2, "10.88.20.1/24", "10.88.20.2/24", "10.88.20.1"}} {
		c.node.ns.ResolvConf(t, "127.0.0.1") // nothing there: no query leaves the namespace
		c.node.ns.Run(t, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
		netnstest.Link(t, c.node.ns, c.gw, c.ctr, c.addr)
		c.ctr.Run(t, "ip", "route", "add", "default", "via", c.gwAddress)
	}

	const grace = 5 * time.Second
	common := []string{"--node-grace", grace.String()}
	n1.flags = append([]string{"--node-name", "n1", "--data-dir", n1.dataDir, "--cluster-addr", "192.168.77.1:7946", "--bootstrap", "--node-subnet", "10.88.10.0/24"}, common...)
	n1.start(t)
	n1.waitSOA(t, 30*time.Second)
	token := strings.TrimSpace(n1.cli(t, "cluster", "join-token"))
	n2.flags = append([]string{"--node-name", "n2", "--data-dir", n2.dataDir, "--cluster-addr", "192.168.77.2:7946",
		"--join", "192.168.77.1:7946", "--join-token", token, "--node-subnet", "10.88.20.0/24"}, common...)
	n2.start(t)
	n2.waitSOA(t, 30*time.Second)
	n3.flags = append([]string{"--node-name", "n3", "--data-dir", n3.dataDir, "--cluster-addr", "192.168.77.3:7946",
		"--join", "192.168.77.1:7946", "--join-token", token, "--node-subnet", "10.88.30.0/24"}, common...)
	n3.start(t)
	n3.waitSOA(t, 30*time.Second)

	peerRoutes := func(n *dnsNode, want string) func() bool {
		return func() bool {
			return strings.TrimSpace(n.ns.Run(t, "ip", "-4", "route", "show", "proto", "82")) == want
		}
	}
	testkit.Eventually(t, 30*time.Second, "n1's routes to n2's and n3's subnets", peerRoutes(n1,
		"10.88.20.0/24 via 192.168.77.2 dev "+dev1+" \n10.88.30.0/24 via 192.168.77.3 dev "+dev1))
	testkit.Eventually(t, 30*time.Second, "n2's routes", peerRoutes(n2,
		"10.88.10.0/24 via 192.168.77.1 dev "+dev2+" \n10.88.30.0/24 via 192.168.77.3 dev "+dev2))
	nodes := n1.cli(t, "get", "nodes")
	for _, row := range []string{`(?m)^n1\s+192\.168\.77\.1:7946\s+10\.88\.10\.0/24\s`, `(?m)^n2\s+192\.168\.77\.2:7946\s+10\.88\.20\.0/24\s`} {
		if !regexp.MustCompile(row).MatchString(nodes) {
			t.Errorf("get nodes on n1 lacks a row matching %s:\n%s", row, nodes)
		}
	}

	// c1 → c2 across the nodes, routed.
	var ln net.Listener
	c2.Do(t, func() {
		var err error
		if ln, err = net.Listen("tcp", "10.88.20.2:7000"); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	from := make(chan string, 1)
	go func() {
		if conn, err := ln.Accept(); err == nil {
			from <- conn.RemoteAddr().(*net.TCPAddr).IP.String()
			conn.Close()
		}
	}()
	c1.Do(t, func() {
		conn, err := net.DialTimeout("tcp", "10.88.20.2:7000", 5*time.Second)
		if err != nil {
			t.Fatalf("c1 (on n1's subnet) to c2 (on n2's): %v", err)
		}
		conn.Close()
	})
	select {
	case src := <-from:
		if src != "10.88.10.2" {
			t.Errorf("c2 saw the connection from %s, want c1's own 10.88.10.2", src)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("c2 accepted no connection")
	}

	// Node death: three voters, so n1 and n3 still commit without n2.
	testkit.Eventually(t, 60*time.Second, "three voters", func() bool {
		return strings.Count(n1.cli(t, "get", "nodes"), " voter ") == 3
	})
	n1.cast(t, "service:\n  name: api\n  ports:\n    - name: http\n      port: 80\n")
	n1.cli(t, "instance", "register", "api-n1", "--service", "api", "--ip", "10.88.10.2", "--node", "n1")
	n1.cli(t, "instance", "register", "api-n2", "--service", "api", "--ip", "10.88.20.2", "--node", "n2")
	endpoints := func(n *dnsNode, want string) func() bool {
		return func() bool {
			return regexp.MustCompile(`(?m)^api\s+` + regexp.QuoteMeta(want) + `$`).MatchString(n.cli(t, "get", "endpoints", "api"))
		}
	}
	testkit.Eventually(t, 10*time.Second, "both instances in the endpoints", endpoints(n3, "10.88.10.2:80,10.88.20.2:80"))
	n2.cmd.Process.Kill()
	killed := time.Now()
	for _, n := range []*dnsNode{n1, n3} {
		testkit.Eventually(t, 30*time.Second, "n2's instance out of the endpoints", endpoints(n, "10.88.10.2:80"))
	}
	// The grace runs from n2's last heartbeat, at most a heartbeat period
	// (a third of the grace) before the kill.
	if took := time.Since(killed); took < grace-grace/3 {
		t.Errorf("n2's instance left the endpoints %s after the kill, before the %s grace (less its heartbeat period)", took, grace)
	}
	if wide := n3.cli(t, "get", "nodes", "-o", "wide"); !regexp.MustCompile(`(?m)^n2\s.*\s\d+s ago \(down \d+s\)$`).MatchString(wide) {
		t.Errorf("get nodes -o wide does not show n2 down:\n%s", wide)
	}
}
