// Package dockersrc turns the containers of the local Docker Engine into
// instances of rune services: a container labelled rune.service=<name> (and
// optionally rune.namespace=<ns>, rune.network=<network>) is an instance of
// that service while it runs, ready while Docker considers it healthy (or
// merely running, when it has no healthcheck).
//
// The source is level-triggered: every Engine event only says "look at this
// container again"; it then inspects the container and converges the
// cluster's instances to what Docker reports. After every (re)connection it
// lists all labelled containers, so instances of containers that vanished
// while it was not watching are removed. See README.md for the operator's
// side (labels, --dns injection).
package dockersrc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/runenet/runenet/cluster"
)

// Container labels the source reads.
const (
	LabelService   = "rune.service"
	LabelNamespace = "rune.namespace" // default "default"
	LabelNetwork   = "rune.network"   // which network's address is the instance IP
)

// IDPrefix starts the id of every instance the source registers:
// "docker-" + the container's 12-hex short id. Docker ids are already valid
// instance ids and, unlike container names, do not collide across nodes
// (every node may run an "api-1"); the prefix marks the instances this
// source owns, so reconciling never removes instances registered by other
// means (`rune instance register`) on the same node.
const IDPrefix = "docker-"

// Controller is the write side the source drives; *cluster.Controller
// satisfies it.
type Controller interface {
	RegisterInstance(ctx context.Context, in cluster.Instance) (uint64, error)
	SetInstanceReady(ctx context.Context, id string, ready bool) (uint64, error)
	DeregisterInstance(ctx context.Context, id string) (uint64, error)
}

// View is the read side: the current instances, and a signal when they
// change; *cluster.View satisfies it.
type View interface {
	Snapshot() *cluster.Snapshot
	Changed() <-chan struct{}
}

// Config configures a Source.
type Config struct {
	Node       string // this node's name; required
	Host       string // Docker Engine address (DOCKER_HOST syntax); default $DOCKER_HOST, else unix:///var/run/docker.sock
	Controller Controller
	View       View
	Logger     *slog.Logger // default slog.Default()
	// Subnet, when valid, is this node's container subnet: the source keeps
	// a bridge network Network (default NetworkName) on it, and a
	// container on that network is registered with its address there.
	Subnet  netip.Prefix
	Network string
	// MinBackoff and MaxBackoff bound the wait before reconnecting to the
	// Engine; the wait doubles on each failed attempt. Defaults 250ms, 15s.
	MinBackoff, MaxBackoff time.Duration
}

// Source watches the Engine and keeps this node's Docker instances in step.
type Source struct {
	cfg Config
	eng *engine
	log *slog.Logger
	// desired is what Docker reports: container id → the instance it is.
	// Only the Run goroutine touches it.
	desired map[string]cluster.Instance
	// failing remembers the last error per instance id, so a container of a
	// service that is not cast yet is logged once, not on every View change.
	failing map[string]string
	// networkErr is the last error keeping the network, logged once.
	networkErr string
}

// New checks cfg; nothing is contacted until Run.
func New(cfg Config) (*Source, error) {
	if cfg.Node == "" || cfg.Controller == nil || cfg.View == nil {
		return nil, errors.New("dockersrc: Node, Controller and View are required")
	}
	eng, err := newEngine(cfg.Host)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.Network == "" {
		cfg.Network = NetworkName
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(15*time.Second, cfg.MinBackoff)
	}
	return &Source{cfg: cfg, eng: eng, log: cfg.Logger.With("component", "dockersrc"),
		desired: map[string]cluster.Instance{}, failing: map[string]string{}}, nil
}

