package ingress

import (
	"context"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/runenet/runenet/orderedlog"
)

// Certificates obtained or renewed by another edge node. certmagic itself
// looks in storage for a renewed certificate only when its own copy is due
// for renewal (and at its next maintenance tick, every RenewCheckInterval),
// so without this an edge node would serve the previous certificate until
// then. Following the log's certs/ prefix, every edge node swaps a host's
// certificate in memory as soon as the one that ordered it has stored it.

// watchCerts follows the log until ctx ends.
func (i *Ingress) watchCerts(ctx context.Context, from uint64) {
	defer close(i.certsDone)
	for ctx.Err() == nil {
		events, err := i.log.Watch(ctx, from)
		if err != nil {
			i.logger.Warn("following stored certificates failed; retrying", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for ev := range events {
			switch {
			case ev.Err != nil:
				// Compacted past us, say: what changed is unknown, so
				// reload every host, then follow from the tail.
				from = i.log.Tail() + 1
				i.reloadCerts(ctx, nil)
			case ev.Batch != nil:
				from = ev.Batch.Seq + 1
				if changed := storedCertChanges(ev.Batch); len(changed) > 0 {
					i.reloadCerts(ctx, changed)
				}
			}
		}
	}
}

// storedCertChanges returns the log keys of the certificate metadata files
// the batch wrote. certmagic stores a certificate as key, certificate and
// metadata, in that order, so the metadata's write is when all three belong
// together.
func storedCertChanges(b *orderedlog.Batch) map[string]bool {
	var changed map[string]bool
	for _, op := range b.Ops {
		if op.Type == orderedlog.OpPut && strings.HasPrefix(op.Key, certsPrefix) && strings.HasSuffix(op.Key, ".json") {
			if changed == nil {
				changed = map[string]bool{}
			}
			changed[op.Key] = true
		}
	}
	return changed
}

var certsPrefix = storageKey("certificates") + "/"

// reloadCerts loads the stored certificate of every ACME host of the routes
// whose metadata key is in changed (every one for nil) and makes it the
// one served, dropping the copy it replaces.
func (i *Ingress) reloadCerts(ctx context.Context, changed map[string]bool) {
	issuerKey := i.issuer.IssuerKey()
	for _, r := range i.table.Load().ordered {
		if r.tlsMode != TLSACME || (changed != nil && !changed[storageKey(certmagic.StorageKeys.SiteMeta(issuerKey, r.host))]) {
			continue
		}
		cert, err := i.magic.CacheManagedCertificate(ctx, r.host)
		if err != nil {
			if changed != nil {
				i.logger.Warn("could not load a stored certificate; the previous one stays in use", "host", r.host, "error", err)
			}
			continue
		}
		var replaced []string
		for _, c := range i.cache.AllMatchingCertificates(r.host) {
			if c.Hash() != cert.Hash() && len(c.Names) == 1 && c.Names[0] == r.host {
				replaced = append(replaced, c.Hash())
			}
		}
		if len(replaced) > 0 {
			i.cache.Remove(replaced)
			i.logger.Info("serving the certificate stored in the log (obtained or renewed by an edge node)", "host", r.host, "serial", cert.Leaf.SerialNumber.String(), "expires", cert.Leaf.NotAfter)
		}
		i.kickRebuild()
	}
}
