package ingress

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
)

// Body and head framing as the fast path reads and re-frames it; the
// parsers of the heads themselves are in h1.go.

// readHead appends a head (through its empty line) from r to dst, failing
// with errHeadTooLarge past limit bytes. It may be called again with the
// same dst after an error (a timeout) to read on.
func readHead(dst *[]byte, r *bufio.Reader, limit int) error {
	for {
		line, err := r.ReadSlice('\n')
		*dst = append(*dst, line...)
		if len(*dst) > limit {
			return errHeadTooLarge
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err != nil:
			return err
		case endsHead(*dst):
			return nil
		}
	}
}

// endsHead reports whether the line at the end of b (which ends in LF) is
// the empty line that ends a head. The line is judged whole, from b: it may
// have come in several reads (one longer than the reader's buffer, or a
// read resumed), whose last piece alone can look empty.
func endsHead(b []byte) bool {
	b = b[:len(b)-1]
	last := b[bytes.LastIndexByte(b, '\n')+1:]
	return len(last) == 0 || len(last) == 1 && last[0] == '\r'
}

// srcError is a failure of the side a copy reads from (a malformed or cut
// body), told apart from one of the side it writes to.
type srcError struct{ err error }

func (e *srcError) Error() string { return e.err.Error() }
func (e *srcError) Unwrap() error { return e.err }

// copyBody copies n bytes (until EOF when n < 0) from src to dst, as chunks
// if chunk is set. It flushes dst whenever src has nothing buffered, that
// is, before a read that may wait: a body that arrived whole leaves in one
// write with its head, a streamed one (server-sent events, long polls) is
// passed on as it comes. Long bodies are read and written in large pieces
// through a pooled buffer.
func copyBody(dst *bufio.Writer, src *bufio.Reader, n int64, chunk bool, pool *bufferPool) error {
	var big []byte
	defer func() {
		if big != nil {
			pool.Put(big)
		}
	}()
	for n != 0 {
		if src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return err
			}
		}
		var p []byte
		var err error
		fromBuffer := src.Buffered() > 0 || (n > 0 && n <= int64(src.Size()))
		if fromBuffer {
			if _, err = src.Peek(1); err == nil {
				p, _ = src.Peek(int(limit(n, src.Buffered())))
			}
		} else {
			if big == nil {
				big = pool.Get()
			}
			var m int
			m, err = src.Read(big[:limit(n, len(big))]) // bufio reads straight into big
			p = big[:m]
		}
		if len(p) == 0 {
			if err == io.EOF && n < 0 {
				break // the end of a body delimited by the connection's end
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				return &srcError{err}
			}
			continue
		}
		if chunk {
			writeChunkHeader(dst, int64(len(p)))
		}
		if _, err := dst.Write(p); err != nil {
			return err
		}
		if chunk {
			dst.WriteString("\r\n")
		}
		if fromBuffer {
			src.Discard(len(p))
		}
		if n > 0 {
			n -= int64(len(p))
		}
	}
	if chunk {
		dst.WriteString("0\r\n\r\n")
	}
	return nil
}

func limit(n int64, max int) int {
	if n >= 0 && n < int64(max) {
		return int(n)
	}
	return max
}

func writeChunkHeader(w *bufio.Writer, n int64) {
	w.Write(strconv.AppendInt(w.AvailableBuffer(), n, 16))
	w.WriteString("\r\n")
}

// maxChunkOverhead bounds the framing bytes (chunk lines, extensions) a
// chunked body may carry beyond its data, as net/http's chunked reader
// bounds them, so that both serving paths refuse the same bodies.
const maxChunkOverhead = 16 << 10