// Run watches until ctx ends, reconnecting with back-off when the Engine is
// unreachable or the event stream breaks. It returns nil when ctx ends.
func (s *Source) Run(ctx context.Context) error {
	backoff := s.cfg.MinBackoff
	for {
		connected, err := s.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			backoff = s.cfg.MinBackoff
		}
		s.log.Warn("docker engine watch interrupted; reconnecting", "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// session is one connection: open the event stream first, then list, so no
// change between the list and the stream is missed; then follow events and
// View changes until the stream breaks. connected reports whether the list
// succeeded (a session worth resetting the back-off for).
func (s *Source) session(ctx context.Context) (connected bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body, err := s.eng.events(ctx)
	if err != nil {
		return false, err
	}
	defer body.Close()
	evs := make(chan event)
	streamErr := make(chan error, 1)
	go func() {
		dec := json.NewDecoder(body)
		for {
			var ev event
			if err := dec.Decode(&ev); err != nil {
				streamErr <- err
				return
			}
			select {
			case evs <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	s.keepNetwork(ctx)
	if err := s.reconcile(ctx); err != nil {
		return false, err
	}
	for {
		changed := s.cfg.View.Changed()
		select {
		case ev := <-evs:
			action, _, _ := strings.Cut(ev.Action, ":")
			eventsTotal.WithLabelValues(action).Inc()
			if err := s.refresh(ctx, ev.Actor.ID); err != nil {
				return true, err
			}
		case <-changed:
			// A service was cast or deleted, or someone else touched our
			// instances: converge again (a no-op when nothing differs).
			s.converge(ctx)
		case err := <-streamErr:
			return true, fmt.Errorf("docker event stream ended: %w", err)
		case <-ctx.Done():
			return true, nil
		}
	}
}

// reconcile rebuilds desired from a full list of running labelled containers.
func (s *Source) reconcile(ctx context.Context) error {
	ids, err := s.eng.running(ctx)
	if err != nil {
		return err
	}
	desired := make(map[string]cluster.Instance, len(ids))
	for _, id := range ids {
		c, err := s.eng.inspect(ctx, id)
		if errors.Is(err, errNotFound) {
			continue // removed since the list
		}
		if err != nil {
			return err
		}
		if in, ok := s.instanceOf(c); ok {
			desired[c.ID] = in
		}
	}
	s.desired = desired
	reconcileTotal.Inc()
	s.converge(ctx)
	return nil
}

// refresh re-reads one container after an event about it.
func (s *Source) refresh(ctx context.Context, id string) error {
	c, err := s.eng.inspect(ctx, id)
	switch {
	case errors.Is(err, errNotFound):
		delete(s.desired, id)
	case err != nil:
		// Our picture of this container may now be wrong: end the session,
		// so the reconnect lists everything afresh.
		return err
	default:
		if in, ok := s.instanceOf(c); ok {
			s.desired[c.ID] = in
		} else {
			delete(s.desired, c.ID)
		}
	}
	s.converge(ctx)
	return nil
}

// instanceOf says which instance a container is, if it is one now.
func (s *Source) instanceOf(c *container) (cluster.Instance, bool) {
	svc := c.Config.Labels[LabelService]
	if svc == "" || !c.State.Running || len(c.ID) < 12 {
		return cluster.Instance{}, false
	}
	ns := c.Config.Labels[LabelNamespace]
	if ns == "" {
		ns = "default"
	}
	ip, network, ok := containerIP(c, s.cfg.Network)
	if !ok {
		s.log.Warn("container has no IPv4 address to register; set the rune.network label to the network to use",
			"container", strings.TrimPrefix(c.Name, "/"), "network", network, "service", svc)
		return cluster.Instance{}, false
	}
	// Docker omits Health without a healthcheck; "none" is a disabled one.
	ready := c.State.Health == nil || c.State.Health.Status == "" || c.State.Health.Status == "none" ||
		c.State.Health.Status == "healthy"
	return cluster.Instance{ID: IDPrefix + c.ID[:12], Service: svc, Namespace: ns, Node: s.cfg.Node, IP: ip, Ready: ready}, true
}

// containerIP picks the address on the rune.network network or, without
// that label, on the node's network (preferred; cluster-routable) or else
// the alphabetically first network that has an IPv4 address, so the choice
// is stable across inspections.
func containerIP(c *container, preferred string) (netip.Addr, string, bool) {
	if name := c.Config.Labels[LabelNetwork]; name != "" {
		ip, err := netip.ParseAddr(c.NetworkSettings.Networks[name].IPAddress)
		return ip, name, err == nil && ip.Is4()
	}
	if ip, err := netip.ParseAddr(c.NetworkSettings.Networks[preferred].IPAddress); err == nil && ip.Is4() {
		return ip, preferred, true
	}
	for _, name := range slices.Sorted(maps.Keys(c.NetworkSettings.Networks)) {
		if ip, err := netip.ParseAddr(c.NetworkSettings.Networks[name].IPAddress); err == nil && ip.Is4() {
			return ip, name, true
		}
	}
	return netip.Addr{}, "", false
}

// converge writes the difference between desired and the cluster's view:
// registers or updates desired instances, and deregisters this node's
// Docker instances that no container backs any more.
func (s *Source) converge(ctx context.Context) {
	snap := s.cfg.View.Snapshot()
	if snap.Network == nil {
		// The View has not loaded the (always bootstrapped) store yet: an
		// empty snapshot would make every service look uncast. Loading
		// publishes a snapshot, which brings us back here.
		return
	}
	want := make(map[string]bool, len(s.desired))
	for _, cid := range slices.Sorted(maps.Keys(s.desired)) {
		in := s.desired[cid]
		want[in.ID] = true
		cur, exists := snap.Instance(in.ID)
		var err error
		switch {
		case exists && sameInstance(*cur.Value, in):
			if cur.Value.Ready == in.Ready {
				delete(s.failing, in.ID)
				continue
			}
			_, err = s.cfg.Controller.SetInstanceReady(ctx, in.ID, in.Ready)
		default:
			if _, ok := snap.Service(cluster.NamespacedName{Namespace: in.Namespace, Name: in.Service}); !ok {
				// Not an error worth a write attempt: the View change that
				// casts the service brings us back here.
				err = fmt.Errorf("service %s/%s is not cast yet; the container joins it once it is", in.Namespace, in.Service)
				break
			}
			_, err = s.cfg.Controller.RegisterInstance(ctx, in)
		}
		s.report(ctx, in.ID, cid, err)
	}
	for _, e := range snap.Instances("", "") {
		in := e.Value
		if in.Node != s.cfg.Node || !strings.HasPrefix(in.ID, IDPrefix) || want[in.ID] {
			continue
		}
		_, err := s.cfg.Controller.DeregisterInstance(ctx, in.ID)
		if cluster.KindOf(err) == cluster.KindNotFound {
			err = nil
		}
		s.report(ctx, in.ID, "", err)
	}
}

func sameInstance(a, b cluster.Instance) bool {
	return a.Service == b.Service && a.Namespace == b.Namespace && a.Node == b.Node && a.IP == b.IP
}

// report logs a failed write once per distinct error.
func (s *Source) report(ctx context.Context, id, container string, err error) {
	if err == nil || ctx.Err() != nil {
		delete(s.failing, id)
		return
	}
	if s.failing[id] == err.Error() {
		return
	}
	s.failing[id] = err.Error()
	s.log.Warn("cannot update instance from docker", "instance", id, "container", container, "err", err)
}

// keepNetwork makes sure the node's network exists on its subnet, at every
// connection to the Engine (a daemon reset may have lost it). A failure is
// logged, once, and leaves instances on other networks working.
func (s *Source) keepNetwork(ctx context.Context) {
	if !s.cfg.Subnet.IsValid() {
		return
	}
	err := s.ensureNetwork(ctx, s.cfg.Network, s.cfg.Subnet)
	switch {
	case err != nil && err.Error() != s.networkErr && ctx.Err() == nil:
		s.log.Error("cannot keep this node's docker network", "network", s.cfg.Network, "subnet", s.cfg.Subnet, "err", err)
		s.networkErr = err.Error()
	case err == nil:
		s.networkErr = ""
	}
}
