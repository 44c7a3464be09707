package api

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/orderedlog"
)

// maxBody bounds request bodies: a cast of many files is still far below it.
const maxBody = 16 << 20

// Server serves the API over the node's controller, View and log.
type Server struct {
	Controller *cluster.Controller
	View       *cluster.View
	Log        orderedlog.Log
	Readiness  Readiness
	// NodeName is the node this runed serves, for status.
	NodeName string
	// Token, when set, is required as "Authorization: Bearer <token>".
	Token string
	// ReadToken, when set (with Token), is a second bearer token that may
	// only list and watch: what a stock CoreDNS following runed needs.
	ReadToken string
	// Debug enables fault injection (POST /v1/debug/...); without it those
	// routes answer 403.
	Debug bool
	// Policy returns the node's policy engine, nil while (or if) the
	// netpolicy directive is not running; policy checks then answer 503.
	Policy func() Policy
	// PortForwarder returns the node's proxy, nil when it runs none.
	PortForwarder func() PortForwarder
	// LoadWait bounds how long a read waits for the View's first load
	// (right after a start) before answering 503. Default 5s.
	LoadWait time.Duration
	// Warnings, when set, says what became of services (nil: every one) in
	// the data path once it has state seq, such as a dev-mode port clash:
	// for a successful cast (CastResponse.Warnings) and for status. It must
	// return within ctx.
	Warnings func(ctx context.Context, seq uint64, services []cluster.NamespacedName) []string
	// Ingress returns the node's edge router, nil when it runs none.
	Ingress func() Ingress
	// StoreTLSSecret serves `rune secret tls create`.
	StoreTLSSecret StoreTLSSecret
	// ListSecrets and DeleteSecret serve `rune get secrets` and `rune
	// delete secret`.
	ListSecrets  ListSecrets
	DeleteSecret DeleteSecret
	// Cluster serves `rune get nodes` and the cluster line of status.
	Cluster Cluster
}

// Readiness is the node's data-path readiness, for `rune status`.
type Readiness interface {
	Ready() (bool, []string)
	// Each calls fn with each subsystem's readiness, in name order.
	Each(fn func(name string, ready bool, reason string))
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/cast", s.cast)
	mux.HandleFunc("GET /v1/services", s.listServices)
	mux.HandleFunc("GET /v1/services/{ns}/{name}", s.getService)
	mux.HandleFunc("DELETE /v1/services/{ns}/{name}", s.deleteService)
	mux.HandleFunc("GET /v1/endpoints", s.listEndpoints)
	mux.HandleFunc("GET /v1/instances", s.listInstances)
	mux.HandleFunc("POST /v1/instances", s.registerInstance)
	mux.HandleFunc("PUT /v1/instances/{id}/ready", s.setReady)
	mux.HandleFunc("DELETE /v1/instances/{id}", s.deregisterInstance)
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/nodes", s.listNodes)
	mux.HandleFunc("DELETE /v1/nodes/{name}", s.removeNode)
	mux.HandleFunc("POST /v1/cluster/join-tokens", s.createJoinToken)
	mux.HandleFunc("GET /v1/list", s.list)
	mux.HandleFunc("GET /v1/watch", s.watch)
	mux.HandleFunc("POST /v1/debug/pause-watch", s.debug(s.pauseWatch))
	mux.HandleFunc("GET /v1/ingresses", s.listIngresses)
	mux.HandleFunc("POST /v1/secrets/tls", s.createTLSSecret)
	mux.HandleFunc("POST /v1/port-forward", s.portForward)
	s.policyRoutes(mux)
	s.secretRoutes(mux)
	return s.auth(mux)
}

