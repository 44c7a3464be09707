package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/proxy"
)

// PortForwarder is the node's data plane proxy, as the API uses it.
type PortForwarder interface {
	PortForward(svc cluster.NamespacedName, port uint16, local netip.AddrPort) (*proxy.Forward, error)
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

// PortForwardOpened is the first (and only) line of the response stream.
type PortForwardOpened struct {
	Address netip.AddrPort `json:"address"`
}

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
	fwd, err := pf.PortForward(cluster.NamespacedName{Namespace: req.Namespace, Name: req.Service}, req.Port, req.Local)
	if err != nil {
		writeError(w, &cluster.Error{Kind: cluster.KindInvalid, Msg: fmt.Sprintf("port-forward %s/%s:%d", req.Namespace, req.Service, req.Port), Err: err})
		return
	}
	defer fwd.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(PortForwardOpened{Address: fwd.Addr()})
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	<-r.Context().Done()
}
