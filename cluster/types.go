// Package cluster holds the desired state of the network: service specs and
// their validation, the VIP allocator, instances → endpoints, and the View that
// materializes the OrderedLog for every consumer on the node.
package cluster

import (
	"fmt"
	"net/netip"
	"time"
)

// Service is the user's `service:` document. Field names are the YAML/JSON
// names operators write.
type Service struct {
	Name          string         `json:"name" yaml:"name"`
	Namespace     string         `json:"namespace,omitempty" yaml:"namespace,omitempty"`
	Image         string         `json:"image,omitempty" yaml:"image,omitempty"`
	Scale         *int           `json:"scale,omitempty" yaml:"scale,omitempty"`
	Ports         []Port         `json:"ports,omitempty" yaml:"ports,omitempty"`
	NetworkPolicy *NetworkPolicy `json:"networkPolicy,omitempty" yaml:"networkPolicy,omitempty"`
	Expose        *Expose        `json:"expose,omitempty" yaml:"expose,omitempty"`
}

// Protocol is tcp or udp.
type Protocol string

const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

type Port struct {
	Name       string   `json:"name,omitempty" yaml:"name,omitempty"`
	Port       int      `json:"port" yaml:"port"`
	Protocol   Protocol `json:"protocol,omitempty" yaml:"protocol,omitempty"`     // default tcp
	TargetPort int      `json:"targetPort,omitempty" yaml:"targetPort,omitempty"` // default Port
}

// NetworkPolicy is a ServiceNetworkPolicy. A nil Ingress (Egress) leaves that
// direction default-allow; a non-nil one, even empty, makes it default-deny.
type NetworkPolicy struct {
	Ingress []PolicyRule `json:"ingress,omitempty" yaml:"ingress,omitempty"`
	Egress  []PolicyRule `json:"egress,omitempty" yaml:"egress,omitempty"`
	// HasIngress/HasEgress record whether the block was written at all, since
	// `ingress: []` (deny all) differs from no ingress key (allow all).
	HasIngress bool `json:"hasIngress,omitempty" yaml:"-"`
	HasEgress  bool `json:"hasEgress,omitempty" yaml:"-"`
}

// PolicyRule allows traffic from (ingress) or to (egress) any of its peers on
// any of its ports (all ports when Ports is empty).
type PolicyRule struct {
	From  []Peer    `json:"from,omitempty" yaml:"from,omitempty"`
	To    []Peer    `json:"to,omitempty" yaml:"to,omitempty"`
	Ports []PortRef `json:"ports,omitempty" yaml:"ports,omitempty"`
}

// Peer is a service selector (same node only in v1) or a CIDR.
type Peer struct {
	Service   string `json:"service,omitempty" yaml:"service,omitempty"`
	Namespace string `json:"namespace,omitempty" yaml:"namespace,omitempty"`
	CIDR      string `json:"cidr,omitempty" yaml:"cidr,omitempty"`
}

// PortRef names a port by name ("http") or number (8080).
type PortRef struct {
	Name   string `json:"name,omitempty"`
	Number int    `json:"number,omitempty"`
}

func (p PortRef) String() string {
	if p.Name != "" {
		return p.Name
	}
	return fmt.Sprint(p.Number)
}

type Expose struct {
	Host string `json:"host" yaml:"host"`
	Port string `json:"port,omitempty" yaml:"port,omitempty"` // port name (or number as text); default: the only/first port
	TLS  *TLS   `json:"tls,omitempty" yaml:"tls,omitempty"`
}

type TLS struct {
	Auto   bool   `json:"auto,omitempty" yaml:"auto,omitempty"`
	Mode   string `json:"mode,omitempty" yaml:"mode,omitempty"` // "acme" (auto) or "manual"
	Secret string `json:"secret,omitempty" yaml:"secret,omitempty"`
}

// NamespacedName identifies a service.
type NamespacedName struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (n NamespacedName) String() string { return n.Namespace + "/" + n.Name }

// ServiceRecord is what is stored under services/<ns>/<name>: the spec plus the
// VIP it was given.
type ServiceRecord struct {
	Spec    Service    `json:"spec"`
	VIP     netip.Addr `json:"vip"`
	Created time.Time  `json:"created"`
	Updated time.Time  `json:"updated"`
}

// Instance is one running copy of a service, as the orchestrator reports it.
// Stored under local_instances/<node>/<id>.
type Instance struct {
	ID        string     `json:"id"`
	Service   string     `json:"service"`
	Namespace string     `json:"namespace"`
	Node      string     `json:"node"`
	IP        netip.Addr `json:"ip"`
	Ready     bool       `json:"ready"`
	Updated   time.Time  `json:"updated"`
}

// EndpointAddress is one ready instance behind a service.
type EndpointAddress struct {
	Instance string     `json:"instance"`
	IP       netip.Addr `json:"ip"`
	Node     string     `json:"node"`
}

// EndpointPort is a service port as the backend listens on it.
type EndpointPort struct {
	Name       string   `json:"name,omitempty"`
	Port       int      `json:"port"`       // the service (VIP) port
	TargetPort int      `json:"targetPort"` // the instance port
	Protocol   Protocol `json:"protocol"`
}

// Endpoints is stored under endpoints/<ns>/<name>: the service's ready
// instances × its ports. Addresses are sorted by instance id.
type Endpoints struct {
	Service   string            `json:"service"`
	Namespace string            `json:"namespace"`
	Addresses []EndpointAddress `json:"addresses"`
	Ports     []EndpointPort    `json:"ports"`
}

// ClusterNetwork is stored under network/cluster.
type ClusterNetwork struct {
	CIDR    netip.Prefix `json:"cidr"`
	Created time.Time    `json:"created"`
}

// VIPAllocation is stored under network/vips/<ip>. While the service exists
// ReleasedAt is zero; after deletion the VIP stays held for that service until
// ReleasedAt + hold period, so a quick re-cast gets it back.
type VIPAllocation struct {
	IP         netip.Addr `json:"ip"`
	Namespace  string     `json:"namespace"`
	Service    string     `json:"service"`
	ReleasedAt time.Time  `json:"releasedAt,omitempty"`
}
