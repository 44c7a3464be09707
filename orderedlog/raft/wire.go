package raft

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/runenet/runenet/orderedlog"
)

// encoder and decoder are the uvarint framing shared by snapshots and
// forwarded replies.
type encoder struct{ buf []byte }

func (e *encoder) uv(v uint64)    { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) bytes(b []byte) { e.uv(uint64(len(b))); e.buf = append(e.buf, b...) }
func (e *encoder) byte(b byte)    { e.buf = append(e.buf, b) }
func (e *encoder) raw(b []byte)   { e.buf = append(e.buf, b...) }

// maxField bounds one decoded field: a key or a value, which a batch caps.
const maxField = orderedlog.MaxKeyLen + 64<<20

var errMalformed = errors.New("malformed")

// decoder reads until the first error, which it keeps; every read after it
// returns zero values.
type decoder struct {
	r   *bufio.Reader
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: truncated", errMalformed)
		}
		d.err = err
	}
}

func (d *decoder) uv() uint64 {
	if d.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(d.r)
	if err != nil {
		d.fail(err)
	}
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	b, err := d.r.ReadByte()
	if err != nil {
		d.fail(err)
	}
	return b
}

func (d *decoder) raw(b []byte) {
	if d.err != nil {
		return
	}
	if _, err := io.ReadFull(d.r, b); err != nil {
		d.fail(err)
	}
}

func (d *decoder) bytes() []byte {
	n := d.uv()
	if d.err != nil {
		return nil
	}
	if n > maxField {
		d.fail(fmt.Errorf("%w: a %d-byte field", errMalformed, n))
		return nil
	}
	b := make([]byte, n)
	d.raw(b)
	return b
}

// end fails unless everything was read.
func (d *decoder) end() {
	if d.err == nil {
		if _, err := d.r.ReadByte(); err != io.EOF {
			d.fail(fmt.Errorf("%w: trailing bytes", errMalformed))
		}
	}
}

func (e *encoder) outcome(o *outcome) {
	e.uv(o.n)
	e.uv(o.seq)
	e.uv(o.index)
	if c := o.conflict; c != nil {
		e.byte(1)
		e.bytes([]byte(c.Key))
		e.uv(c.WantRev)
		e.uv(c.ActualRev)
		e.uv(uint64(c.BatchOpIdx))
	} else {
		e.byte(0)
	}
}

func (d *decoder) outcome() *outcome {
	o := &outcome{n: d.uv(), seq: d.uv(), index: d.uv()}
	switch d.byte() {
	case 0:
	case 1:
		o.conflict = &orderedlog.ConflictError{Key: string(d.bytes()), WantRev: d.uv(), ActualRev: d.uv(), BatchOpIdx: int(d.uv())}
	default:
		d.fail(fmt.Errorf("%w: bad conflict flag", errMalformed))
	}
	return o
}
