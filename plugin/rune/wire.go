package rune

import (
	"bytes"
	"encoding/binary"

	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"

	"github.com/runenet/runenet/cluster"
)

// The fast path (fastpath.go) answers from replies rendered once per
// snapshot and name by the same code the plugin chain runs (Rune.reply),
// then packed as CoreDNS would write them to a UDP client; per query it
// patches in only what depends on the query: the ID, the RD and CD bits, the
// asker's spelling of the name, and the OPT record CoreDNS echoes.

// wireAnswer is a packed reply for a lower-case name and a type: ID 0, RD
// and CD clear, no OPT record.
type wireAnswer struct {
	msg []byte
	// names are the offsets of the query name, uncompressed, in msg (the
	// question and the owner names of the records that repeat it), where
	// the asker's spelling goes.
	names []int
	res   result
}

// optLen is the size of the OPT record CoreDNS appends to the reply of a
// query that had one without options (root name, type, class, TTL, RDLENGTH).
const optLen = 11

// render returns the reply to the lower-case qname (presentation form) and
// qtype, or nil for a query the fast path leaves to the full chain: names
// outside our zones, the zone apexes and ns.dns.rune. (whose answers depend
// on the address the query came in on), negative answers (so random names
// cost no memory), and replies too large for a 512-byte UDP buffer with an
// OPT record (those need CoreDNS's truncation).
func (r *Rune) render(snap *cluster.Snapshot, qname string, qtype uint16) *wireAnswer {
	zone := ""
	if qname == Zone || len(qname) > len(Zone) && qname[len(qname)-len(Zone)-1:] == "."+Zone {
		zone = Zone
	} else {
		zone = r.reverseZone(snap, qname)
	}
	if zone == "" || qname == zone || qname == nsName {
		return nil
	}
	req := new(dns.Msg)
	req.Question = []dns.Question{{Name: qname, Qtype: qtype, Qclass: dns.ClassINET}}
	m, res := r.reply(snap, &request.Request{Req: req}, qname, zone)
	if res != resultAnswer && res != resultNoData {
		return nil
	}
	b, err := m.Pack()
	if err != nil || len(b)+optLen > dns.MinMsgSize {
		return nil
	}
	names, ok := nameOffsets(b)
	if !ok {
		return nil
	}
	return &wireAnswer{msg: b, names: names, res: res}
}

// nameOffsets finds the question name in msg (uncompressed, as CoreDNS packs
// small UDP replies) and every owner name equal to it.
func nameOffsets(msg []byte) ([]int, bool) {
	const hdr = 12
	qend := skipName(msg, hdr)
	if qend < 0 || qend+4 > len(msg) {
		return nil, false
	}
	qname := msg[hdr:qend]
	names := []int{hdr}
	off := qend + 4
	rrs := int(binary.BigEndian.Uint16(msg[6:])) + int(binary.BigEndian.Uint16(msg[8:])) + int(binary.BigEndian.Uint16(msg[10:]))
	for range rrs {
		if bytes.HasPrefix(msg[off:], qname) {
			names = append(names, off)
		}
		if off = skipName(msg, off); off < 0 || off+10 > len(msg) {
			return nil, false
		}
		off += 10 + int(binary.BigEndian.Uint16(msg[off+8:]))
	}
	return names, off == len(msg)
}

// skipName returns the offset after the name at off, or -1.
func skipName(msg []byte, off int) int {
	for off < len(msg) {
		l := int(msg[off])
		switch {
		case l == 0:
			return off + 1
		case l&0xC0 == 0xC0:
			return off + 2
		case l&0xC0 != 0:
			return -1
		}
		off += 1 + l
	}
	return -1
}

// fastQuery is what the fast path needs of a query it can answer.
type fastQuery struct {
	qtype   uint16
	nameEnd int  // end of the question name in the packet
	opt     bool // the query has an OPT record (without options, version 0)
	udpSize [2]byte
	optHi   byte // the OPT TTL's flags byte holding DO
	do      bool
}

// parseQuery accepts the queries whose answer the fast path may serve: a
// plain QUERY (no flags but RD, AD and CD), one question of class IN and
// type A, AAAA, SRV or PTR, a name of letters, digits, '-' and '_' without
// compression, and at most an OPT record of version 0 without options. It
// writes the lower-cased name and the type into key. Everything else (and
// anything CoreDNS's server would treat specially) is declined.
func parseQuery(p []byte, key []byte) (fastQuery, []byte, bool) {
	var q fastQuery
	if len(p) < 17 || p[2]&^0x01 != 0 || p[3]&^0x30 != 0 ||
		binary.BigEndian.Uint16(p[4:]) != 1 || binary.BigEndian.Uint16(p[6:]) != 0 || binary.BigEndian.Uint16(p[8:]) != 0 {
		return q, key, false
	}
	ar := binary.BigEndian.Uint16(p[10:])
	if ar > 1 {
		return q, key, false
	}
	off := 12
	for {
		if off >= len(p) {
			return q, key, false
		}
		l := int(p[off])
		if l == 0 {
			break
		}
		if l > 63 || off+1+l > len(p) || off+1+l-12 > 254 {
			return q, key, false
		}
		key = append(key, byte(l))
		for _, c := range p[off+1 : off+1+l] {
			switch {
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			default:
				return q, key, false
			}
			key = append(key, c)
		}
		off += 1 + l
	}
	if off == 12 {
		return q, key, false // the root: not ours
	}
	q.nameEnd = off + 1
	off = q.nameEnd
	if off+4 > len(p) || binary.BigEndian.Uint16(p[off+2:]) != dns.ClassINET {
		return q, key, false
	}
	q.qtype = binary.BigEndian.Uint16(p[off:])
	switch q.qtype {
	case dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypePTR:
	default:
		return q, key, false
	}
	key = append(key, 0, p[off], p[off+1])
	off += 4
	if ar == 1 {
		// Root name, type OPT, class = UDP size, TTL = extended rcode,
		// version, flags; RDLENGTH 0.
		if len(p)-off != optLen || p[off] != 0 || binary.BigEndian.Uint16(p[off+1:]) != dns.TypeOPT ||
			p[off+6] != 0 || p[off+9] != 0 || p[off+10] != 0 {
			return q, key, false
		}
		q.opt = true
		q.udpSize = [2]byte{p[off+3], p[off+4]}
		q.optHi = p[off+7]
		q.do = q.optHi&0x80 != 0
		off += optLen
	}
	return q, key, off == len(p)
}

// write appends a's reply to query p (parsed as q) to out.
func (a *wireAnswer) write(out, p []byte, q fastQuery) []byte {
	out = append(out, a.msg...)
	out[0], out[1] = p[0], p[1]
	out[2] |= p[2] & 0x01 // RD
	out[3] |= p[3] & 0x10 // CD
	for _, o := range a.names {
		copy(out[o:], p[12:q.nameEnd])
	}
	if q.opt {
		// CoreDNS's SizeAndDo echoes the query's OPT: version 0, the
		// client's UDP size, the TTL masked with 0xff00 (DO kept).
		out = append(out, 0, 0, byte(dns.TypeOPT), q.udpSize[0], q.udpSize[1], 0, 0, q.optHi, 0, 0, 0)
		binary.BigEndian.PutUint16(out[10:], binary.BigEndian.Uint16(out[10:])+1)
	}
	return out
}
