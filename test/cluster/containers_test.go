package e2ecluster

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/proxy/netnstest"
)

// containerBridge is the bridge in a node's namespace its containers are
// attached to, as Docker's network "rune" would be, with the node's
// gateway address (.1 of its subnet) on it.
const containerBridge = "rc0"

// Subnet is node n<i>'s container subnet in these tests, 10.88.<i>.0/24
// inside runed's default --container-cidr; nodes get it with --node-subnet.
func (n *Node) Subnet() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 88, n.Addr.As4()[3], 0}), 24)
}

func (n *Node) gateway() netip.Addr { return n.Subnet().Addr().Next() }

// Container is a namespace standing for a container on a node: a veth into
// the node's container bridge, an address from the node's subnet and a
// default route via the node.
type Container struct {
	Name string
	NS   *netnstest.NS
	Addr netip.Addr
	Node *Node
}

// AddContainer creates container name on n with address <subnet>.host. The
// first one creates the bridge and turns on forwarding in the node's
// namespace (a node routes its containers' traffic).
func (n *Node) AddContainer(t testing.TB, name string, host byte) *Container {
	t.Helper()
	if n.NS.Command("ip", "link", "show", containerBridge).Run() != nil {
		netnstest.Bridge(t, n.NS, containerBridge)
		n.NS.Run(t, "ip", "addr", "add", netip.PrefixFrom(n.gateway(), 24).String(), "dev", containerBridge)
		n.NS.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	}
	a := n.Subnet().Addr().As4()
	a[3] = host
	c := &Container{Name: name, NS: netnstest.New(t, "rune-ct"), Addr: netip.AddrFrom4(a), Node: n}
	netnstest.Attach(t, n.NS, containerBridge, c.NS, netip.PrefixFrom(c.Addr, 24).String())
	c.NS.Run(t, "ip", "route", "add", "default", "via", n.gateway().String())
	return c
}

// Register registers the container as an instance of service (namespace
// default) through rune on its node, ready.
func (c *Container) Register(t testing.TB, service string) {
	t.Helper()
	c.Node.CLI(t, "instance", "register", c.Name, "--service", service, "--ip", c.Addr.String(), "--node", c.Node.Name)
}

// Serve answers every TCP connection to port with "<name> <the source
// address it sees>" and closes it.
func (c *Container) Serve(t testing.TB, port uint16) {
	t.Helper()
	var ln net.Listener
	var err error
	c.NS.Do(t, func() { ln, err = net.Listen("tcp", netip.AddrPortFrom(c.Addr, port).String()) })
	if err != nil {
		t.Fatal(err)
	}
	testkit.Serve(t, ln, func(conn net.Conn) {
		fmt.Fprintf(conn, "%s %s", c.Name, conn.RemoteAddr().(*net.TCPAddr).AddrPort().Addr())
		conn.Close()
	})
}

// Call connects from the container to to and returns what a Serve answers:
// who served, and the source address it saw. A connection closed with no
// answer (a proxy refusing it) is an error too.
func (c *Container) Call(t testing.TB, to netip.AddrPort, timeout time.Duration) (server, seen string, err error) {
	var b []byte
	c.NS.Do(t, func() {
		var conn net.Conn
		if conn, err = net.DialTimeout("tcp", to.String(), timeout); err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(timeout))
		b, err = io.ReadAll(conn)
	})
	if err == nil && len(b) == 0 {
		err = fmt.Errorf("%s: connection closed with no answer", to)
	}
	server, seen, _ = strings.Cut(string(b), " ")
	return server, seen, err
}

// Metric sums the samples of metric name on the node's metrics address
// (runed's default 127.0.0.1:9100 inside its namespace) whose labels
// include every one of labels (`service="api"`); 0 when there are none.
func (n *Node) Metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	out, err := n.NS.Command("curl", "-sf", "--max-time", "3", "http://127.0.0.1:9100/metrics").Output()
	if err != nil {
		t.Fatalf("%s: GET /metrics: %v", n.Name, err)
	}
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(nil, 1<<20)
lines:
	for sc.Scan() {
		line := sc.Text()
		series, value, ok := strings.Cut(line, " ")
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(series, l) {
				continue lines
			}
		}
		v, _ := strconv.ParseFloat(value, 64)
		sum += v
	}
	return sum
}
