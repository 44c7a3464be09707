// Package policy compiles ServiceNetworkPolicy into per-service rule tables,
// answers the proxy's allow/deny question for each new connection, and
// mirrors the same decisions into nftables on Linux.
//
// Semantics (README.md has the full operator-facing version):
//   - A direction (ingress, egress) with a policy block is default-deny, even
//     with an empty rule list; without one it is default-allow.
//   - A connection is allowed when any rule matches both its peer and its
//     port; the Verdict names the lowest such rule.
//   - Service peers name <service, namespace> (namespace defaults to the
//     policy's own). A source address has that identity if it is an
//     instance on any node (identity is cluster-wide). For egress the
//     destination is a service if it is its VIP, or one of its instances;
//     only local instances' egress is judged here. CIDR peers match any
//     address.
//   - Ingress ports name the service's own ports, by name or number, and
//     keep their protocol; egress ports are destination port numbers for TCP
//     and UDP alike. A rule without ports allows every port.
//   - Edge ingress: a connection forwarded by the edge router from an
//     outside client is judged by the client's address alone (Edge). Only
//     CIDR peers can allow it: exposing a service whose ingress policy lists
//     only services keeps the internet out until a rule says otherwise,
//     e.g. `from: [{cidr: 0.0.0.0/0}, {cidr: ::/0}]`.
//   - Past the View's stale budget, the Engine denies new connections in
//     every direction that has a policy (reason "stale"); services without
//     policy are unaffected.
//
// The pieces:
//   - tables.go: Compile and the decision functions on immutable Tables.
//   - trie.go: the prefix trie behind CIDR peers.
//   - engine.go: the Engine (atomic swap on View changes, fail closed,
//     metrics) that the proxy and the edge ingress call.
//   - kernel.go, nft_linux.go: the nftables plan and its installer.
//
// The netpolicy directive hands its Engine to the node runtime; the proxy
// and the edge ingress ask the runtime for it on every new connection. A
// caller with no Engine, or whose Engine's Tables are older than its own
// routes, denies whatever a policy governs (NotReady).
package policy
