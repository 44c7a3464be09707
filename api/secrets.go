package api

import (
	"context"
	"net/http"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/ingress/status"
)

// SecretList answers GET /v1/secrets: what each secret is, never its keys.
type SecretList struct {
	Items []status.Secret `json:"items"`
}

// SecretResponse answers a secret write with what it did, as kubectl apply
// says it: created, configured or unchanged.
type SecretResponse struct {
	Seq    uint64 `json:"seq"`
	Action string `json:"action"`
}

// ListSecrets describes the secrets of a namespace ("" = all), without
// their keys.
type ListSecrets func(ctx context.Context, ns string) ([]status.Secret, error)

// DeleteSecret removes the secret ns/name and reports whether it existed.
type DeleteSecret func(ctx context.Context, ns, name string) (bool, error)

func (s *Server) secretRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/secrets", s.listSecrets)
	mux.HandleFunc("DELETE /v1/secrets/{ns}/{name}", s.deleteSecret)
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	if s.ListSecrets == nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: "this node keeps no secrets", Kind: "unavailable"})
		return
	}
	items, err := s.ListSecrets(r.Context(), r.URL.Query().Get("namespace"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, SecretList{Items: items})
}

func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request) {
	if s.DeleteSecret == nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: "this node keeps no secrets", Kind: "unavailable"})
		return
	}
	n := cluster.NamespacedName{Namespace: r.PathValue("ns"), Name: r.PathValue("name")}
	found, err := s.DeleteSecret(r.Context(), n.Namespace, n.Name)
	switch {
	case err != nil:
		writeError(w, err)
	case !found:
		writeError(w, cluster.NotFound("secret", n))
	default:
		writeJSON(w, http.StatusOK, SecretResponse{Seq: s.Log.Tail(), Action: "deleted"})
	}
}
