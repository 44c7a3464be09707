package ingress

import (
	"bytes"
	"errors"
)

// HTTP/1.1 message heads as the fast path (fastconn.go) reads them. The
// parsers accept a strict subset of what net/http accepts: a request head
// outside it is handed to net/http, which answers or rejects it, so the fast
// path never has to get an edge case of the protocol right on its own; what
// net/http is too lenient about (ambiguous framing) requestFraming refuses
// first, for the gate in front of it (gate.go). A backend's response head
// outside the subset is a 502.

// headerField is one header line of a head; name and value point into the
// head's bytes.
type headerField struct {
	name, value []byte
	drop        bool // not forwarded: hop-by-hop, or replaced by the edge
}

// requestHead is a parsed request head the fast path can forward.
type requestHead struct {
	method, target, host []byte
	contentLength        int64 // -1: none
	chunked              bool
	close                bool // the client asked to close after this request
	teTrailers           bool // "TE: trailers", which is forwarded
	via                  bool // has a Via field: it may name this edge (loop detection)
	fields               []headerField
}

// responseHead is a parsed backend response head.
type responseHead struct {
	code          int
	status        []byte // "200 OK": status code and reason phrase
	contentLength int64  // -1: none
	chunked       bool
	close         bool // the backend will not take another request on this connection
	date          bool // has a Date field
	fields        []headerField
}

// hasBody reports whether a response to method with this head carries a body.
func (r *responseHead) hasBody(method []byte) bool {
	return !(string(method) == "HEAD" || r.code == 204 || r.code == 304 || r.code < 200)
}

// parse parses the request head b (request line, fields, empty line) and
// reports whether the fast path may forward it. It says no to anything
// net/http would reject or treat specially: HTTP/1.0, targets other than an
// origin-form path that net/url leaves as it is, CONNECT, upgrades,
// Expect, missing or repeated Host, ambiguous framing, obs-fold and invalid
// bytes.
func (h *requestHead) parse(b []byte) bool {
	*h = requestHead{contentLength: -1, fields: h.fields[:0]}
	line, b, ok := nextLine(b)
	if !ok {
		return false
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return false
	}
	h.method, line = line[:sp], line[sp+1:]
	if sp = bytes.IndexByte(line, ' '); sp < 0 {
		return false
	}
	h.target = line[:sp]
	if string(line[sp+1:]) != "HTTP/1.1" || !isToken(h.method) || string(h.method) == "CONNECT" || !validTarget(h.target) {
		return false
	}
	if h.fields, ok = parseFields(b, h.fields); !ok {
		return false
	}
	var hosts, lengths, encodings int
	for k := range h.fields {
		f := &h.fields[k]
		switch {
		case fieldIs(f.name, "Host"):
			hosts++
			h.host, f.drop = f.value, true // written first, as it came
		case fieldIs(f.name, "Content-Length"):
			// Framing fields are dropped and written anew from what was
			// parsed, so nothing (not even a Connection header naming
			// them) can make the forwarded framing differ from ours.
			lengths++
			f.drop = true
			if h.contentLength, ok = parseLength(f.value); !ok {
				return false
			}
		case fieldIs(f.name, "Transfer-Encoding"):
			encodings++
			h.chunked, f.drop = true, true
			if !asciiEqualFold(f.value, "chunked") {
				return false
			}
		case fieldIs(f.name, "Connection"):
			f.drop = true
			for tok := range tokens(f.value) {
				switch {
				case asciiEqualFold(tok, "close"):
					h.close = true
				case asciiEqualFold(tok, "upgrade"):
					return false
				}
			}
		case fieldIs(f.name, "Upgrade"), fieldIs(f.name, "Expect"):
			return false
		case fieldIs(f.name, "TE"):
			f.drop = true
			for tok := range tokens(f.value) {
				h.teTrailers = h.teTrailers || asciiEqualFold(tok, "trailers")
			}
		default:
			// Forwarding headers from the client are replaced: the edge is
			// the first hop that can be trusted.
			f.drop = isHopByHop(f.name) || isForwarding(f.name) || shadowsEdgeField(f.name)
			h.via = h.via || fieldIs(f.name, "Via")
		}
	}
	if hosts != 1 || lengths > 1 || encodings > 1 || (lengths > 0 && encodings > 0) || !validHost(h.host) {
		return false
	}
	dropListed(h.fields, h.chunked)
	return true
}

