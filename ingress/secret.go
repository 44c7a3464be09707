package ingress

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/runenet/runenet/ingress/status"
	"github.com/runenet/runenet/orderedlog"
)

// tlsSecret is the value stored under secrets/<ns>/<name> for a TLS secret.
type tlsSecret struct {
	Type string `json:"type"` // "tls"
	Cert string `json:"cert"` // PEM chain, leaf first
	Key  string `json:"key"`  // PEM private key
}

const secretTypeTLS = "tls"

func secretKey(ns, name string) string { return orderedlog.PrefixSecrets + ns + "/" + name }

// StoreTLSSecret validates a certificate chain and its private key and stores
// them as the TLS secret ns/name for `tls: {mode: manual, secret: name}`,
// replacing any previous value. It reports what it did as kubectl apply
// does: created, configured, or unchanged (nothing written). Nothing is
// written when validation fails.
func StoreTLSSecret(ctx context.Context, log orderedlog.Log, ns, name string, certPEM, keyPEM []byte) (string, error) {
	for what, v := range map[string]string{"namespace": ns, "secret name": name} {
		if !validName(v) {
			return "", fmt.Errorf("%s %q is invalid: use 1-253 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit", what, v)
		}
	}
	if _, err := parseKeyPair(certPEM, keyPEM, time.Now()); err != nil {
		return "", fmt.Errorf("TLS secret %s/%s: %w", ns, name, err)
	}
	v, err := json.Marshal(tlsSecret{Type: secretTypeTLS, Cert: string(certPEM), Key: string(keyPEM)})
	if err != nil {
		return "", err
	}
	cur, exists, _, err := log.Get(ctx, secretKey(ns, name))
	switch {
	case err != nil:
		return "", err
	case exists && bytes.Equal(cur.Value, v):
		return "unchanged", nil
	}
	// Conditional on what was read, so the action reported is the one done.
	if _, err := log.Propose(ctx, []orderedlog.Op{orderedlog.PutIf(secretKey(ns, name), v, cur.Rev)}); err != nil {
		return "", err
	}
	if exists {
		return "configured", nil
	}
	return "created", nil
}

// ListSecrets describes the secrets of ns ("" = every namespace), in
// namespace and name order.
func ListSecrets(ctx context.Context, log orderedlog.Reader, ns string) ([]status.Secret, error) {
	prefix := orderedlog.PrefixSecrets
	if ns != "" {
		prefix += ns + "/"
	}
	kvs, _, err := log.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]status.Secret, 0, len(kvs))
	now := time.Now()
	for _, kv := range kvs {
		sns, name, _ := strings.Cut(strings.TrimPrefix(kv.Key, orderedlog.PrefixSecrets), "/")
		info := status.Secret{Namespace: sns, Name: name, Type: secretTypeTLS, Hosts: []string{}}
		cert, err := decodeTLSSecret(sns, name, kv.Value, now)
		if err != nil {
			info.Error = err.Error()
		} else if leaf := cert.Leaf; leaf != nil {
			info.Hosts, info.NotAfter = append(info.Hosts, leaf.DNSNames...), leaf.NotAfter
		}
		out = append(out, info)
	}
	return out, nil
}

// DeleteSecret removes the secret ns/name; found reports whether it existed.
func DeleteSecret(ctx context.Context, log orderedlog.Log, ns, name string) (found bool, err error) {
	cur, exists, _, err := log.Get(ctx, secretKey(ns, name))
	if err != nil || !exists {
		return false, err
	}
	_, err = log.Propose(ctx, []orderedlog.Op{orderedlog.DeleteIf(secretKey(ns, name), cur.Rev)})
	return err == nil, err
}

// parseKeyPair checks what a served certificate needs: PEM that parses, a
// key that belongs to the leaf, and a leaf that has not expired.
func parseKeyPair(certPEM, keyPEM []byte, now time.Time) (*tls.Certificate, error) {
	if err := checkPEM(certPEM, "certificate", "CERTIFICATE"); err != nil {
		return nil, err
	}
	if err := checkPEM(keyPEM, "key", "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"); err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if strings.Contains(err.Error(), "does not match") {
			return nil, errors.New("the private key does not match the certificate's public key: check that --key is the key the certificate was issued for")
		}
		return nil, fmt.Errorf("certificate or key does not parse: %v", err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certificate does not parse: %v", err)
		}
		pair.Leaf = leaf
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("the certificate for %s expired on %s: renew it before uploading", leafNames(leaf), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &pair, nil
}

// checkPEM reports a missing or mislabelled PEM block before tls.X509KeyPair
// would, with a message that says which file is wrong.
func checkPEM(data []byte, what string, types ...string) error {
	var found []string
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		for _, t := range types {
			if b.Type == t {
				return nil
			}
		}
		found = append(found, b.Type)
	}
	if len(found) == 0 {
		return fmt.Errorf("the %s is not PEM (expected a %q block)", what, types[0])
	}
	return fmt.Errorf("the %s has no %q PEM block (found %s)", what, types[0], strings.Join(found, ", "))
}

func leafNames(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return strings.Join(c.DNSNames, ", ")
	}
	return c.Subject.CommonName
}

// decodeTLSSecret parses a stored TLS secret; it is re-checked on load
// because a secret written by an older version or by hand may be bad.
func decodeTLSSecret(ns, name string, value []byte, now time.Time) (*tls.Certificate, error) {
	var s tlsSecret
	if err := json.Unmarshal(value, &s); err != nil || s.Type != secretTypeTLS {
		return nil, fmt.Errorf("secret %s/%s is not a TLS secret", ns, name)
	}
	cert, err := parseKeyPair([]byte(s.Cert), []byte(s.Key), now)
	if err != nil {
		return nil, fmt.Errorf("TLS secret %s/%s: %w", ns, name, err)
	}
	return cert, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && (c != '-' && c != '.' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}
