package main

import (
	"net/netip"
	"time"

	"github.com/runenet/runenet/cluster"
)

// The structured forms -o json|yaml prints. A service prints as the
// document `rune cast` reads, with what runed assigned beside it under
// status (which cast ignores), so a get's output casts again unchanged.
// Lists print as [] rather than null, and the bookkeeping fields of the
// stored records (hasIngress, hasEgress) stay out.

type serviceDoc struct {
	Service serviceSpec   `json:"service"`
	Status  serviceStatus `json:"status"`
}

type serviceSpec struct {
	Name          string          `json:"name"`
	Namespace     string          `json:"namespace"`
	Image         string          `json:"image,omitempty"`
	Scale         *int            `json:"scale,omitempty"`
	Ports         []cluster.Port  `json:"ports"`
	NetworkPolicy *policyDoc      `json:"networkPolicy,omitempty"`
	Expose        *cluster.Expose `json:"expose,omitempty"`
}

type serviceStatus struct {
	VIP     netip.Addr `json:"vip"`
	Created time.Time  `json:"created"`
	Updated time.Time  `json:"updated"`
}

func newServiceDoc(r cluster.ServiceRecord) serviceDoc {
	s := r.Spec
	return serviceDoc{
		Service: serviceSpec{
			Name: s.Name, Namespace: s.Namespace, Image: s.Image, Scale: s.Scale,
			Ports: nonNil(s.Ports), NetworkPolicy: newPolicyDoc(s.NetworkPolicy), Expose: s.Expose,
		},
		Status: serviceStatus{VIP: r.VIP, Created: r.Created, Updated: r.Updated},
	}
}

// policyDoc writes a direction that is present, even with no rules (deny
// all), and leaves out one that is absent (allow all), as the spec does.
type policyDoc struct {
	Ingress *[]ruleDoc `json:"ingress,omitempty"`
	Egress  *[]ruleDoc `json:"egress,omitempty"`
}

type ruleDoc struct {
	From  []cluster.Peer `json:"from,omitempty"`
	To    []cluster.Peer `json:"to,omitempty"`
	Ports []any          `json:"ports,omitempty"` // a name, or a number
}

func newPolicyDoc(p *cluster.NetworkPolicy) *policyDoc {
	if p == nil {
		return nil
	}
	rules := func(present bool, rs []cluster.PolicyRule) *[]ruleDoc {
		if !present && rs == nil {
			return nil
		}
		out := make([]ruleDoc, 0, len(rs))
		for _, r := range rs {
			d := ruleDoc{From: r.From, To: r.To}
			for _, ref := range r.Ports {
				if ref.Name != "" {
					d.Ports = append(d.Ports, ref.Name)
				} else {
					d.Ports = append(d.Ports, ref.Number)
				}
			}
			out = append(out, d)
		}
		return &out
	}
	return &policyDoc{Ingress: rules(p.HasIngress, p.Ingress), Egress: rules(p.HasEgress, p.Egress)}
}

// policyItemDoc is one entry of `rune get policies -o yaml`.
type policyItemDoc struct {
	Namespace string     `json:"namespace"`
	Service   string     `json:"service"`
	Policy    *policyDoc `json:"policy"`
}

func endpointsDoc(e cluster.Endpoints) cluster.Endpoints {
	e.Addresses, e.Ports = nonNil(e.Addresses), nonNil(e.Ports)
	return e
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
