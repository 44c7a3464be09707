package node

import (
	"context"
	"fmt"
	"strconv"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/orderedlog"
)

// exposeWarnings says what an exposed service's own settings will make fail
// at the edge once it is cast: a manual TLS secret that does not exist (the
// host has no certificate, so its TLS handshakes fail), and an ingress
// policy that no edge client can pass (the edge judges a request by the
// client's address with no service identity, so only CIDR peers admit it).
// services nil means every service (for status).
func exposeWarnings(ctx context.Context, log orderedlog.Reader, snap *cluster.Snapshot, services []cluster.NamespacedName) []string {
	var out []string
	check := func(svc *cluster.Service) {
		if svc.Expose == nil || svc.Expose.Host == "" {
			return
		}
		name := cluster.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
		if tl := svc.Expose.TLS; tl != nil && tl.Mode == "manual" && tl.Secret != "" {
			if _, ok, _, err := log.Get(ctx, orderedlog.PrefixSecrets+svc.Namespace+"/"+tl.Secret); err == nil && !ok {
				out = append(out, fmt.Sprintf("%s exposes %s with TLS secret %q, which does not exist in namespace %s: HTTPS for the host fails until `rune secret tls create -n %s %s --cert FILE --key FILE`", name, svc.Expose.Host, tl.Secret, svc.Namespace, svc.Namespace, tl.Secret))
			}
		}
		if np := svc.NetworkPolicy; np != nil && np.HasIngress && !edgeAdmitted(svc, np.Ingress) {
			out = append(out, fmt.Sprintf("%s exposes %s, but its networkPolicy.ingress has no cidr peer on the exposed port: the edge judges requests by the client's address, so every request through the ingress gets 403 (allow a cidr, e.g. 0.0.0.0/0, on that port to publish it)", name, svc.Expose.Host))
		}
	}
	if services == nil {
		snap.RangeServices(func(e cluster.Entry[cluster.ServiceRecord]) bool {
			check(&e.Value.Spec)
			return true
		})
		return out
	}
	for _, n := range services {
		if e, ok := snap.Service(n); ok {
			check(&e.Value.Spec)
		}
	}
	return out
}

// edgeAdmitted reports whether some ingress rule admits a CIDR peer on the
// exposed port (expose.port names a port or its number; empty: the first).
func edgeAdmitted(svc *cluster.Service, rules []cluster.PolicyRule) bool {
	var port cluster.Port
	ref := svc.Expose.Port
	n, numErr := strconv.Atoi(ref)
	for i, p := range svc.Ports {
		if (ref == "" && i == 0) || (numErr == nil && p.Port == n) || (numErr != nil && p.Name == ref) {
			port = p
			break
		}
	}
	for _, r := range rules {
		onPort := len(r.Ports) == 0
		for _, pr := range r.Ports {
			if (pr.Name != "" && pr.Name == port.Name) || (pr.Number != 0 && pr.Number == port.Port) {
				onPort = true
			}
		}
		if !onPort {
			continue
		}
		for _, peer := range r.From {
			if peer.CIDR != "" {
				return true
			}
		}
	}
	return false
}
