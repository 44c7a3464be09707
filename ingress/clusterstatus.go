package ingress

import (
	"context"
	"crypto/x509"
	"path"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/ingress/status"
	"github.com/runenet/runenet/orderedlog"
)

// ClusterStatus is `rune get ingresses` on a node that runs no ingress:
// every exposed host with its certificate as the log holds it, the edge
// node ordering one, and the edge nodes serving it (their node records).
// What only an edge node knows, its last ACME error, is not in it: a host
// without a valid stored certificate is pending here.
type ClusterStatus struct {
	Log  orderedlog.Reader
	View *cluster.View
}

func (c ClusterStatus) Status() []status.Row {
	ctx, now := context.Background(), time.Now()
	snap := c.View.Snapshot()
	t := buildTable(snap, func(string) *backend { return nil })
	edges := edgeNodes(snap, "")
	leaves := storedLeaves(ctx, c.Log)
	secrets := map[string]cachedSecret{}
	rows := make([]status.Row, 0, len(t.ordered))
	for _, r := range t.ordered {
		row := status.Row{Namespace: r.service.Namespace, Service: r.service.Name, Host: r.host, TLS: r.tlsMode, Edges: edges}
		switch r.tlsMode {
		case TLSManual:
			manualState(ctx, c.Log, r, nil, secrets, now)
			row.Cert, row.NotAfter, row.Error = r.state, r.notAfter, r.certErr
			if r.cert != nil {
				row.Issuer, row.Serial = issuerName(r.cert.Leaf), serialHex(r.cert.Leaf)
			}
		case TLSACME:
			row.Cert, row.Ordering = CertPending, orderingNode(c.Log, r.host)
			if leaf := leaves[certmagic.StorageKeys.Safe(r.host)]; leaf != nil {
				row.NotAfter, row.Issuer, row.Serial = leaf.NotAfter, issuerName(leaf), serialHex(leaf)
				if now.Before(leaf.NotAfter) {
					row.Cert = CertReady
				}
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// storedLeaves are the stored certificates' leaves by certmagic's storage
// name of their host, the latest-expiring one of any CA.
func storedLeaves(ctx context.Context, log orderedlog.Reader) map[string]*x509.Certificate {
	out := map[string]*x509.Certificate{}
	kvs, _, err := log.List(ctx, certsPrefix)
	if err != nil {
		return out
	}
	for _, kv := range kvs {
		// certs/certificates/<ca>/<name>/<name>.crt
		dir, file := path.Split(kv.Key)
		name := path.Base(dir)
		if file != name+".crt" || strings.Count(strings.TrimPrefix(kv.Key, certsPrefix), "/") != 2 {
			continue
		}
		if leaf := parseStoredLeaf(kv.Value); leaf != nil && (out[name] == nil || leaf.NotAfter.After(out[name].NotAfter)) {
			out[name] = leaf
		}
	}
	return out
}
