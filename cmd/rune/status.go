package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/runenet/runenet/api"
)

func newStatus(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show runed's node, readiness per subsystem and how far its view lags behind the log",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if output != "table" {
				return printStructured(cmd.OutOrStdout(), output, st)
			}
			writeStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func writeStatus(w io.Writer, st *api.Status) {
	fmt.Fprintf(w, "node:         %s\n", st.Node)
	fmt.Fprintf(w, "ready:        %t\n", st.Ready)
	for _, s := range st.Subsystems {
		state := "ready"
		if !s.Ready {
			state = "not ready: " + s.Reason
		}
		fmt.Fprintf(w, "  %-11s %s\n", s.Name, state)
	}
	if len(st.Subsystems) == 0 {
		for _, r := range st.NotReady {
			fmt.Fprintf(w, "  not ready:  %s\n", r)
		}
	}
	for _, warning := range st.Warnings {
		fmt.Fprintf(w, "warning:      %s\n", warning)
	}
	if st.Cluster != nil {
		fmt.Fprintf(w, "cluster:      %s\n", clusterLine(st.Cluster))
	}
	fmt.Fprintf(w, "watch:        %s\n", watchLag(st))
	fmt.Fprintf(w, "cluster CIDR: %s\n", st.ClusterCIDR)
	fmt.Fprintf(w, "services:     %d\ninstances:    %d\n", st.Services, st.Instances)
}

// clusterLine is the node's role and the leader it knows: "single node
// (Badger)", "leader (1 voter)", "follower (3 voters), leader node-1".
func clusterLine(c *api.ClusterStatus) string {
	switch {
	case c.Error != "":
		return "unknown: " + c.Error
	case c.Backend == api.BackendBadger:
		return "single node (Badger)"
	}
	members := plural(c.Voters, "voter")
	if c.NonVoters > 0 {
		members += ", " + plural(c.NonVoters, "non-voter")
	}
	line := fmt.Sprintf("%s (%s)", orDash(c.State), members)
	switch {
	case c.State == "leader":
	case c.Leader == "":
		line += ", no leader known"
	default:
		line += ", leader " + c.Leader
	}
	return line
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// watchLag says how far the View is behind the log against its budget:
// "stale: 31.9 s behind the log (budget 30 s)".
func watchLag(st *api.Status) string {
	state := "current"
	if st.Stale {
		state = "stale"
	}
	return fmt.Sprintf("%s: %.1f s behind the log (budget %g s)", state, st.LagSeconds, st.StaleBudgetSeconds)
}

func newDebug(g *globals) *cobra.Command {
	dbg := group("debug", "Fault injection and diagnostics (runed must run with --debug-api)", "command")
	dbg.AddCommand(&cobra.Command{
		Use:   "pause-watch DURATION",
		Short: "Stop runed's View from applying the log for DURATION, to see every consumer fail closed past the stale budget",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := time.ParseDuration(args[0])
			if err != nil {
				return fmt.Errorf("duration %q: %w (e.g. 40s)", args[0], err)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.PauseWatch(cmd.Context(), d.Seconds()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "watch paused for %s\n", d)
			return nil
		},
	})
	return dbg
}
