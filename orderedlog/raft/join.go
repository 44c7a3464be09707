package raft

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// A join is one exchange on the cluster port, on a TLS connection where
// only the server has a certificate (the joiner has none yet):
//
//  1. the joiner checks the server's chain ends in the CA whose fingerprint
//     its token names, so the secret goes to no one else;
//  2. it sends its node name, cluster address, a certificate request for a
//     key it keeps, and the token;
//  3. the member checks the token against the log, signs a certificate for
//     the name (SAN = node name), has the leader add the node as a
//     non-voter, and answers with the certificate, the CA certificate and
//     the CA key.
//
// Where the CA key lives: every member keeps it, in cluster-tls/ca-key.pem
// (0600), handed over in the join reply, so any member can admit a node
// and the cluster does not depend on the bootstrap node staying alive. It
// is never written to the log: the log is readable through the API (the
// read-only token may list it, the remote rune plugin watches it) and lies
// in Raft snapshots, and a CA key there would let a reader mint a member
// certificate. Docker Swarm keeps its root key in the managers' Raft store
// instead; here a member can write the log anyway, so a compromised member
// is the whole cluster in either design, and keeping the key off the log
// keeps it away from everything that is not a member.

// joinTimeout bounds a join exchange on the member: the token check is a
// linearizable read and the membership change a Raft commit.
const joinTimeout = 30 * time.Second

// NodeCertValidity is how long a node certificate lasts.
const NodeCertValidity = 10 * 365 * 24 * time.Hour

type joinRequest struct {
	Token string `json:"token"`
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	CSR   []byte `json:"csr"` // DER
}

type joinReply struct {
	Error    string `json:"error,omitempty"`
	CertPEM  []byte `json:"cert,omitempty"`
	CAPEM    []byte `json:"ca,omitempty"`
	CAKeyPEM []byte `json:"caKey,omitempty"`
}

// joinServer is a transport that can take join requests from nodes
// without a certificate (the TLS transport; the in-memory one cannot).
type joinServer interface {
	HandleJoin(func(ctx context.Context, req []byte) []byte)
}

// serveJoin answers a join request on a member.
func (l *Log) serveJoin(ctx context.Context, raw []byte) []byte {
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	var rep joinReply
	var req joinRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		rep.Error = "malformed join request (mixed runed versions?): " + err.Error()
	} else if cert, err := l.admit(ctx, req); err != nil {
		rep.Error = err.Error()
		l.opts.Logger.Warn("orderedlog/raft: refused a join", "node", req.Name, "addr", req.Addr, "err", err)
	} else {
		rep = joinReply{CertPEM: cert, CAPEM: l.opts.CA.CertPEM, CAKeyPEM: l.opts.CA.KeyPEM}
		l.opts.Logger.Info("orderedlog/raft: a node joined as a non-voter", "node", req.Name, "addr", req.Addr)
	}
	out, _ := json.Marshal(rep)
	return out
}

// admit checks a join request and adds its node as a non-voter; it returns
// the node's certificate.
func (l *Log) admit(ctx context.Context, req joinRequest) ([]byte, error) {
	if l.opts.CA == nil {
		return nil, errors.New("this member holds no cluster CA key (cluster-tls/ca-key.pem), so it cannot check a join token or admit nodes; join via another member")
	}
	tok, err := parseJoinToken(req.Token)
	if err != nil {
		return nil, err
	}
	if err := l.checkJoinToken(ctx, tok); err != nil {
		return nil, err
	}
	if p := nodeNameProblem(req.Name); p != "" {
		return nil, fmt.Errorf("node name %q %s", req.Name, p)
	}
	if ap, err := netip.ParseAddrPort(req.Addr); err != nil || ap.Addr().IsUnspecified() || ap.Port() == 0 {
		return nil, fmt.Errorf("cluster address %q: want the IP:PORT the other nodes reach the joiner on", req.Addr)
	}
	cert, err := l.opts.CA.Sign(req.CSR, req.Name, NodeCertValidity)
	if err != nil {
		return nil, err
	}
	if err := l.AddNonvoter(ctx, req.Name, req.Addr); err != nil {
		return nil, err
	}
	return cert, nil
}

// nodeNameProblem says what is wrong with a node name as a certificate's
// DNS name: it must be a DNS label ("" when it is one).
func nodeNameProblem(name string) string {
	if name == "" || len(name) > 63 {
		return "must be 1 to 63 characters"
	}
	for i, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(name)-1:
		default:
			return "must be a DNS label: lower-case letters, digits and inner hyphens"
		}
	}
	return ""
}

// Joined is what a node gets by joining a cluster: its TLS material (the
// key it made, the certificate the cluster signed, the CA) and the CA key.
type Joined struct {
	TLS      TLSConfig
	CAKeyPEM []byte
}

// Join asks the member at peer (its cluster address) to admit this node,
// named name and reachable at addr, with a join token. The node should
// already listen on addr (ListenTLSOn), since the leader starts
// replicating to it as soon as it is added.
func Join(ctx context.Context, peer, token, name, addr string) (*Joined, error) {
	tok, err := parseJoinToken(token)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}, DNSNames: []string{name}}, key)
	if err != nil {
		return nil, err
	}
	raw, _ := json.Marshal(joinRequest{Token: token, Name: name, Addr: addr, CSR: csr})

	d := tls.Dialer{Config: &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The joiner has no CA certificate yet, only its fingerprint:
		// VerifyConnection checks the chain against it.
		InsecureSkipVerify: true,
		VerifyConnection:   func(cs tls.ConnectionState) error { return verifyByFingerprint(cs, tok.fingerprint) },
	}}
	conn, err := d.DialContext(ctx, "tcp", peer)
	if err != nil {
		return nil, fmt.Errorf("joining via %s: %w", peer, err)
	}
	if _, err := conn.Write([]byte{streamJoin}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("joining via %s: %w", peer, err)
	}
	out, err := exchange(ctx, conn, raw)
	if err != nil {
		return nil, fmt.Errorf("joining via %s: no answer (%w)", peer, err)
	}
	var rep joinReply
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, fmt.Errorf("joining via %s: malformed reply (mixed runed versions?): %w", peer, err)
	}
	if rep.Error != "" {
		return nil, fmt.Errorf("joining via %s: %s", peer, rep.Error)
	}
	if b, _ := pem.Decode(rep.CAPEM); b == nil || fingerprint(b.Bytes) != tok.fingerprint {
		return nil, fmt.Errorf("joining via %s: the reply's CA is not the token's", peer)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	j := &Joined{TLS: TLSConfig{CAPEM: rep.CAPEM, CertPEM: rep.CertPEM, KeyPEM: pemBlock("PRIVATE KEY", keyDER)}, CAKeyPEM: rep.CAKeyPEM}
	if _, _, err := j.TLS.configs(); err != nil {
		return nil, fmt.Errorf("joining via %s: %w", peer, err)
	}
	return j, nil
}

// verifyByFingerprint accepts a server whose chain holds the CA with the
// given fingerprint and whose certificate that CA signed.
func verifyByFingerprint(cs tls.ConnectionState, fp string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("join token: the member sent no certificate")
	}
	for _, c := range cs.PeerCertificates[1:] {
		if fingerprint(c.Raw) != fp {
			continue
		}
		roots := x509.NewCertPool()
		roots.AddCert(c)
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			return fmt.Errorf("join token: the member's certificate is not from the token's CA: %w", err)
		}
		return nil
	}
	return fmt.Errorf("join token: the member is not of the token's cluster (no CA with fingerprint %s in its chain); check --join and the token", fp)
}
