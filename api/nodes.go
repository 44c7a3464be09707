package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/runenet/runenet/cluster"
)

// Cluster is the node's cluster membership as this node knows it, for
// `rune get nodes` and `rune status`, and its changes.
type Cluster interface {
	Nodes() (NodeList, error)
	// JoinToken creates a join token valid for ttl.
	JoinToken(ctx context.Context, ttl time.Duration) (JoinToken, error)
	// RemoveNode removes the named node from the cluster.
	RemoveNode(ctx context.Context, name string) error
	// CheckRemove says whether RemoveNode(name) would be refused, as far
	// as this node knows.
	CheckRemove(name string) error
}

// DefaultJoinTokenTTL is a join token's lifetime unless the request says.
const DefaultJoinTokenTTL = time.Hour

// JoinTokenRequest is POST /v1/cluster/join-tokens's body.
type JoinTokenRequest struct {
	// TTL is how long the token admits nodes, a Go duration ("1h");
	// empty: DefaultJoinTokenTTL.
	TTL string `json:"ttl,omitempty"`
}

// JoinToken answers POST /v1/cluster/join-tokens.
type JoinToken struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// NodeRemoved answers DELETE /v1/nodes/{name}.
type NodeRemoved struct {
	Name string `json:"name"`
}

// Backends of NodeList.
const (
	BackendBadger = "badger" // single node
	BackendRaft   = "raft"
)

// NodeList answers GET /v1/nodes.
type NodeList struct {
	// Backend is the OrderedLog's: badger (one node) or raft.
	Backend string `json:"backend"`
	// Leader names the leader this node knows ("" when it knows none).
	Leader string `json:"leader,omitempty"`
	Items  []Node `json:"items"`
}

// Node is one member. Only the answering node knows its own progress: a
// peer's Applied, Lag, LastContact and Since are unset, and its State is
// "" unless it is the leader.
type Node struct {
	Name    string `json:"name"`
	Address string `json:"address,omitempty"`
	// Role is voter or non-voter.
	Role string `json:"role"`
	// State is leader, follower, candidate or shutdown; "" when unknown.
	State string `json:"state,omitempty"`
	// Self marks the node that answered.
	Self bool `json:"self,omitempty"`
	// Applied is the seq of the last batch the node applied.
	Applied *uint64 `json:"applied,omitempty"`
	// Lag is how many Raft entries the node knows committed but has not
	// applied yet.
	Lag *uint64 `json:"lag,omitempty"`
	// LastContactSeconds is how long ago the node last heard from a leader
	// (0 on the leader).
	LastContactSeconds *float64 `json:"lastContactSeconds,omitempty"`
	// Since is when the node opened its log (this runed's start).
	Since time.Time `json:"since,omitzero"`
	// Subnet is the node's container subnet and Heartbeat when it last
	// wrote its record, from the node records ("" and zero without one);
	// Down is when the leader marked its instances unready for missing
	// heartbeats (zero while it is alive).
	Subnet    string    `json:"subnet,omitempty"`
	Heartbeat time.Time `json:"heartbeat,omitzero"`
	Down      time.Time `json:"down,omitzero"`
}

// Self is the answering node's row (nil if the list lacks it).
func (l *NodeList) Self() *Node {
	for i := range l.Items {
		if l.Items[i].Self {
			return &l.Items[i]
		}
	}
	return nil
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) {
	if s.Cluster == nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: "this node reports no cluster membership", Kind: "unavailable"})
		return
	}
	list, err := s.Cluster.Nodes()
	if err != nil {
		writeError(w, err)
		return
	}
	if list.Items == nil {
		list.Items = []Node{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) createJoinToken(w http.ResponseWriter, r *http.Request) {
	if s.Cluster == nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: "this node reports no cluster membership", Kind: "unavailable"})
		return
	}
	var req JoinTokenRequest
	if !decode(w, r, &req) {
		return
	}
	ttl := DefaultJoinTokenTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			writeError(w, &cluster.Error{Kind: cluster.KindInvalid, Msg: "ttl " + req.TTL + ": want a positive duration such as 30m or 24h"})
			return
		}
		ttl = d
	}
	tok, err := s.Cluster.JoinToken(r.Context(), ttl)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, tok)
}

