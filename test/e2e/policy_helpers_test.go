package e2e

// Helper roles and the node-side hook of the network policy e2e test
// (policy_test.go); they run in the data plane harness's helper processes.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/policy"
)

// policyMetricsAddr is where the policy node serves /metrics, on the node
// namespace's own loopback.
const policyMetricsAddr = "127.0.0.1:9100"

func init() {
	dpRoles["policy_dial"] = policyDial
	dpRoles["policy_flip"] = policyFlip
	dpRoles["policy_get"] = policyGet
}

// policyNode runs the policy engine (with nftables, in the node helper's
// namespace) as the netpolicy directive does, puts it where the proxy looks
// for it and serves /metrics. at(seq) reports whether the engine is ready
// and its tables reflect seq.
func policyNode(view *cluster.View, current *atomic.Pointer[policy.Engine]) (stop func(), at func(uint64) bool, err error) {
	nft, err := policy.NewNFT(policy.NFTConfig{})
	if err != nil {
		return nil, nil, err
	}
	// A short poll so that kernel drops reach the metric quickly.
	e := policy.NewEngine(view, "n1", policy.EngineOptions{Kernel: nft, Poll: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	current.Store(e)
	srv := &http.Server{Addr: policyMetricsAddr, Handler: promhttp.Handler()}
	go srv.ListenAndServe()
	stop = func() {
		current.Store(nil)
		srv.Close()
		cancel()
		<-done // the engine removes its nftables table on the way out
	}
	return stop, func(seq uint64) bool { return e.Ready() && e.Tables().Seq >= seq }, nil
}

// dialOutcome classifies one connection attempt the way an operator would
// see it: "ok" (the server spoke), "reset", "refused" or "timeout".
func dialOutcome(target string, timeout time.Duration) string {
	c, err := net.DialTimeout("tcp4", target, timeout)
	if err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		// An HTTP request: the backend answers, a denying proxy resets.
		if _, err = io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err == nil {
			_, err = c.Read(make([]byte, 1))
		}
	}
	var ne net.Error
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF):
		return "reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return err.Error()
}

// policyDial makes one attempt to RUNE_DP_TARGET with a 1s timeout and
// reports its outcome and how long it took.
func policyDial() error {
	start := time.Now()
	out := dialOutcome(os.Getenv("RUNE_DP_TARGET"), time.Second)
	result(map[string]any{"outcome": out, "ms": time.Since(start).Milliseconds()})
	return nil
}

// policyFlip waits for policy updates to show at a client: for each stdin
// line ("true" or "false", the verdict to wait for) it connects to
// RUNE_DP_TARGET back to back (a new connection each, 2ms apart) until one
// gets that verdict, and reports when it ended (unix nanos).
func policyFlip() error {
	result("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		want := sc.Text() == "true"
		deadline := time.Now().Add(10 * time.Second)
		for (dialOutcome(os.Getenv("RUNE_DP_TARGET"), 500*time.Millisecond) == "ok") != want {
			if time.Now().After(deadline) {
				return fmt.Errorf("no connection got ok=%v within 10s", want)
			}
			time.Sleep(2 * time.Millisecond)
		}
		result(time.Now().UnixNano())
	}
	return nil
}

// policyGet fetches RUNE_DP_URL and reports the body.
func policyGet() error {
	resp, err := newHTTPClient().Get(os.Getenv("RUNE_DP_URL"))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", os.Getenv("RUNE_DP_URL"), resp.Status)
	}
	result(string(b))
	return nil
}

// metricValue finds one sample in Prometheus text exposition, e.g.
// `rune_policy_drops_total{namespace="default",...}`; 0 when absent.
func metricValue(text, series string) float64 {
	for line := range strings.Lines(text) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	return 0
}
