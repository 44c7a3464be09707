package api

import (
	"context"
	"net/http"
)

// LinearizableParam is the query parameter (…?linearizable=true) that makes
// a read reflect every write acknowledged anywhere in the cluster before the
// request, not just what this node has applied: what a read-then-decide
// client (a lock, a compare-and-set) needs on a follower.
const LinearizableParam = "linearizable"

// Syncer is a log with a linearizable read point: the Raft backend, whose
// Sync has the leader confirm its leadership and waits until this node has
// applied everything committed before the call.
type Syncer interface {
	Sync(ctx context.Context) (uint64, error)
}

// readPoint is the seq a read of r must reflect: for a linearizable read,
// the cluster's commit point (a single-node log's tail is one); otherwise 0,
// whatever this node has applied.
func (s *Server) readPoint(ctx context.Context, r *http.Request) (uint64, error) {
	if r.URL.Query().Get(LinearizableParam) != "true" {
		return 0, nil
	}
	if sy, ok := s.Log.(Syncer); ok {
		return sy.Sync(ctx)
	}
	return s.Log.Tail(), nil
}
