package orderedlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// A log entry is stored as:
//
//	commit time   8 bytes, big-endian unix nanoseconds
//	op count      uvarint
//	per op:       type byte, flags byte, [rev uvarint], key len uvarint, key,
//	              [value len uvarint, value]   (value for OpPut only)
//
// The time is fixed-width and first so the committer can stamp it after the
// proposer has encoded the batch off the committer's goroutine.
const (
	timeLen          = 8
	flagPrecondition = 1 << 0
)

// encodeBatch encodes ops and returns the encoding together with a copy of ops
// whose values alias the encoding, so the committed Batch handed to watchers
// cannot be changed by a caller reusing its value buffers.
func encodeBatch(ops []Op) ([]byte, []Op) {
	size := timeLen + binary.MaxVarintLen64
	for _, op := range ops {
		size += 2 + 3*binary.MaxVarintLen64 + len(op.Key) + len(op.Value)
	}
	buf := make([]byte, timeLen, size)
	buf = binary.AppendUvarint(buf, uint64(len(ops)))
	own := make([]Op, len(ops))
	for i, op := range ops {
		var flags byte
		if op.HasPrecondition {
			flags |= flagPrecondition
		}
		buf = append(buf, byte(op.Type), flags)
		if op.HasPrecondition {
			buf = binary.AppendUvarint(buf, op.Rev)
		}
		buf = binary.AppendUvarint(buf, uint64(len(op.Key)))
		buf = append(buf, op.Key...)
		own[i] = Op{Type: op.Type, Key: op.Key, HasPrecondition: op.HasPrecondition, Rev: op.Rev}
		if op.Type == OpPut {
			buf = binary.AppendUvarint(buf, uint64(len(op.Value)))
			start := len(buf)
			buf = append(buf, op.Value...)
			own[i].Value = buf[start:len(buf):len(buf)]
		}
	}
	return buf, own
}

func stampTime(enc []byte, t time.Time) {
	binary.BigEndian.PutUint64(enc[:timeLen], uint64(t.UnixNano()))
}

var errCorrupt = errors.New("orderedlog: corrupt log entry")

// decodeBatch decodes a log entry. The returned op values alias data, so data
// must not be reused by the caller.
func decodeBatch(seq uint64, data []byte) (*Batch, error) {
	corrupt := func(what string) error {
		return fmt.Errorf("%w %d: %s; the data directory is damaged, restore it from a backup", errCorrupt, seq, what)
	}
	if len(data) < timeLen {
		return nil, corrupt("short header")
	}
	b := &Batch{Seq: seq, Time: time.Unix(0, int64(binary.BigEndian.Uint64(data)))}
	p := timeLen
	uvarint := func() (uint64, bool) {
		v, n := binary.Uvarint(data[p:])
		if n <= 0 {
			return 0, false
		}
		p += n
		return v, true
	}
	count, ok := uvarint()
	// Every op takes at least 3 bytes, which bounds the allocation below
	// even for a damaged count.
	if !ok || count > uint64(len(data)-p)/3 {
		return nil, corrupt("bad op count")
	}
	b.Ops = make([]Op, count)
	for i := range b.Ops {
		if len(data)-p < 2 {
			return nil, corrupt("truncated op")
		}
		op := &b.Ops[i]
		op.Type, op.HasPrecondition = OpType(data[p]), data[p+1]&flagPrecondition != 0
		p += 2
		if op.HasPrecondition {
			if op.Rev, ok = uvarint(); !ok {
				return nil, corrupt("bad revision")
			}
		}
		n, ok := uvarint()
		if !ok || n > uint64(len(data)-p) {
			return nil, corrupt("bad key length")
		}
		op.Key = string(data[p : p+int(n)])
		p += int(n)
		if op.Type == OpPut {
			n, ok := uvarint()
			if !ok || n > uint64(len(data)-p) {
				return nil, corrupt("bad value length")
			}
			op.Value = data[p : p+int(n) : p+int(n)]
			p += int(n)
		}
	}
	if p != len(data) {
		return nil, corrupt("trailing bytes")
	}
	return b, nil
}
