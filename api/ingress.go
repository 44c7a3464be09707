package api

import (
	"context"
	"net/http"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/ingress/status"
)

// Ingress is the node's edge router, as `rune get ingresses` reads it.
type Ingress interface {
	Status() []status.Row
}

// IngressList answers GET /v1/ingresses: the edge routes this node serves.
type IngressList struct {
	Items []status.Row `json:"items"`
}

// TLSSecretRequest uploads a certificate and key for `tls: {mode: manual}`.
type TLSSecretRequest struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Cert      string `json:"cert"` // PEM chain, leaf first
	Key       string `json:"key"`  // PEM private key
}

// StoreTLSSecret validates a certificate and key and stores them as the
// TLS secret ns/name, and says what it did as kubectl apply does: created,
// configured or unchanged. Nothing is written when they do not validate.
type StoreTLSSecret func(ctx context.Context, ns, name string, certPEM, keyPEM []byte) (string, error)

func (s *Server) listIngresses(w http.ResponseWriter, r *http.Request) {
	var ing Ingress
	if s.Ingress != nil {
		ing = s.Ingress()
	}
	if ing == nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: "this node runs no ingress: edge nodes serve ingresses (runed --node-role=edge, or --dev-mode)", Kind: "unavailable"})
		return
	}
	ns := r.URL.Query().Get("namespace")
	out := IngressList{Items: []status.Row{}}
	for _, row := range ing.Status() {
		if ns == "" || row.Namespace == ns {
			out.Items = append(out.Items, row)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createTLSSecret(w http.ResponseWriter, r *http.Request) {
	var req TLSSecretRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Namespace == "" {
		req.Namespace = "default"
	}
	if s.StoreTLSSecret == nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: "this node cannot store TLS secrets", Kind: "unavailable"})
		return
	}
	action, err := s.StoreTLSSecret(r.Context(), req.Namespace, req.Name, []byte(req.Cert), []byte(req.Key))
	if err != nil {
		// The error names the secret already.
		writeError(w, &cluster.Error{Kind: cluster.KindInvalid, Err: err})
		return
	}
	writeJSON(w, http.StatusOK, SecretResponse{Seq: s.Log.Tail(), Action: action})
}
