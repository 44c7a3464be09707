// Command loadgen drives the benchmarks wrk cannot: bulk throughput and
// holding many idle connections.
//
//	loadgen bulk -addr A -duration 5s   # read from a streaming source; prints Gbit/s
//	loadgen idle -addr A -n 10000       # open n connections, print "held n", hold until stdin closes
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: loadgen bulk|idle [flags]")
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
