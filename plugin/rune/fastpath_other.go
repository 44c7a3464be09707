//go:build !linux

package rune

import (
	"errors"
	"net"
)

var errNoFastPath = errors.New("the fast path needs Linux (SO_REUSEPORT steering, recvmmsg)")

func listenReusePort(string) (*net.UDPConn, error) { return nil, errNoFastPath }

func steer(*net.UDPConn, int, int) error { return errNoFastPath }