// parse parses a backend's response head b, the way http.Transport reads
// one (any HTTP/1.x status line), except that framing it would resolve is
// refused as ambiguous (RFC 9112 6.3), as nginx refuses it: a repeated
// Content-Length, even an identical one, and Transfer-Encoding beside
// Content-Length. The net/http path holds backends to the same rules
// (backendcheck.go).
func (r *responseHead) parse(b []byte) bool {
	*r = responseHead{contentLength: -1, fields: r.fields[:0]}
	line, b, ok := nextLine(b)
	if !ok || len(line) < len("HTTP/1.x 200") || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' {
		return false
	}
	r.close = line[7] == '0' // no keep-alive negotiation with HTTP/1.0 backends: one request per connection
	r.status = line[9:]
	if len(r.status) > 3 && r.status[3] != ' ' || !validFieldValue(r.status) {
		return false
	}
	for _, c := range r.status[:3] {
		if c < '0' || c > '9' {
			return false
		}
		r.code = r.code*10 + int(c-'0')
	}
	if r.code < 100 {
		return false
	}
	if r.fields, ok = parseFields(b, r.fields); !ok {
		return false
	}
	var lengths, encodings int
	for k := range r.fields {
		f := &r.fields[k]
		switch {
		case fieldIs(f.name, "Content-Length"):
			lengths++
			f.drop = true // written anew, see requestHead.parse
			if r.contentLength, ok = parseLength(f.value); !ok {
				return false
			}
		case fieldIs(f.name, "Transfer-Encoding"):
			encodings++
			r.chunked, f.drop = true, true
			if !asciiEqualFold(f.value, "chunked") {
				return false
			}
		case fieldIs(f.name, "Connection"):
			f.drop = true
			for tok := range tokens(f.value) {
				r.close = r.close || asciiEqualFold(tok, "close")
			}
		case fieldIs(f.name, "Date"):
			r.date = true
		default:
			f.drop = isHopByHop(f.name)
		}
	}
	if lengths > 1 || encodings > 1 || lengths > 0 && encodings > 0 {
		return false
	}
	if line[7] == '0' {
		// As net/http: HTTP/1.0 has no transfer codings, the body is framed
		// by Content-Length or the connection's end.
		r.chunked = false
	}
	dropListed(r.fields, r.chunked)
	return true
}

// isForwarding reports the fields the edge sets on forwarded requests in
// place of the client's.
func isForwarding(name []byte) bool {
	return fieldIs(name, "Forwarded") || fieldIs(name, "X-Forwarded-For") || fieldIs(name, "X-Forwarded-Host") || fieldIs(name, "X-Forwarded-Proto")
}

