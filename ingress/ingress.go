// Package ingress is the edge HTTP(S) router: it routes each service's
// `expose:` host to the service's ready endpoints and terminates TLS with
// certificates from ACME (certmagic, HTTP-01) or from a manual TLS secret.
// Routes follow the cluster View; certificates, ACME accounts and locks live
// in the OrderedLog under certs/, so edge nodes share them.
//
// It is a plain library: plugin/ingress wires it into runed's Corefile.
package ingress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/runenet/runenet/balance"
	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/policy"
)

// ACMEOptions configure certificate issuance for `tls: {auto: true}`.
type ACMEOptions struct {
	Email string
	// CA is the ACME directory URL. Default: Let's Encrypt production.
	CA string
	// CARootsFile is a PEM file of extra roots trusted for the ACME server's
	// own HTTPS (a private or test CA), on top of the system roots.
	CARootsFile string
	// RenewalWindowRatio: renew when this fraction of the lifetime is left
	// (certmagic's default, 1/3, when zero).
	RenewalWindowRatio float64
	// RenewCheckInterval: how often certificates are checked for renewal
	// (certmagic's default, 10m, when zero).
	RenewCheckInterval time.Duration
	// LockLease is how long an edge node's certificate lock (one ACME
	// order per certificate for the whole cluster) outlives the node's
	// last renewal of it, i.e. how long a crashed node's order blocks the
	// others (DefaultLockLease when zero).
	LockLease time.Duration
}

// Options configure an Ingress.
type Options struct {
	// HTTPAddr and HTTPSAddr are the listen addresses. Default ":80" and
	// ":443"; dev mode uses "127.0.0.1:8080" and "127.0.0.1:8443".
	HTTPAddr, HTTPSAddr string
	ACME                ACMEOptions
	// HSTS, when set, is sent on HTTPS responses (see HSTS).
	HSTS *HSTS
	// Policy returns the node's network policy engine, nil while there is
	// none: requests for a service with an ingress policy are then refused
	// (403), as they are while the engine's tables are older than the
	// routes. A nil func is an ingress with no engine ever.
	Policy   func() *policy.Engine
	Logger   *slog.Logger
	Timeouts Timeouts
	// DisableFastPath serves every request through net/http
	// (httputil.ReverseProxy) instead of the HTTP/1.1 fast path.
	DisableFastPath bool
	// NodeName identifies this edge node in the Via header of forwarded
	// requests, which is how a request that loops back is recognised.
	// Default the hostname.
	NodeName string
}

// Timeouts bound what a slow, stalled or vanished peer can hold. There is
// no overall limit on a request: uploads, downloads, streams and WebSockets
// may legitimately last long, so the body and send timeouts bound
// inactivity, not duration. Zero fields take the defaults, nginx's.
type Timeouts struct {
	ClientHeader   time.Duration // a request head, from its first byte; also the TLS handshake (10s)
	ClientIdle     time.Duration // a keep-alive client connection between requests (75s)
	ClientBody     time.Duration // between two reads of a request body that both wait (60s)
	Send           time.Duration // a write to the client that makes no progress (60s)
	BackendConnect time.Duration // connecting to an endpoint (5s)
	BackendHeader  time.Duration // from the request sent to the response head, then 504 (60s)
	BackendIdle    time.Duration // a pooled keep-alive backend connection unused (60s)
}

// defaultTimeouts are what a zero field of Timeouts stands for.
var defaultTimeouts = Timeouts{
	ClientHeader: 10 * time.Second, ClientIdle: 75 * time.Second, ClientBody: 60 * time.Second,
	Send: 60 * time.Second, BackendConnect: 5 * time.Second, BackendHeader: 60 * time.Second,
	BackendIdle: 60 * time.Second,
}

