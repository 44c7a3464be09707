package raft

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"
)

// All cluster traffic uses one TCP port under TLS 1.3. After the handshake
// the dialer sends one byte saying what the connection is for. Raft and
// forwarding need mutual TLS: the dialer's certificate from the cluster CA.
// The one exception is a join: a node that has no certificate yet may open
// a join stream only, and gets one if its join token is good (join.go). A
// client certificate that is given but not from the cluster CA fails the
// handshake.
const (
	streamRaft    byte = 'R' // hashicorp/raft's RPCs, for the NetworkTransport
	streamForward byte = 'F' // forwarded requests, each followed by its reply
	streamJoin    byte = 'J' // one join request and its reply; needs no client certificate
)

// handshakeTimeout bounds a peer's TLS handshake and its stream byte.
const handshakeTimeout = 10 * time.Second

// TLSConfig is what a node needs to join the cluster's TLS mesh.
type TLSConfig struct {
	CAPEM   []byte // the cluster CA certificate
	CertPEM []byte // this node's certificate, issued by the CA
	KeyPEM  []byte
}

func (c TLSConfig) configs() (server, client *tls.Config, err error) {
	pair, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("orderedlog/raft: node certificate: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(c.CAPEM) {
		return nil, nil, errors.New("orderedlog/raft: the cluster CA certificate does not parse")
	}
	// The chain a node presents ends with the CA, so a joiner that knows
	// only the CA's fingerprint (from its token) can check whom it talks to
	// before sending the token's secret.
	if ca, _ := pem.Decode(c.CAPEM); ca != nil {
		pair.Certificate = append(pair.Certificate, ca.Bytes)
	}
	server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		// route admits a connection without a certificate to the join
		// stream only.
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  roots,
	}
	client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		// Raft dials addresses, not names: the peer must prove it holds a
		// certificate of this cluster's CA, which VerifyConnection checks
		// in place of the host name check.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the peer sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			if err != nil {
				return fmt.Errorf("the peer's certificate is not from this cluster's CA: %w", err)
			}
			return nil
		},
	}
	return server, client, nil
}

// tlsTransport serves Raft and forwarding on one mutual-TLS listener.
type tlsTransport struct {
	ln     net.Listener
	client *tls.Config
	logger *slog.Logger
	raft   *hraft.NetworkTransport

	raftConns chan net.Conn
	forwards  *forwardPool // connections this node forwards on
	handler   atomic.Pointer[func(context.Context, []byte) []byte]
	join      atomic.Pointer[func(context.Context, []byte) []byte]
	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	stopDials     chan struct{} // closed by stopDialing (raftdial.go)
	stopDialsOnce sync.Once
}

// ListenTLS listens on addr (host:port) for the cluster and returns the
// node's transport. Raft advertises the listener's address, so addr must be
// one the other nodes can reach.
func ListenTLS(addr string, conf TLSConfig, logger *slog.Logger) (Transport, error) {
	if _, _, err := conf.configs(); err != nil {
		return nil, err
	}
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("orderedlog/raft: cluster address: %w", err)
	}
	t, err := ListenTLSOn(tcp, conf, logger)
	if err != nil {
		tcp.Close()
	}
	return t, err
}

// ListenTLSOn is ListenTLS on a TCP listener already open: a joining node
// listens before it asks to join, so the leader's first dials to it wait in
// the backlog instead of failing (and backing off) while it starts.
func ListenTLSOn(tcp net.Listener, conf TLSConfig, logger *slog.Logger) (Transport, error) {
	if logger == nil {
		logger = slog.Default()
	}
	server, client, err := conf.configs()
	if err != nil {
		return nil, err
	}
	t := &tlsTransport{
		ln:        tls.NewListener(tcp, server),
		client:    client,
		logger:    logger,
		raftConns: make(chan net.Conn),
		closing:   make(chan struct{}),
		stopDials: make(chan struct{}),
	}
	t.forwards = newForwardPool(func(ctx context.Context, addr string) (*tls.Conn, error) { return t.dial(ctx, addr, streamForward) })
	t.raft = hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
		Stream:  (*streamLayer)(t),
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hclogFor(logger),
	})
	t.wg.Go(t.accept)
	return t, nil
}

func (t *tlsTransport) Raft() hraft.Transport { return t.raft }

func (t *tlsTransport) Handle(h func(context.Context, []byte) []byte) { t.handler.Store(&h) }

// HandleJoin sets what answers join requests (joinServer).
func (t *tlsTransport) HandleJoin(h func(context.Context, []byte) []byte) { t.join.Store(&h) }

// accept hands each authenticated connection to Raft or to the forwarding
// handler. A peer without a valid certificate fails its handshake here.
func (t *tlsTransport) accept() {
	for {
		conn, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.closing:
				return
			default:
			}
			t.logger.Warn("cluster listener: accept failed", "err", err)
			time.Sleep(50 * time.Millisecond) // fd exhaustion and the like: do not spin
			continue
		}
		t.wg.Go(func() { t.route(conn.(*tls.Conn)) })
	}
}