func (s *Server) removeNode(w http.ResponseWriter, r *http.Request) {
	if s.Cluster == nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: "this node reports no cluster membership", Kind: "unavailable"})
		return
	}
	name := r.PathValue("name")
	if name == s.NodeName {
		s.removeSelf(w, r, name)
		return
	}
	left := s.Cluster.RemoveNode(r.Context(), name)
	if left != nil && cluster.KindOf(left) != cluster.KindNotFound {
		writeError(w, left)
		return
	}
	// Its node record goes too (and its container subnet with it), so
	// peers stop routing to it. A node no longer in the configuration may
	// still have one (a retry after the record's deletion failed).
	record, err := s.removeRecord(r.Context(), name, "is out of the Raft configuration")
	if err != nil {
		writeError(w, err)
		return
	}
	if left != nil && !record {
		writeError(w, notMember(name))
		return
	}
	writeJSON(w, http.StatusOK, NodeRemoved{Name: name})
}

// removeSelf removes the node serving the request. Its record goes first:
// once out of the configuration the node can write nothing (the leader
// refuses a removed node's forwards), and the leader no longer replicates
// to it, so it cannot wait to apply its own removal either: the leader
// committing it is the answer. A removal the node already knows would be
// refused is refused before the record goes.
func (s *Server) removeSelf(w http.ResponseWriter, r *http.Request, name string) {
	if err := s.Cluster.CheckRemove(name); err != nil {
		if cluster.KindOf(err) == cluster.KindNotFound {
			err = notMember(name)
		}
		writeError(w, err)
		return
	}
	if _, err := s.removeRecord(r.Context(), name, "is still a member"); err != nil {
		writeError(w, err)
		return
	}
	if err := s.Cluster.RemoveNode(r.Context(), name); err != nil {
		if cluster.KindOf(err) == cluster.KindNotFound {
			err = notMember(name)
		}
		writeError(w, fmt.Errorf("node %s: its node record is deleted, but removing it from the Raft configuration failed (retry rune node remove %s): %w", name, name, err))
		return
	}
	writeJSON(w, http.StatusOK, NodeRemoved{Name: name})
}

// removeRecord deletes the node record of name, if it has one; where says
// where the node stands, for the error when the deletion fails.
func (s *Server) removeRecord(ctx context.Context, name, where string) (bool, error) {
	if s.Controller == nil {
		return false, nil
	}
	_, err := s.Controller.RemoveNode(ctx, name)
	switch {
	case err == nil:
		return true, nil
	case cluster.KindOf(err) == cluster.KindNotFound:
		return false, nil
	}
	return false, fmt.Errorf("node %s %s, but deleting its node record failed (retry rune node remove %s): %w", name, where, name, err)
}

// notMember is the answer to removing a node that is neither a member nor
// has a node record: removed already (a retry after an unknown outcome), or
// a name the cluster never had.
func notMember(name string) error {
	return &cluster.Error{Kind: cluster.KindNotFound, Msg: fmt.Sprintf("node %q not found: it is not a member of this cluster and has no node record (already removed, or a misspelt name: see rune get nodes)", name)}
}

func clusterStatus(c Cluster) *ClusterStatus {
	list, err := c.Nodes()
	if err != nil {
		return &ClusterStatus{Error: err.Error()}
	}
	st := &ClusterStatus{Backend: list.Backend, Leader: list.Leader}
	if self := list.Self(); self != nil {
		st.State = self.State
	}
	for _, n := range list.Items {
		if n.Role == "voter" {
			st.Voters++
		} else {
			st.NonVoters++
		}
	}
	return st
}
