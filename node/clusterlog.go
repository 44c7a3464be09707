package node

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/runenet/runenet/node/nodeconfig"
	"github.com/runenet/runenet/orderedlog"
	"github.com/runenet/runenet/orderedlog/badger"
	"github.com/runenet/runenet/orderedlog/raft"
)

// nodeCertValidity is how long a node certificate issued at bootstrap lasts.
const nodeCertValidity = 10 * 365 * 24 * time.Hour

// openLog opens the node's OrderedLog: Badger in DataDir/store, or, with a
// cluster address, this node's member of the Raft cluster in DataDir/raft
// with its TLS material in DataDir/cluster-tls.
func openLog(cfg nodeconfig.Config) (orderedlog.Log, error) {
	store := filepath.Join(cfg.DataDir, "store")
	if cfg.ClusterAddr == "" {
		lg, err := badger.Open(store, badger.Options{DiskReserve: cfg.DiskReserve})
		if err != nil {
			return nil, fmt.Errorf("opening the store in %s: %w", cfg.DataDir, err)
		}
		return lg, nil
	}
	dir := filepath.Join(cfg.DataDir, "raft")
	_, err := os.Stat(dir)
	fresh := errors.Is(err, fs.ErrNotExist)
	if fresh && !empty(store) {
		// Starting a cluster here would hide every service and VIP the
		// single-node store holds.
		return nil, fmt.Errorf("--cluster-addr: %s holds a single-node store; turning it into a cluster's first node is not supported yet — run without --cluster-addr, or use another --data-dir", store)
	}
	tlsConf, err := clusterTLS(cfg, fresh)
	if err != nil {
		return nil, err
	}
	tr, err := raft.ListenTLS(cfg.ClusterAddr, tlsConf, slog.Default())
	if err != nil {
		return nil, fmt.Errorf("--cluster-addr %s: %w", cfg.ClusterAddr, err)
	}
	lg, err := raft.Open(raft.Options{NodeID: cfg.NodeName, Dir: dir, Transport: tr, Bootstrap: cfg.Bootstrap})
	if err != nil {
		return nil, fmt.Errorf("opening the cluster log in %s: %w", dir, err)
	}
	return lg, nil
}

// clusterTLS loads the node's cluster certificate, or on a fresh bootstrap
// creates the cluster CA and issues it.
func clusterTLS(cfg nodeconfig.Config, fresh bool) (raft.TLSConfig, error) {
	dir := filepath.Join(cfg.DataDir, "cluster-tls")
	caPath, certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "node.pem"), filepath.Join(dir, "node-key.pem")
	if fresh {
		if !cfg.Bootstrap {
			return raft.TLSConfig{}, errors.New("--cluster-addr: this data directory belongs to no cluster yet; start the first node with --bootstrap (joining another node's cluster is not supported yet)")
		}
		ca, err := raft.NewCA(cfg.NodeName)
		if err != nil {
			return raft.TLSConfig{}, fmt.Errorf("creating the cluster CA: %w", err)
		}
		cert, key, err := ca.Issue(cfg.NodeName, nodeCertValidity)
		if err != nil {
			return raft.TLSConfig{}, fmt.Errorf("issuing this node's certificate: %w", err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return raft.TLSConfig{}, err
		}
		for path, data := range map[string][]byte{caPath: ca.CertPEM, filepath.Join(dir, "ca-key.pem"): ca.KeyPEM, certPath: cert, keyPath: key} {
			if err := os.WriteFile(path, data, 0o600); err != nil {
				return raft.TLSConfig{}, fmt.Errorf("writing %s: %w", path, err)
			}
		}
	}
	var c raft.TLSConfig
	for _, f := range []struct {
		path string
		dst  *[]byte
	}{{caPath, &c.CAPEM}, {certPath, &c.CertPEM}, {keyPath, &c.KeyPEM}} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return raft.TLSConfig{}, fmt.Errorf("cluster TLS: %w", err)
		}
		*f.dst = b
	}
	return c, nil
}

func empty(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err != nil || len(entries) == 0
}

// validClusterAddr checks a --cluster-addr: the other nodes dial it, so it
// needs a concrete IP and a port.
func validClusterAddr(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		if _, _, herr := net.SplitHostPort(addr); herr == nil {
			return fmt.Errorf("--cluster-addr %q: want IP:PORT (an address the other nodes reach, not a host name)", addr)
		}
		return fmt.Errorf("--cluster-addr %q: want IP:PORT", addr)
	}
	if ap.Addr().IsUnspecified() || ap.Port() == 0 {
		return fmt.Errorf("--cluster-addr %q: the other nodes dial this address, so it needs a concrete IP and port", addr)
	}
	return nil
}
