package orderedlog

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const seamScript = "../scripts/check_orderedlog_seam.sh"

func runSeamCheck(t *testing.T, root string) (string, bool) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash is needed to run the seam check, as make test does")
	}
	out, err := exec.Command("bash", seamScript, root).CombinedOutput()
	if err != nil {
		if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 {
			t.Fatalf("seam check on %s: %v\n%s", root, err, out)
		}
		return string(out), false
	}
	return string(out), true
}

// writeTree creates files (path → content) under a new temp dir.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// A tree that respects the seam: Badger, bolt and Raft in the backends below
// orderedlog/, raw prefixes in orderedlog/, key builders in cluster/keys.go,
// prefixes in tests and comments, backends imported by name.
func cleanTree() map[string]string {
	return map[string]string{
		"orderedlog/log.go":           "package orderedlog\n\nvar k = \"network/vips/\"\n",
		"orderedlog/badger/badger.go": "package badger\n\nimport badgerdb \"github.com/dgraph-io/badger/v4\"\n\nvar _ = badgerdb.DefaultOptions\n",
		"orderedlog/raft/store.go":    "package raft\n\nimport (\n\t\"github.com/hashicorp/raft\"\n\traftboltdb \"github.com/hashicorp/raft-boltdb/v2\"\n\tbolt \"go.etcd.io/bbolt\"\n)\n",
		"node/node.go":                "package node\n\nimport \"github.com/runenet/runenet/orderedlog/badger\"\n\nvar _ = badger.Open\n",
		"cluster/keys.go":             "package cluster\n\nfunc VIPKey(s string) string { return \"network/vips/\" + s }\n",
		"cluster/view_test.go":        "package cluster\n\nvar k = \"endpoints/api\"\n",
		"api/server.go":               "package api\n\n// stores under \"policy/<ns>/<name>\" via cluster.PolicyKey\nvar route = \"/v1/policy/\"\n",
		"proxy/proxy.go":              "package proxy\n\nimport \"github.com/runenet/runenet/orderedlog\"\n\nvar _ orderedlog.Log\n",
	}
}

func TestSeamCheckPassesCleanTree(t *testing.T) {
	if out, ok := runSeamCheck(t, writeTree(t, cleanTree())); !ok {
		t.Fatalf("clean tree rejected:\n%s", out)
	}
}

func TestSeamCheckFindsViolations(t *testing.T) {
	files := cleanTree()
	files["proxy/x.go"] = "package proxy\n\nimport (\n\t\"fmt\"\n\tbdg \"github.com/dgraph-io/badger/v4\"\n)\n\nvar _ = bdg.Open\nvar _ = fmt.Sprint\n"
	files["proxy/x_test.go"] = "package proxy\n\nimport _ \"github.com/dgraph-io/badger/v4\"\n"
	files["api/x.go"] = "package api\n\nfunc k() string {\n\treturn \"endpoints/foo\"\n}\n"
	files["policy/rules.go"] = "package policy\n\nvar k = `local_instances/` + \"x\"\n"
	files["node/raft.go"] = "package node\n\nimport \"github.com/hashicorp/raft\"\n"
	files["cluster/store.go"] = "package cluster\n\nimport (\n\t\"context\"\n\trb \"github.com/hashicorp/raft-boltdb/v2\"\n)\n"
	files["ingress/bolt.go"] = "package ingress\n\nimport \"go.etcd.io/bbolt\"\n"
	files["api/bolt_test.go"] = "package api\n\nimport \"github.com/boltdb/bolt\"\n"
	files["orderedlog/raw.go"] = "package orderedlog\n\nimport \"github.com/dgraph-io/badger/v4\"\n"
	out, ok := runSeamCheck(t, writeTree(t, files))
	if ok {
		t.Fatalf("violations not detected:\n%s", out)
	}
	for _, want := range []string{"proxy/x.go:5:", "proxy/x_test.go:3:", "api/x.go:4:", "policy/rules.go:3:",
		"node/raft.go:3:", "cluster/store.go:5:", "ingress/bolt.go:3:", "api/bolt_test.go:3:", "orderedlog/raw.go:3:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not name %s:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		for _, allowed := range []string{"orderedlog/log.go", "orderedlog/badger/", "orderedlog/raft/", "cluster/keys.go", "cluster/view_test.go", "api/server.go", "proxy/proxy.go", "node/node.go"} {
			if strings.HasPrefix(line, allowed) {
				t.Errorf("output blames allowed file %s: %s", allowed, line)
			}
		}
	}
}

func TestSeamCheckPassesOnThisRepo(t *testing.T) {
	if out, ok := runSeamCheck(t, ".."); !ok {
		t.Fatalf("the repository violates the OrderedLog seam:\n%s", out)
	}
}
