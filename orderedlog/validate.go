package orderedlog

import (
	"errors"
	"fmt"
)

// MaxKeyLen bounds user keys. Every backend enforces the same limit (Badger
// refuses keys much above 64 KiB), so state written on one can move to another.
const MaxKeyLen = 60000

// ErrInvalidBatch: Propose was given ops that can never apply (empty batch,
// empty or oversized key, unknown op type).
var ErrInvalidBatch = errors.New("orderedlog: invalid batch")

// Validate reports why ops can never apply, wrapping ErrInvalidBatch, or nil.
// Backends call it before a batch goes anywhere, so a bad batch costs nothing.
func Validate(ops []Op) error {
	if len(ops) == 0 {
		return fmt.Errorf("%w: no ops", ErrInvalidBatch)
	}
	for i, op := range ops {
		switch {
		case op.Type != OpPut && op.Type != OpDelete && op.Type != OpCheck:
			return fmt.Errorf("%w: op %d on %q has unknown type %v", ErrInvalidBatch, i, op.Key, op.Type)
		case op.Key == "":
			return fmt.Errorf("%w: op %d (%v) has an empty key", ErrInvalidBatch, i, op.Type)
		case len(op.Key) > MaxKeyLen:
			return fmt.Errorf("%w: op %d (%v) key is %d bytes, limit %d", ErrInvalidBatch, i, op.Type, len(op.Key), MaxKeyLen)
		case op.Type == OpCheck && !op.HasPrecondition:
			return fmt.Errorf("%w: op %d checks %q without a precondition; build it with Check", ErrInvalidBatch, i, op.Key)
		}
	}
	return nil
}
