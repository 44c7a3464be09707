// Command backend is the upstream of the data plane benchmarks: a minimal
// HTTP server (for wrk) and a TCP source that streams zeros (for bulk
// throughput). It listens on loopback inside the benchmark's namespace.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
)

func main() {
	httpAddr := flag.String("http", "127.0.0.1:8080", "HTTP address (answers 200 \"ok\")")
	sourceAddr := flag.String("source", "127.0.0.1:9000", "TCP address that streams data to every connection")
	flag.Parse()
	src, err := net.Listen("tcp", *sourceAddr)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		buf := make([]byte, 256<<10)
		for {
			c, err := src.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	body := []byte("ok")
	log.Fatal(http.ListenAndServe(*httpAddr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write(body)
	})))
}
