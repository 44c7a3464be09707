package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/runenet/runenet/node/nodeconfig"
	"github.com/runenet/runenet/orderedlog/badger"
	"github.com/runenet/runenet/orderedlog/raft"
)

// migratedMarker, in a Raft directory, says its state came from the
// single-node store beside it, which is renamed away once the directory is
// in place.
const migratedMarker = "migrated-from-store"

// migrateStore makes the single-node Badger store the first cluster
// node's state: `--bootstrap` on a data dir that holds one. The Raft
// directory is built aside (raft.migrating) and renamed into place whole,
// so a failure or crash at any point leaves either the store alone (the
// next start migrates again) or the finished Raft directory (the next
// start only renames the store away). Keys keep their values and
// revisions and the log its seq (raft.Seed), so services keep their VIPs
// and compare-and-set keeps working.
func migrateStore(cfg nodeconfig.Config, store, raftDir string) error {
	staging := raftDir + ".migrating"
	if err := os.RemoveAll(staging); err != nil {
		return fmt.Errorf("--bootstrap: removing %s, left by an earlier migration that did not finish: %w", staging, err)
	}
	lg, err := badger.Open(store, badger.Options{DiskReserve: cfg.DiskReserve})
	if err != nil {
		return fmt.Errorf("--bootstrap: opening the single-node store %s to migrate it: %w", store, err)
	}
	start := time.Now()
	seq, keys, err := raft.Seed(context.Background(), staging, cfg.NodeName, cfg.ClusterAddr, lg, slog.Default())
	err = errors.Join(err, lg.Close())
	if err == nil {
		err = os.WriteFile(filepath.Join(staging, migratedMarker), fmt.Appendf(nil, "%s seq %d keys %d at %s\n", store, seq, keys, start.UTC().Format(time.RFC3339)), 0o600)
	}
	if err == nil {
		err = syncDir(staging)
	}
	if err == nil {
		err = os.Rename(staging, raftDir)
	}
	if err == nil {
		err = syncDir(cfg.DataDir)
	}
	if err != nil {
		os.RemoveAll(staging)
		return fmt.Errorf("--bootstrap: migrating the single-node store %s into the cluster log failed, and nothing changed (the store is as it was; fix the cause and start again): %w", store, err)
	}
	slog.Info(fmt.Sprintf("migrated the single-node store into the cluster log: %d keys at seq %d in %.1f s", keys, seq, time.Since(start).Seconds()), "raft", raftDir)
	return retireStore(cfg.DataDir, store)
}

// retireStore renames a migrated store away (kept, never deleted: it is
// the state as it was before the cluster) and says so. The Raft directory
// is already in place, so a failure here loses nothing; the next start
// tries again.
func retireStore(dataDir, store string) error {
	kept := store + ".migrated-" + time.Now().UTC().Format("20060102T150405Z")
	if err := os.Rename(store, kept); err != nil {
		return fmt.Errorf("--bootstrap: the store %s is migrated, but renaming it to %s failed: %w; rename or remove it by hand", store, kept, err)
	}
	if err := syncDir(dataDir); err != nil {
		return err
	}
	slog.Info(fmt.Sprintf("the single-node store is migrated; it is kept, no longer used, as %s (remove it once the cluster serves what you expect)", kept))
	return nil
}

// migratedBefore says whether raftDir came from migrating store and the
// store is still there: a start that stopped between the two renames.
func migratedBefore(raftDir, store string) bool {
	_, err := os.Stat(filepath.Join(raftDir, migratedMarker))
	return err == nil && !empty(store)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// adoptStore migrates a single-node store on a fresh bootstrap (after the
// cluster TLS material exists, so a migrated directory is never without
// it), or finishes a migration that stopped before retiring the store.
func adoptStore(cfg nodeconfig.Config, fresh bool, store, raftDir string) error {
	switch {
	case fresh && !empty(store):
		return migrateStore(cfg, store, raftDir)
	case !fresh && migratedBefore(raftDir, store):
		return retireStore(cfg.DataDir, store)
	}
	return nil
}
