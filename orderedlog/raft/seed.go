package raft

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"

	hraft "github.com/hashicorp/raft"

	"github.com/runenet/runenet/orderedlog"
)

// A seeded node's first (and only) Raft entry is its snapshot.
const seedIndex, seedTerm = 1, 1

// Seed writes, into an empty dir, the Raft state of a new one-voter
// cluster (nodeID at addr) whose state machine starts as src's: every key
// with its value and its revision, at src's seq. It is how a single-node
// store becomes a cluster's first node: nothing regresses (revisions stay
// valid for compare-and-set, a watcher's seq stays meaningful), and Open on
// dir restores it like any snapshot; there is nothing to bootstrap. The
// snapshot is durable when Seed returns. It returns the seq and the number
// of keys.
func Seed(ctx context.Context, dir, nodeID, addr string, src orderedlog.Lister, logger *slog.Logger) (seq uint64, keys int, err error) {
	if logger == nil {
		logger = slog.Default()
	}
	st := emptyState()
	kv := st.kv.Txn()
	seq, err = src.ListFunc(ctx, "", func(e orderedlog.KV) error {
		kv.Insert([]byte(e.Key), &kvEntry{value: bytes.Clone(e.Value), rev: e.Rev})
		keys++
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("orderedlog/raft: reading the state to seed: %w", err)
	}
	st.kv, st.seq, st.index = kv.CommitOnly(), seq, seedIndex

	snaps, err := hraft.NewFileSnapshotStoreWithLogger(dir, 2, hclogFor(logger))
	if err != nil {
		return 0, 0, fmt.Errorf("orderedlog/raft: snapshot store in %s: %w", dir, err)
	}
	if existing, err := snaps.List(); err != nil || len(existing) > 0 {
		return 0, 0, fmt.Errorf("orderedlog/raft: %s already holds Raft snapshots (%v); seed only an empty directory", dir, err)
	}
	conf := hraft.Configuration{Servers: []hraft.Server{{Suffrage: hraft.Voter, ID: hraft.ServerID(nodeID), Address: hraft.ServerAddress(addr)}}}
	// The store encodes the configuration's peers through a transport;
	// nothing is sent.
	_, enc := hraft.NewInmemTransport(hraft.ServerAddress(addr))
	defer enc.Close()
	sink, err := snaps.Create(hraft.SnapshotVersionMax, seedIndex, seedTerm, conf, seedIndex, enc)
	if err != nil {
		return 0, 0, fmt.Errorf("orderedlog/raft: creating the seed snapshot in %s: %w", dir, err)
	}
	if err := (&fsmSnapshot{st: st}).Persist(sink); err != nil {
		return 0, 0, err
	}
	return seq, keys, nil
}