func (s *Server) auth(next http.Handler) http.Handler {
	if s.Token == "" {
		return next
	}
	full := []byte("Bearer " + s.Token)
	read := []byte("Bearer " + s.ReadToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		switch {
		case subtle.ConstantTimeCompare(got, full) == 1:
		case s.ReadToken != "" && subtle.ConstantTimeCompare(got, read) == 1:
			if !readOnly(r) {
				writeJSON(w, http.StatusForbidden, ErrorResponse{Error: fmt.Sprintf("this token is read-only: it may list and watch (GET /v1/list, GET /v1/watch), not %s %s; use runed's full API token", r.Method, r.URL.Path), Kind: "forbidden"})
				return
			}
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="runed"`)
			writeJSON(w, http.StatusUnauthorized, ErrorResponse{Error: "missing or wrong bearer token (set RUNE_TOKEN or --token)", Kind: "unauthorized"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readOnly says whether the read-only token may make request r: the list and
// watch a remote View follows runed with, nothing else.
func readOnly(r *http.Request) bool {
	return r.Method == http.MethodGet && (r.URL.Path == "/v1/list" || r.URL.Path == "/v1/watch")
}

// CheckToken refuses a TCP address without a token: the API can rewrite the
// cluster's network, and anyone who can reach the port could.
func CheckToken(addr, token string) error {
	if strings.HasPrefix(addr, "tcp://") && token == "" {
		return fmt.Errorf("api address %s is TCP, which needs a bearer token: start runed with --api-token-file FILE (Corefile: token_file FILE in the rune block), or use a unix:// socket", addr)
	}
	return nil
}

// Listen opens the API listener: "unix:///path" (mode 0600, a stale socket
// file replaced) or "tcp://host:port" (refused without a token: the API can
// rewrite the cluster's network), over TLS when tlsConfig is set.
func Listen(addr, token string, tlsConfig *tls.Config) (net.Listener, error) {
	if tlsConfig != nil && !strings.HasPrefix(addr, "tcp://") {
		return nil, fmt.Errorf("api address %s: TLS is for a tcp:// API (a unix socket is guarded by its file permissions)", addr)
	}
	switch {
	case strings.HasPrefix(addr, "unix://"):
		path := strings.TrimPrefix(addr, "unix://")
		if path == "" {
			return nil, fmt.Errorf("api address %q: empty socket path", addr)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("api socket %s is in use by another process (is runed already running?)", path)
		}
		_ = os.Remove(path)
		old := umask(0o177)
		l, err := net.Listen("unix", path)
		umask(old)
		if err != nil {
			return nil, fmt.Errorf("api socket: %w", err)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			l.Close()
			return nil, err
		}
		return l, nil
	case strings.HasPrefix(addr, "tcp://"):
		if err := CheckToken(addr, token); err != nil {
			return nil, err
		}
		l, err := net.Listen("tcp", strings.TrimPrefix(addr, "tcp://"))
		if err != nil || tlsConfig == nil {
			return l, err
		}
		return tls.NewListener(l, tlsConfig), nil
	}
	return nil, fmt.Errorf("api address %q: want unix:///path/to/runed.sock or tcp://host:port", addr)
}

func (s *Server) cast(w http.ResponseWriter, r *http.Request) {
	var req CastRequest
	if !decode(w, r, &req) {
		return
	}
	if len(req.Files) == 0 {
		writeError(w, &cluster.Error{Kind: cluster.KindInvalid, Msg: "cast: no files given"})
		return
	}
	files := make([]cluster.SourceFile, len(req.Files))
	for i, f := range req.Files {
		files[i] = cluster.SourceFile{Name: f.Name, Data: []byte(f.Data), Namespace: f.Namespace}
	}
	res, seq, err := s.Controller.Cast(r.Context(), files)
	if err != nil {
		writeError(w, err)
		return
	}
	resp := CastResponse{Seq: seq, Results: res}
	if s.Warnings != nil {
		names := make([]cluster.NamespacedName, len(res))
		for i, c := range res {
			names[i] = cluster.NamespacedName{Namespace: c.Namespace, Name: c.Name}
		}
		resp.Warnings = s.Warnings(r.Context(), seq, names)
	}
	writeJSON(w, http.StatusOK, resp)
}

// snapshot is what reads answer from: the View's, once it has loaded. An
// empty answer before that would tell a script its services are gone.
func (s *Server) snapshot(w http.ResponseWriter, r *http.Request) (*cluster.Snapshot, bool) {
	wait := s.LoadWait
	if wait <= 0 {
		wait = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	if err := s.View.WaitLoaded(ctx); err != nil {
		writeError(w, err)
		return nil, false
	}
	seq, err := s.readPoint(r.Context(), r)
	if err == nil {
		err = s.View.WaitFor(ctx, seq)
	}
	if err != nil {
		writeError(w, err)
		return nil, false
	}
	return s.View.Snapshot(), true
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.snapshot(w, r)
	if !ok {
		return
	}
	out := ServiceList{Seq: snap.Seq, Items: []cluster.ServiceRecord{}}
	for _, e := range snap.Services(r.URL.Query().Get("namespace")) {
		out.Items = append(out.Items, *e.Value)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request) {
	n := cluster.NamespacedName{Namespace: r.PathValue("ns"), Name: r.PathValue("name")}
	snap, ok := s.snapshot(w, r)
	if !ok {
		return
	}
	e, ok := snap.Service(n)
	if !ok {
		writeError(w, cluster.NotFound("service", n))
		return
	}
	writeJSON(w, http.StatusOK, e.Value)
}

func (s *Server) deleteService(w http.ResponseWriter, r *http.Request) {
	n := cluster.NamespacedName{Namespace: r.PathValue("ns"), Name: r.PathValue("name")}
	s.write(w, r, func(ctx context.Context) (uint64, error) { return s.Controller.DeleteService(ctx, n) })
}

func (s *Server) listEndpoints(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.snapshot(w, r)
	if !ok {
		return
	}
	out := EndpointsList{Seq: snap.Seq, Items: []cluster.Endpoints{}}
	for _, e := range snap.AllEndpoints(r.URL.Query().Get("namespace")) {
		out.Items = append(out.Items, *e.Value)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listInstances(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.snapshot(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	out := InstanceList{Seq: snap.Seq, Items: []cluster.Instance{}}
	for _, e := range snap.Instances(q.Get("namespace"), q.Get("service")) {
		out.Items = append(out.Items, *e.Value)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) registerInstance(w http.ResponseWriter, r *http.Request) {
	var req RegisterInstanceRequest
	if !decode(w, r, &req) {
		return
	}
	in := cluster.Instance{ID: req.ID, Service: req.Service, Namespace: req.Namespace, Node: req.Node, IP: req.IP, Ready: req.Ready}
	s.write(w, r, func(ctx context.Context) (uint64, error) { return s.Controller.RegisterInstance(ctx, in) })
}

func (s *Server) setReady(w http.ResponseWriter, r *http.Request) {
	var req ReadyRequest
	if !decode(w, r, &req) {
		return
	}
	id := r.PathValue("id")
	s.write(w, r, func(ctx context.Context) (uint64, error) { return s.Controller.SetInstanceReady(ctx, id, req.Ready) })
}

func (s *Server) deregisterInstance(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.write(w, r, func(ctx context.Context) (uint64, error) { return s.Controller.DeregisterInstance(ctx, id) })
}

func (s *Server) write(w http.ResponseWriter, r *http.Request, do func(context.Context) (uint64, error)) {
	seq, err := do(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, SeqResponse{Seq: seq})
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	snap := s.View.Snapshot()
	st := Status{
		Node:               s.NodeName,
		Subsystems:         []SubsystemState{},
		Seq:                snap.Seq,
		Tail:               s.View.Tail(),
		LagSeconds:         s.View.Lag().Seconds(),
		StaleBudgetSeconds: s.View.StaleBudget().Seconds(),
		Stale:              s.View.Stale(),
		Services:           snap.NumServices(),
		Instances:          snap.NumInstances(),
	}
	if snap.Network != nil {
		st.ClusterCIDR = snap.Network.CIDR.String()
	}
	if s.Readiness != nil {
		st.Ready, st.NotReady = s.Readiness.Ready()
		s.Readiness.Each(func(name string, ready bool, reason string) {
			st.Subsystems = append(st.Subsystems, SubsystemState{Name: name, Ready: ready, Reason: reason})
		})
	}
	if s.Warnings != nil {
		st.Warnings = s.Warnings(r.Context(), snap.Seq, nil)
	}
	if s.Cluster != nil {
		st.Cluster = clusterStatus(s.Cluster)
	}
	writeJSON(w, http.StatusOK, st)
}

// private says which keys never leave the node over list/watch: private keys
// and uploaded secrets are read only by the ingress in-process.
func private(key string) bool {
	return strings.HasPrefix(key, orderedlog.PrefixCerts) || strings.HasPrefix(key, orderedlog.PrefixSecrets)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	if _, err := s.readPoint(r.Context(), r); err != nil {
		writeError(w, err)
		return
	}
	kvs, seq, err := s.Log.List(r.Context(), r.URL.Query().Get("prefix"))
	if err != nil {
		writeError(w, err)
		return
	}
	out := KVList{Seq: seq, KVs: make([]orderedlog.KV, 0, len(kvs))}
	for _, kv := range kvs {
		if !private(kv.Key) {
			out.KVs = append(out.KVs, kv)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// watch streams the log as newline-delimited JSON from ?from=SEQ.
func (s *Server) watch(w http.ResponseWriter, r *http.Request) {
	var from uint64
	if v := r.URL.Query().Get("from"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, &cluster.Error{Kind: cluster.KindInvalid, Msg: fmt.Sprintf("watch: from=%q is not a sequence number", v)})
			return
		}
		from = n
	}
	ch, err := s.Log.Watch(r.Context(), from)
	if err != nil {
		writeError(w, err)
		return
	}
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for ev := range ch {
		out := WatchEvent{Tail: ev.Tail, SinceLeaderMs: ev.SinceLeader.Milliseconds()}
		switch {
		case ev.Err != nil:
			out.Error = ev.Err.Error()
			if errors.Is(ev.Err, orderedlog.ErrCompacted) {
				out.Error = "compacted"
			}
		case ev.Batch != nil:
			b := *ev.Batch
			b.Ops = nil
			for _, op := range ev.Batch.Ops {
				if !private(op.Key) {
					b.Ops = append(b.Ops, op)
				}
			}
			out.Batch = &b
		}
		if err := enc.Encode(out); err != nil {
			return
		}
		// Flush only when nothing else is queued: a burst goes out in one write.
		if len(ch) == 0 && flusher != nil {
			flusher.Flush()
		}
	}
}

// debug guards a fault-injection route: off unless the node enables it.
func (s *Server) debug(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.Debug {
			writeJSON(w, http.StatusForbidden, ErrorResponse{Error: "fault injection is disabled on this node: start runed with --debug-api (Corefile: debug in the rune block) to use rune debug", Kind: "forbidden"})
			return
		}
		h(w, r)
	}
}

func (s *Server) pauseWatch(w http.ResponseWriter, r *http.Request) {
	var req PauseRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Seconds <= 0 || req.Seconds > 3600 {
		writeError(w, &cluster.Error{Kind: cluster.KindInvalid, Msg: "pause-watch: seconds must be in (0, 3600]"})
		return
	}
	s.View.PauseFor(time.Duration(req.Seconds * float64(time.Second)))
	writeJSON(w, http.StatusOK, SeqResponse{Seq: s.View.Snapshot().Seq})
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, &cluster.Error{Kind: cluster.KindInvalid, Msg: "request body", Err: err})
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, &cluster.Error{Kind: cluster.KindInvalid, Msg: "request body: trailing data after the JSON object"})
		return false
	}
	return true
}

var kindNames = map[cluster.Kind]struct {
	name   string
	status int
}{
	cluster.KindInvalid:   {"invalid", http.StatusBadRequest},
	cluster.KindNotFound:  {"not_found", http.StatusNotFound},
	cluster.KindConflict:  {"conflict", http.StatusConflict},
	cluster.KindExhausted: {"exhausted", http.StatusInsufficientStorage},
	cluster.KindNotReady:  {"not_ready", http.StatusServiceUnavailable},
	cluster.KindNoSpace:   {"disk_full", http.StatusInsufficientStorage},
}

func writeError(w http.ResponseWriter, err error) {
	kind := cluster.KindOf(err)
	if errors.Is(err, orderedlog.ErrNoSpace) {
		kind = cluster.KindNoSpace // whatever the write was, a full disk refused it
	}
	k, ok := kindNames[kind]
	switch {
	case ok:
	// A cluster node that could not reach a leader, or not learn whether
	// its write committed: the client may retry (after reading the state,
	// when the outcome is unknown).
	case errors.Is(err, orderedlog.ErrOutcomeUnknown):
		k.name, k.status = "outcome_unknown", http.StatusServiceUnavailable
	case errors.Is(err, orderedlog.ErrUnavailable):
		k.name, k.status = "unavailable", http.StatusServiceUnavailable
	default:
		k.name, k.status = "internal", http.StatusInternalServerError
	}
	writeJSON(w, k.status, ErrorResponse{Error: err.Error(), Kind: k.name})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
