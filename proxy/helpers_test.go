package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/internal/testkit"
)

// backend is a loopback TCP server that greets each connection with its name
// and then echoes.
type backend struct {
	name string
	ln   net.Listener
	mu   sync.Mutex
	hits int
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, ln: ln}
	testkit.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		b.mu.Lock()
		b.hits++
		b.mu.Unlock()
		fmt.Fprintf(c, "%s\n", name)
		io.Copy(c, c)
	})
	return b
}

func (b *backend) addr() netip.AddrPort { return b.ln.Addr().(*net.TCPAddr).AddrPort() }

func (b *backend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hits
}

// deadAddr is a loopback address nothing listens on: connects are refused.
func deadAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	return a
}

// devProxy starts a dev-mode proxy on a loopback address of its own, so test
// service ports do not collide with anything else on 127.0.0.1.
func devProxy(t *testing.T, cfg Config) *Proxy {
	t.Helper()
	cfg.Dev = true
	if !cfg.DevAddr.IsValid() {
		cfg.DevAddr = netip.MustParseAddr("127.0.99.1")
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func tcpPort(svc string, port uint16, eps ...netip.AddrPort) ServicePort {
	return ServicePort{
		Service:   cluster.NamespacedName{Namespace: "test", Name: svc},
		Protocol:  cluster.TCP,
		VIP:       netip.AddrPortFrom(netip.MustParseAddr("10.96.0.10"), port),
		Endpoints: eps,
	}
}

// freePort finds a port free on addr, for a dev-mode service port.
func freePort(t *testing.T, addr netip.Addr) uint16 {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// conn is a client connection through the proxy that has read its greeting.
type conn struct {
	net.Conn
	r       *bufio.Reader
	backend string
}

func dialVia(t *testing.T, addr netip.AddrPort) (*conn, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp4", addr.String(), 2*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, err
	}
	return &conn{Conn: c, r: r, backend: strings.TrimSpace(line)}, nil
}

// echo checks the connection still carries data both ways.
func (c *conn) echo(t *testing.T, msg string) {
	t.Helper()
	if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
		t.Fatalf("write through %s: %v", c.backend, err)
	}
	got, err := c.r.ReadString('\n')
	if err != nil || strings.TrimSpace(got) != msg {
		t.Fatalf("echo through %s: got %q, %v", c.backend, got, err)
	}
}