func (t Timeouts) withDefaults() Timeouts {
	d := defaultTimeouts
	for _, f := range []struct{ v, def *time.Duration }{
		{&t.ClientHeader, &d.ClientHeader}, {&t.ClientIdle, &d.ClientIdle}, {&t.ClientBody, &d.ClientBody},
		{&t.Send, &d.Send}, {&t.BackendConnect, &d.BackendConnect}, {&t.BackendHeader, &d.BackendHeader},
		{&t.BackendIdle, &d.BackendIdle},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return t
}

const (
	maxHeaderBytes  = 64 << 10
	shutdownTimeout = 5 * time.Second
	// statusRefresh re-derives certificate states while nothing else
	// changes, so expiry shows up in status and metrics.
	statusRefresh = 30 * time.Second
)

// Ingress routes edge traffic. Create it with New, then Start; Close stops it.
type Ingress struct {
	log    orderedlog.Log
	view   *cluster.View
	opts   Options
	to     Timeouts // opts.Timeouts with the defaults filled in
	via    *via
	logger *slog.Logger
	errLog *log.Logger // net/http's own complaints (client hang-ups, bad requests): debug only
	roots  *x509.CertPool
	hsts   string // the Strict-Transport-Security value; "" for none

	table     atomic.Pointer[table]
	pool      sync.Map // backend address → *backend, kept across tables
	dialer    *net.Dialer
	transport *http.Transport
	bufPool   bufferPool

	storage *Storage
	cache   *certmagic.Cache
	magic   *certmagic.Config
	issuer  *certmagic.ACMEIssuer

	// Owned by the run loop.
	managed map[string]bool
	secrets map[string]cachedSecret

	errMu    sync.Mutex
	certErrs map[string]string // ACME host → last obtain/renew error

	kick      chan struct{}
	self      selfAddrs       // the listeners' addresses, which no endpoint may be
	selfSeen  map[string]bool // endpoints refused for being self, logged once (run loop)
	bound     atomic.Bool
	httpLn    net.Listener
	httpsLn   net.Listener
	fronts    []*front
	cancel    context.CancelFunc
	runDone   chan struct{}
	certsDone chan struct{} // watchCerts ended
	closeOnce sync.Once
	closeErr  error
	serveErr  chan error
}

type cachedSecret struct {
	rev  uint64
	cert *tls.Certificate
	err  error
}

// New validates opts. Its readiness check (Ready) passes once Start has
// bound both listeners.
func New(log orderedlog.Log, view *cluster.View, opts Options) (*Ingress, error) {
	if opts.HTTPAddr == "" {
		opts.HTTPAddr = ":80"
	}
	if opts.HTTPSAddr == "" {
		opts.HTTPSAddr = ":443"
	}
	if opts.ACME.CA == "" {
		opts.ACME.CA = certmagic.LetsEncryptProductionCA
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var hsts string
	if opts.HSTS != nil {
		if err := opts.HSTS.Validate(); err != nil {
			return nil, fmt.Errorf("hsts: %w", err)
		}
		hsts = opts.HSTS.value()
	}
	if opts.NodeName == "" {
		opts.NodeName, _ = os.Hostname()
	}
	opts.Timeouts = opts.Timeouts.withDefaults()
	i := &Ingress{
		log: log, view: view, opts: opts, logger: opts.Logger.With("subsystem", "ingress"),
		managed: map[string]bool{}, secrets: map[string]cachedSecret{}, certErrs: map[string]string{},
		kick: make(chan struct{}, 1), hsts: hsts,
	}
	i.errLog = slog.NewLogLogger(i.logger.Handler(), slog.LevelDebug)
	if f := opts.ACME.CARootsFile; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("acme ca_root: %w", err)
		}
		if i.roots, err = x509.SystemCertPool(); err != nil {
			i.roots = x509.NewCertPool()
		}
		if !i.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("acme ca_root %s: no PEM certificate found in it", f)
		}
	}
	i.to = opts.Timeouts
	i.via = newVia(opts.NodeName)
	i.dialer = &net.Dialer{Timeout: i.to.BackendConnect, KeepAlive: 30 * time.Second}
	// For what the fast path (fastconn.go) hands to net/http: HTTP/2 and
	// upgrades.
	i.transport = &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			c, err := i.dialBackend(ctx, addr)
			if err != nil {
				return nil, err
			}
			return newBackendCheck(c), nil
		},
		MaxIdleConnsPerHost:   maxIdleConnsPerBackend,
		IdleConnTimeout:       i.to.BackendIdle,
		ResponseHeaderTimeout: i.to.BackendHeader,
		ExpectContinueTimeout: time.Second,
		// Pass the backend's encoding through untouched instead of having
		// the transport ask for gzip and decompress it again.
		DisableCompression: true,
	}
	i.table.Store(&table{})
	return i, nil
}

// Ready reports whether both listeners are bound (runegate and CoreDNS's
// ready plugin ask).
func (i *Ingress) Ready() (bool, string) {
	if !i.bound.Load() {
		return false, "listeners not bound yet"
	}
	return true, ""
}

