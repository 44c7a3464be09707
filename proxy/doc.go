// Package proxy is runed's L4 data plane: it steers traffic addressed to a
// service VIP into this process (nftables interception on Linux, or loopback
// listeners in dev mode) and forwards it to one of the service's ready
// endpoints.
//
// The pieces, each in its own file:
//   - table.go: the routing table (VIP:port → endpoints) derived from a cluster
//     Snapshot; everything else consumes a Table, so tests can feed one directly.
//   - balancer.go: power-of-two-choices on active connections, with passive
//     ejection of endpoints whose dials fail.
//   - tcp.go, udp.go: forwarding (TCP: accept, admit, dial; UDP per-flow
//     sessions with an idle timeout).
//   - relay_linux.go, rawsys_linux.go, splice_linux.go: the bytes of
//     established TCP connections, moved by an event loop per P on its own
//     epoll set (copy for small messages, splice for bulk, half-close and
//     reset passed on); relay_other.go is a goroutine per direction.
//   - proxy.go: listeners (intercept mode, and dev mode on 127.0.0.1), table
//     swaps, fail-closed past the stale budget, dev-mode port clashes, and
//     network policy (Config.Policy: each new connection or UDP flow is
//     judged by the policy Engine, the source's egress then the
//     destination's ingress; denied TCP is reset; without tables as new as
//     the routes, whatever a policy governs is refused).
//   - forward.go: port-forward (explicit loopback listeners).
//   - nft_linux.go, route_linux.go, origdst_linux.go: interception with
//     nftables, and recovering the VIP:port of a redirected connection.
//   - dataplane.go: follows a cluster.View and keeps all of the above in sync.
//
// Endpoint changes never cut established connections: a connection holds the
// endpoint it was given until it ends, while new connections only see the
// current table.
package proxy
