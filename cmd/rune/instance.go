package main

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/runenet/runenet/api"
)

func newInstance(g *globals) *cobra.Command {
	inst := &cobra.Command{
		Use:   "instance",
		Short: "Report instances as an orchestrator does: register, ready, unready, deregister",
	}
	var req api.RegisterInstanceRequest
	var ip string
	register := &cobra.Command{
		Use:   "register ID --service NAME --ip IP --node NODE",
		Short: "Record a started instance of a service",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := netip.ParseAddr(ip)
			if err != nil {
				return fmt.Errorf("--ip %q: not an IP address", ip)
			}
			req.ID, req.IP = args[0], addr
			c, err := g.client()
			if err != nil {
				return err
			}
			if _, err := c.RegisterInstance(cmd.Context(), req); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "instance/%s registered (%s/%s, ready=%t)\n", req.ID, req.Namespace, req.Service, req.Ready)
			return nil
		},
	}
	register.Flags().StringVar(&req.Service, "service", "", "service the instance belongs to")
	register.Flags().StringVarP(&req.Namespace, "namespace", "n", "default", "namespace of the service")
	register.Flags().StringVar(&ip, "ip", "", "the instance's IP address")
	register.Flags().StringVar(&req.Node, "node", "", "node the instance runs on")
	register.Flags().BoolVar(&req.Ready, "ready", true, "whether it passes its health checks")
	for _, f := range []string{"service", "ip", "node"} {
		_ = register.MarkFlagRequired(f)
	}

	inst.AddCommand(register,
		instanceOp(g, "ready", "Mark an instance healthy: it joins its service's endpoints", func(c *api.Client, cmd *cobra.Command, id string) error {
			_, err := c.SetInstanceReady(cmd.Context(), id, true)
			return err
		}),
		instanceOp(g, "unready", "Mark an instance unhealthy: it leaves its service's endpoints", func(c *api.Client, cmd *cobra.Command, id string) error {
			_, err := c.SetInstanceReady(cmd.Context(), id, false)
			return err
		}),
		instanceOp(g, "deregister", "Remove a stopped instance", func(c *api.Client, cmd *cobra.Command, id string) error {
			_, err := c.DeregisterInstance(cmd.Context(), id)
			return err
		}),
	)
	return inst
}

func instanceOp(g *globals, verb, short string, do func(*api.Client, *cobra.Command, string) error) *cobra.Command {
	past := map[string]string{"ready": "ready", "unready": "unready", "deregister": "deregistered"}[verb]
	return &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := do(c, cmd, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "instance/%s %s\n", args[0], past)
			return nil
		},
	}
}

func newDelete(g *globals) *cobra.Command {
	del := &cobra.Command{Use: "delete", Short: "Delete objects"}
	var ns string
	svc := &cobra.Command{
		Use:     "service NAME...",
		Aliases: []string{"services", "svc"},
		Short:   "Delete services; their VIPs are held for a while in case they come back",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			for _, name := range args {
				if _, err := c.DeleteService(cmd.Context(), ns, name); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "service/%s (%s) deleted\n", name, ns)
			}
			return nil
		},
	}
	svc.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace")
	del.AddCommand(svc)
	return del
}

func newStatus(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show runed's log position, lag and readiness",
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
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "seq:          %d (tail %d)\n", st.Seq, st.Tail)
			fmt.Fprintf(w, "lag:          %s (stale budget %s, stale=%t)\n",
				time.Duration(st.LagSeconds*float64(time.Second)).Round(time.Millisecond),
				time.Duration(st.StaleBudgetSeconds*float64(time.Second)), st.Stale)
			fmt.Fprintf(w, "ready:        %t\n", st.Ready)
			for _, r := range st.NotReady {
				fmt.Fprintf(w, "  not ready:  %s\n", r)
			}
			for _, warning := range st.Warnings {
				fmt.Fprintf(w, "warning:      %s\n", warning)
			}
			fmt.Fprintf(w, "cluster CIDR: %s\n", st.ClusterCIDR)
			fmt.Fprintf(w, "services:     %d\ninstances:    %d\n", st.Services, st.Instances)
			return nil
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func newDebug(g *globals) *cobra.Command {
	dbg := &cobra.Command{Use: "debug", Short: "Fault injection and diagnostics (runed must run with --debug-api)"}
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
