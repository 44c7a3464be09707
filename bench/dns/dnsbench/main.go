// Command dnsbench drives the DNS benchmarks of bench/dns/run.sh against a
// running runed:
//
//	dnsbench seed      -api ADDR -n N -hosts FILE -queries FILE
//	dnsbench castlat   -api ADDR -dns HOST:PORT -n N
//	dnsbench coldstart -dns HOST:PORT -name NAME -- RUNED ARGS...
//	dnsbench churn     -api ADDR -rate R -duration D
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/runenet/runenet/api"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: dnsbench seed|castlat|coldstart|churn [flags]"))
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	apiAddr := fs.String("api", "", "runed API address")
	dnsAddr := fs.String("dns", "127.0.0.1:5301", "runed DNS address")
	n := fs.Int("n", 1000, "services (seed) or samples (castlat)")
	hosts := fs.String("hosts", "", "seed: write an /etc/hosts-style file of the services here")
	queries := fs.String("queries", "", "seed: write a dnsperf query file here")
	name := fs.String("name", "svc0.default.rune.", "coldstart: name to wait for")
	rate := fs.Int("rate", 1000, "churn: changes per second")
	duration := fs.Duration("duration", 10*time.Second, "churn: for how long")
	fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "seed":
		err = seed(*apiAddr, *n, *hosts, *queries)
	case "castlat":
		err = castLatency(*apiAddr, *dnsAddr, *n)
	case "coldstart":
		err = coldStart(*dnsAddr, dns.Fqdn(*name), fs.Args())
	case "churn":
		err = churn(*apiAddr, *rate, *duration)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dnsbench:", err)
	os.Exit(1)
}

// seed casts n services svc0..svc<n-1> in namespace default, 5,000 per cast
// (the API takes files up to 1 MiB), and writes the hosts and query files
// that serve the same names from stock CoreDNS.
func seed(addr string, n int, hostsFile, queryFile string) error {
	c, err := api.NewClient(addr, "")
	if err != nil {
		return err
	}
	var hosts, queries strings.Builder
	const chunk = 5000
	start := time.Now()
	for lo := 0; lo < n; lo += chunk {
		var doc strings.Builder
		doc.WriteString("services:\n")
		for i := lo; i < min(lo+chunk, n); i++ {
			fmt.Fprintf(&doc, "  - name: svc%d\n    namespace: default\n    ports:\n      - name: http\n        port: 8080\n", i)
		}
		res, err := c.Cast(context.Background(), []api.CastFile{{Name: fmt.Sprintf("seed-%d.yaml", lo), Data: doc.String()}})
		if err != nil {
			return err
		}
		for _, r := range res.Results {
			fmt.Fprintf(&hosts, "%s %s.%s.rune\n", r.VIP, r.Name, r.Namespace)
		}
	}
	fmt.Printf("seeded %d services in %s\n", n, time.Since(start).Round(time.Millisecond))
	// Queries in random order, so neither server benefits from locality.
	for _, i := range rand.Perm(n) {
		fmt.Fprintf(&queries, "svc%d.default.rune A\n", i)
	}
	if err := os.WriteFile(hostsFile, []byte(hosts.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(queryFile, []byte(queries.String()), 0o644)
}

// castLatency casts one new service at a time and measures from the API call
// returning to the first correct DNS answer.
func castLatency(addr, dnsAddr string, n int) error {
	c, err := api.NewClient(addr, "")
	if err != nil {
		return err
	}
	client := &dns.Client{Timeout: time.Second}
	run := time.Now().UnixNano()
	var lat []time.Duration
	for i := range n {
		svc := fmt.Sprintf("lat%d-%d", run%100000, i)
		res, err := c.Cast(context.Background(), []api.CastFile{{Name: svc + ".yaml", Data: "service:\n  name: " + svc + "\n"}})
		if err != nil {
			return err
		}
		cast := time.Now()
		want := res.Results[0].VIP.String()
		q := new(dns.Msg).SetQuestion(svc+".default.rune.", dns.TypeA)
		for {
			r, _, err := client.Exchange(q, dnsAddr)
			if err == nil && len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.String() == want {
				break
			}
			if time.Since(cast) > 10*time.Second {
				return fmt.Errorf("%s not resolvable 10s after its cast (last: %v %v)", svc, r, err)
			}
		}
		lat = append(lat, time.Since(cast))
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))].Round(10 * time.Microsecond) }
	fmt.Printf("cast->resolvable over %d casts: p50 %s  p90 %s  p99 %s  max %s\n", n, q(0.5), q(0.9), q(0.99), lat[len(lat)-1].Round(10*time.Microsecond))
	return nil
}

// coldStart starts runed and measures until it answers name correctly.
func coldStart(dnsAddr, name string, argv []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("coldstart: give the runed command line after --")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	client := &dns.Client{Timeout: 100 * time.Millisecond}
	q := new(dns.Msg).SetQuestion(name, dns.TypeA)
	first := time.Duration(0)
	for time.Since(start) < 60*time.Second {
		r, _, err := client.Exchange(q, dnsAddr)
		if err == nil && first == 0 {
			first = time.Since(start)
		}
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			fmt.Printf("cold start: first reply %s, first answer for %s %s after exec\n",
				first.Round(time.Millisecond), name, time.Since(start).Round(time.Millisecond))
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("runed did not answer %s within 60s", name)
}

// churn changes the cluster rate times a second for d, as a rolling deploy
// does: it casts services churn0..churn63 in turn, each time with another
// port. Change i is due at start + i/rate (late ones at once, so the rate
// catches up); 32 writers keep one slow write from holding the rest back.
func churn(addr string, rate int, d time.Duration) error {
	c, err := api.NewClient(addr, "")
	if err != nil {
		return err
	}
	start := time.Now()
	total := int(d.Seconds() * float64(rate))
	jobs := make(chan int)
	errs := make(chan error, 32)
	for range 32 {
		go func() {
			for i := range jobs {
				doc := fmt.Sprintf("service:\n  name: churn%d\n  ports: [{name: http, port: %d}]\n", i%64, 1000+i%50000)
				if _, err := c.Cast(context.Background(), []api.CastFile{{Name: "churn.yaml", Data: doc}}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for i := range total {
		if wait := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); wait > 0 {
			time.Sleep(wait)
		}
		jobs <- i
	}
	close(jobs)
	for range 32 {
		if err := <-errs; err != nil {
			return err
		}
	}
	el := time.Since(start)
	fmt.Printf("churn: %d changes in %s (%.0f/s)\n", total, el.Round(time.Millisecond), float64(total)/el.Seconds())
	return nil
}
