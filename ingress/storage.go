package ingress

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/runenet/runenet/orderedlog"
)

// Storage is certmagic's Storage over the OrderedLog, under certs/. Every
// edge node reads and writes the same keys, so certificates, ACME accounts,
// HTTP-01 challenge tokens and locks are shared: one node orders a
// certificate, any node can answer its challenge and serve it.
type Storage struct {
	log   orderedlog.Log
	node  string // the edge node's name, shown in its lock records
	owner string // identifies this Storage's locks (one per process)
	// lockTTL is the lease of this Storage's locks: how long a lock
	// outlives its holder's last renewal, i.e. how long a crashed holder
	// blocks the others.
	lockTTL time.Duration

	mu   sync.Mutex
	held map[string]*heldLock   // lock name → this Storage's hold on it
	seen map[string]observation // lock key → another holder's record as first seen
}

var (
	_ certmagic.Storage          = (*Storage)(nil)
	_ certmagic.TryLocker        = (*Storage)(nil)
	_ certmagic.LockLeaseRenewer = (*Storage)(nil)
)

// DefaultLockLease is how long a certificate lock outlives its holder's
// last renewal when ACMEOptions.LockLease is zero: three renewals (every
// 5s), so a busy node or a Raft leader election (a second or two) does
// not lose it, and a crashed node's order is taken over within 15s.
const DefaultLockLease = 15 * time.Second

// NewStorage returns the certificate storage of edge node node; its locks
// have lease lockLease (DefaultLockLease when zero).
func NewStorage(log orderedlog.Log, node string, lockLease time.Duration) *Storage {
	if lockLease <= 0 {
		lockLease = DefaultLockLease
	}
	return &Storage{log: log, node: node, owner: randomID(), lockTTL: lockLease, held: map[string]*heldLock{}, seen: map[string]observation{}}
}

func randomID() string {
	var id [8]byte
	rand.Read(id[:])
	return hex.EncodeToString(id[:])
}

// certmagic keys are slash-separated relative paths; a trailing or doubled
// slash would make two spellings of one key.
func storageKey(key string) string {
	return orderedlog.PrefixCerts + strings.Trim(path.Clean("/"+key), "/")
}

func dirPrefix(key string) string {
	if k := storageKey(key); k != orderedlog.PrefixCerts {
		return k + "/"
	}
	return orderedlog.PrefixCerts
}

// Values carry their modification time in front (8 bytes, unix nanos), since
// certmagic's Stat wants one and the log only knows revisions.
func encodeValue(v []byte, at time.Time) []byte {
	out := make([]byte, 8+len(v))
	binary.BigEndian.PutUint64(out, uint64(at.UnixNano()))
	copy(out[8:], v)
	return out
}

func decodeValue(b []byte) ([]byte, time.Time, error) {
	if len(b) < 8 {
		return nil, time.Time{}, errors.New("corrupt certificate storage value: shorter than its header")
	}
	return b[8:], time.Unix(0, int64(binary.BigEndian.Uint64(b))), nil
}

func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	_, err := s.log.Propose(ctx, []orderedlog.Op{orderedlog.Put(storageKey(key), encodeValue(value, time.Now()))})
	return err
}

func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	kv, ok, err := s.get(ctx, storageKey(key))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	v, _, err := decodeValue(kv.Value)
	return v, err
}

// syncer is a log with a linearizable read point: the Raft backend.
type syncer interface {
	Sync(ctx context.Context) (uint64, error)
}

// get reads key from the log; a miss is read again at the cluster's commit
// point. On a follower it may be what another edge node wrote a moment ago
// and this replica has not applied yet: the challenge token the CA is
// validating right now (Pebble asks within milliseconds of the order's
// node storing it), or a certificate stored before its lock was released.
func (s *Storage) get(ctx context.Context, key string) (orderedlog.KV, bool, error) {
	kv, ok, _, err := s.log.Get(ctx, key)
	sy, canSync := s.log.(syncer)
	if err != nil || ok || !canSync {
		return kv, ok, err
	}
	if _, err := sy.Sync(ctx); err != nil {
		return kv, false, fmt.Errorf("confirming that %s is not in the log (a linearizable read): %w", key, err)
	}
	kv, ok, _, err = s.log.Get(ctx, key)
	return kv, ok, err
}

// Delete removes key and, as for a directory, everything under it, in one
// batch so a concurrent reader never sees half a certificate.
func (s *Storage) Delete(ctx context.Context, key string) error {
	ops := []orderedlog.Op{orderedlog.Delete(storageKey(key))}
	kvs, _, err := s.log.List(ctx, dirPrefix(key))
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		ops = append(ops, orderedlog.Delete(kv.Key))
	}
	_, err = s.log.Propose(ctx, ops)
	return err
}

func (s *Storage) Exists(ctx context.Context, key string) bool {
	if _, ok, err := s.get(ctx, storageKey(key)); err == nil && ok {
		return true
	}
	kvs, _, err := s.log.List(ctx, dirPrefix(key))
	return err == nil && len(kvs) > 0
}

// List returns the keys under dir; without recursive only its direct
// children, files and subdirectories alike, as certmagic's FileStorage does.
func (s *Storage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	prefix := dirPrefix(dir)
	kvs, _, err := s.log.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	base := strings.TrimPrefix(prefix, orderedlog.PrefixCerts)
	seen := map[string]bool{}
	var out []string
	add := func(rel string) {
		if !seen[rel] {
			seen[rel] = true
			out = append(out, base+rel)
		}
	}
	for _, kv := range kvs {
		rel := strings.TrimPrefix(kv.Key, prefix)
		parts := strings.Split(rel, "/")
		if !recursive {
			add(parts[0])
			continue
		}
		for i := 1; i <= len(parts); i++ {
			add(strings.Join(parts[:i], "/"))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w", dir, fs.ErrNotExist)
	}
	return out, nil
}

func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	kv, ok, _, err := s.log.Get(ctx, storageKey(key))
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if ok {
		v, mod, err := decodeValue(kv.Value)
		if err != nil {
			return certmagic.KeyInfo{}, err
		}
		return certmagic.KeyInfo{Key: key, Modified: mod, Size: int64(len(v)), IsTerminal: true}, nil
	}
	if s.Exists(ctx, key) {
		return certmagic.KeyInfo{Key: key}, nil
	}
	return certmagic.KeyInfo{}, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
}