// Start binds the listeners, starts certificate management and serving, and
// follows the View until Close.
func (i *Ingress) Start() error {
	var err error
	if i.httpLn, err = net.Listen("tcp", i.opts.HTTPAddr); err != nil {
		return fmt.Errorf("ingress http listener: %w", err)
	}
	if i.httpsLn, err = net.Listen("tcp", i.opts.HTTPSAddr); err != nil {
		i.httpLn.Close()
		return fmt.Errorf("ingress https listener: %w", err)
	}
	i.self, i.selfSeen = newSelfAddrs(i.httpLn, i.httpsLn), map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	i.cancel = cancel
	i.setupCertmagic()

	httpsSrv := i.newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil { // handed over by the fast path
			r.TLS, _ = r.Context().Value(tlsStateKey{}).(*tls.ConnectionState)
		}
		i.serve(w, r, false)
	}))
	// Listing h2 makes httpsSrv.Serve set up HTTP/2 for the connections that
	// negotiated it. The fast path handshakes with its own copy: net/http
	// edits the one it is given.
	httpsSrv.TLSConfig = i.serverTLSConfig()
	fastTLS := httpsSrv.TLSConfig.Clone()
	// The challenge handler answers HTTP-01 from storage, so a challenge
	// started by another edge node is answered here too.
	httpSrv := i.newServer(i.issuer.HTTPChallengeHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { i.serve(w, r, true) })))
	httpsFront := newFront(i, i.httpsLn, fastTLS, httpsSrv)
	if i.hsts != "" {
		httpsFront.hsts = []byte("Strict-Transport-Security: " + i.hsts + "\r\n")
	}
	i.fronts = []*front{newFront(i, i.httpLn, nil, httpSrv), httpsFront}
	i.serveErr = make(chan error, 2*len(i.fronts))
	for _, f := range i.fronts {
		go func() { i.serveErr <- f.srv.Serve(f.handoff) }()
		go func() { i.serveErr <- f.serve() }()
	}

	// From before the first rebuild starts managing certificates, so no
	// certificate stored by another edge node is missed.
	i.certsDone = make(chan struct{})
	go i.watchCerts(ctx, i.log.Tail()+1)
	i.rebuild(ctx)
	i.bound.Store(true)
	i.runDone = make(chan struct{})
	go i.run(ctx)
	return nil
}

func (i *Ingress) newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: i.to.ClientHeader,
		IdleTimeout:       i.to.ClientIdle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          i.errLog,
		ConnContext:       connContext,
	}
}

func (i *Ingress) setupCertmagic() {
	nop := zap.NewNop() // outcomes are logged from events instead, through slog
	i.storage = NewStorage(i.log, i.opts.NodeName, i.opts.ACME.LockLease)
	i.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return i.magic, nil },
		RenewCheckInterval: i.opts.ACME.RenewCheckInterval,
		Logger:             nop,
	})
	i.magic = certmagic.New(i.cache, certmagic.Config{
		Storage:            i.storage,
		RenewalWindowRatio: i.opts.ACME.RenewalWindowRatio,
		OnEvent:            i.onEvent,
		Logger:             nop,
	})
	httpAddr := i.httpLn.Addr().(*net.TCPAddr)
	i.issuer = certmagic.NewACMEIssuer(i.magic, certmagic.ACMEIssuer{
		CA:                      i.opts.ACME.CA,
		Email:                   i.opts.ACME.Email,
		Agreed:                  true,
		TrustedRoots:            i.roots,
		DisableTLSALPNChallenge: true,
		// certmagic starts its own challenge server unless this address is
		// taken; pointing it at our HTTP listener makes it use ours.
		ListenHost:  httpAddr.IP.String(),
		AltHTTPPort: httpAddr.Port,
		Logger:      nop,
	})
	i.magic.Issuers = []certmagic.Issuer{i.issuer}
}

// HTTPAddr and HTTPSAddr are the bound listener addresses (after Start).
func (i *Ingress) HTTPAddr() net.Addr  { return i.httpLn.Addr() }
func (i *Ingress) HTTPSAddr() net.Addr { return i.httpsLn.Addr() }

// Close stops serving (in-flight requests get shutdownTimeout to finish) and
// stops certificate maintenance. Calls after the first return its result.
func (i *Ingress) Close() error {
	i.closeOnce.Do(func() { i.closeErr = i.close() })
	return i.closeErr
}

