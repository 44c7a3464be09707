package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/corefile"
	"github.com/runenet/runenet/dockersrc"
	"github.com/runenet/runenet/node/nodeconfig"
	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/raft"
)

// maxHeartbeatEvery bounds the heartbeat period: one small record per node
// every 5 s keeps the log's write volume low, and a grace of 30 s (the
// default) then spans six beats.
const maxHeartbeatEvery = 5 * time.Second

// registerTimeout bounds the start-up write of the node's record: a node
// that cannot write its record within it cannot serve either.
const registerTimeout = 30 * time.Second

var heartbeatFailures = promauto.NewCounter(prometheus.CounterOpts{
	Name: "rune_node_heartbeat_failures_total",
	Help: "Heartbeats of this node's record that could not be written (past the grace the leader marks its instances unready).",
})

// nodeSpec is what this node says about itself in its record.
func nodeSpec(cfg nodeconfig.Config, roles []string) (cluster.NodeSpec, error) {
	spec := cluster.NodeSpec{Name: cfg.NodeName, Roles: roles, HeartbeatEvery: min(maxHeartbeatEvery, cfg.NodeGrace/3)}
	if cfg.ClusterAddr != "" {
		ap, err := netip.ParseAddrPort(cfg.ClusterAddr)
		if err != nil {
			return spec, fmt.Errorf("--cluster-addr %q: %w", cfg.ClusterAddr, err)
		}
		spec.Address = ap.Addr()
	}
	if cfg.NodeSubnet != "" {
		p, err := netip.ParsePrefix(cfg.NodeSubnet)
		if err != nil {
			return spec, fmt.Errorf("--node-subnet %q: %w", cfg.NodeSubnet, err)
		}
		spec.Subnet = p
	}
	return spec, nil
}

// registerNode writes this node's record once the View has loaded: a
// refused --node-subnet (another node holds it) stops runed here.
func (r *Runtime) registerNode(ctx context.Context) (cluster.Node, error) {
	ctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	spec, err := nodeSpec(r.cfg, r.roles())
	if err != nil {
		return cluster.Node{}, err
	}
	if err := r.view.WaitLoaded(ctx); err != nil {
		return cluster.Node{}, err
	}
	rec, _, err := r.controller.RegisterNode(ctx, spec)
	if err != nil {
		return cluster.Node{}, fmt.Errorf("node %s: writing its record: %w", spec.Name, err)
	}
	slog.Info("node record written", "node", rec.Name, "address", rec.Address, "subnet", rec.Subnet)
	return rec, nil
}

// roles are this node's roles as its subsystems stand: edge once the
// ingress directive runs.
func (r *Runtime) roles() []string {
	if r.ingress.Load() != nil {
		return []string{corefile.RoleEdge}
	}
	return nil
}

// heartbeat rewrites the node's record every period until ctx ends, and
// re-registers it when its roles change or its record has gone (`rune
// node remove` of a node still running).
func (r *Runtime) heartbeat(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var failing string
	for {
		register := false
		select {
		case <-t.C:
		case <-r.rolesChanged:
			register = true
		case <-ctx.Done():
			return
		}
		var err error
		if !register {
			_, err = r.controller.Heartbeat(ctx, r.cfg.NodeName)
		}
		if register || cluster.KindOf(err) == cluster.KindNotFound {
			_, err = r.registerNode(ctx)
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			heartbeatFailures.Inc()
			if err.Error() != failing {
				slog.Warn("cannot write this node's heartbeat; retrying", "node", r.cfg.NodeName, "err", err)
			}
			failing = err.Error()
		case failing != "":
			slog.Info("node heartbeat written again", "node", r.cfg.NodeName)
			failing = ""
		}
	}
}

// startDocker runs the Docker instance source, which keeps the node's
// `rune` network on its subnet. One source per runtime, so a reload never
// runs two.
func (r *Runtime) startDocker(ctx context.Context, subnet netip.Prefix) error {
	host := r.cfg.Docker
	if host == "default" {
		host = ""
	}
	docker, err := dockersrc.New(dockersrc.Config{Node: r.cfg.NodeName, Host: host, Controller: r.controller, View: r.view, Subnet: subnet, Network: r.cfg.DockerNetwork})
	if err != nil {
		return fmt.Errorf("docker instance source: %w", err)
	}
	go docker.Run(ctx)
	return nil
}

// RoutesOn reports whether this node routes its peers' subnets: unless
// routes are off, or in dev mode (a laptop's single node, no privileges
// to change routes).
func (r *Runtime) RoutesOn() bool { return !r.cfg.NoRoutes && !r.cfg.DevMode }

// leads reports whether this node leads the log: a Raft member while it is
// the leader, a single-node store always.
func leads(lg orderedlog.Log) func() bool {
	if rl, ok := lg.(*raft.Log); ok {
		return func() bool { return rl.State() == "Leader" }
	}
	return func() bool { return true }
}
