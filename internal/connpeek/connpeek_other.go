//go:build !unix

package connpeek

import "net"

// Idle cannot peek without blocking here: nothing is checked.
func Idle(net.Conn) (idle, checked bool) { return false, false }
