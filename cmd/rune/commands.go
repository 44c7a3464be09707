package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// group is a command that only holds subcommands. cobra's default for one
// is to print help and exit 0 on a missing or unknown subcommand; this one
// fails instead, as kubectl does, so a script's typo does not pass.
// what names what the subcommands are ("kind", "command").
func group(use, short, what string) *cobra.Command {
	return &cobra.Command{
		Use:                        use,
		Short:                      short,
		Args:                       cobra.ArbitraryArgs,
		SuggestionsMinimumDistance: 2,
		RunE: func(cmd *cobra.Command, args []string) error {
			var known []string
			for _, c := range cmd.Commands() {
				if c.IsAvailableCommand() {
					known = append(known, c.Name())
				}
			}
			if len(args) == 0 {
				return fmt.Errorf("%s needs a %s: %s", cmd.CommandPath(), what, strings.Join(known, ", "))
			}
			msg := fmt.Sprintf("unknown %s %q for %s; use one of: %s", what, args[0], cmd.CommandPath(), strings.Join(known, ", "))
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %q?)", s[0])
			}
			return fmt.Errorf("%s", msg)
		},
	}
}

// namespaceFlag adds kubectl's -n, completed from the namespaces runed has.
func (g *globals) namespaceFlag(cmd *cobra.Command, ns *string) {
	cmd.Flags().StringVarP(ns, "namespace", "n", "default", "namespace")
	_ = cmd.RegisterFlagCompletionFunc("namespace", func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		c, err := g.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		list, err := c.Services(cmd.Context(), "")
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var out []string
		for _, s := range list.Items {
			if !slices.Contains(out, s.Spec.Namespace) {
				out = append(out, s.Spec.Namespace)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
}

// completeNames completes the names of objects of kind k in the namespace
// ns returns ("" = all), leaving out those already on the command line; max
// bounds how many names the command takes (0: any number).
func (g *globals) completeNames(k kind, ns func() string, max int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if max > 0 && len(args) >= max {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := g.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		items, err := k.list(cmd.Context(), c, ns())
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var out []string
		for _, it := range items {
			if !slices.Contains(args, it.name) && !slices.Contains(out, it.name) {
				out = append(out, it.name)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
