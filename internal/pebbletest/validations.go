package pebbletest

import (
	"context"
	"io"
	"net"
	"sync"
	"time"
)

// Target is where a validation connection goes: an edge node's name and
// its HTTP listener.
type Target struct{ Name, Addr string }

// Validations sits on Pebble's HTTP-01 port and forwards each validation
// connection to the edge node its route picks, so a test decides which
// node answers a challenge; while held, connections wait, so a test can
// act in the middle of an order.
type Validations struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu       sync.Mutex
	route    func() (Target, error)
	held     bool
	resume   chan struct{}
	waits    int      // connections that arrived while held
	answered []string // the nodes connections were forwarded to, in order
}

// NewValidations forwards with dial (nil: a plain dialer); serve its
// Forward on the listener Pebble validates against.
func NewValidations(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *Validations {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	return &Validations{dial: dial}
}

// SetRoute sets where the next connections go.
func (v *Validations) SetRoute(f func() (Target, error)) {
	v.mu.Lock()
	v.route = f
	v.mu.Unlock()
}

// Hold keeps connections arriving from now on waiting until Release.
func (v *Validations) Hold() {
	v.mu.Lock()
	v.held, v.resume = true, make(chan struct{})
	v.mu.Unlock()
}

// Release lets the held connections go on, to the route as it is then.
func (v *Validations) Release() {
	v.mu.Lock()
	if v.held {
		v.held = false
		close(v.resume)
	}
	v.mu.Unlock()
}

// Waiting is how many connections arrived while held.
func (v *Validations) Waiting() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.waits
}

// AnsweredBy is the nodes connections were forwarded to so far ("none: …"
// where the route had none).
func (v *Validations) AnsweredBy() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.answered...)
}

// Forward handles one validation connection.
func (v *Validations) Forward(c net.Conn) {
	defer c.Close()
	v.mu.Lock()
	held, resume := v.held, v.resume
	if held {
		v.waits++
	}
	v.mu.Unlock()
	if held {
		<-resume
	}
	v.mu.Lock()
	route := v.route
	v.mu.Unlock()
	if route == nil {
		return
	}
	to, err := route()
	v.mu.Lock()
	if err != nil {
		v.answered = append(v.answered, "none: "+err.Error())
	} else {
		v.answered = append(v.answered, to.Name)
	}
	v.mu.Unlock()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	up, err := v.dial(ctx, "tcp", to.Addr)
	if err != nil {
		return
	}
	defer up.Close()
	go io.Copy(up, c)
	io.Copy(c, up)
}
