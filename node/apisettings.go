package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/runenet/runenet/api"
	"github.com/runenet/runenet/node/nodeconfig"
)

// apiSettings reads the API's tokens and certificate as cfg names them.
// Errors name the Corefile option and flag that set the file.
func apiSettings(cfg nodeconfig.Config) (*api.Server, *tls.Config, error) {
	srv := &api.Server{Token: cfg.APIToken, Debug: cfg.DebugAPI}
	var err error
	if cfg.APITokenFile != "" {
		if cfg.APIToken != "" {
			return nil, nil, errors.New("api: token and token_file (--api-token-file) are exclusive: give the token one way")
		}
		if srv.Token, err = readToken("token_file (--api-token-file)", cfg.APITokenFile); err != nil {
			return nil, nil, err
		}
	}
	if cfg.APIReadTokenFile != "" {
		if srv.Token == "" {
			return nil, nil, errors.New("api: read_token_file (--api-read-token-file) needs token_file (--api-token-file) too: without a full token every request may write")
		}
		if srv.ReadToken, err = readToken("read_token_file (--api-read-token-file)", cfg.APIReadTokenFile); err != nil {
			return nil, nil, err
		}
		if srv.ReadToken == srv.Token {
			return nil, nil, fmt.Errorf("api: the read-only token in %s is the full token: give it a token of its own", cfg.APIReadTokenFile)
		}
	}
	if err := api.CheckToken(cfg.APIAddr, srv.Token); err != nil {
		return nil, nil, err
	}
	if (cfg.APITLSCert == "") != (cfg.APITLSKey == "") {
		return nil, nil, errors.New("api: tls needs both a certificate and a key (--api-tls-cert and --api-tls-key)")
	}
	if cfg.APITLSCert == "" {
		return srv, nil, nil
	}
	if !strings.HasPrefix(cfg.APIAddr, "tcp://") {
		return nil, nil, fmt.Errorf("api: tls (--api-tls-cert) serves a tcp:// API, and the API address is %s", cfg.APIAddr)
	}
	pair, err := tls.LoadX509KeyPair(cfg.APITLSCert, cfg.APITLSKey)
	if err != nil {
		return nil, nil, fmt.Errorf("api tls %s %s: %w", cfg.APITLSCert, cfg.APITLSKey, err)
	}
	return srv, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// readToken reads a token file, the error naming the option that set it.
func readToken(what, file string) (string, error) {
	tok, err := nodeconfig.ReadToken(file)
	if err != nil {
		return "", fmt.Errorf("api %s: %w", what, err)
	}
	return tok, nil
}
