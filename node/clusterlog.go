package node

import (
	"context"
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

// openLog opens the node's OrderedLog: Badger in DataDir/store, or, with a
// cluster address, this node's member of the Raft cluster in DataDir/raft
// with its TLS material in DataDir/cluster-tls: ca.pem, node.pem,
// node-key.pem and ca-key.pem, which every member keeps so that any member
// admits joining nodes (orderedlog/raft/join.go says why it is not kept in
// the log).
func openLog(cfg nodeconfig.Config) (orderedlog.Log, error) {
	store := filepath.Join(cfg.DataDir, "store")
	if cfg.ClusterAddr == "" {
		lg, err := badger.Open(store, badger.Options{DiskReserve: cfg.DiskReserve})
		if err != nil {
			return nil, fmt.Errorf("opening the store in %s: %w", cfg.DataDir, err)
		}
		return lg, nil
	}
	tlsDir := filepath.Join(cfg.DataDir, "cluster-tls")
	_, err := os.Stat(filepath.Join(tlsDir, "node.pem"))
	member := err == nil
	dir := filepath.Join(cfg.DataDir, "raft")
	_, err = os.Stat(dir)
	fresh := errors.Is(err, fs.ErrNotExist)
	if fresh && !empty(store) && !cfg.Bootstrap {
		// Joining a cluster here would hide every service and VIP the
		// single-node store holds; --bootstrap migrates them instead.
		return nil, fmt.Errorf("--cluster-addr: %s holds a single-node store; only --bootstrap turns it into a cluster (as its first node, with the same services and VIPs) — to join another cluster use another --data-dir", store)
	}
	// A joiner listens before it asks to join: the leader replicates to it
	// as soon as it is added, and its dials wait in the backlog meanwhile.
	var ln net.Listener
	switch {
	case member:
		if cfg.Join != "" || cfg.JoinToken != "" {
			slog.Info("this data directory already belongs to a cluster: --join and --join-token are ignored", "data-dir", cfg.DataDir)
		}
	case cfg.Bootstrap:
		if err := createCluster(cfg.NodeName, tlsDir); err != nil {
			return nil, err
		}
	case cfg.Join != "":
		if ln, err = joinCluster(cfg, tlsDir); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("--cluster-addr: this data directory belongs to no cluster yet; start the first node with --bootstrap, or join one with --join MEMBER_ADDR --join-token TOKEN (from rune cluster join-token on a member)")
	}
	tlsConf, ca, err := loadClusterTLS(tlsDir, cfg.NodeName)
	if err == nil {
		err = adoptStore(cfg, fresh, store, dir)
	}
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return nil, err
	}
	var tr raft.Transport
	if ln != nil {
		tr, err = raft.ListenTLSOn(ln, tlsConf, slog.Default())
	} else {
		tr, err = raft.ListenTLS(cfg.ClusterAddr, tlsConf, slog.Default())
	}
	if err != nil {
		return nil, fmt.Errorf("--cluster-addr %s: %w", cfg.ClusterAddr, err)
	}
	lg, err := raft.Open(raft.Options{NodeID: cfg.NodeName, Dir: dir, Transport: tr, Bootstrap: cfg.Bootstrap, CA: ca})
	if err != nil {
		return nil, fmt.Errorf("opening the cluster log in %s: %w", dir, err)
	}
	return lg, nil
}

// createCluster creates the cluster CA and this node's certificate.
func createCluster(node, tlsDir string) error {
	ca, err := raft.NewCA(node)
	if err != nil {
		return fmt.Errorf("creating the cluster CA: %w", err)
	}
	cert, key, err := ca.Issue(node, raft.NodeCertValidity)
	if err != nil {
		return fmt.Errorf("issuing this node's certificate: %w", err)
	}
	return writeClusterTLS(tlsDir, raft.TLSConfig{CAPEM: ca.CertPEM, CertPEM: cert, KeyPEM: key}, ca.KeyPEM)
}

// joinTimeout bounds asking a member to admit this node.
const joinTimeout = time.Minute

