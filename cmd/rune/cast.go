package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/runenet/runenet/api"
)

func newCast(g *globals) *cobra.Command {
	var output, ns string
	var from []string
	cmd := &cobra.Command{
		Use:   "cast [-f] FILE|DIR|-...",
		Short: "Create or update services from YAML/JSON files, all or nothing",
		Long: `Create or update the services in the files given, as one atomic write: every
service lands or none does. Files are given as arguments or with -f (as kubectl
apply -f); a directory stands for its .yaml, .yml and .json files, and - for
standard input. -n sets the namespace of services that name none; a service
that names another namespace is refused.`,
		Example: `  rune cast api.yaml web.yaml
  rune cast -f services/ -n staging
  rune get service api -o yaml | rune cast -f -`,
		RunE: func(cmd *cobra.Command, args []string) error {
			names := append(slices.Clone(from), args...)
			if len(names) == 0 {
				return errors.New("cast needs the files to cast: rune cast FILE..., rune cast -f FILE|DIR, or - for standard input")
			}
			var namespace string
			if cmd.Flags().Changed("namespace") {
				namespace = ns
			}
			var files []api.CastFile
			for _, name := range names {
				got, err := readCastFiles(name, cmd.InOrStdin())
				if err != nil {
					return err
				}
				for i := range got {
					got[i].Namespace = namespace
				}
				files = append(files, got...)
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
	cmd.Flags().StringSliceVarP(&from, "filename", "f", nil, "a file, a directory of .yaml/.yml/.json files, or - for standard input (repeatable)")
	g.namespaceFlag(cmd, &ns)
	addOutputFlag(cmd, &output)
	return cmd
}

// readCastFiles reads one cast argument: a file, a directory's spec files
// (not its subdirectories, as kubectl apply -f without -R), or - for stdin.
func readCastFiles(name string, stdin io.Reader) ([]api.CastFile, error) {
	if name == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("standard input: %w", err)
		}
		return []api.CastFile{{Name: "<stdin>", Data: string(data)}}, nil
	}
	info, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		return []api.CastFile{{Name: name, Data: string(data)}}, nil
	}
	entries, err := os.ReadDir(name)
	if err != nil {
		return nil, err
	}
	var out []api.CastFile
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		p := filepath.Join(name, e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, api.CastFile{Name: p, Data: string(data)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no .yaml, .yml or .json files in the directory", name)
	}
	return out, nil
}
