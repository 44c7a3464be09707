package cluster

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestRecordsRoundTrip(t *testing.T) {
	scale := 3
	now := time.Date(2026, 11, 29, 1, 2, 3, 4, time.UTC)
	pol := &NetworkPolicy{
		HasIngress: true, HasEgress: true,
		Ingress: []PolicyRule{{From: []Peer{{Service: "web"}, {Service: "worker", Namespace: "jobs"}, {CIDR: "10.0.0.0/8"}}, Ports: []PortRef{{Name: "http"}, {Number: 9090}}}},
		Egress:  []PolicyRule{},
	}
	svc := ServiceRecord{
		Spec: Service{Name: "api", Namespace: "default", Image: "img:1", Scale: &scale,
			Ports:         []Port{{Name: "http", Port: 8080, Protocol: TCP, TargetPort: 80}, {Name: "dns", Port: 53, Protocol: UDP, TargetPort: 53}},
			NetworkPolicy: pol,
			Expose:        &Expose{Host: "api.example.com", Port: "http", TLS: &TLS{Mode: "manual", Secret: "api-tls"}}},
		VIP: netip.MustParseAddr("10.96.0.42"), Created: now, Updated: now.Add(time.Hour),
	}
	var svc2 ServiceRecord
	if err := svc2.decode(svc.encode()); err != nil {
		t.Fatal(err)
	}
	// An empty list decodes as absent; the encoding treats them alike.
	svc.Spec.NetworkPolicy.Egress = nil
	if !reflect.DeepEqual(svc, svc2) {
		t.Fatalf("service round trip:\n got %+v\nwant %+v", svc2, svc)
	}
	in := Instance{ID: "api-1", Service: "api", Namespace: "default", Node: "n1", IP: netip.MustParseAddr("10.88.0.2"), Ready: true, Updated: now}
	var in2 Instance
	if err := in2.decode(in.encode()); err != nil || !reflect.DeepEqual(in, in2) {
		t.Fatalf("instance round trip: %v %+v", err, in2)
	}
	ep := Endpoints{Service: "api", Namespace: "default", Addresses: []EndpointAddress{{Instance: "api-1", IP: in.IP, Node: "n1"}}, Ports: []EndpointPort{{Name: "http", Port: 8080, TargetPort: 80, Protocol: TCP}}}
	var ep2 Endpoints
	if err := ep2.decode(ep.encode()); err != nil || !reflect.DeepEqual(ep, ep2) {
		t.Fatalf("endpoints round trip: %v %+v", err, ep2)
	}
	a := VIPAllocation{IP: svc.VIP, Namespace: "default", Service: "api", ReleasedAt: now}
	var a2 VIPAllocation
	if err := a2.decode(a.encode()); err != nil || !reflect.DeepEqual(a, a2) {
		t.Fatalf("allocation round trip: %v %+v", err, a2)
	}
	cn := ClusterNetwork{CIDR: netip.MustParsePrefix("10.96.0.0/16"), Created: now}
	var cn2 ClusterNetwork
	if err := cn2.decode(cn.encode()); err != nil || !reflect.DeepEqual(cn, cn2) {
		t.Fatalf("cluster network round trip: %v %+v", err, cn2)
	}
	var p2 NetworkPolicy
	if err := p2.decode(pol.encode()); err != nil || !reflect.DeepEqual(*pol, p2) {
		t.Fatalf("policy round trip: %v %+v", err, p2)
	}
}

// A corrupt record is an error, never a panic or a huge allocation.
func FuzzRecordDecode(f *testing.F) {
	f.Add((&Instance{ID: "a", IP: netip.MustParseAddr("10.0.0.1")}).encode())
	f.Add((&ServiceRecord{Spec: Service{Name: "x", Ports: []Port{{Port: 1}}}}).encode())
	f.Add([]byte{codecV1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s ServiceRecord
		var in Instance
		var ep Endpoints
		var a VIPAllocation
		var cn ClusterNetwork
		var p NetworkPolicy
		_ = s.decode(b)
		_ = in.decode(b)
		_ = ep.decode(b)
		_ = a.decode(b)
		_ = cn.decode(b)
		_ = p.decode(b)
	})
}
