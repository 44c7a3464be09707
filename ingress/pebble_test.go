package ingress

import (
	"net"
	"testing"
	"time"

	"github.com/runenet/runenet/internal/pebbletest"
)

// pebble is an ACME test server on loopback whose validation authority
// resolves every name to 127.0.0.1 and connects to our ingress's HTTP port.
// newPebble fixes its URL and trust root so the ingress can be configured
// first; start runs it once the ingress's HTTP port is known.
type pebble struct{ *pebbletest.Pebble }

func newPebble(t *testing.T, validity time.Duration) *pebble {
	t.Helper()
	return &pebble{pebbletest.New(t, pebbletest.Options{Validity: validity})}
}

func (p *pebble) start(t *testing.T, httpPort int) {
	t.Helper()
	p.Start(t, httpPort, pebbletest.LoopbackDNS(t))
}

// acme is ACMEOptions for this Pebble, with lease as the lock lease.
func (p *pebble) acme(lease time.Duration) ACMEOptions {
	return ACMEOptions{CA: p.DirURL, CARootsFile: p.RootFile, Email: "ops@example.test", LockLease: lease}
}

// startACMEIngress starts an ingress whose ACME CA is a fresh Pebble issuing
// certificates valid for validity.
func startACMEIngress(t *testing.T, n *node, validity time.Duration, acme ACMEOptions) (*Ingress, *pebble) {
	t.Helper()
	p := newPebble(t, validity)
	own := p.acme(acme.LockLease)
	acme.CA, acme.CARootsFile, acme.Email = own.CA, own.CARootsFile, own.Email
	ing := startIngress(t, n, acme)
	p.start(t, ing.HTTPAddr().(*net.TCPAddr).Port)
	return ing, p
}