func (i *Ingress) close() error {
	if i.cancel == nil {
		return nil
	}
	i.cancel()
	<-i.runDone
	<-i.certsDone
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	var errs []error
	for _, f := range i.fronts {
		errs = append(errs, f.shutdown(ctx), f.srv.Shutdown(ctx))
	}
	for range 2 * len(i.fronts) {
		if err := <-i.serveErr; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	i.cache.Stop()
	i.transport.CloseIdleConnections()
	i.pool.Range(func(_, v any) bool {
		v.(*backend).closeIdle(time.Time{}, true)
		return true
	})
	return errors.Join(errs...)
}

func (i *Ingress) run(ctx context.Context) {
	defer close(i.runDone)
	tick := time.NewTicker(statusRefresh)
	defer tick.Stop()
	for {
		// Taken before rebuild reads the snapshot, so a snapshot published
		// during the rebuild still wakes the next one.
		changed := i.view.Changed()
		i.rebuild(ctx)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-i.kick:
		case <-tick.C:
		}
	}
}

// kickRebuild asks the run loop to re-derive routes and certificate states.
func (i *Ingress) kickRebuild() {
	select {
	case i.kick <- struct{}{}:
	default:
	}
}

func (i *Ingress) onEvent(_ context.Context, event string, data map[string]any) error {
	host, _ := data["identifier"].(string)
	switch event {
	case "tls_get_certificate": // every handshake; nothing changes
		return nil
	case "cert_failed":
		msg := fmt.Sprint(data["error"])
		i.errMu.Lock()
		i.certErrs[host] = msg
		i.errMu.Unlock()
		i.logger.Warn("ACME certificate request failed; certmagic retries with back-off", "host", host, "renewal", data["renewal"], "error", msg)
	case "cert_obtained":
		i.errMu.Lock()
		delete(i.certErrs, host)
		i.errMu.Unlock()
		i.logger.Info("ACME certificate obtained", "host", host, "renewal", data["renewal"])
	}
	i.kickRebuild()
	return nil
}

// rebuild derives a new route table from the View, refreshes certificate
// states, starts ACME management for new hosts and stops it for removed
// ones, then swaps the table in.
func (i *Ingress) rebuild(ctx context.Context) {
	used := map[string]bool{}
	t := buildTable(i.view.Snapshot(), func(addr string) *backend {
		if i.self.is(addr) {
			// Proxying to it would loop: leave it out, say so once.
			if !i.selfSeen[addr] {
				i.selfSeen[addr] = true
				i.logger.Warn("endpoint left out of the ingress routes: it is one of the ingress's own listen addresses, and proxying to it would loop", "endpoint", addr)
			}
			return nil
		}
		used[addr] = true
		if v, ok := i.pool.Load(addr); ok {
			return v.(*backend)
		}
		b := i.newBackend(addr)
		i.pool.Store(addr, b)
		return b
	})
	now := time.Now()
	secrets := map[string]cachedSecret{}
	acmeHosts := map[string]bool{}
	var newHosts []string
	for _, r := range t.ordered {
		switch r.tlsMode {
		case TLSManual:
			manualState(ctx, i.log, r, i.secrets, secrets, now)
		case TLSACME:
			acmeHosts[r.host] = true
			if !i.managed[r.host] {
				newHosts = append(newHosts, r.host)
			}
			i.acmeState(r, now)
		}
	}
	i.secrets = secrets
	if e := i.engine(); e != nil {
		e.CatchUp(ctx, t.seq) // see policy.Engine.CatchUp
	}
	old := i.table.Swap(t)
	forgetHosts(old, t)
	idleCutoff := now.Add(-i.to.BackendIdle)
	i.pool.Range(func(k, v any) bool {
		if !used[k.(string)] {
			i.pool.Delete(k)
		}
		v.(*backend).closeIdle(idleCutoff, !used[k.(string)])
		return true
	})

	var gone []certmagic.SubjectIssuer
	for h := range i.managed {
		if !acmeHosts[h] {
			gone = append(gone, certmagic.SubjectIssuer{Subject: h})
			i.errMu.Lock()
			delete(i.certErrs, h)
			i.errMu.Unlock()
		}
	}
	if len(gone) > 0 {
		i.cache.RemoveManaged(gone)
	}
	if len(newHosts) > 0 {
		// Async: obtaining can take minutes and retries on its own; events
		// report the outcome and trigger the next rebuild.
		if err := i.magic.ManageAsync(ctx, newHosts); err != nil {
			i.logger.Warn("ACME: could not start managing certificates", "hosts", newHosts, "error", err)
		}
	}
	i.managed = acmeHosts
	setCertGauges(old, t)
}

