// Package api is runed's HTTP/JSON API: the server runed exposes (a unix
// socket by default, or TCP — optionally over TLS — with a bearer token, and
// a second read-only token for followers) and the Go client the CLI and a
// remote plugin/rune use. It defines the small interfaces it needs of the
// node's subsystems in its own types, so its clients link none of them.
package api

import (
	"net/netip"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/orderedlog"
)

// CastFile is one file of a cast, sent verbatim so the server reports errors
// against the operator's own file names and lines.
type CastFile struct {
	Name string `json:"name"`
	Data string `json:"data"`
	// Namespace is that of the services in the file that name none
	// (default "default"), as kubectl apply -n sets it.
	Namespace string `json:"namespace,omitempty"`
}

type CastRequest struct {
	Files []CastFile `json:"files"`
}

type CastResponse struct {
	Seq     uint64               `json:"seq"`
	Results []cluster.CastResult `json:"results"`
	// Warnings are what the cast succeeded with but the user should know,
	// such as a dev-mode service port that got no listener (Server.Warnings).
	Warnings []string `json:"warnings,omitempty"`
}

// Seq answers writes that return no other data.
type SeqResponse struct {
	Seq uint64 `json:"seq"`
}

type ServiceList struct {
	Seq   uint64                  `json:"seq"`
	Items []cluster.ServiceRecord `json:"items"`
}

type EndpointsList struct {
	Seq   uint64              `json:"seq"`
	Items []cluster.Endpoints `json:"items"`
}

type InstanceList struct {
	Seq   uint64             `json:"seq"`
	Items []cluster.Instance `json:"items"`
}

// RegisterInstanceRequest is what the orchestrator sends when an instance starts.
type RegisterInstanceRequest struct {
	ID        string     `json:"id"`
	Service   string     `json:"service"`
	Namespace string     `json:"namespace,omitempty"`
	Node      string     `json:"node"`
	IP        netip.Addr `json:"ip"`
	Ready     bool       `json:"ready"`
}

type ReadyRequest struct {
	Ready bool `json:"ready"`
}

type PauseRequest struct {
	Seconds float64 `json:"seconds"`
}

// Status is runed's health at a glance.
type Status struct {
	Node               string   `json:"node"`
	Seq                uint64   `json:"seq"`
	Tail               uint64   `json:"tail"`
	LagSeconds         float64  `json:"lagSeconds"`
	StaleBudgetSeconds float64  `json:"staleBudgetSeconds"`
	Stale              bool     `json:"stale"`
	Ready              bool     `json:"ready"`
	NotReady           []string `json:"notReady,omitempty"`
	Warnings           []string `json:"warnings,omitempty"` // see Server.Warnings
	// Subsystems is each data-path subsystem's readiness.
	Subsystems  []SubsystemState `json:"subsystems"`
	ClusterCIDR string           `json:"clusterCIDR,omitempty"`
	Services    int              `json:"services"`
	Instances   int              `json:"instances"`
	// Cluster is the node's place in the cluster (nil: not known).
	Cluster *ClusterStatus `json:"cluster,omitempty"`
}

// ClusterStatus is the node's role in the cluster and the leader it knows.
type ClusterStatus struct {
	Backend string `json:"backend"` // badger (single node) or raft
	// State is the node's: leader, follower, candidate or shutdown.
	State     string `json:"state"`
	Leader    string `json:"leader,omitempty"` // "" when it knows none
	Voters    int    `json:"voters"`
	NonVoters int    `json:"nonVoters"`
	// Error says why the membership could not be read.
	Error string `json:"error,omitempty"`
}

// SubsystemState is one data-path subsystem's readiness.
type SubsystemState struct {
	Name   string `json:"name"`
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"` // why not, when not
}

// ErrorResponse carries a failure; Kind is invalid, not_found, conflict,
// exhausted, unauthorized, forbidden, unavailable or internal.
type ErrorResponse struct {
	Error string `json:"error"`
	Kind  string `json:"kind"`
}

// KVList answers /v1/list: the state a remote View loads from.
type KVList struct {
	Seq uint64          `json:"seq"`
	KVs []orderedlog.KV `json:"kvs"`
}

// WatchEvent is one line of /v1/watch (newline-delimited JSON). A heartbeat
// has no Batch; the final line of a watch that cannot continue has Error
// ("compacted" means re-list).
type WatchEvent struct {
	Batch *orderedlog.Batch `json:"batch,omitempty"`
	Tail  uint64            `json:"tail"`
	Error string            `json:"error,omitempty"`
	// SinceLeaderMs: on a cluster node, how long ago it last heard from a
	// Raft leader; a remote View's lag grows with it.
	SinceLeaderMs int64 `json:"since_leader_ms,omitempty"`
}