// edgeFields are the fields the edge sets or frames messages by.
var edgeFields = []string{"Host", "Content-Length", "Transfer-Encoding", "Connection", "Via",
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// shadowsEdgeField reports a name that reads as one of edgeFields once
// '_' is taken for '-' (X_Forwarded_For): backends that map CGI-style
// names (HTTP_X_FORWARDED_FOR) cannot tell the two apart, so such fields
// are dropped, as nginx drops names with underscores.
func shadowsEdgeField(name []byte) bool {
	if bytes.IndexByte(name, '_') < 0 {
		return false
	}
	for _, f := range edgeFields {
		if len(name) != len(f) {
			continue
		}
		same := true
		for i := range name {
			c, d := name[i]|0x20, f[i]|0x20 // ASCII lower case; '-' and '_' stay apart
			same = same && (c == d || name[i] == '_' && f[i] == '-')
		}
		if same {
			return true
		}
	}
	return false
}

// forbiddenTrailer reports trailer fields that are not forwarded: framing,
// routing and the edge's own, which a backend merging trailers into the
// header must not take from the client (RFC 9110 6.5.1).
func forbiddenTrailer(name []byte) bool {
	return fieldIs(name, "Host") || fieldIs(name, "Content-Length") || fieldIs(name, "Transfer-Encoding") ||
		fieldIs(name, "Trailer") || fieldIs(name, "Connection") || fieldIs(name, "Via") ||
		isForwarding(name) || shadowsEdgeField(name) ||
		len(name) > len("X-Forwarded-") && asciiEqualFold(name[:len("X-Forwarded-")], "X-Forwarded-")
}

// framing is how a request head says its body is delimited, as the
// net/http path's gate (gate.go) reads it.
type framing struct {
	length  int64 // bytes of body when not chunked
	chunked bool
}

// requestFraming reads the framing of request head b for the net/http
// path, refusing every ambiguity RFC 9112 6.3 warns of, as nginx refuses
// them: Transfer-Encoding beside Content-Length, on HTTP/1.0, other than a
// single "chunked", repeated or malformed Content-Length, obs-fold, and
// anything whose fields cannot be told apart for sure (a request line or
// field name net/http might read differently). Everything else is left to
// net/http, which frames what is accepted here the same way.
func requestFraming(b []byte) (framing, bool) {
	fr := framing{}
	line, b, ok := nextLine(b)
	if !ok {
		return fr, false
	}
	parts := bytes.Split(line, []byte{' '})
	if len(parts) != 3 || !isToken(parts[0]) || len(parts[1]) == 0 {
		return fr, false
	}
	http10 := string(parts[2]) == "HTTP/1.0"
	if !http10 && string(parts[2]) != "HTTP/1.1" {
		return fr, false
	}
	var lengths, encodings int
	for {
		line, rest, ok := nextLine(b)
		if !ok {
			return fr, false
		}
		if len(line) == 0 {
			break
		}
		b = rest
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return fr, false // also obs-fold: the line starts with a blank
		}
		name, v := line[:colon], trimOWS(line[colon+1:])
		switch {
		case fieldIs(name, "Content-Length"):
			lengths++
			if fr.length, ok = parseLength(v); !ok {
				return fr, false
			}
		case fieldIs(name, "Transfer-Encoding"):
			encodings++
			fr.chunked = true
			if !asciiEqualFold(v, "chunked") {
				return fr, false
			}
		}
	}
	if lengths > 1 || encodings > 1 || lengths > 0 && encodings > 0 || encodings > 0 && http10 {
		return fr, false
	}
	return fr, true
}

// isHopByHop reports the header fields that describe one connection, not
// the message (the list httputil.ReverseProxy removes), except Connection
// and Transfer-Encoding, which the parsers handle themselves, and Trailer,
// which dropListed keeps for chunked bodies.
func isHopByHop(name []byte) bool {
	return fieldIs(name, "Keep-Alive") || fieldIs(name, "Proxy-Connection") || fieldIs(name, "Proxy-Authenticate") ||
		fieldIs(name, "Proxy-Authorization") || fieldIs(name, "TE") || fieldIs(name, "Upgrade") || fieldIs(name, "Trailer")
}

// dropListed drops the fields the Connection header names (they are
// hop-by-hop too, RFC 9110 7.6.1), and keeps Trailer, which announces the
// trailer fields, when the body is chunked: the trailers are forwarded with
// it.
func dropListed(fields []headerField, chunked bool) {
	for k := range fields {
		if fieldIs(fields[k].name, "Trailer") {
			fields[k].drop = !chunked
		}
		if !fieldIs(fields[k].name, "Connection") {
			continue
		}
		for tok := range tokens(fields[k].value) {
			for j := range fields {
				if asciiEqualFold(fields[j].name, string(tok)) {
					fields[j].drop = true
				}
			}
		}
	}
}

