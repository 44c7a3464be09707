package e2ecluster

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runenet/runenet/api"
)

// TestCastOnOneNodeAnswersOnAnother: a service cast through one node is
// answered by dig on every other node, and every node's rune get nodes
// shows the same three voters, one of them leading.
func TestCastOnOneNodeAnswersOnAnother(t *testing.T) {
	nt := NewCluster(t, 3)
	leader := nt.Leader(t, 10*time.Second)
	for _, n := range nt.Nodes {
		var list api.NodeList
		if err := json.Unmarshal([]byte(n.CLI(t, "get", "nodes", "-o", "json")), &list); err != nil {
			t.Fatalf("%s: rune get nodes -o json: %v", n.Name, err)
		}
		roles, leaders := map[string]string{}, []string{}
		for _, m := range list.Items {
			roles[m.Name] = m.Role
			if m.State == "leader" {
				leaders = append(leaders, m.Name)
			}
		}
		if want := map[string]string{"n1": "voter", "n2": "voter", "n3": "voter"}; !maps.Equal(roles, want) || !slices.Equal(leaders, []string{leader.Name}) {
			t.Errorf("%s: rune get nodes shows roles %v and leaders %v, want %v led by %s", n.Name, roles, leaders, want, leader.Name)
		}
		if table := n.CLI(t, "get", "nodes"); strings.Count(table, " voter ") != 3 {
			t.Errorf("%s: rune get nodes does not show 3 voters:\n%s", n.Name, table)
		}
		if st := n.CLI(t, "status"); !strings.Contains(st, "(3 voters)") {
			t.Errorf("%s: rune status does not count 3 voters:\n%s", n.Name, st)
		}
	}
	for i, n := range nt.Nodes {
		name := []string{"alpha", "beta", "gamma"}[i]
		vip := vipOf(t, n.Cast(t, serviceDoc(name)))
		for _, o := range nt.Nodes {
			if o != n {
				waitDig(t, o, name+".default.rune", vip, 5*time.Second)
			}
		}
	}
}
