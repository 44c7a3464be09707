package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/runenet/runenet/cluster"
)

// PortForwarder is the node's data plane proxy, as the API uses it.
type PortForwarder interface {
	// PortForward listens on local and forwards to port of svc; denied is
	// called for every connection the service's policy refuses.
	PortForward(svc cluster.NamespacedName, port uint16, local netip.AddrPort, denied func(PortForwardDenial)) (Forward, error)
}

// Forward is an open port forward.
type Forward interface {
	Addr() netip.AddrPort
	Close() error
}

// PortForwardRequest asks runed to listen on a loopback address and forward
// to a service port: the way to reach a service whose port clashes in dev
// mode (or any service, from the node itself). The forward lives as long as
// the request: the CLI holds it open until interrupted.
type PortForwardRequest struct {
	Namespace string `json:"namespace,omitempty"`
	Service   string `json:"service"`
	Port      uint16 `json:"port"`
	// Local is the loopback address to listen on; port 0 picks a free one.
	Local netip.AddrPort `json:"local"`
}

// PortForwardEvent is one line of the response stream: the first says where
// the forward listens (Address), every later one is a connection it refused
// because a network policy denies it (Denied).
type PortForwardEvent struct {
	Address netip.AddrPort     `json:"address,omitzero"`
	Denied  *PortForwardDenial `json:"denied,omitempty"`
}

// PortForwardDenial is a forwarded connection that policy refused.
type PortForwardDenial struct {
	From   netip.AddrPort `json:"from"`
	Policy string         `json:"policy"` // "namespace/name" of the denying policy
	Reason string         `json:"reason"`
}

func (d PortForwardDenial) String() string {
	return fmt.Sprintf("connection from %s denied by policy of %s (%s)", d.From, d.Policy, d.Reason)
}

// deniedQueue bounds how many refusals wait to be written; past it they are
// dropped (runed's log has each of them).
const deniedQueue = 64

func (s *Server) portForward(w http.ResponseWriter, r *http.Request) {
	var pf PortForwarder
	if s.PortForwarder != nil {
		pf = s.PortForwarder()
	}
	if pf == nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: "this node runs no data plane (the Corefile has no dataplane block)", Kind: "unavailable"})
		return
	}
	var req PortForwardRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Namespace == "" {
		req.Namespace = "default"
	}
	n := cluster.NamespacedName{Namespace: req.Namespace, Name: req.Service}
	if _, ok := s.View.Snapshot().Service(n); !ok {
		writeError(w, cluster.NotFound("service", n))
		return
	}
	denied := make(chan PortForwardDenial, deniedQueue)
	fwd, err := pf.PortForward(n, req.Port, req.Local, func(d PortForwardDenial) {
		select {
		case denied <- d:
		default:
		}
	})
	if err != nil {
		// The proxy's error names the forward already.
		writeError(w, &cluster.Error{Kind: cluster.KindInvalid, Err: err})
		return
	}
	defer fwd.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	ev := PortForwardEvent{Address: fwd.Addr()}
	for {
		if enc.Encode(ev) != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case d := <-denied:
			ev = PortForwardEvent{Denied: &d}
		}
	}
}
