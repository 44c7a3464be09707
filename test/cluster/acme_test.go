package e2ecluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/runenet/runenet/internal/pebbletest"
	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/proxy/netnstest"
)

// pebbleAddr is the address of the ACME namespace on the nodes' bridge.
const pebbleAddr = "10.77.0.200"

// acmeNet is Pebble running in a namespace of its own on the nodes' bridge.
// Its validation authority resolves every name to 127.0.0.1 there, where
// validations listens on port 80 and forwards each HTTP-01 connection to
// the node the test picks.
type acmeNet struct {
	ns  *netnstest.NS
	peb *pebbletest.Pebble
	val *pebbletest.Validations
}

func startACME(t *testing.T, nt *Net) *acmeNet {
	t.Helper()
	a := &acmeNet{ns: netnstest.New(t, "rune-cl-acme")}
	netnstest.Attach(t, nt.sw, bridge, a.ns, pebbleAddr+"/24")
	var dnsLn, valLn net.Listener
	a.ns.Do(t, func() {
		var err error
		if dnsLn, err = net.Listen("tcp4", "127.0.0.1:53"); err != nil {
			t.Fatal(err)
		}
		if valLn, err = net.Listen("tcp4", "127.0.0.1:80"); err != nil {
			t.Fatal(err)
		}
	})
	a.val = pebbletest.NewValidations(a.ns.Dial)
	testkit.Serve(t, valLn, a.val.Forward)
	a.peb = pebbletest.New(t, pebbletest.Options{
		IP: pebbleAddr, Validity: 90 * 24 * time.Hour, Command: a.ns.Command, Dial: a.ns.Dial,
	})
	a.peb.Start(t, 80, pebbletest.ServeDNS(t, dnsLn, net.IPv4(127, 0, 0, 1)))
	return a
}

// edgeFlags are the runed flags of an edge node ordering from this Pebble.
func (a *acmeNet) edgeFlags() []string {
	return []string{"--node-role", "edge", "--acme-ca", a.peb.DirURL, "--acme-ca-root", a.peb.RootFile,
		"--acme-email", "ops@example.test"}
}

// serial is the serial number (hex) of the certificate n's HTTPS listener
// serves for host, dialled from the ACME namespace across the bridge and
// verified against Pebble's issuing root; "" when the handshake fails.
func (a *acmeNet) serial(n *Node, host string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := a.ns.Dial(ctx, "tcp", net.JoinHostPort(n.Addr.String(), "443"))
	if err != nil {
		return ""
	}
	conn := tls.Client(raw, &tls.Config{ServerName: host, RootCAs: a.peb.Issuing})
	defer conn.Close()
	if conn.HandshakeContext(ctx) != nil {
		return ""
	}
	return serialHex(conn.ConnectionState().PeerCertificates[0])
}

func serialHex(c *x509.Certificate) string { return fmt.Sprintf("%X", c.SerialNumber) }
