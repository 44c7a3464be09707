package ingress

// misdirected reports whether a request routed to rt (nil: no route) that
// arrived on a TLS connection whose handshake named serverName must be
// answered 421 Misdirected Request (RFC 9110 section 15.5.20): the
// connection's certificate was chosen for serverName's route, so only that
// route may be asked for on it. A client that reused a connection for another
// host retries on a new one.
//
// Routes are compared by host pattern, not by identity, so that connections
// outlive a table rebuild; the hosts of one wildcard route share its
// certificate and so may share a connection.
func (t *table) misdirected(serverName string, rt *route) bool {
	sr := t.lookup(requestHost(serverName))
	return rt == nil || sr == nil || sr.host != rt.host
}