// parseFields parses header lines up to the empty line that ends a head,
// appending to fields. Obs-fold, invalid names and control bytes in values
// are refused.
func parseFields(b []byte, fields []headerField) ([]headerField, bool) {
	for {
		line, rest, ok := nextLine(b)
		if !ok {
			return fields, false
		}
		if len(line) == 0 {
			return fields, len(rest) == 0
		}
		b = rest
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return fields, false
		}
		v := trimOWS(line[colon+1:])
		if !validFieldValue(v) {
			return fields, false
		}
		fields = append(fields, headerField{name: line[:colon], value: v})
	}
}

// nextLine splits the first line off b, without its CRLF or LF (net/http
// accepts both). A CR anywhere else is a control byte the callers refuse.
func nextLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, nil, false
	}
	line = b[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, b[i+1:], true
}

// headEnd returns the length of the head at the start of b (through the
// empty line that ends it), or -1 if b does not hold a whole head yet.
func headEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		line := b[i : i+j]
		i += j + 1
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return i
		}
	}
}

// tokens iterates over the elements of a comma-separated header value,
// without surrounding whitespace, skipping empty ones.
func tokens(v []byte) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(v) > 0 {
			var tok []byte
			if i := bytes.IndexByte(v, ','); i >= 0 {
				tok, v = v[:i], v[i+1:]
			} else {
				tok, v = v, nil
			}
			if tok = trimOWS(tok); len(tok) > 0 && !yield(tok) {
				return
			}
		}
	}
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// parseLength parses a Content-Length value: digits only, as
// strconv.ParseUint(v, 10, 63) would accept them.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// fieldIs compares a field name with a canonical one, ignoring case.
func fieldIs(name []byte, canonical string) bool {
	return len(name) == len(canonical) && asciiEqualFold(name, canonical)
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Byte classes, as bit flags in one table.
const (
	classToken = 1 << iota // tchar (RFC 9110 5.6.2)
	classPath              // what net/url leaves unescaped in a path: pchar and "/"
	classQuery             // what reaches the backend verbatim in a query
	classHost              // a host name, IPv4 or [IPv6] literal, with an optional :port
)

var byteClass = func() (t [256]uint8) {
	set := func(class uint8, chars string) {
		for i := range len(chars) {
			t[chars[i]] |= class
		}
	}
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	set(classToken, alnum+"!#$%&'*+-.^_`|~")
	set(classPath, alnum+"-._~"+"!$&'()*+,;="+":@/[]%")
	// The query is passed on as it came unless url.ParseQuery fails on it
	// (then ReverseProxy rewrote it): ';' and bad escapes make it fail.
	for c := 0x21; c < 0x7f; c++ {
		if c != ';' {
			t[c] |= classQuery
		}
	}
	set(classHost, alnum+"-._:[]")
	return t
}()

func isToken(b []byte) bool {
	for _, c := range b {
		if byteClass[c]&classToken == 0 {
			return false
		}
	}
	return len(b) > 0
}

// validTarget accepts origin-form targets ("/path?query") that net/http
// parses and httputil.ReverseProxy forwards byte for byte.
func validTarget(b []byte) bool {
	if len(b) == 0 || b[0] != '/' {
		return false
	}
	class := uint8(classPath)
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '?' && class == classPath:
			class = classQuery
		case byteClass[c]&class == 0:
			return false
		case c == '%':
			if i+2 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) {
				return false
			}
		}
	}
	return true
}

func validHost(b []byte) bool {
	for _, c := range b {
		if byteClass[c]&classHost == 0 {
			return false
		}
	}
	return len(b) > 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// validFieldValue refuses control bytes other than horizontal tab, as
// net/http does (httpguts.ValidHeaderFieldValue).
func validFieldValue(v []byte) bool {
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

var (
	errChunkedFraming = errors.New("malformed chunked encoding")
	errTrailerTooLong = errors.New("chunked trailer too long")
	errChunkOverhead  = errors.New("chunked encoding contains too much non-data")
)
