package ingress

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"slices"

	"github.com/caddyserver/certmagic"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/ingress/status"
	"github.com/runenet/runenet/orderedlog"
)

// Status lists every exposed host of the current routes, in namespace and
// service order. An ACME host's expiry, issuer and serial are those of the
// certificate in the log, which every edge node loads, and Ordering names
// the edge node whose order for it is under way. Edges are the edge nodes
// serving it.
func (i *Ingress) Status() []status.Row {
	t := i.table.Load()
	edges := edgeNodes(i.view.Snapshot(), i.opts.NodeName)
	rows := make([]status.Row, 0, len(t.ordered))
	for _, r := range t.ordered {
		row := status.Row{
			Namespace: r.service.Namespace, Service: r.service.Name, Host: r.host,
			TLS: r.tlsMode, Cert: r.state, NotAfter: r.notAfter, Error: r.certErr, Edges: edges,
		}
		switch {
		case r.tlsMode == TLSACME:
			if leaf := i.storedLeaf(r.host); leaf != nil {
				row.NotAfter, row.Issuer, row.Serial = leaf.NotAfter, issuerName(leaf), serialHex(leaf)
			}
			row.Ordering = i.orderingNode(r.host)
		case r.cert != nil:
			row.Issuer, row.Serial = issuerName(r.cert.Leaf), serialHex(r.cert.Leaf)
		}
		rows = append(rows, row)
	}
	return rows
}

// edgeNodes are the nodes serving every exposed host: those whose node
// record has the edge role and that the leader has not marked down, and
// self (unless ""), which answers: a node without a record yet, or a
// single node.
func edgeNodes(snap *cluster.Snapshot, self string) []string {
	var out []string
	for _, e := range snap.Nodes() {
		if n := e.Value; n.HasRole(nodeRoleEdge) && n.Down.IsZero() {
			out = append(out, n.Name)
		}
	}
	if self != "" && !slices.Contains(out, self) {
		out = append(out, self)
		slices.Sort(out)
	}
	return out
}

// nodeRoleEdge is the role (runed --node-role) of the nodes that serve
// ingress.
const nodeRoleEdge = "edge"

// storedLeaf is the leaf of host's certificate in the log, nil if there is
// none (or it does not parse: the node's own state says why).
func (i *Ingress) storedLeaf(host string) *x509.Certificate {
	kv, ok, _, err := i.log.Get(context.Background(), storageKey(certmagic.StorageKeys.SiteCert(i.issuer.IssuerKey(), host)))
	if err != nil || !ok {
		return nil
	}
	return parseStoredLeaf(kv.Value)
}

// parseStoredLeaf is the leaf of a stored certificate (chain) value, nil if
// it does not parse.
func parseStoredLeaf(value []byte) *x509.Certificate {
	v, _, err := decodeValue(value)
	if err != nil {
		return nil
	}
	block, _ := pem.Decode(v)
	if block == nil {
		return nil
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil
	}
	return leaf
}

// orderingNode is the edge node holding host's certificate lock, which
// certmagic takes to obtain and to renew it; "" when none does.
func (i *Ingress) orderingNode(host string) string { return orderingNode(i.log, host) }

func orderingNode(log orderedlog.Reader, host string) string {
	kv, ok, _, err := log.Get(context.Background(), lockKey("issue_cert_"+host))
	var rec lockRecord
	if err != nil || !ok || json.Unmarshal(kv.Value, &rec) != nil {
		return ""
	}
	return rec.Node
}

func issuerName(leaf *x509.Certificate) string {
	if cn := leaf.Issuer.CommonName; cn != "" {
		return cn
	}
	if len(leaf.Issuer.Organization) > 0 {
		return leaf.Issuer.Organization[0]
	}
	return leaf.Issuer.String()
}

// serialHex writes a serial number as openssl x509 -serial does.
func serialHex(leaf *x509.Certificate) string { return fmt.Sprintf("%X", leaf.SerialNumber) }
