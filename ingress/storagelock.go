package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/runenet/runenet/orderedlog"
)

// certmagic's locks over the log. A lock is a record at certs/locks/<name>,
// created with a compare-and-set (absent → ours), renewed every third of its
// lease by rewriting it at the revision the holder last wrote, and released
// by deleting it at that revision, so a holder only ever changes its own
// record. Another node takes a lock over once its record has gone a whole
// lease without a new revision, timed on the taker's own monotonic clock:
// nodes never compare their wall clocks.

// lockRecord is stored at a lock's key.
type lockRecord struct {
	Node  string `json:"node"`  // the holder's edge node name, for people
	Owner string `json:"owner"` // the holder's Storage
	Token string `json:"token"` // this acquisition
	// Lease is how long the record may go unrenewed before others take the
	// lock over; the holder's setting, so nodes configured differently
	// still agree.
	Lease time.Duration `json:"lease"`
	// Renewed is the holder's wall-clock time of the last renewal, for
	// people reading the log; takeover does not use it.
	Renewed time.Time `json:"renewed"`
}

// heldLock is this Storage's hold on one lock.
type heldLock struct {
	token      string
	stop, done chan struct{} // the renewer's

	mu   sync.Mutex // rev and lost, shared by the renewer, RenewLockLease and Unlock
	rev  uint64     // the revision of the record this holder last wrote
	lost bool       // the record was taken over: nothing of ours is left
}

// observation is another holder's lock record as this Storage first saw it
// at that revision.
type observation struct {
	rev uint64
	at  time.Time // monotonic
}

var errLockLost = errors.New("the certificate storage lock was taken over by another edge node after its lease lapsed")

func lockKey(name string) string { return storageKey("locks/" + name) }

// Lock takes the named lock, waiting while another holder renews it.
func (s *Storage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := s.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for certificate storage lock %q: %w", name, ctx.Err())
		case <-time.After(s.lockTTL / 10):
		}
	}
}

// TryLock takes the named lock if it is free or its holder's lease lapsed,
// and renews it in the background until Unlock. Of two nodes racing for it
// exactly one wins the compare-and-set.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	key := lockKey(name)
	kv, ok, _, err := s.log.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("reading certificate storage lock %q: %w", name, err)
	}
	var rev uint64
	if ok {
		if !s.lapsed(key, kv) {
			return false, nil
		}
		rev = kv.Rev
	}
	h := &heldLock{token: randomID(), stop: make(chan struct{}), done: make(chan struct{})}
	seq, err := s.log.Propose(ctx, []orderedlog.Op{orderedlog.PutIf(key, s.record(h.token), rev)})
	switch {
	case err == nil:
		h.rev = seq
	case errors.Is(err, orderedlog.ErrConflict):
		return false, nil // another node was faster
	default:
		// The write may have been applied without us learning it.
		if h.rev, ok = s.ours(ctx, key, h.token); !ok {
			return false, fmt.Errorf("taking certificate storage lock %q: %w", name, err)
		}
	}
	s.mu.Lock()
	delete(s.seen, key)
	s.held[name] = h
	s.mu.Unlock()
	go s.renewEvery(key, h)
	return true, nil
}

// lapsed reports whether the record kv went a whole lease without a new
// revision since this Storage first saw that revision.
func (s *Storage) lapsed(key string, kv orderedlog.KV) bool {
	lease := s.lockTTL
	var rec lockRecord
	if json.Unmarshal(kv.Value, &rec) == nil && rec.Lease > 0 {
		lease = rec.Lease
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.seen[key]
	if !ok || o.rev != kv.Rev {
		s.seen[key] = observation{rev: kv.Rev, at: time.Now()}
		return false
	}
	return time.Since(o.at) >= lease
}

func (s *Storage) record(token string) []byte {
	b, _ := json.Marshal(lockRecord{Node: s.node, Owner: s.owner, Token: token, Lease: s.lockTTL, Renewed: time.Now()})
	return b
}

// ours returns the revision of the lock record at key if it is the one
// acquisition token wrote.
func (s *Storage) ours(ctx context.Context, key, token string) (uint64, bool) {
	kv, ok, _, err := s.log.Get(ctx, key)
	var rec lockRecord
	if err != nil || !ok || json.Unmarshal(kv.Value, &rec) != nil || rec.Token != token {
		return 0, false
	}
	return kv.Rev, true
}

// renewEvery renews the lease every third of it until Unlock, or until the
// lock turns out to have been taken over (this process stalled past the
// lease), which it does not try to steal back.
func (s *Storage) renewEvery(key string, h *heldLock) {
	defer close(h.done)
	t := time.NewTicker(s.lockTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.lockTTL/3)
		err := s.renew(ctx, key, h)
		cancel()
		if errors.Is(err, errLockLost) {
			return
		}
	}
}

// renew rewrites h's record at the revision h last wrote. Another error
// than errLockLost (the log unavailable) leaves the lease running out, to
// be tried again.
func (s *Storage) renew(ctx context.Context, key string, h *heldLock) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost {
		return errLockLost
	}
	seq, err := s.log.Propose(ctx, []orderedlog.Op{orderedlog.PutIf(key, s.record(h.token), h.rev)})
	if err == nil {
		h.rev = seq
		return nil
	}
	if rev, ok := s.ours(ctx, key, h.token); ok {
		h.rev = rev // an earlier renewal was applied without us learning it
		return nil
	}
	if errors.Is(err, orderedlog.ErrConflict) {
		h.lost = true
		return errLockLost
	}
	return err
}

// RenewLockLease is certmagic's check, before each attempt at an order,
// that the lock is still this node's. The lease itself is renewed every
// third of it by renewEvery, so leaseDuration (certmagic's estimate of an
// attempt's length) is not used: it would make a crashed holder block the
// others for minutes. A lock that was lost is taken again if it has since
// lapsed or been released; if another node holds it the attempt fails, and
// certmagic's retry finds the certificate that node obtained.
func (s *Storage) RenewLockLease(ctx context.Context, name string, _ time.Duration) error {
	s.mu.Lock()
	h := s.held[name]
	s.mu.Unlock()
	if h != nil {
		if err := s.renew(ctx, lockKey(name), h); !errors.Is(err, errLockLost) {
			return err
		}
	}
	ok, err := s.TryLock(ctx, name)
	if err == nil && !ok {
		err = fmt.Errorf("certificate storage lock %q: %w; another edge node holds it now", name, errLockLost)
	}
	return err
}

// Unlock releases the lock by deleting the record this holder last wrote,
// so releasing a lock that was taken over leaves the new holder's alone.
// If the log cannot be reached the record lapses after its lease.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	h := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("certificate storage lock %q is not held by this edge node", name)
	}
	close(h.stop)
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost {
		return nil
	}
	key := lockKey(name)
	_, err := s.log.Propose(ctx, []orderedlog.Op{orderedlog.DeleteIf(key, h.rev)})
	if errors.Is(err, orderedlog.ErrConflict) {
		rev, ours := s.ours(ctx, key, h.token)
		if !ours {
			return nil // taken over: nothing of ours left to release
		}
		_, err = s.log.Propose(ctx, []orderedlog.Op{orderedlog.DeleteIf(key, rev)})
	}
	if err != nil {
		return fmt.Errorf("releasing certificate storage lock %q (it lapses after its lease of %v): %w", name, s.lockTTL, err)
	}
	return nil
}
