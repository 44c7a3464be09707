package cluster

import (
	"errors"
	"fmt"
)

// Kind classifies controller errors so the API can map them to HTTP statuses
// and the CLI to exit reasons.
type Kind int

const (
	KindInvalid   Kind = iota + 1 // the request or spec is wrong; fix the input
	KindNotFound                  // the named object does not exist
	KindConflict                  // the write raced with another and lost, or clashes with existing state
	KindExhausted                 // no VIP left in the cluster CIDR
	KindNotReady                  // the node has not loaded its state yet; retry
	KindNoSpace                   // the node's disk is (nearly) full; writes resume once space is freed
)

// Error is a controller error an operator can act on.
type Error struct {
	Kind Kind
	Msg  string
	Err  error // underlying cause (e.g. an ErrorList of spec problems)
}

func (e *Error) Error() string {
	if e.Msg == "" && e.Err != nil {
		return e.Err.Error()
	}
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// KindOf returns the Kind of err, or 0 when it is not a controller error
// (an internal failure).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// NotFound is the error for a missing object, worded as kubectl words it:
// service "default/api" not found.
func NotFound(kind string, n NamespacedName) *Error {
	return errorf(KindNotFound, "%s %q not found", kind, n.String())
}
