package ingress

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
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
	owner string // identifies this process's locks
	// lockTTL is how long a lock outlives its holder's last refresh, i.e.
	// how long a crashed holder blocks others.
	lockTTL time.Duration

	mu   sync.Mutex
	held map[string]*heldLock
}

var _ certmagic.Storage = (*Storage)(nil)

func NewStorage(log orderedlog.Log) *Storage {
	var id [8]byte
	rand.Read(id[:])
	return &Storage{log: log, owner: hex.EncodeToString(id[:]), lockTTL: 30 * time.Second, held: map[string]*heldLock{}}
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
	kv, ok, _, err := s.log.Get(ctx, storageKey(key))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	v, _, err := decodeValue(kv.Value)
	return v, err
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
	if _, ok, _, err := s.log.Get(ctx, storageKey(key)); err == nil && ok {
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

// lockRecord is stored at a lock's key. Expires lets another node take over
// the lock of a holder that died without unlocking.
type lockRecord struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

type heldLock struct {
	rev  uint64
	stop chan struct{}
	done chan struct{}
}

func lockKey(name string) string { return storageKey("locks/" + name) }

// Lock takes the named lock with a compare-and-set on its key (create if
// absent, or replace an expired record at the revision it was read at), so
// of two nodes racing for it exactly one wins. While held it is refreshed.
func (s *Storage) Lock(ctx context.Context, name string) error {
	key := lockKey(name)
	for {
		rev, err := s.tryLock(ctx, key)
		if err != nil {
			return err
		}
		if rev != 0 {
			h := &heldLock{rev: rev, stop: make(chan struct{}), done: make(chan struct{})}
			s.mu.Lock()
			s.held[name] = h
			s.mu.Unlock()
			go s.refresh(key, h)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for certificate storage lock %q: %w", name, ctx.Err())
		case <-time.After(s.lockTTL / 10):
		}
	}
}

// tryLock returns the lock's new revision, or 0 if someone else holds it.
func (s *Storage) tryLock(ctx context.Context, key string) (uint64, error) {
	kv, ok, _, err := s.log.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	var rev uint64
	if ok {
		var cur lockRecord
		if json.Unmarshal(kv.Value, &cur) == nil && time.Now().Before(cur.Expires) {
			return 0, nil
		}
		rev = kv.Rev
	}
	rec, _ := json.Marshal(lockRecord{Owner: s.owner, Expires: time.Now().Add(s.lockTTL)})
	seq, err := s.log.Propose(ctx, []orderedlog.Op{orderedlog.PutIf(key, rec, rev)})
	if errors.Is(err, orderedlog.ErrConflict) {
		return 0, nil
	}
	return seq, err
}

// refresh extends the lock's expiry every third of its TTL, conditional on
// the revision it last wrote: if that fails the lock was taken over (this
// process stalled past the TTL) and refreshing stops rather than stealing it back.
func (s *Storage) refresh(key string, h *heldLock) {
	defer close(h.done)
	t := time.NewTicker(s.lockTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		rec, _ := json.Marshal(lockRecord{Owner: s.owner, Expires: time.Now().Add(s.lockTTL)})
		ctx, cancel := context.WithTimeout(context.Background(), s.lockTTL/3)
		seq, err := s.log.Propose(ctx, []orderedlog.Op{orderedlog.PutIf(key, rec, h.rev)})
		cancel()
		if errors.Is(err, orderedlog.ErrConflict) {
			return
		}
		if err == nil {
			h.rev = seq // read by Unlock only after this goroutine ends
		}
	}
}

// Unlock deletes the lock only at the revision this process wrote, so
// releasing a lock that was taken over does not release the new holder's.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	h := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("certificate storage lock %q is not held by this process", name)
	}
	close(h.stop)
	<-h.done
	_, err := s.log.Propose(ctx, []orderedlog.Op{orderedlog.DeleteIf(lockKey(name), h.rev)})
	if errors.Is(err, orderedlog.ErrConflict) {
		return nil // taken over after expiry: nothing of ours left to release
	}
	return err
}
