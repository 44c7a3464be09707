package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Records are stored in a compact binary form rather than JSON: a node with
// 100,000 services holds ~600,000 records, and decoding them as JSON alone took
// several seconds of a cold start whose budget is two. Each record starts
// with a format byte so the encoding can change without a migration flag day.
const codecV1 = 1

type recordWriter struct{ b []byte }

func newRecordWriter() *recordWriter { return &recordWriter{b: []byte{codecV1}} }

func (e *recordWriter) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *recordWriter) int(v int)     { e.b = binary.AppendVarint(e.b, int64(v)) }
func (e *recordWriter) str(s string)  { e.uint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *recordWriter) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}
func (e *recordWriter) addr(a netip.Addr) {
	s := a.AsSlice() // nil for the zero Addr
	e.b = append(e.b, byte(len(s)))
	e.b = append(e.b, s...)
}
func (e *recordWriter) time(t time.Time) {
	if t.IsZero() {
		e.b = binary.AppendVarint(e.b, 0)
		return
	}
	e.b = binary.AppendVarint(e.b, t.UnixNano())
}

type recordReader struct {
	b   []byte
	err error
}

var errTruncated = errors.New("record truncated")

func newRecordReader(b []byte) *recordReader {
	d := &recordReader{b: b}
	if len(b) == 0 || b[0] != codecV1 {
		d.err = fmt.Errorf("unknown record format (first byte %v)", b[:min(1, len(b))])
		return d
	}
	d.b = b[1:]
	return d
}

func (d *recordReader) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *recordReader) uint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errTruncated)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recordReader) int() int {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errTruncated)
		return 0
	}
	d.b = d.b[n:]
	return int(v)
}

// count reads a length and checks it against what is left, so a corrupt
// record cannot make the decoder allocate without bound.
func (d *recordReader) count() int {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail(errTruncated)
		return 0
	}
	return int(n)
}

func (d *recordReader) str() string {
	n := d.count()
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *recordReader) bool() bool {
	if len(d.b) == 0 {
		d.fail(errTruncated)
		return false
	}
	v := d.b[0] != 0
	d.b = d.b[1:]
	return v
}

func (d *recordReader) addr() netip.Addr {
	if len(d.b) == 0 {
		d.fail(errTruncated)
		return netip.Addr{}
	}
	n := int(d.b[0])
	if n != 0 && n != 4 && n != 16 || len(d.b) < 1+n {
		d.fail(errTruncated)
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(d.b[1 : 1+n])
	d.b = d.b[1+n:]
	return a
}

func (d *recordReader) time() time.Time {
	ns, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errTruncated)
		return time.Time{}
	}
	d.b = d.b[n:]
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// done reports the first error, or trailing bytes that no field claimed.
func (d *recordReader) done() error {
	if d.err == nil && len(d.b) != 0 {
		return fmt.Errorf("record has %d unexpected trailing bytes", len(d.b))
	}
	return d.err
}

// list encodes a slice as a count followed by its items.
func list[T any](e *recordWriter, items []T, item func(*recordWriter, *T)) {
	e.uint(uint64(len(items)))
	for i := range items {
		item(e, &items[i])
	}
}

func readList[T any](d *recordReader, item func(*recordReader, *T)) []T {
	n := d.count()
	if n == 0 {
		return nil
	}
	out := make([]T, n)
	for i := range out {
		item(d, &out[i])
	}
	return out
}

func encodeService(e *recordWriter, s *Service) {
	e.str(s.Name)
	e.str(s.Namespace)
	e.str(s.Image)
	e.bool(s.Scale != nil)
	if s.Scale != nil {
		e.int(*s.Scale)
	}
	list(e, s.Ports, func(e *recordWriter, p *Port) {
		e.str(p.Name)
		e.int(p.Port)
		e.str(string(p.Protocol))
		e.int(p.TargetPort)
	})
	e.bool(s.NetworkPolicy != nil)
	if s.NetworkPolicy != nil {
		encodePolicy(e, s.NetworkPolicy)
	}
	e.bool(s.Expose != nil)
	if x := s.Expose; x != nil {
		e.str(x.Host)
		e.str(x.Port)
		e.bool(x.TLS != nil)
		if x.TLS != nil {
			e.bool(x.TLS.Auto)
			e.str(x.TLS.Mode)
			e.str(x.TLS.Secret)
		}
	}
}

func decodeService(d *recordReader, s *Service) {
	s.Name, s.Namespace, s.Image = d.str(), d.str(), d.str()
	if d.bool() {
		n := d.int()
		s.Scale = &n
	}
	s.Ports = readList(d, func(d *recordReader, p *Port) {
		p.Name, p.Port, p.Protocol, p.TargetPort = d.str(), d.int(), Protocol(d.str()), d.int()
	})
	if d.bool() {
		s.NetworkPolicy = &NetworkPolicy{}
		decodePolicy(d, s.NetworkPolicy)
	}
	if d.bool() {
		x := &Expose{Host: d.str(), Port: d.str()}
		if d.bool() {
			x.TLS = &TLS{Auto: d.bool(), Mode: d.str(), Secret: d.str()}
		}
		s.Expose = x
	}
}