// copyChunked forwards a chunked body from src to dst, re-framing it from
// what it parsed (chunk sizes without extensions, the data, the trailer
// fields), so that the receiver cannot frame it differently from us. Bare
// LF, over-long lines, malformed sizes and too much framing overhead are
// refused, as net/http refuses them; trailer fields that forbiddenTrailer
// names are left out.
func copyChunked(dst *bufio.Writer, src *bufio.Reader, pool *bufferPool) error {
	var c chunkFollow
	for total := 0; c.stage != chunkDone; {
		line, err := chunkLine(dst, src)
		if err != nil {
			return err
		}
		trailer, err := c.line(line)
		if err != nil {
			return &srcError{err}
		}
		switch c.stage {
		case chunkData: // line was a chunk's size
			writeChunkHeader(dst, c.remain)
			if err := copyBody(dst, src, c.remain, false, pool); err != nil {
				return err
			}
			c.data(int(c.remain))
		case chunkSize: // line ended a chunk's data
			dst.WriteString("\r\n")
		case chunkTrailer:
			if trailer == nil { // line was the last chunk's size
				dst.WriteString("0\r\n")
				continue
			}
			if total += len(line); total > maxHeaderBytes {
				return &srcError{errTrailerTooLong}
			}
			if !forbiddenTrailer(trailer) {
				dst.Write(line)
				dst.WriteString("\r\n")
			}
		}
	}
	_, err := dst.WriteString("\r\n")
	return err
}

// chunkLine reads one CRLF-terminated line of chunked framing, flushing dst
// first if src does not hold all of it yet.
func chunkLine(dst *bufio.Writer, src *bufio.Reader) ([]byte, error) {
	if buf, _ := src.Peek(src.Buffered()); bytes.IndexByte(buf, '\n') < 0 {
		if err := dst.Flush(); err != nil {
			return nil, err
		}
	}
	line, err := readChunkLine(src)
	if err != nil {
		return nil, &srcError{err}
	}
	return line[:len(line)-2], nil
}

// readChunkLine reads one line of chunked framing, CRLF included, refusing
// bare LF and lines longer than br's buffer.
func readChunkLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull:
		return nil, errChunkedFraming
	case err == io.EOF:
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	case len(line) < 2 || line[len(line)-2] != '\r':
		return nil, errChunkedFraming
	}
	return line, nil
}

// chunkFollow follows a chunked body's framing line by line, with the
// rules of every reader of one: copyChunked, which re-frames the body, and
// the gate and backendCheck, which pass it on as it came.
type chunkFollow struct {
	stage  chunkStage
	remain int64 // data bytes left of the chunk being read
	excess int64 // framing overhead beyond the data
}

type chunkStage uint8

const (
	chunkSize    chunkStage = iota // at a chunk-size line
	chunkData                      // in a chunk's data
	chunkEnd                       // at the CRLF after a chunk's data
	chunkTrailer                   // in the trailer section
	chunkDone                      // past the empty line that ends the body
)

// line judges one line of framing met at a line stage (text without its
// CRLF) and moves past it; for a trailer field it returns the field's name.
func (c *chunkFollow) line(text []byte) (trailer []byte, err error) {
	switch c.stage {
	case chunkSize:
		size, ok := parseChunkSize(text)
		switch {
		case !ok:
			return nil, errChunkedFraming
		case size == 0:
			c.stage = chunkTrailer
		default:
			// net/http's accounting: each line costs its length, each chunk
			// earns 16 bytes and twice its size.
			if c.excess = max(c.excess+int64(len(text))+2-16-2*size, 0); c.excess > maxChunkOverhead {
				return nil, errChunkOverhead
			}
			c.stage, c.remain = chunkData, size
		}
	case chunkEnd:
		if len(text) != 0 {
			return nil, errChunkedFraming
		}
		c.stage = chunkSize
	case chunkTrailer:
		if len(text) == 0 {
			c.stage = chunkDone
			return nil, nil
		}
		colon := bytes.IndexByte(text, ':')
		if colon <= 0 || !isToken(text[:colon]) || !validFieldValue(text[colon+1:]) {
			return nil, errChunkedFraming
		}
		return text[:colon], nil
	}
	return nil, nil
}

// data accounts for n bytes of a chunk's data passed on.
func (c *chunkFollow) data(n int) {
	if c.remain -= int64(n); c.remain == 0 {
		c.stage = chunkEnd
	}
}

// parseChunkSize parses "hex[;extensions]", ignoring extensions as
// net/http does.
func parseChunkSize(line []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(line) && isHex(line[i]); i++ {
		if i == 15 {
			return 0, false
		}
		c := line[i]
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		n = n<<4 | int64(c)
	}
	if i == 0 {
		return 0, false
	}
	// Like net/http: extensions right after the size, or trailing blanks.
	rest := line[i:]
	if len(rest) > 0 && rest[0] == ';' {
		return n, validFieldValue(rest)
	}
	return n, len(trimOWS(rest)) == 0
}
