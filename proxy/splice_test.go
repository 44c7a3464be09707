package proxy

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"
)

// Many megabytes each way, in uneven writes, arrive intact: the splice
// loop's partial reads and writes lose or reorder nothing.
func TestBulkTransferIntact(t *testing.T) {
	data := make([]byte, 24<<20)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(data)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // echo server
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	p := devProxy(t, Config{})
	port := freePort(t, p.cfg.DevAddr)
	p.Update(&Table{Ports: []ServicePort{tcpPort("bulk", port, ln.Addr().(*net.TCPAddr).AddrPort())}})
	c, err := net.DialTCP("tcp4", nil, net.TCPAddrFromAddrPort(netip.AddrPortFrom(p.cfg.DevAddr, port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	go func() {
		for b := data; len(b) > 0; {
			n := min(len(b), 1+rand.IntN(300<<10))
			if _, err := c.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes, differing from the %d sent", len(got), len(data))
	}
}
