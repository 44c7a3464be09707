package logtest

import (
	"bytes"
	"slices"

	"github.com/runenet/runenet/orderedlog"
)

// SameOps compares op lists treating nil and empty values alike.
func SameOps(a, b []orderedlog.Op) bool {
	return slices.EqualFunc(a, b, func(x, y orderedlog.Op) bool {
		return x.Type == y.Type && x.Key == y.Key && x.HasPrecondition == y.HasPrecondition && x.Rev == y.Rev && bytes.Equal(x.Value, y.Value)
	})
}

// SameKVs compares listings treating nil and empty values alike.
func SameKVs(a, b []orderedlog.KV) bool {
	return slices.EqualFunc(a, b, func(x, y orderedlog.KV) bool {
		return x.Key == y.Key && x.Rev == y.Rev && bytes.Equal(x.Value, y.Value)
	})
}
