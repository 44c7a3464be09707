package raft

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/runenet/runenet/orderedlog"
)

// A join token is
//
//	RUNETKN-1-<CA fingerprint>-<id>-<secret>
//
// in lower-case hex: the SHA-256 of the cluster CA certificate (64 digits),
// so the joiner can check whom it talks to before it sends the secret, as
// Docker Swarm's SWMTKN and kubeadm's --discovery-token-ca-cert-hash do; a
// token id (16 digits) naming the token's record in the log; and a random
// secret of 128 bits (32 digits). The record, at join-tokens/<id>, holds
// only the secret's SHA-256 and the expiry, so reading the log (which the
// API's read-only token may) does not give anyone a way in.
const (
	tokenPrefix    = "RUNETKN-1-"
	tokenIDLen     = 8
	tokenSecretLen = 16
)

// joinToken is a parsed token.
type joinToken struct {
	fingerprint string
	id          string
	secret      []byte
}

// tokenRecord is a token's record in the log.
type tokenRecord struct {
	SecretSHA256 string    `json:"secretSHA256"`
	Expires      time.Time `json:"expires"`
}

func tokenKey(id string) string { return orderedlog.PrefixJoinTokens + id }

func parseJoinToken(s string) (joinToken, error) {
	bad := func(why string) error {
		return fmt.Errorf("malformed join token (%s): want %s<64 hex>-<16 hex>-<32 hex>, as `rune cluster join-token` prints it", why, tokenPrefix)
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), tokenPrefix)
	if !ok {
		return joinToken{}, bad("it does not start with " + tokenPrefix)
	}
	parts := strings.Split(rest, "-")
	if len(parts) != 3 {
		return joinToken{}, bad(fmt.Sprintf("%d fields after the prefix, want 3", len(parts)))
	}
	fp, id, secretHex := parts[0], parts[1], parts[2]
	if _, err := hex.DecodeString(fp); err != nil || len(fp) != 2*sha256.Size {
		return joinToken{}, bad("the CA fingerprint")
	}
	if _, err := hex.DecodeString(id); err != nil || len(id) != 2*tokenIDLen {
		return joinToken{}, bad("the token id")
	}
	secret, err := hex.DecodeString(secretHex)
	if err != nil || len(secret) != tokenSecretLen {
		return joinToken{}, bad("the secret")
	}
	return joinToken{fingerprint: strings.ToLower(fp), id: strings.ToLower(id), secret: secret}, nil
}

func (t joinToken) String() string {
	return tokenPrefix + t.fingerprint + "-" + t.id + "-" + hex.EncodeToString(t.secret)
}

// CreateJoinToken records a new join token valid for ttl and returns it and
// its expiry. Expired tokens' records are deleted in the same write, so they
// do not pile up. It needs the cluster CA (Options.CA) for the fingerprint.
func (l *Log) CreateJoinToken(ctx context.Context, ttl time.Duration) (string, time.Time, error) {
	if l.opts.CA == nil {
		return "", time.Time{}, errors.New("join token: this node holds no cluster CA (cluster-tls/ca-key.pem); create the token on another member")
	}
	if ttl <= 0 {
		return "", time.Time{}, fmt.Errorf("join token: ttl %v: want a positive duration such as 1h", ttl)
	}
	tok := joinToken{fingerprint: l.opts.CA.Fingerprint(), secret: make([]byte, tokenSecretLen)}
	id := make([]byte, tokenIDLen)
	rand.Read(id) // never fails (crypto/rand)
	rand.Read(tok.secret)
	tok.id = hex.EncodeToString(id)
	sum := sha256.Sum256(tok.secret)
	expires := time.Now().Add(ttl).UTC().Truncate(time.Second)
	rec, _ := json.Marshal(tokenRecord{SecretSHA256: hex.EncodeToString(sum[:]), Expires: expires})
	ops := []orderedlog.Op{orderedlog.Put(tokenKey(tok.id), rec)}
	expired, err := l.expiredTokens(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	for _, k := range expired {
		ops = append(ops, orderedlog.Op{Type: orderedlog.OpDelete, Key: k})
	}
	if _, err := l.Propose(ctx, ops); err != nil {
		return "", time.Time{}, fmt.Errorf("join token: recording it: %w", err)
	}
	return tok.String(), expires, nil
}

// expiredTokens lists the keys of token records past their expiry.
func (l *Log) expiredTokens(ctx context.Context) ([]string, error) {
	var keys []string
	now := time.Now()
	_, err := l.ListFunc(ctx, orderedlog.PrefixJoinTokens, func(kv orderedlog.KV) error {
		var rec tokenRecord
		if json.Unmarshal(kv.Value, &rec) != nil || now.After(rec.Expires) {
			keys = append(keys, kv.Key)
		}
		return nil
	})
	return keys, err
}

// checkJoinToken admits tok if the log, read after a linearizable sync so
// a token just created on another node is seen, holds its unexpired record
// and its secret matches.
func (l *Log) checkJoinToken(ctx context.Context, tok joinToken) error {
	if fp := l.opts.CA.Fingerprint(); subtle.ConstantTimeCompare([]byte(tok.fingerprint), []byte(fp)) != 1 {
		return fmt.Errorf("join token: it is for the cluster whose CA fingerprint is %s, this cluster's is %s", tok.fingerprint, fp)
	}
	if _, err := l.Sync(ctx); err != nil {
		return fmt.Errorf("join token: cannot read the cluster's tokens now: %w", err)
	}
	kv, ok, _, err := l.Get(ctx, tokenKey(tok.id))
	if err != nil {
		return fmt.Errorf("join token: reading its record: %w", err)
	}
	if !ok {
		return fmt.Errorf("join token: no token %s in this cluster (expired and deleted, or never created); create one with `rune cluster join-token`", tok.id)
	}
	var rec tokenRecord
	if err := json.Unmarshal(kv.Value, &rec); err != nil {
		return fmt.Errorf("join token: its record %s does not parse: %w", kv.Key, err)
	}
	want, err := hex.DecodeString(rec.SecretSHA256)
	if err != nil {
		return fmt.Errorf("join token: its record %s does not parse: %w", kv.Key, err)
	}
	sum := sha256.Sum256(tok.secret)
	if subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return fmt.Errorf("join token: wrong secret for token %s", tok.id)
	}
	if time.Now().After(rec.Expires) {
		return fmt.Errorf("join token: token %s expired at %s; create a new one with `rune cluster join-token`", tok.id, rec.Expires.Format(time.RFC3339))
	}
	return nil
}
