//go:build !linux

package proxy

import "net"

// Interception needs conntrack's SO_ORIGINAL_DST, which only Linux has;
// elsewhere only dev mode (and port-forward) can route connections.
func (p *Proxy) resolveOriginalDst(*net.TCPConn) *route { return nil }
