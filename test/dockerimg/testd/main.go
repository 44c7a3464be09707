// Command testd is the one program inside the e2e tests' container image
// (FROM scratch, so it must be static and bring its own tools):
//
//	testd serve [-port 8080]   HTTP server answering its hostname
//	testd health               healthcheck: fails while /unhealthy exists
//	testd sick | testd well    create / remove /unhealthy (via docker exec)
//	testd resolve NAME...      prints "NAME ADDR..." per name, through /etc/resolv.conf
//	testd get [-n N] [-interval D] URL
//	                           N requests, one connection each; prints
//	                           "<unix ns> OK <body>" or "<unix ns> ERR <error>"
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// flagFile marks the container unhealthy; the image's HEALTHCHECK runs
// "testd health", which fails while the file exists.
const flagFile = "/unhealthy"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testd serve|health|sick|well|resolve|get")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "resolve":
		err = resolve(os.Args[2:])
	case "get":
		err = get(os.Args[2:])
	case "health":
		if _, err = os.Stat(flagFile); err == nil {
			err = errors.New("unhealthy: " + flagFile + " exists")
		} else if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	case "sick":
		err = os.WriteFile(flagFile, nil, 0o644)
	case "well":
		if err = os.Remove(flagFile); errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testd:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	port := fs.Int("port", 8080, "TCP port to serve HTTP on")
	fs.Parse(args)
	name, err := os.Hostname()
	if err != nil {
		return err
	}
	return http.ListenAndServe(fmt.Sprintf(":%d", *port), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, name)
	}))
}

// resolve uses Go's own resolver (the binary is static), which reads the
// nameserver, search and ndots lines Docker wrote into /etc/resolv.conf.
func resolve(names []string) error {
	for _, name := range names {
		addrs, err := net.LookupHost(name)
		if err != nil {
			return err
		}
		fmt.Println(name, strings.Join(addrs, " "))
	}
	return nil
}

// get reports every request, failures included, with the time it was sent,
// so the test can tell failures before a backend change from failures after.
func get(args []string) error {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	n := fs.Int("n", 1, "number of requests")
	interval := fs.Duration("interval", 0, "pause between requests")
	fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("get: want one URL")
	}
	// A new connection per request, so the proxy balances every request.
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < *n; i++ {
		sent := time.Now()
		body, err := fetch(c, fs.Arg(0))
		if err != nil {
			fmt.Printf("%d ERR %v\n", sent.UnixNano(), err)
		} else {
			fmt.Printf("%d OK %s\n", sent.UnixNano(), body)
		}
		time.Sleep(*interval)
	}
	return nil
}

func fetch(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = errors.New(resp.Status)
	}
	return string(b), err
}
