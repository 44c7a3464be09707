//go:build !linux

package rune

import (
	"errors"
	"net"
)

var errNoFastPath = errors.New("the fast path needs Linux (SO_REUSEPORT steering, recvmmsg)")

func listenReusePort(string) (*net.UDPConn, error) { return nil, errNoFastPath }

func steer(int, int, int) error { return errNoFastPath }

func dupSocket(*net.UDPConn) (int, error) { return -1, errNoFastPath }

func connOn(int) (*net.UDPConn, error) { return nil, errNoFastPath }

func closeSocket(int) {}