func (t *tlsTransport) route(conn *tls.Conn) {
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	var kind [1]byte
	err := conn.HandshakeContext(context.Background())
	if err == nil {
		_, err = io.ReadFull(conn, kind[:])
	}
	if err != nil {
		t.logger.Warn("cluster listener: refused a connection", "peer", conn.RemoteAddr(), "err", err)
		conn.Close()
		return
	}
	if kind[0] != streamJoin && len(conn.ConnectionState().PeerCertificates) == 0 {
		t.logger.Warn("cluster listener: refused a peer without a cluster certificate", "peer", conn.RemoteAddr(), "stream", string(kind[:]))
		conn.Close()
		return
	}
	conn.SetDeadline(time.Time{})
	switch kind[0] {
	case streamRaft:
		select {
		case t.raftConns <- conn:
		case <-t.closing:
			conn.Close()
		}
	case streamForward:
		t.serveForward(conn)
	case streamJoin:
		conn.SetDeadline(time.Now().Add(joinTimeout))
		t.serveFrame(conn, t.join.Load(), maxJoin)
	default:
		t.logger.Warn("cluster listener: unknown stream", "peer", conn.RemoteAddr(), "kind", kind[0])
		conn.Close()
	}
}

// maxForward bounds a forwarded request or reply: one batch and its framing.
// maxJoin bounds a join request, which a peer sends before it has proved
// anything: a name, an address, a token and a certificate request.
const (
	maxForward = 64<<20 + 1<<16
	maxJoin    = 64 << 10
)

// serveFrame answers one framed request of at most max bytes on conn with
// h; h's context names the peer (peerName) when it presented a certificate.
func (t *tlsTransport) serveFrame(conn *tls.Conn, h *func(context.Context, []byte) []byte, max uint64) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	req, err := readFrame(r, max)
	if err != nil {
		t.logger.Warn("cluster listener: bad request", "peer", conn.RemoteAddr(), "err", err)
		return
	}
	if h == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	if certs := conn.ConnectionState().PeerCertificates; len(certs) > 0 {
		ctx = context.WithValue(ctx, peerKey{}, nodeNameOf(certs[0]))
	}
	defer cancel()
	go func() { // the forwarder hanging up abandons the request
		io.Copy(io.Discard, r)
		cancel()
	}()
	reply := (*h)(ctx, req)
	conn.Write(binary.AppendUvarint(nil, uint64(len(reply))))
	conn.Write(reply)
}

type peerKey struct{}

// peerName is the node name of the peer that sent a request, from its
// certificate; ok is false when the transport does not know it (in-memory
// transports, a joiner without a certificate).
func peerName(ctx context.Context) (name string, ok bool) {
	name, ok = ctx.Value(peerKey{}).(string)
	return name, ok
}

// CertNodeName is the node a PEM cluster certificate was issued to.
func CertNodeName(certPEM []byte) (string, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil {
		return "", errors.New("no PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return "", err
	}
	return nodeNameOf(c), nil
}

// nodeNameOf is the node a cluster certificate was issued to (its SAN).
func nodeNameOf(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return c.Subject.CommonName
}

func readFrame(r *bufio.Reader, max uint64) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("a %d-byte frame", n)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}

func (t *tlsTransport) dial(ctx context.Context, addr string, kind byte) (*tls.Conn, error) {
	d := tls.Dialer{Config: t.client}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := conn.(*tls.Conn)
	if _, err := tc.Write([]byte{kind}); err != nil {
		tc.Close()
		return nil, err
	}
	return tc, nil
}

func (t *tlsTransport) Forward(ctx context.Context, addr hraft.ServerAddress, req []byte) ([]byte, error) {
	return t.forwards.forward(ctx, addr, req)
}

// exchange sends one framed request on conn and reads the framed reply,
// within ctx; it closes conn.
func exchange(ctx context.Context, conn net.Conn, req []byte) ([]byte, error) {
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := conn.Write(append(binary.AppendUvarint(nil, uint64(len(req))), req...)); err != nil {
		return nil, err
	}
	return readFrame(bufio.NewReader(conn), maxForward)
}

// streamLayer is the transport as hashicorp/raft's NetworkTransport sees it.
type streamLayer tlsTransport

func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.raftConns:
		return c, nil
	case <-s.closing:
		return nil, net.ErrClosed
	}
}

// Close is called by Raft's shutdown: the whole listener goes.
func (s *streamLayer) Close() error {
	t := (*tlsTransport)(s)
	var err error
	t.closeOnce.Do(func() {
		close(t.closing)
		t.forwards.close()
		err = t.ln.Close()
	})
	return err
}

func (s *streamLayer) Addr() net.Addr { return s.ln.Addr() }

func (s *streamLayer) Dial(addr hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return (*tlsTransport)(s).dialRaft(ctx, string(addr))
}
