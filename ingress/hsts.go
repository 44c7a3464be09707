package ingress

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// HSTS is the Strict-Transport-Security policy (RFC 6797) the edge sends on
// every HTTPS response for an exposed host, the edge's own error responses
// included. It goes first among the response's fields: a browser heeds only
// the first of several (RFC 6797 section 8.1), so a backend's own field
// cannot override the edge's.
type HSTS struct {
	// MaxAge is how long browsers remember to use HTTPS only, in whole
	// seconds; zero makes them forget the policy.
	MaxAge            time.Duration
	IncludeSubDomains bool
	Preload           bool
}

// minPreloadAge is the shortest max-age the browsers' preload lists accept.
const minPreloadAge = 365 * 24 * time.Hour

// Validate reports a policy that browsers would ignore or that the preload
// lists refuse.
func (h *HSTS) Validate() error {
	switch {
	case h.MaxAge < 0:
		return fmt.Errorf("max-age %v is negative", h.MaxAge)
	case h.MaxAge%time.Second != 0:
		return fmt.Errorf("max-age %v is not a whole number of seconds", h.MaxAge)
	case h.Preload && !h.IncludeSubDomains:
		return errors.New("preload needs include_subdomains: the preload lists refuse a policy without includeSubDomains")
	case h.Preload && h.MaxAge < minPreloadAge:
		return fmt.Errorf("preload needs a max-age of at least %v (one year), got %v", minPreloadAge, h.MaxAge)
	}
	return nil
}

// value is the field value, such as "max-age=63072000; includeSubDomains".
func (h *HSTS) value() string {
	v := "max-age=" + strconv.FormatInt(int64(h.MaxAge/time.Second), 10)
	if h.IncludeSubDomains {
		v += "; includeSubDomains"
	}
	if h.Preload {
		v += "; preload"
	}
	return v
}
