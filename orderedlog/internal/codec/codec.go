// Package codec is the one binary form of a batch that the OrderedLog
// backends share: Badger stores it as a log entry, Raft replicates it, so a
// batch means the same bytes on every backend.
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/runenet/runenet/orderedlog"
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

// Encode encodes ops and returns the encoding together with a copy of ops
// whose values alias the encoding, so the committed Batch handed to watchers
// cannot be changed by a caller reusing its value buffers.
func Encode(ops []orderedlog.Op) ([]byte, []orderedlog.Op) {
	size := timeLen + binary.MaxVarintLen64
	for _, op := range ops {
		size += 2 + 3*binary.MaxVarintLen64 + len(op.Key) + len(op.Value)
	}
	buf := make([]byte, timeLen, size)
	buf = binary.AppendUvarint(buf, uint64(len(ops)))
	own := make([]orderedlog.Op, len(ops))
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
		own[i] = orderedlog.Op{Type: op.Type, Key: op.Key, HasPrecondition: op.HasPrecondition, Rev: op.Rev}
		if op.Type == orderedlog.OpPut {
			buf = binary.AppendUvarint(buf, uint64(len(op.Value)))
			start := len(buf)
			buf = append(buf, op.Value...)
			own[i].Value = buf[start:len(buf):len(buf)]
		}
	}
	return buf, own
}

// StampTime sets the commit time of an encoded batch.
func StampTime(enc []byte, t time.Time) {
	binary.BigEndian.PutUint64(enc[:timeLen], uint64(t.UnixNano()))
}

// ErrCorrupt: a stored or received batch does not decode.
var ErrCorrupt = errors.New("orderedlog: corrupt log entry")

// Decode decodes a log entry. The returned op values alias data, so data
// must not be reused by the caller.
func Decode(seq uint64, data []byte) (*orderedlog.Batch, error) {
	corrupt := func(what string) error {
		return fmt.Errorf("%w %d: %s; the data directory is damaged, restore it from a backup", ErrCorrupt, seq, what)
	}
	if len(data) < timeLen {
		return nil, corrupt("short header")
	}
	b := &orderedlog.Batch{Seq: seq, Time: time.Unix(0, int64(binary.BigEndian.Uint64(data)))}
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
	b.Ops = make([]orderedlog.Op, count)
	for i := range b.Ops {
		if len(data)-p < 2 {
			return nil, corrupt("truncated op")
		}
		op := &b.Ops[i]
		op.Type, op.HasPrecondition = orderedlog.OpType(data[p]), data[p+1]&flagPrecondition != 0
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
		if op.Type == orderedlog.OpPut {
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
