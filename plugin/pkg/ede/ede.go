// Package ede writes replies that say why, with an Extended DNS Error
// (RFC 8914): the rune plugin's (which must build into a stock CoreDNS) and
// runegate's.
package ede

import "github.com/miekg/dns"

// ServFail writes a SERVFAIL for r carrying an Extended DNS Error (see Error).
func ServFail(w dns.ResponseWriter, r *dns.Msg, infoCode uint16, text string) (int, error) {
	return Error(w, r, dns.RcodeServerFailure, infoCode, text)
}

// Error writes a reply to r with rcode and an Extended DNS Error. The EDE
// rides in the OPT record, so it is only added when the client sent one
// (RFC 6891: no OPT in a reply to a query without it).
//
// It returns dns.RcodeSuccess, the CoreDNS convention for "a reply has been
// written": returning the error rcode would make the server write a second one.
func Error(w dns.ResponseWriter, r *dns.Msg, rcode int, infoCode uint16, text string) (int, error) {
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	if o := r.IsEdns0(); o != nil {
		m.SetEdns0(o.UDPSize(), o.Do())
		opt := m.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: infoCode, ExtraText: text})
	}
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}