func encodePolicy(e *recordWriter, p *NetworkPolicy) {
	e.bool(p.HasIngress)
	e.bool(p.HasEgress)
	list(e, p.Ingress, encodeRule)
	list(e, p.Egress, encodeRule)
}

func decodePolicy(d *recordReader, p *NetworkPolicy) {
	p.HasIngress, p.HasEgress = d.bool(), d.bool()
	p.Ingress = readList(d, decodeRule)
	p.Egress = readList(d, decodeRule)
}

func encodePeer(e *recordWriter, p *Peer) { e.str(p.Service); e.str(p.Namespace); e.str(p.CIDR) }
func decodePeer(d *recordReader, p *Peer) { p.Service, p.Namespace, p.CIDR = d.str(), d.str(), d.str() }

func encodeRule(e *recordWriter, r *PolicyRule) {
	list(e, r.From, encodePeer)
	list(e, r.To, encodePeer)
	list(e, r.Ports, func(e *recordWriter, p *PortRef) { e.str(p.Name); e.int(p.Number) })
}

func decodeRule(d *recordReader, r *PolicyRule) {
	r.From = readList(d, decodePeer)
	r.To = readList(d, decodePeer)
	r.Ports = readList(d, func(d *recordReader, p *PortRef) { p.Name, p.Number = d.str(), d.int() })
}

// The record types' encodings.

func (r *ServiceRecord) encode() []byte {
	e := newRecordWriter()
	encodeService(e, &r.Spec)
	e.addr(r.VIP)
	e.time(r.Created)
	e.time(r.Updated)
	return e.b
}

func (r *ServiceRecord) decode(b []byte) error {
	d := newRecordReader(b)
	decodeService(d, &r.Spec)
	r.VIP, r.Created, r.Updated = d.addr(), d.time(), d.time()
	return d.done()
}

func (p *NetworkPolicy) encode() []byte {
	e := newRecordWriter()
	encodePolicy(e, p)
	return e.b
}

func (p *NetworkPolicy) decode(b []byte) error {
	d := newRecordReader(b)
	decodePolicy(d, p)
	return d.done()
}

// specEqual compares specs by their canonical encoding, in which an absent
// list and an empty one are the same.
func specEqual(a, b *Service) bool {
	ea, eb := newRecordWriter(), newRecordWriter()
	encodeService(ea, a)
	encodeService(eb, b)
	return string(ea.b) == string(eb.b)
}

func (in *Instance) encode() []byte {
	e := newRecordWriter()
	e.str(in.ID)
	e.str(in.Service)
	e.str(in.Namespace)
	e.str(in.Node)
	e.addr(in.IP)
	e.bool(in.Ready)
	e.time(in.Updated)
	return e.b
}

func (in *Instance) decode(b []byte) error {
	d := newRecordReader(b)
	in.ID, in.Service, in.Namespace, in.Node = d.str(), d.str(), d.str(), d.str()
	in.IP, in.Ready, in.Updated = d.addr(), d.bool(), d.time()
	return d.done()
}

func (ep *Endpoints) encode() []byte {
	e := newRecordWriter()
	e.str(ep.Service)
	e.str(ep.Namespace)
	list(e, ep.Addresses, func(e *recordWriter, a *EndpointAddress) { e.str(a.Instance); e.addr(a.IP); e.str(a.Node) })
	list(e, ep.Ports, func(e *recordWriter, p *EndpointPort) {
		e.str(p.Name)
		e.int(p.Port)
		e.int(p.TargetPort)
		e.str(string(p.Protocol))
	})
	return e.b
}

func (ep *Endpoints) decode(b []byte) error {
	d := newRecordReader(b)
	ep.Service, ep.Namespace = d.str(), d.str()
	ep.Addresses = readList(d, func(d *recordReader, a *EndpointAddress) { a.Instance, a.IP, a.Node = d.str(), d.addr(), d.str() })
	ep.Ports = readList(d, func(d *recordReader, p *EndpointPort) {
		p.Name, p.Port, p.TargetPort, p.Protocol = d.str(), d.int(), d.int(), Protocol(d.str())
	})
	return d.done()
}

func (a *VIPAllocation) encode() []byte {
	e := newRecordWriter()
	e.addr(a.IP)
	e.str(a.Namespace)
	e.str(a.Service)
	e.time(a.ReleasedAt)
	return e.b
}

func (a *VIPAllocation) decode(b []byte) error {
	d := newRecordReader(b)
	a.IP, a.Namespace, a.Service, a.ReleasedAt = d.addr(), d.str(), d.str(), d.time()
	return d.done()
}

func (c *ClusterNetwork) encode() []byte {
	e := newRecordWriter()
	e.addr(c.CIDR.Addr())
	e.int(c.CIDR.Bits())
	e.time(c.Created)
	return e.b
}

func (c *ClusterNetwork) decode(b []byte) error {
	d := newRecordReader(b)
	addr, bits := d.addr(), d.int()
	c.Created = d.time()
	if err := d.done(); err != nil {
		return err
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return err
	}
	c.CIDR = p
	return nil
}
