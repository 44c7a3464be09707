// Package nodeconfig is what a node runtime is opened with. It is its own
// package, with no dependency beyond the standard library, so that Corefile
// parsing (plugin/rune, plugin/pkg/nodeopt) can build one without linking
// the runtime itself (the store, the data path) into a stock CoreDNS.
package nodeconfig

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Config is what a node runtime is opened with.
type Config struct {
	DataDir     string
	ClusterCIDR string // default 10.96.0.0/16
	APIAddr     string // default unix://<DataDir>/runed.sock
	// APIToken, or the token in APITokenFile, is the bearer token the API
	// requires for every request; a tcp:// API refuses to start without one.
	APIToken     string
	APITokenFile string
	// APIReadTokenFile holds a second token that may only list and watch
	// (what a stock CoreDNS's `rune { endpoint ... }` needs).
	APIReadTokenFile string
	// APITLSCert and APITLSKey (PEM files) serve a tcp:// API over TLS.
	APITLSCert, APITLSKey string
	// DebugAPI enables fault injection (`rune debug pause-watch`).
	DebugAPI    bool
	StaleBudget time.Duration // default 30s
	HoldPeriod  time.Duration // VIP hold after delete; default 1h
	DevMode     bool
	NodeName    string // default the host name's first label, lower-cased
	// DiskReserve is the free space (bytes) the store keeps on its
	// filesystem, refusing writes below it; 0 is the default
	// (orderedlog.DefaultDiskReserve), negative turns the guard off.
	DiskReserve int64
	// Docker, when set, makes this node's running containers labelled
	// rune.service its instances: "default" for $DOCKER_HOST or the local
	// socket, else an Engine address (unix:// or tcp://).
	Docker string
	// DockerNetwork names the bridge network the Docker source keeps on
	// the node's subnet (default "rune").
	DockerNetwork string
	// ClusterAddr (IP:PORT), when set, makes the node a member of a Raft
	// cluster that carries the OrderedLog, on this one mutual-TLS port;
	// without it the log is single-node Badger. Bootstrap creates the
	// cluster (and its CA) on a data directory that belongs to none; Join
	// (a member's cluster address) with JoinToken joins one. A data
	// directory that already belongs to a cluster ignores both.
	ClusterAddr string
	Bootstrap   bool
	Join        string
	JoinToken   string
	// ContainerCIDR is the cluster-wide range node container subnets are
	// carved from (default 10.88.0.0/16); NodeSubnet, when set, is this
	// node's own instead of the lowest free /24 of it.
	ContainerCIDR string
	NodeSubnet    string
	// NoRoutes turns off the routes to peers' subnets (routes off).
	NoRoutes bool
	// NodeGrace is how long a node may miss heartbeats before the leader
	// marks its instances unready (default 30s).
	NodeGrace time.Duration
}

// redacted is Config without its methods, so formatting it does not recurse.
type redacted Config

// String formats c for logs and errors (%v and %+v use it) with the tokens
// replaced: a Config ends up in messages, a token must not.
func (c Config) String() string {
	r := redacted(c)
	if r.APIToken != "" {
		r.APIToken = "REDACTED"
	}
	if r.JoinToken != "" {
		r.JoinToken = "REDACTED"
	}
	return fmt.Sprintf("%+v", r)
}

// LogValue is the slog form of c, token redacted as in String.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// GoString keeps %#v from printing the token too.
func (c Config) GoString() string { return "nodeconfig.Config" + c.String() }

// ReadToken reads a token file (token_file, read_token_file): one word on
// one line, surrounding space ignored.
func ReadToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	tok := string(bytes.TrimSpace(b))
	switch {
	case tok == "":
		return "", fmt.Errorf("%s: the file is empty; put the bearer token in it (e.g. openssl rand -hex 32 > %s)", file, file)
	case bytes.ContainsAny([]byte(tok), " \t\r\n"):
		return "", fmt.Errorf("%s: a token is one word on one line", file)
	}
	return tok, nil
}
