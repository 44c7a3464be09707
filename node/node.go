// Package node opens a node's runtime — store, View, controller and API —
// once per process. Corefile directives acquire it; a CoreDNS reload sets up
// the new server blocks before shutting the old ones down, so reference
// counting keeps the store open across a reload instead of reopening it.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runenet/runenet/api"
	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/ingress"
	"github.com/runenet/runenet/ingress/status"
	"github.com/runenet/runenet/node/nodeconfig"
	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/policy"
	"github.com/runenet/runenet/proxy"
	"github.com/runenet/runenet/readiness"
	"github.com/runenet/runenet/routes"
)

// Defaults: the spec's VIP range, the container range node subnets come
// from, and how long a node may miss heartbeats.
const (
	DefaultClusterCIDR   = "10.96.0.0/16"
	DefaultContainerCIDR = "10.88.0.0/16"
	DefaultNodeGrace     = 30 * time.Second
)

func setDefaults(c *nodeconfig.Config) error {
	if c.DataDir == "" {
		return errors.New("node: data directory is required")
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return err
	}
	c.DataDir = abs
	if c.ClusterCIDR == "" {
		c.ClusterCIDR = DefaultClusterCIDR
	}
	if c.APIAddr == "" {
		c.APIAddr = "unix://" + filepath.Join(c.DataDir, "runed.sock")
	}
	if c.StaleBudget <= 0 {
		c.StaleBudget = 30 * time.Second
	}
	if c.ContainerCIDR == "" {
		c.ContainerCIDR = DefaultContainerCIDR
	}
	if c.NodeGrace <= 0 {
		c.NodeGrace = DefaultNodeGrace
	}
	from := "node name"
	if c.NodeName == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node name: cannot read the host name (%v); set --node-name (node_name in the Corefile)", err)
		}
		c.NodeName, from = nodeNameFromHost(host), fmt.Sprintf("node name (from the host name %q)", host)
	}
	if p := cluster.NodeNameProblem(c.NodeName); p != "" {
		return fmt.Errorf("%s %q %s: set --node-name (node_name in the Corefile) to a DNS label such as node-1", from, c.NodeName, p)
	}
	if c.ClusterAddr != "" {
		return validClusterConfig(*c)
	}
	if c.Bootstrap {
		return errors.New("--bootstrap creates a cluster: it needs --cluster-addr")
	}
	if c.Join != "" {
		return errors.New("--join joins a cluster: it needs --cluster-addr, this node's own address in it")
	}
	return nil
}

// nodeNameFromHost makes a host name a node name the way the host is
// usually called: its first label, lower-case ("Web-01.example.com" is
// web-01), since instance records must name their node by a DNS label.
func nodeNameFromHost(host string) string {
	first, _, _ := strings.Cut(host, ".")
	return strings.ToLower(first)
}

// Runtime is an open node. The subsystems the Corefile's directives run
// (data plane, network policy, ingress) are wired to each other and to the
// API through it: each directive hands the runtime what it runs, and
// registers its readiness check in the runtime's registry.
type Runtime struct {
	cfg        nodeconfig.Config
	log        orderedlog.Log
	view       *cluster.View
	controller *cluster.Controller
	readiness  readiness.Registry
	cancel     context.CancelFunc
	httpSrv    *http.Server
	listener   net.Listener
	done       chan struct{}
	refs       int
	policy     atomic.Pointer[policy.Engine]   // set by the netpolicy directive
	forwarder  atomic.Pointer[proxy.Proxy]     // set by the dataplane directive
	warner     atomic.Pointer[Warner]          // set by the dataplane directive
	ingress    atomic.Pointer[ingress.Ingress] // set by the ingress directive
	// rolesChanged tells the heartbeat to rewrite the node's record.
	rolesChanged chan struct{}
}

var (
	mu       sync.Mutex
	runtimes = map[string]*Runtime{}
)

// Acquire opens the runtime for cfg.DataDir, or returns the one already open
// (which must have been opened with the same settings). Pair it with Release.
func Acquire(cfg nodeconfig.Config) (*Runtime, error) {
	if err := setDefaults(&cfg); err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	if r, ok := runtimes[cfg.DataDir]; ok {
		if r.cfg != cfg {
			return nil, fmt.Errorf("node runtime for %s is already open with different settings (%v); restart runed to change them", cfg.DataDir, r.cfg)
		}
		r.refs++
		return r, nil
	}
	r, err := open(cfg)
	if err != nil {
		return nil, err
	}
	r.refs = 1
	runtimes[cfg.DataDir] = r
	return r, nil
}

