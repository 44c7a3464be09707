package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/internal/testkit"
	"github.com/runenet/runenet/node/nodeconfig"
)

// On the default Badger backend the cluster is this node alone: a voter
// that leads, at the log's seq.
func TestGetNodesSingleNode(t *testing.T) {
	addr := startRuned(t)
	mustRun(t, addr, "cast", writeFile(t, "api.yaml", apiYAML))

	out := mustRun(t, addr, "get", "nodes")
	if !regexp.MustCompile(`^NAME\s+ADDRESS\s+SUBNET\s+ROLE\s+STATE\s+APPLIED\s+LAG\s+LAST CONTACT\s+AGE\nnode-1\s+-\s+10\.88\.0\.0/24\s+voter\s+leader\s+[1-9]\d*\s+0\s+-\s+\d+s\n$`).MatchString(out) {
		t.Errorf("get nodes:\n%s", out)
	}
	if out := mustRun(t, addr, "get", "nodes", "-o", "wide"); !regexp.MustCompile(`(?m)^NAME\s.*\sAGE\s+SINCE\s+HEARTBEAT\nnode-1\s.*\s\d{4}-\d\d-\d\dT\S+\s+\d+s ago$`).MatchString(out) {
		t.Errorf("get nodes -o wide:\n%s", out)
	}
	if out := mustRun(t, addr, "get", "node", "node-1", "-o", "name"); out != "node/node-1\n" {
		t.Errorf("get node node-1 -o name: %q", out)
	}
	var list struct {
		Items []struct {
			Name, Role, State string
			Applied           *uint64
			Self              bool
		}
	}
	raw := mustRun(t, addr, "get", "nodes", "-o", "json")
	if err := json.Unmarshal([]byte(raw), &list); err != nil || len(list.Items) != 1 || list.Items[0].Name != "node-1" ||
		list.Items[0].Role != "voter" || list.Items[0].State != "leader" || !list.Items[0].Self || list.Items[0].Applied == nil || *list.Items[0].Applied == 0 {
		t.Errorf("get nodes -o json: %v\n%s", err, raw)
	}
	if out := mustRun(t, addr, "get", "nodes", "-o", "yaml"); !strings.Contains(out, "  - name: node-1\n    role: voter\n    state: leader\n") {
		t.Errorf("get nodes -o yaml:\n%s", out)
	}
	if _, err := run(t, addr, "get", "nodes", "ghost"); err == nil || err.Error() != `node "ghost" not found` {
		t.Errorf("get nodes ghost: %v", err)
	}
	if _, err := run(t, addr, "get", "nodes", "-n", "prod"); err == nil || !strings.Contains(err.Error(), "unknown shorthand flag: 'n'") {
		t.Errorf("get nodes -n prod (nodes have no namespace): %v", err)
	}
	if out := mustRun(t, addr, "status"); !regexp.MustCompile(`(?m)^cluster:\s+single node \(Badger\)$`).MatchString(out) {
		t.Errorf("status:\n%s", out)
	}
}

// A one-node Raft cluster (runed --cluster-addr --bootstrap) lists its
// member from the Raft configuration, and status names its role.
func TestGetNodesRaft(t *testing.T) {
	clusterAddr := testkit.FreeAddr(t)
	addr := acquire(t, nodeconfig.Config{DataDir: t.TempDir(), NodeName: "n1", ClusterAddr: clusterAddr, Bootstrap: true}).APIAddr()

	row := regexp.MustCompile(`(?m)^n1\s+` + regexp.QuoteMeta(clusterAddr) + `\s+10\.88\.0\.0/24\s+voter\s+leader\s+[1-9]\d*\s+\d+\s+0s\s+\d+s$`)
	out := mustRun(t, addr, "get", "nodes")
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !row.MatchString(out); time.Sleep(20 * time.Millisecond) {
		out = mustRun(t, addr, "get", "nodes")
	}
	if !row.MatchString(out) || strings.Count(out, "\n") != 2 {
		t.Errorf("get nodes on a one-node cluster:\n%s", out)
	}
	if out := mustRun(t, addr, "status"); !regexp.MustCompile(`(?m)^cluster:\s+leader \(1 voter\)$`).MatchString(out) {
		t.Errorf("status:\n%s", out)
	}
	raw := mustRun(t, addr, "status", "-o", "json")
	var st struct {
		Cluster struct {
			Backend, State, Leader string
			Voters                 int
		}
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil || st.Cluster.Backend != "raft" || st.Cluster.State != "leader" || st.Cluster.Leader != "n1" || st.Cluster.Voters != 1 {
		t.Errorf("status -o json: %v\n%s", err, raw)
	}
}
