package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/node"
	"github.com/runenet/runenet/node/nodeconfig"
	"github.com/runenet/runenet/policy"
	"github.com/runenet/runenet/proxy"
)

// A dev-mode data plane behind runed's API: `rune port-forward` opens a
// loopback listener that reaches the service's backend, and closes it when
// the command ends.
func TestPortForward(t *testing.T) {
	rt, err := node.Acquire(nodeconfig.Config{DataDir: t.TempDir(), NodeName: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Release()
	addr := rt.APIAddr()
	if _, err := run(t, addr, "port-forward", "api", "8080"); err == nil || !strings.Contains(err.Error(), "no data plane") {
		t.Fatalf("without a data plane: %v", err)
	}

	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello from api\n")
			c.Close()
		}
	}()
	bport := backend.Addr().(*net.TCPAddr).Port
	// The service port is deliberately one nothing listens on (dev mode would
	// bind it on 127.0.0.1; a clash is what port-forward is for).
	mustRun(t, addr, "cast", writeFile(t, "api.yaml", "service:\n  name: api\n  ports:\n    - name: http\n      port: 18080\n      targetPort: "+strconv.Itoa(bport)+"\n"))
	mustRun(t, addr, "instance", "register", "api-1", "--service", "api", "--ip", "127.0.0.1", "--node", "node-1")

	dp, err := proxy.Start(rt.View(), proxy.DataplaneConfig{Proxy: proxy.Config{Dev: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	rt.SetPortForwarder(dp.Proxy())
	defer rt.SetPortForwarder(nil)

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	clash := strconv.Itoa(taken.Addr().(*net.TCPAddr).Port) + ":18080"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"port-forward", "nosuch", "18090:80"}, `service "default/nosuch" not found`},
		{[]string{"port-forward", "api", "-n", "other", "18080"}, `service "other/api" not found`},
		{[]string{"port-forward", "api", "9999"}, "no TCP port 9999"},
		{[]string{"port-forward", "api", clash}, "address already in use"},
		{[]string{"port-forward", "api", "abc"}, "want PORT or LOCAL:PORT"},
		{[]string{"port-forward", "api", "0:18080", "--address", "10.0.0.1"}, "loopback"},
	} {
		_, err := run(t, addr, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("rune %s: %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		} else if n := strings.Count(err.Error(), "port-forward"); n > 1 {
			t.Errorf("rune %s: %q says port-forward %d times", strings.Join(tc.args, " "), err, n)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	root := newRoot()
	root.SetOut(pw)
	root.SetArgs([]string{"--api", addr, "port-forward", "api", "0:18080"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^Forwarding from (127\.0\.0\.1:\d+) -> default/api:18080\n$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("output %q", line)
	}
	// The proxy learns the endpoint from the View; allow it a moment.
	var got string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", m[1]); err == nil {
			b, _ := io.ReadAll(c)
			c.Close()
			if got = string(b); got != "" {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got != "hello from api\n" {
		t.Fatalf("through the forward: %q", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", m[1])
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the forward still accepts after the command ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A forward into a service whose policy refuses the forwarder (a loopback
// address is no instance of any service): runed logs the refusal and the
// CLI says which policy refused, instead of a silent reset.
func TestPortForwardDeniedByPolicy(t *testing.T) {
	rt, err := node.Acquire(nodeconfig.Config{DataDir: t.TempDir(), NodeName: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Release()
	addr := rt.APIAddr()
	mustRun(t, addr, "cast", writeFile(t, "api.yaml", `service:
  name: api
  ports: [{name: http, port: 18081}]
  networkPolicy:
    ingress:
      - from: [{service: web}]
`))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := policy.NewEngine(rt.View(), "node-1", policy.EngineOptions{})
	go e.Run(ctx)
	if err := e.WaitFor(ctx, rt.View().Snapshot().Seq); err != nil {
		t.Fatal(err)
	}
	var runedLog testkit.SyncBuffer
	rt.SetPolicy(e)
	defer rt.SetPolicy(nil)
	dp, err := proxy.Start(rt.View(), proxy.DataplaneConfig{Proxy: proxy.Config{Dev: true, Policy: rt.Policy, Logger: slog.New(slog.NewTextHandler(&runedLog, nil))}})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	rt.SetPortForwarder(dp.Proxy())
	defer rt.SetPortForwarder(nil)

	pr, pw := io.Pipe()
	var stderr testkit.SyncBuffer
	root := newRoot()
	root.SetOut(pw)
	root.SetErr(&stderr)
	root.SetArgs([]string{"--api", addr, "port-forward", "api", "0:18081"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^Forwarding from (127\.0\.0\.1:\d+) -> `).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("output %q", line)
	}
	// The reset may reach the dial itself, before it returns.
	if c, err := net.Dial("tcp", m[1]); err == nil {
		if b, _ := io.ReadAll(c); len(b) != 0 {
			t.Fatalf("a refused connection carried %q", b)
		}
		c.Close()
	}
	want := regexp.MustCompile(`rune: connection from (127\.0\.0\.1:\d+) denied by policy of default/api \(default-deny\)\n`)
	deadline := time.Now().Add(10 * time.Second)
	for !want.MatchString(stderr.String()) || !strings.Contains(runedLog.String(), "port-forward: connection denied by policy") {
		if time.Now().After(deadline) {
			t.Fatalf("CLI stderr %q, want %s; runed log:\n%s", stderr.String(), want, runedLog.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	from := want.FindStringSubmatch(stderr.String())[1]
	if l := runedLog.String(); !strings.Contains(l, "policy=default/api") || !strings.Contains(l, "from="+from) {
		t.Errorf("runed's log line lacks the policy or the client %s: %s", from, l)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