// Attach returns the runtime a `rune` block already opened, for directives
// (dataplane, netpolicy, ingress) that use the node without configuring it.
// dataDir "" means the process's only runtime. Pair it with Release.
func Attach(dataDir string) (*Runtime, error) {
	mu.Lock()
	defer mu.Unlock()
	var r *Runtime
	switch {
	case dataDir != "":
		abs, err := filepath.Abs(dataDir)
		if err != nil {
			return nil, err
		}
		r = runtimes[abs]
	case len(runtimes) == 1:
		for _, only := range runtimes {
			r = only
		}
	case len(runtimes) > 1:
		return nil, errors.New("several node runtimes are open: name the data directory to attach to")
	}
	if r == nil {
		return nil, fmt.Errorf("no node runtime is open (data dir %q): the Corefile needs a `rune` block, which opens it, in the same server", dataDir)
	}
	r.refs++
	return r, nil
}

// Only returns the process's runtime when exactly one is open, for runed's
// start-up summary; it takes no reference.
func Only() *Runtime {
	mu.Lock()
	defer mu.Unlock()
	if len(runtimes) != 1 {
		return nil
	}
	for _, r := range runtimes {
		return r
	}
	return nil
}

// Release drops a reference; the last one closes the runtime.
func (r *Runtime) Release() error {
	mu.Lock()
	r.refs--
	last := r.refs == 0
	if last {
		delete(runtimes, r.cfg.DataDir)
	}
	mu.Unlock()
	if !last {
		return nil
	}
	return r.close()
}

func open(cfg nodeconfig.Config) (*Runtime, error) {
	cidr, err := cluster.ParseClusterCIDR(cfg.ClusterCIDR)
	if err != nil {
		return nil, err
	}
	containers, err := cluster.ParseContainerCIDR(cfg.ContainerCIDR)
	if err != nil {
		return nil, fmt.Errorf("--container-cidr: %w", err)
	}
	// The API's settings are checked before anything is opened: a bad token
	// file or certificate leaves no store open behind it.
	srv, tlsConfig, err := apiSettings(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	lg, err := openLog(cfg)
	if err != nil {
		return nil, err
	}
	opened := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runtime{cfg: cfg, log: lg, cancel: cancel, done: make(chan struct{}), rolesChanged: make(chan struct{}, 1)}
	fail := func(err error) (*Runtime, error) {
		cancel()
		lg.Close()
		return nil, err
	}
	if err := cluster.Bootstrap(ctx, lg, cidr); err != nil {
		return fail(err)
	}
	if err := cluster.BootstrapContainerNetwork(ctx, lg, containers); err != nil {
		return fail(err)
	}
	r.view = cluster.NewView(lg, cluster.ViewOptions{StaleBudget: cfg.StaleBudget})
	r.controller = cluster.NewController(lg, r.view, cluster.ControllerOptions{HoldPeriod: cfg.HoldPeriod})
	go func() {
		defer close(r.done)
		_ = r.view.Run(ctx)
	}()
	self, err := r.registerNode(ctx)
	if err == nil && cfg.Docker != "" {
		err = r.startDocker(ctx, self.Subnet)
	}
	if err != nil {
		cancel()
		<-r.done
		lg.Close()
		return nil, err
	}
	go r.heartbeat(ctx, self.HeartbeatEvery)
	go r.controller.WatchNodes(ctx, cluster.NodeWatchOptions{Self: cfg.NodeName, Grace: cfg.NodeGrace, IsLeader: leads(lg)})
	if r.RoutesOn() {
		go routes.Run(ctx, routes.Options{Self: cfg.NodeName, View: r.view})
	}
	go logStaleness(ctx, r.view, slog.Default(), staleCheckEvery)
	r.readiness.Register("view", func() (bool, string) {
		switch {
		case !r.view.Loaded():
			return false, "loading the store"
		case r.view.Stale():
			return false, fmt.Sprintf("watch is %s behind the log (stale budget %s)", r.view.Lag().Round(time.Millisecond), cfg.StaleBudget)
		}
		return true, ""
	})
	l, err := api.Listen(cfg.APIAddr, srv.Token, tlsConfig)
	if err != nil {
		return fail(err)
	}
	r.listener = l
	srv.Controller, srv.View, srv.Log, srv.Readiness = r.controller, r.view, lg, &r.readiness
	srv.NodeName = cfg.NodeName
	srv.Policy, srv.PortForwarder, srv.Ingress = r.policyAPI, r.portForwarder, r.ingressAPI
	srv.StoreTLSSecret = func(ctx context.Context, ns, name string, cert, key []byte) (string, error) {
		return ingress.StoreTLSSecret(ctx, lg, ns, name, cert, key)
	}
	srv.ListSecrets = func(ctx context.Context, ns string) ([]status.Secret, error) { return ingress.ListSecrets(ctx, lg, ns) }
	srv.DeleteSecret = func(ctx context.Context, ns, name string) (bool, error) {
		return ingress.DeleteSecret(ctx, lg, ns, name)
	}
	srv.Warnings = r.warnings
	srv.Cluster = clusterAPI(cfg.NodeName, lg, r.view, opened)
	r.httpSrv = &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// Watch streams end with the runtime rather than holding up shutdown.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	go func() {
		if err := r.httpSrv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("api server stopped", "err", err)
		}
	}()
	return r, nil
}

