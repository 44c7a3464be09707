package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/runenet/runenet/internal/version"
)

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print rune's version and commit, and the CoreDNS release runed of this version is built on",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprint(cmd.OutOrStdout(), version.Get())
			return nil
		},
	}
}
