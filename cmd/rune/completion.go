package main

import (
	"io"

	"github.com/spf13/cobra"
)

// newCompletion replaces cobra's default completion command, which prints
// help and exits 0 on a missing or unknown shell, with one that fails as
// every other group does.
func newCompletion() *cobra.Command {
	comp := group("completion", "Print the shell completion script for bash, zsh, fish or powershell", "shell")
	comp.Long = `Print a script that makes the shell complete rune's commands, kinds, the names
of services and other objects and namespaces (asked from runed), and -o values:

  source <(rune completion bash)
  rune completion zsh > "${fpath[1]}/_rune"
  rune completion fish | source`
	for shell, gen := range map[string]func(*cobra.Command, io.Writer) error{
		"bash":       func(c *cobra.Command, w io.Writer) error { return c.GenBashCompletionV2(w, true) },
		"zsh":        func(c *cobra.Command, w io.Writer) error { return c.GenZshCompletion(w) },
		"fish":       func(c *cobra.Command, w io.Writer) error { return c.GenFishCompletion(w, true) },
		"powershell": func(c *cobra.Command, w io.Writer) error { return c.GenPowerShellCompletionWithDesc(w) },
	} {
		comp.AddCommand(&cobra.Command{
			Use:               shell,
			Short:             "Print the completion script for " + shell,
			Args:              cobra.NoArgs,
			ValidArgsFunction: cobra.NoFileCompletions,
			RunE:              func(cmd *cobra.Command, _ []string) error { return gen(cmd.Root(), cmd.OutOrStdout()) },
		})
	}
	return comp
}
