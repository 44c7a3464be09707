package policy

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/proxy/netnstest"
)

// nsPeerIP is a peer node's host address in the policy net.
const nsPeerIP = "172.30.4.2"

// TestNFTAdmitsServicePeersFromOtherNodes: web's and other's instances are
// another node's (n2); their packets reach this node's forward hook with
// their own addresses, as routed cross-node traffic does. The kernel admits
// web's direct connection to api's container address by web's identity,
// drops other's, leaves other's egress to its own node, and forgets web's
// address within revokeBound of web's deregistration.
func TestNFTAdmitsServicePeersFromOtherNodes(t *testing.T) {
	pn, c, e := startNFTPolicyOn(t, remoteNode)
	runEngine(t, e)
	waitFor(t, "the policy chains to be installed", e.Ready)

	if !connects(t, pn.web, nsAPIIP+":8080", allowed) {
		t.Error("web (on n2) → api:8080 dropped; api's policy admits web on every node")
	}
	if connects(t, pn.other, nsAPIIP+":8080", settle) {
		t.Error("other (on n2) → api:8080 connected; api's ingress policy allows only web")
	}
	if !connects(t, pn.other, nsWebIP+":8080", allowed) {
		t.Error("other (on n2) → web:8080 dropped here; other's egress is its own node's to enforce")
	}

	allowSet := func() string {
		return pn.node.Run(t, "nft", "list", "set", "inet", "rune_policy", "allow/ingress/default/api")
	}
	if !strings.Contains(allowSet(), nsWebIP) {
		t.Fatalf("api's allow set lacks web's address %s:\n%s", nsWebIP, allowSet())
	}
	start := time.Now()
	if _, err := c.Ctl.DeregisterInstance(context.Background(), "web-1"); err != nil {
		t.Fatal(err)
	}
	for strings.Contains(allowSet(), nsWebIP) {
		if time.Since(start) > revokeBound {
			t.Fatalf("web's address is still in api's allow set %v after its deregistration", revokeBound)
		}
	}
	t.Logf("deregistration → kernel set without web's address: %v", time.Since(start))
	if connects(t, pn.web, nsAPIIP+":8080", settle) {
		t.Error("web's old address still connects to api:8080 after its instance was removed")
	}
}

// TestNFTRevokedAddressKeepsNoFlows: web's instance (on n2) holds an open,
// allowed connection to api's container when it is removed and other's
// instance registers the same address (a container that got the address
// next, using the same flow). The kernel forgets the flow with the
// identity: its next packets are judged as other's and dropped, rather
// than passing as an established flow of web's.
func TestNFTRevokedAddressKeepsNoFlows(t *testing.T) {
	pn, c, e := startNFTPolicyOn(t, remoteNode)
	nft := e.opts.Kernel.(*NFT)
	k := &pollSignal{NFT: nft, polled: make(chan struct{})}
	e.opts.Kernel = k
	runEngine(t, e)
	waitFor(t, "the policy chains to be installed", e.Ready)

	var conn net.Conn
	var err error
	pn.web.Do(t, func() { conn, err = net.DialTimeout("tcp", nsAPIIP+":8080", allowed) })
	if err != nil {
		t.Fatalf("web → api:8080: %v", err)
	}
	defer conn.Close()
	echo := func(b byte, within time.Duration) bool {
		conn.SetDeadline(time.Now().Add(within))
		if _, err := conn.Write([]byte{b}); err != nil {
			return false
		}
		got := make([]byte, 1)
		_, err := io.ReadFull(conn, got)
		return err == nil && got[0] == b
	}
	if !echo('a', allowed) {
		t.Fatal("web's open connection to api carries no bytes while web is allowed")
	}

	ctx := context.Background()
	if _, err := c.Ctl.DeregisterInstance(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	claim, err := c.Ctl.RegisterInstance(ctx, cluster.Instance{ID: "other-2", Service: "other", Namespace: "default", Node: remoteNode, IP: netip.MustParseAddr(nsWebIP), Ready: true})
	if err != nil {
		t.Fatal(err)
	}
	k.installed(t, e, claim) // and forgot web's flows
	if echo('b', settle) {
		t.Error("the flow web opened still carries bytes from its address after other's instance took it over")
	}
}

// TestNFTAdmitsPeerNodesOnProxiedPorts: a peer node's address (its node
// record's) reaches api's container on the ports api's ingress opens to
// someone — where the peer's proxy connects for clients it admitted — and
// on no other; an unknown host, a removed node, and any node once api's
// policy admits nobody, are dropped.
func TestNFTAdmitsPeerNodesOnProxiedPorts(t *testing.T) {
	pn, c, e := startNFTPolicyOn(t, remoteNode)
	listen(t, pn.api, nsAPIIP+":9999") // a port of no rule
	peer := netnstest.New(t, "pol-peer")
	netnstest.Link(t, pn.node, "172.30.4.1/24", peer, nsPeerIP+"/24")
	peer.Run(t, "ip", "route", "add", "default", "via", "172.30.4.1")
	k := &pollSignal{NFT: e.opts.Kernel.(*NFT), polled: make(chan struct{})}
	e.opts.Kernel = k
	runEngine(t, e)
	waitFor(t, "the policy chains to be installed", e.Ready)

	if connects(t, peer, nsAPIIP+":8080", settle) {
		t.Error("a host with no node record reached api:8080")
	}
	c.RegisterNode(t, localNode, netip.MustParseAddr("172.30.2.1"))
	k.installed(t, e, c.RegisterNode(t, remoteNode, netip.MustParseAddr(nsPeerIP)))
	if !connects(t, peer, nsAPIIP+":8080", allowed) {
		t.Error("peer node n2 → api:8080 dropped; api's ingress admits web there, and n2's proxy connects for it")
	}
	if connects(t, peer, nsAPIIP+":9999", settle) {
		t.Error("peer node n2 → api:9999 connected; no rule opens that port to anyone")
	}

	k.installed(t, e, c.Cast(t, `
service:
  name: api
  ports: [{name: http, port: 80, targetPort: 8080}]
  networkPolicy:
    ingress: []
`))
	if connects(t, peer, nsAPIIP+":8080", settle) {
		t.Error("peer node n2 → api:8080 connected; api's ingress admits nobody")
	}

	k.installed(t, e, c.Cast(t, nsAPIDoc("web")))
	if !connects(t, peer, nsAPIIP+":8080", allowed) {
		t.Fatal("peer node n2 → api:8080 dropped after api admits web again")
	}
	removed, err := c.Ctl.RemoveNode(context.Background(), remoteNode)
	if err != nil {
		t.Fatal(err)
	}
	k.installed(t, e, removed)
	if connects(t, peer, nsAPIIP+":8080", settle) {
		t.Error("a removed node's address still reaches api:8080")
	}
}
