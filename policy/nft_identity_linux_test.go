package policy

import (
	"context"
	"strings"
	"testing"
	"time"
)

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
