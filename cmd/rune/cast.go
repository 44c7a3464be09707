package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/runenet/runenet/api"
)

func newCast(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "cast FILE... (- for standard input)",
		Short: "Create or update services from YAML/JSON files, all or nothing",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files := make([]api.CastFile, 0, len(args))
			for _, name := range args {
				var data []byte
				var err error
				if name == "-" {
					name = "<stdin>"
					data, err = io.ReadAll(os.Stdin)
				} else {
					data, err = os.ReadFile(name)
				}
				if err != nil {
					return err
				}
				files = append(files, api.CastFile{Name: name, Data: string(data)})
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.Cast(cmd.Context(), files)
			if err != nil {
				return err
			}
			if output != "table" {
				return printStructured(cmd.OutOrStdout(), output, res) // warnings included
			}
			for _, r := range res.Results {
				verb := "cast"
				if r.Action == "unchanged" {
					verb = "unchanged"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "service/%s (%s) %s   vip %s\n", r.Name, r.Namespace, verb, r.VIP)
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
			}
			return nil
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}