// joinCluster has the member at --join admit this node with the join
// token, and stores what it got. It returns the cluster listener, already
// open.
func joinCluster(cfg nodeconfig.Config, tlsDir string) (net.Listener, error) {
	if cfg.JoinToken == "" {
		return nil, fmt.Errorf("--join %s: this data directory belongs to no cluster yet, so joining needs a join token: --join-token TOKEN, from rune cluster join-token on a member", cfg.Join)
	}
	ln, err := net.Listen("tcp", cfg.ClusterAddr)
	if err != nil {
		return nil, fmt.Errorf("--cluster-addr %s: %w", cfg.ClusterAddr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	j, err := raft.Join(ctx, cfg.Join, cfg.JoinToken, cfg.NodeName, cfg.ClusterAddr)
	if err == nil {
		err = writeClusterTLS(tlsDir, j.TLS, j.CAKeyPEM)
	}
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("--join %s: %w", cfg.Join, err)
	}
	slog.Info("joined the cluster as a non-voter", "via", cfg.Join, "node", cfg.NodeName)
	return ln, nil
}

func writeClusterTLS(dir string, c raft.TLSConfig, caKey []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// node.pem last: it marks the directory as a member's (openLog).
	for _, f := range []struct {
		name string
		data []byte
	}{{"ca.pem", c.CAPEM}, {"ca-key.pem", caKey}, {"node-key.pem", c.KeyPEM}, {"node.pem", c.CertPEM}} {
		path := filepath.Join(dir, f.name)
		if err := os.WriteFile(path, f.data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}

// loadClusterTLS reads the node's cluster certificate, which must be node's,
// and, when the node has it, the CA key.
func loadClusterTLS(dir, node string) (raft.TLSConfig, *raft.CA, error) {
	var c raft.TLSConfig
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{"ca.pem", &c.CAPEM}, {"node.pem", &c.CertPEM}, {"node-key.pem", &c.KeyPEM}} {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			return raft.TLSConfig{}, nil, fmt.Errorf("cluster TLS: %w", err)
		}
		*f.dst = b
	}
	// The cluster knows the node by the name in its certificate: another
	// --node-name would be a member no one added.
	owner, err := raft.CertNodeName(c.CertPEM)
	if err != nil {
		return raft.TLSConfig{}, nil, fmt.Errorf("cluster TLS: %s: %w", filepath.Join(dir, "node.pem"), err)
	}
	if owner != node {
		return raft.TLSConfig{}, nil, fmt.Errorf("--node-name %s: this data directory's cluster certificate (%s) is node %s's; start it with --node-name %s, or use another --data-dir", node, filepath.Join(dir, "node.pem"), owner, owner)
	}
	key, err := os.ReadFile(filepath.Join(dir, "ca-key.pem"))
	if errors.Is(err, fs.ErrNotExist) {
		slog.Warn("cluster TLS: no ca-key.pem: this node cannot admit joining nodes or create join tokens", "dir", dir)
		return c, nil, nil
	}
	if err != nil {
		return raft.TLSConfig{}, nil, fmt.Errorf("cluster TLS: %w", err)
	}
	ca, err := raft.LoadCA(c.CAPEM, key)
	if err != nil {
		return raft.TLSConfig{}, nil, fmt.Errorf("cluster TLS: %s: %w", filepath.Join(dir, "ca-key.pem"), err)
	}
	return c, ca, nil
}

func empty(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err != nil || len(entries) == 0
}

// validClusterConfig checks the cluster flags: --cluster-addr, and
// --bootstrap or --join with its token.
func validClusterConfig(c nodeconfig.Config) error {
	if err := validClusterAddr(c.ClusterAddr); err != nil {
		return err
	}
	switch {
	case c.Bootstrap && c.Join != "":
		return errors.New("--bootstrap creates a new cluster, --join joins an existing one: give one of them")
	case c.JoinToken != "" && c.Join == "":
		return errors.New("--join-token needs --join, the cluster address of a member to join through")
	}
	if _, _, err := net.SplitHostPort(c.Join); c.Join != "" && err != nil {
		return fmt.Errorf("--join %q: want IP:PORT, a member's --cluster-addr", c.Join)
	}
	return nil
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
