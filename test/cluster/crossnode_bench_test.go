package e2ecluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchWorkers is how many clients send requests at once.
const benchWorkers = 16

// BenchmarkCrossNode measures HTTP requests/s from a container on n2 to a
// server container on n1, in one run: through api's VIP (n2 in proxy mode,
// then restarted in kernel mode) and to the container's address directly
// (routed via n1, no VIP). Each way with keep-alive connections and with a
// new connection per request. bench/crossnode/run.sh runs it.
func BenchmarkCrossNode(b *testing.B) {
	nt := NewNet(b, 2)
	mode := map[string]string{"n1": "proxy", "n2": "proxy"}
	nt.Flags = func(n *Node) []string {
		return []string{"--node-subnet", n.Subnet().String(), "--forward", mode[n.Name]}
	}
	n1, n2 := nt.Nodes[0], nt.Nodes[1]
	// A client container per way: a client reaching the same endpoint
	// directly and through the VIP (kernel mode, no SNAT) would meet its
	// own TIME_WAITs there under other timestamps (Linux offsets them per
	// address pair), and PAWS would drop its SYNs.
	srv := n1.AddContainer(b, "api-1", 10)
	clients := map[string]*Container{}
	for i, way := range []string{"direct", "vip-proxy", "vip-kernel"} {
		clients[way] = n2.AddContainer(b, "load-"+way, byte(10+i))
	}
	srv.ServeHTTP(b, 8080)
	nt.Form(b)
	n2.Cast(b, apiService(false))
	srv.Register(b, "api")
	vip := netip.AddrPortFrom(serviceVIP(b, n2, "api"), 80)
	direct := netip.AddrPortFrom(srv.Addr, 8080)

	run := func(name string, to netip.AddrPort) {
		for _, keepAlive := range []bool{true, false} {
			conns := "keepalive"
			if !keepAlive {
				conns = "conn-per-request"
			}
			b.Run(name+"/"+conns, func(b *testing.B) { clients[name].load(b, to, keepAlive) })
		}
	}
	run("direct", direct)
	run("vip-proxy", vip)
	mode["n2"] = "kernel"
	n2.Stop(b)
	n2.Restart(b)
	waitKernelPorts(b, n2)
	run("vip-kernel", vip)
}

// ServeHTTP serves a small HTTP answer on port, in the container.
func (c *Container) ServeHTTP(tb testing.TB, port uint16) {
	tb.Helper()
	var ln net.Listener
	var err error
	c.NS.Do(tb, func() { ln, err = net.Listen("tcp", netip.AddrPortFrom(c.Addr, port).String()) })
	if err != nil {
		tb.Fatal(err)
	}
	s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })}
	go s.Serve(ln)
	tb.Cleanup(func() { s.Close() })
}

// load sends b.N GETs to to from the container, benchWorkers at a time,
// and reports requests/s; every request must succeed.
func (c *Container) load(b *testing.B, to netip.AddrPort, keepAlive bool) {
	tr := &http.Transport{
		DisableKeepAlives:   !keepAlive,
		MaxIdleConnsPerHost: benchWorkers,
		DialContext: func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
			c.NS.Do(b, func() { conn, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr) })
			return conn, err
		},
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	url := fmt.Sprintf("http://%s/", to)
	var left atomic.Int64
	left.Store(int64(b.N))
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range benchWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				resp, err := cl.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("GET %s: %s", url, resp.Status)
					}
				}
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// waitKernelPorts waits until n's nftables forwards a service port itself
// (rune_proxy_kernel_ports), so the kernel numbers measure the kernel.
func waitKernelPorts(tb testing.TB, n *Node) {
	tb.Helper()
	if !waitUntil(20*time.Second, func() bool { return n.Metric(tb, "rune_proxy_kernel_ports") >= 1 }) {
		tb.Fatalf("%s: rune_proxy_kernel_ports stays 0 in kernel mode", n.Name)
	}
}
