package main

import (
	"strings"
	"testing"
)

// complete asks the CLI for completions as a shell's script does (cobra's
// hidden __complete command) and returns the candidates.
func complete(t *testing.T, apiAddr string, args ...string) []string {
	t.Helper()
	out := mustRun(t, apiAddr, append([]string{"__complete"}, args...)...)
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(l, ":") && !strings.HasPrefix(l, "Completion ended") {
			name, _, _ := strings.Cut(l, "\t")
			got = append(got, name)
		}
	}
	return got
}

func TestCompletion(t *testing.T) {
	addr := startRuned(t)
	mustRun(t, addr, "cast", writeFile(t, "api.yaml", apiYAML), writeFile(t, "web.yaml", webYAML))
	mustRun(t, addr, "cast", "-n", "staging", writeFile(t, "db.yaml", "service:\n  name: db\n"))
	mustRun(t, addr, "instance", "register", "api-1", "--service", "api", "--ip", "10.88.1.2", "--node", "node-1")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get", ""}, "endpoints ingresses instances nodes policies secrets services"},
		{[]string{"get", "services", ""}, "api web"},
		{[]string{"get", "svc", "api", ""}, "web"},
		{[]string{"get", "svc", "-n", "staging", ""}, "db"},
		{[]string{"get", "instances", ""}, "api-1"},
		{[]string{"delete", "service", ""}, "api web"},
		{[]string{"port-forward", ""}, "api web"},
		{[]string{"port-forward", "api", ""}, ""},
		{[]string{"instance", "ready", ""}, "api-1"},
		{[]string{"get", "nodes", ""}, "node-1"},
		{[]string{"instance", "register", "x", "--service", ""}, "api web"},
		{[]string{"get", "svc", "-n", ""}, "default staging"},
		{[]string{"cast", "--namespace", ""}, "default staging"},
		{[]string{"get", "ep", "-o", ""}, "table wide name json yaml"},
		{[]string{"status", "-o", ""}, "table json yaml"},
	} {
		if got := strings.Join(complete(t, addr, tc.args...), " "); got != tc.want {
			t.Errorf("complete rune %s: %q, want %q", strings.Join(tc.args, " "), got, tc.want)
		}
	}

	for shell, want := range map[string]string{"bash": "__start_rune", "zsh": "#compdef rune", "fish": "complete -c rune"} {
		if out := mustRun(t, addr, "completion", shell); !strings.Contains(out, want) {
			t.Errorf("completion %s lacks %q", shell, want)
		}
	}
}
