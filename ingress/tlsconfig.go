package ingress

import "crypto/tls"

// intermediateSuites are the TLS 1.2 cipher suites of Mozilla's
// "intermediate" server profile that crypto/tls implements: ECDHE key
// exchange with an AEAD cipher. Go's own default list also offers the
// CBC-SHA1 suites, which that profile drops. TLS 1.3 suites are not
// configurable in Go and are all AEAD.
var intermediateSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// serverTLSConfig is the HTTPS listener's configuration: TLS 1.2 and 1.3
// with the intermediate suites, certificates chosen per server name by
// getCertificate, and HTTP/2 offered by ALPN.
func (i *Ingress) serverTLSConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: i.getCertificate,
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   intermediateSuites,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}