func (r *Runtime) close() error {
	r.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = r.httpSrv.Shutdown(ctx)
	<-r.done
	return r.log.Close()
}

func (r *Runtime) Config() nodeconfig.Config       { return r.cfg }
func (r *Runtime) View() *cluster.View             { return r.view }
func (r *Runtime) Controller() *cluster.Controller { return r.controller }
func (r *Runtime) Log() orderedlog.Log             { return r.log }

// Readiness is the node's data-path readiness: the View's check, and one
// per subsystem its directive registers. runegate and `rune status` ask it.
func (r *Runtime) Readiness() *readiness.Registry { return &r.readiness }

// SetPolicy makes e the node's policy engine (nil: none). The netpolicy
// directive calls it; the proxy and the edge ingress ask Policy on every new
// connection, and the API uses it for `rune policy check`.
func (r *Runtime) SetPolicy(e *policy.Engine) { r.policy.Store(e) }

// Policy is the node's policy engine, nil while netpolicy is not running:
// the data path then refuses whatever a policy governs.
func (r *Runtime) Policy() *policy.Engine { return r.policy.Load() }

func (r *Runtime) policyAPI() api.Policy {
	if e := r.policy.Load(); e != nil {
		return PolicyAPI(e)
	}
	return nil // not a typed nil: the API tells "not enabled" by it
}

// SetPortForwarder gives the API the node's proxy (nil: none), for
// `rune port-forward`. The dataplane directive calls it.
func (r *Runtime) SetPortForwarder(p *proxy.Proxy) { r.forwarder.Store(p) }

func (r *Runtime) portForwarder() api.PortForwarder {
	if p := r.forwarder.Load(); p != nil {
		return forwarder{p}
	}
	return nil
}

// Warner says what became of services (nil: every one) in the data path
// once it has state seq (api.Server.Warnings).
type Warner func(ctx context.Context, seq uint64, services []cluster.NamespacedName) []string

// SetWarner gives the API what warns a cast and status (nil: nothing).
// The dataplane directive sets the dev-mode port clashes.
func (r *Runtime) SetWarner(w Warner) {
	if w == nil {
		r.warner.Store(nil)
		return
	}
	r.warner.Store(&w)
}

// warnings are the data path's (the dataplane directive's Warner) and what
// exposed services' own settings will make fail at the edge. A cast returns
// once the View has applied it, so the View's snapshot holds what it wrote.
func (r *Runtime) warnings(ctx context.Context, seq uint64, services []cluster.NamespacedName) []string {
	var out []string
	if w := r.warner.Load(); w != nil {
		out = (*w)(ctx, seq, services)
	}
	return append(out, exposeWarnings(ctx, r.log, r.view.Snapshot(), services)...)
}

// SetIngress gives the API the node's edge router (nil: none), for
// `rune get ingresses`. The ingress directive calls it.
func (r *Runtime) SetIngress(i *ingress.Ingress) {
	r.ingress.Store(i)
	select {
	case r.rolesChanged <- struct{}{}:
	default: // a rewrite is pending already
	}
}

// ingressAPI is the node's edge router, or on a node that runs none the
// cluster's ingresses as the log holds them.
func (r *Runtime) ingressAPI() api.Ingress {
	if i := r.ingress.Load(); i != nil {
		return i
	}
	return ingress.ClusterStatus{Log: r.log, View: r.view}
}

// APIAddr is where the API listens: the unix:// socket, or the tcp://
// host:port actually bound (a configured port 0 is the kernel's choice).
func (r *Runtime) APIAddr() string {
	if strings.HasPrefix(r.cfg.APIAddr, "tcp://") {
		return "tcp://" + r.listener.Addr().String()
	}
	return r.cfg.APIAddr
}
