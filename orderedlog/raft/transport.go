package raft

import (
	"context"
	"errors"

	hraft "github.com/hashicorp/raft"
)

// Transport carries one node's cluster traffic: hashicorp/raft's own RPCs
// and the proposals a follower forwards to the leader.
type Transport interface {
	// Raft is the transport hashicorp/raft runs on; Raft closes it when the
	// node shuts down.
	Raft() hraft.Transport
	// Forward sends req to the node at addr and returns its answer. An error
	// wrapping ErrNotSent means req certainly did not reach it.
	Forward(ctx context.Context, addr hraft.ServerAddress, req []byte) ([]byte, error)
	// Handle sets what answers requests forwarded to this node.
	Handle(func(ctx context.Context, req []byte) []byte)
}

// ErrNotSent: a forwarded request never left this node (no connection), so
// retrying it elsewhere cannot apply it twice.
var ErrNotSent = errors.New("orderedlog/raft: request not sent")