func (i *Ingress) acmeState(r *route, now time.Time) {
	var leaf *x509.Certificate
	for _, c := range i.cache.AllMatchingCertificates(r.host) {
		if c.Leaf != nil && (leaf == nil || c.Leaf.NotAfter.After(leaf.NotAfter)) {
			leaf = c.Leaf
		}
	}
	i.errMu.Lock()
	msg := i.certErrs[r.host]
	i.errMu.Unlock()
	switch {
	case leaf != nil && now.Before(leaf.NotAfter):
		r.state, r.notAfter = CertReady, leaf.NotAfter
	case msg != "":
		r.state, r.certErr = CertError, msg
	default:
		r.state = CertPending
	}
}

// manualState loads the route's TLS secret into secrets, re-parsing it only
// when its revision moved since prev.
func manualState(ctx context.Context, log orderedlog.Reader, r *route, prev, secrets map[string]cachedSecret, now time.Time) {
	key := secretKey(r.service.Namespace, r.secret)
	cs, seen := secrets[key]
	if !seen {
		kv, ok, _, err := log.Get(ctx, key)
		switch {
		case err != nil:
			cs = cachedSecret{err: fmt.Errorf("reading TLS secret %s/%s: %w", r.service.Namespace, r.secret, err)}
		case !ok:
			cs = cachedSecret{err: fmt.Errorf("TLS secret %s/%s not found: create it with `rune secret tls create %s --cert FILE --key FILE` in namespace %s", r.service.Namespace, r.secret, r.secret, r.service.Namespace)}
		case prev[key].rev == kv.Rev:
			cs = prev[key]
		default:
			cert, err := decodeTLSSecret(r.service.Namespace, r.secret, kv.Value, now)
			cs = cachedSecret{rev: kv.Rev, cert: cert, err: err}
		}
		secrets[key] = cs
	}
	switch {
	case cs.err != nil:
		r.state, r.certErr = CertError, cs.err.Error()
	case now.After(cs.cert.Leaf.NotAfter):
		r.state, r.certErr, r.notAfter = CertError, "certificate expired", cs.cert.Leaf.NotAfter
	case cs.cert.Leaf.VerifyHostname(sampleName(r.host)) != nil:
		r.state, r.certErr = CertError, fmt.Sprintf("the certificate in secret %s (%s) does not cover %s", r.secret, leafNames(cs.cert.Leaf), r.host)
	default:
		r.state, r.cert, r.notAfter = CertReady, cs.cert, cs.cert.Leaf.NotAfter
	}
}

// sampleName turns a wildcard host into a name it matches, to check that a
// certificate covers it.
func sampleName(host string) string {
	if len(host) > 1 && host[0] == '*' {
		return "x" + host[1:]
	}
	return host
}

// getCertificate serves only hosts that have a route with TLS; anything else
// fails the handshake, so probing with arbitrary SNI (or none) reveals no
// other host's certificate. A name without a route gets no certificate and
// no error, which makes crypto/tls answer with the unrecognized_name alert
// (RFC 6066 section 3) rather than internal_error.
func (i *Ingress) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	host := requestHost(hello.ServerName)
	r := i.table.Load().lookup(host)
	switch {
	case r == nil || r.tlsMode == TLSNone:
		return nil, nil
	case r.tlsMode == TLSACME:
		return i.magic.GetCertificate(hello)
	case r.cert == nil:
		return nil, fmt.Errorf("%s: %s", host, r.certErr)
	}
	return r.cert, nil
}

// verdict is what the edge does with a request.
type verdict int

const (
	verdictProxy verdict = iota
	verdictNotFound
	verdictStale
	verdictForbidden
	verdictRedirect
	verdictMisdirected // 421: the Host is not the TLS connection's route (see misdirected)
)

// admission is admit's decision.
type admission struct {
	rt      *route // nil for verdictNotFound
	verdict verdict
	// For verdictForbidden: the verdict to count the drop with, once the
	// 403 is answered (when count is set).
	count  bool
	policy policy.Verdict
}

