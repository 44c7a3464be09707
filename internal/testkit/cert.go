package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ServerCert writes a self-signed server certificate for 127.0.0.1 and
// localhost, and its key, as PEM files in a temp dir; the certificate is
// its own CA, so a client trusts it by its file.
func ServerCert(tb testing.TB) (certFile, keyFile string) {
	tb.Helper()
	return ServerCertFor(tb, "127.0.0.1", "localhost")
}

// ServerCertFor is ServerCert for hosts (IP addresses or DNS names).
func ServerCertFor(tb testing.TB, hosts ...string) (certFile, keyFile string) {
	tb.Helper()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "runed test server"},
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	certPEM, keyPEM := selfSign(tb, tmpl)
	dir := tb.TempDir()
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	for f, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return certFile, keyFile
}

// SelfSigned returns a PEM certificate for host, valid from an hour ago for
// validFor, and its PEM private key: what an operator uploads with
// `rune secret tls create`.
func SelfSigned(tb testing.TB, host string, validFor time.Duration) (certPEM, keyPEM []byte) {
	tb.Helper()
	return selfSign(tb, &x509.Certificate{Subject: pkix.Name{CommonName: host}, DNSNames: []string{host}, NotAfter: time.Now().Add(validFor)})
}

// selfSign signs tmpl (serial 1, valid from an hour ago) with a new P-256
// key and returns both as PEM.
func selfSign(tb testing.TB, tmpl *x509.Certificate) (certPEM, keyPEM []byte) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl.SerialNumber, tmpl.NotBefore = big.NewInt(1), time.Now().Add(-time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}
