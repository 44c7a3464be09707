// Package status is what the edge ingress reports through the API: a row per
// route (`rune get ingresses`) and per TLS secret (`rune get secrets`). It is
// apart from ingress/ so that the API and the CLI can use the rows without
// linking the ingress (certmagic and all).
package status

import (
	"fmt"
	"time"
)

// Row is one line of `rune get ingresses`.
type Row struct {
	Namespace string    `json:"namespace"`
	Service   string    `json:"service"`
	Host      string    `json:"host"`
	TLS       string    `json:"tls"`            // none, acme, manual
	Cert      string    `json:"cert,omitempty"` // pending, ready, error; empty without TLS
	NotAfter  time.Time `json:"notAfter,omitzero"`
	Error     string    `json:"error,omitempty"` // why Cert is error
	// Issuer and Serial identify the certificate: for ACME the one in the
	// log, which every edge node loads, so they are the same on every node.
	Issuer string `json:"issuer,omitempty"`
	Serial string `json:"serial,omitempty"` // hexadecimal, as openssl prints it
	// Ordering is the edge node whose ACME order (or renewal) for the host
	// is under way: one at a time for the whole cluster.
	Ordering string `json:"ordering,omitempty"`
	// Edges are the edge nodes serving the host: every live node with the
	// edge role (they all serve every exposed host).
	Edges []string `json:"edges,omitempty"`
}

// Secret describes a stored secret without its key material: one line of
// `rune get secrets`.
type Secret struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	Hosts     []string  `json:"hosts"`
	NotAfter  time.Time `json:"notAfter,omitzero"`
	// Error says why the stored value is not a usable TLS secret.
	Error string `json:"error,omitempty"`
}

// Expires renders the time left as the CLI shows it: whole days ("89d"),
// hours under a day, "expired", or "-" without a certificate.
func (r Row) Expires(now time.Time) string {
	if r.NotAfter.IsZero() {
		return "-"
	}
	switch left := r.NotAfter.Sub(now); {
	case left <= 0:
		return "expired"
	case left < 24*time.Hour:
		return fmt.Sprintf("%dh", int(left/time.Hour))
	default:
		return fmt.Sprintf("%dd", int(left/(24*time.Hour)))
	}
}