// admit decides what the edge does with a request for host (normalized by
// requestHost) from client, arriving on the plain HTTP listener or on the TLS
// one with the handshake's serverName. Both serving paths ask it: serve, and
// the fast path, which forwards only verdictProxy requests itself.
func (i *Ingress) admit(host, serverName string, client netip.AddrPort, plain bool) admission {
	t := i.table.Load()
	rt := t.lookup(host)
	switch {
	case !plain && t.misdirected(serverName, rt):
		return admission{rt: rt, verdict: verdictMisdirected}
	case rt == nil:
		return admission{verdict: verdictNotFound}
	case i.view.Stale():
		// Fail closed: routes may point at endpoints that are gone.
		return admission{rt: rt, verdict: verdictStale}
	}
	e := i.engine()
	if rt.policed && (e == nil || e.Tables().Seq < t.seq) {
		// No tables that know this route's policy yet: fail closed.
		return admission{rt: rt, verdict: verdictForbidden, count: true, policy: policy.NotReady(rt.service)}
	}
	if e != nil {
		// Edge traffic has no service identity, so only CIDR peers can
		// allow it (see policy.Engine.Edge).
		if !client.IsValid() {
			return admission{rt: rt, verdict: verdictForbidden} // unknowable client: fail closed
		}
		if v := e.Edge(client.Addr().Unmap(), rt.service, rt.port); !v.Allowed {
			return admission{rt: rt, verdict: verdictForbidden, count: true, policy: v}
		}
	}
	if plain && rt.tlsMode != TLSNone && rt.certReady() {
		return admission{rt: rt, verdict: verdictRedirect}
	}
	return admission{rt: rt, verdict: verdictProxy}
}

// serve handles one request on either listener, for what the fast path
// hands over (see fastconn.go), behind its gate (gate.go).
func (i *Ingress) serve(w http.ResponseWriter, r *http.Request, plain bool) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	host := requestHost(r.Host)
	client, _ := netip.ParseAddrPort(r.RemoteAddr)
	var serverName string
	if r.TLS != nil {
		serverName = r.TLS.ServerName
	}
	a := i.admit(host, serverName, client, plain)
	label := "unknown" // not the Host header: clients must not be able to mint label values
	if a.rt != nil {
		label = a.rt.host
	}
	// Set before proxying: ReverseProxy adds the backend's fields after it.
	if !plain && i.hsts != "" && a.verdict != verdictMisdirected {
		sw.Header().Set("Strict-Transport-Security", i.hsts)
	}
	var count requestCounter
	defer func() { count.inc(label, sw.status(), start) }() // also when ReverseProxy aborts with http.ErrAbortHandler
	switch {
	case r.Method == http.MethodConnect:
		// An edge router is no forward proxy; what follows a CONNECT is not
		// HTTP, so the connection ends with the answer.
		sw.Header().Set("Connection", "close")
		http.Error(sw, "CONNECT is not supported", http.StatusMethodNotAllowed)
	case a.verdict == verdictProxy && i.via.in(r.Header.Values("Via")):
		i.loop(label)
		http.Error(sw, "loop detected: this request was forwarded by this ingress before", http.StatusLoopDetected)
	default:
		i.answer(sw, r, a, host)
	}
}

// answer serves an admitted request by its verdict.
func (i *Ingress) answer(sw *statusWriter, r *http.Request, a admission, host string) {
	switch a.verdict {
	case verdictMisdirected:
		if r.ProtoMajor == 1 {
			sw.Header().Set("Connection", "close") // the client retries on a new connection
		}
		http.Error(sw, "misdirected request: this TLS connection was made for another host", http.StatusMisdirectedRequest)
	case verdictNotFound:
		http.NotFound(sw, r)
	case verdictStale:
		http.Error(sw, "ingress routing state is stale", http.StatusServiceUnavailable)
	case verdictForbidden:
		if a.count {
			policy.CountDrop(a.policy)
		}
		http.Error(sw, "forbidden by the service's network policy", http.StatusForbidden)
	case verdictRedirect:
		http.Redirect(sw, r, i.httpsURL(host, r), http.StatusPermanentRedirect)
	default:
		b := balance.Pick(a.rt.backends, nil, time.Now().UnixNano())
		if b == nil {
			http.Error(sw, fmt.Sprintf("no ready endpoints for service %s", a.rt.service), http.StatusServiceUnavailable)
			break
		}
		b.inflight.Add(1)
		defer b.inflight.Add(-1)
		b.proxy.ServeHTTP(sw, r)
	}
}

// engine is the current policy engine, nil when there is none.
func (i *Ingress) engine() *policy.Engine {
	if i.opts.Policy == nil {
		return nil
	}
	return i.opts.Policy()
}

func (i *Ingress) httpsURL(host string, r *http.Request) string {
	if port := i.httpsLn.Addr().(*net.TCPAddr).Port; port != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(port))
	}
	return "https://" + host + r.URL.RequestURI()
}
