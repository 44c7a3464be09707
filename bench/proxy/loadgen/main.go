// Command loadgen drives the benchmarks wrk cannot: bulk throughput and
// holding many idle connections.
//
//	loadgen bulk -addr A -duration 5s   # read from a streaming source; prints Gbit/s
//	loadgen idle -addr A -n 10000       # open n connections, print "held n", hold until stdin closes
//	loadgen udprtt -addr A -duration 5s # UDP round trips to an echo, one at a time; prints p50/p99/max
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"slices"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: loadgen bulk|idle|udprtt [flags]")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	addr := fs.String("addr", "", "address to connect to")
	d := fs.Duration("duration", 5*time.Second, "bulk: how long to read")
	n := fs.Int("n", 10000, "idle: connections to hold")
	fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "bulk":
		bulk(*addr, *d)
	case "idle":
		idle(*addr, *n)
	case "udprtt":
		udpRTT(*addr, *d)
	default:
		log.Fatalf("unknown mode %q", os.Args[1])
	}
}

func bulk(addr string, d time.Duration) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(d))
	start := time.Now()
	n, _ := io.Copy(io.Discard, c)
	fmt.Printf("%.2f Gbit/s\n", float64(n)*8/time.Since(start).Seconds()/1e9)
}

func idle(addr string, n int) {
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			log.Fatalf("after %d connections: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	fmt.Printf("held %d\n", len(conns))
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}

// udpRTT asks a UDP echo (vipproxy -udpecho, standing in for the DNS server
// of the process that relays) one packet at a time for d, pausing 1 ms
// between them, and prints the round trips' percentiles.
func udpRTT(addr string, d time.Duration) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	var rtt []time.Duration
	lost := 0
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
		start := time.Now()
		c.SetReadDeadline(start.Add(time.Second))
		if _, err := c.Write(buf); err != nil {
			log.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			lost++
			continue
		}
		rtt = append(rtt, time.Since(start))
	}
	slices.Sort(rtt)
	if len(rtt) == 0 {
		log.Fatal("no echo came back")
	}
	q := func(p float64) time.Duration { return rtt[int(p*float64(len(rtt)-1))].Round(time.Microsecond) }
	fmt.Printf("udp rtt over %d: p50 %v p99 %v max %v lost %d\n", len(rtt), q(0.5), q(0.99), rtt[len(rtt)-1].Round(time.Microsecond), lost)
}
